import type { GuestLogs } from '../../api/types.js';
import { DETACH_KEYS } from '../../common/detach.js';
import { JaulaError } from '../../common/errors.js';
import { bool, num, onePositional } from '../args.js';
import { err, type Command } from '../command.js';
import { engine } from '../engine.js';

export const consoleCmd: Command = {
  summary: "attach to a running guest's console (Ctrl-a q detaches)",
  help: `Usage: jaula console NAME

Attaches this terminal to the guest's console, the one its init writes to, which the guest's
supervisor holds from its start (as lxc-console and vzctl console do). What is typed goes to
the console; ${DETACH_KEYS} detaches and leaves the guest running, Ctrl-a Ctrl-a types a Ctrl-a.
The end of input (a pipe) detaches too. Several terminals may be attached at once. A guest
built with the skeleton method offers a shell on its console (press Enter); what a guest runs
there is its own business (a getty, a shell, its init's messages). Without jaulad it needs
root; through jaulad it is relayed on the attach WebSocket (mode=console).

Examples:
  jaula console vs01
  jaula logs vs01        # what the console showed before`,
  specs: {},
  async run(p) {
    const name = onePositional(p, 'console');
    const end = await (
      await engine()
    ).attachConsole({ name }, () =>
      err(`Attached to the console of guest "${name}" (${DETACH_KEYS} detaches).`),
    );
    err(
      end === 'detached'
        ? `\r\nDetached from the console of guest "${name}"; it keeps running.`
        : `\r\nThe console of guest "${name}" closed: the guest stopped.`,
    );
    return 0;
  },
};

export const logs: Command = {
  summary: "a guest's console output and jaula's events for it (-f: follow)",
  help: `Usage: jaula logs NAME [-f] [-n LINES] [--console | --events]

Shows what the guest's console showed (its init's output; kept in
run/jaula/guests/NAME/console.log, 1 MiB and one rotated file) and jaula's own events for the
guest (starts, stops and why, hooks; var/log/jaula/NAME.log), each under a header. -f keeps
following both, as tail -f does, until interrupted; -n shows only the last LINES lines of each.

Options:
  -f, --follow        print what comes next, as it comes
  -n, --lines N       the last N lines of each (default: all that is kept)
  --console           the console only
  --events            jaula's events only

Examples:
  jaula logs vs01
  jaula logs vs01 -f -n 20
  jaula logs vs01 --events`,
  specs: {
    follow: { type: 'bool', short: 'f' },
    lines: { type: 'number', short: 'n' },
    console: { type: 'bool' },
    events: { type: 'bool' },
  },
  async run(p) {
    const name = onePositional(p, 'logs');
    const lines = num(p, 'lines');
    if (lines !== undefined && (lines < 0 || !Number.isInteger(lines)))
      throw new JaulaError('usage', `-n takes a number of lines (0 or more), not ${lines}`);
    const want = {
      events: !bool(p, 'console') || bool(p, 'events'),
      console: !bool(p, 'events') || bool(p, 'console'),
    };
    const e = await engine();
    let shown: 'events' | 'console' | undefined;
    const show = (which: 'events' | 'console', text: string): void => {
      if (!text || !want[which]) return;
      if (shown !== which && want.events && want.console)
        process.stdout.write(
          `${shown ? '\n' : ''}==> ${which === 'events' ? "jaula's events" : 'console'} of ${name} <==\n`,
        );
      shown = which;
      process.stdout.write(text);
    };
    let r: GuestLogs = await e.guestLogs({ name, ...(lines !== undefined ? { lines } : {}) });
    show('events', r.events);
    show('console', r.console);
    if (!bool(p, 'follow')) return 0;
    // Follow: ask for what came since, a few times a second (through jaulad too).
    for (;;) {
      await new Promise((res) => setTimeout(res, 250));
      r = await e.guestLogs({ name, eventsOffset: r.eventsOffset, consoleOffset: r.consoleOffset });
      show('events', r.events);
      show('console', r.console);
    }
  },
};
