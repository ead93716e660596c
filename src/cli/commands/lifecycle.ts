import { JaulaError } from '../../common/errors.js';
import { autostart, stopMany, type BulkResult } from '../../core/autostart.js';
import { listGuests } from '../../core/guests.js';
import { onGuestExited, restartGuest, startGuest, stopGuest } from '../../core/lifecycle.js';
import { bool, num, onePositional, str, type Parsed } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { table } from '../table.js';

const FORMAT = { format: { type: 'string' as const } };

function bulkTable(results: BulkResult[]): string {
  return table(
    ['GUEST', 'RESULT', 'MESSAGE'],
    results.map((r) => [r.name, r.ok ? 'ok' : 'FAILED', r.message]),
  );
}

export const start: Command = {
  summary: 'start a guest',
  help: `Usage: jaula start NAME...
       jaula start --mark M

Starts the guest's init in new PID, mount, UTS, IPC, network and cgroup namespaces. The guest
keeps running after jaula exits.

Examples:
  jaula start vs01
  jaula start --mark default`,
  specs: { mark: { type: 'string' } },
  async run(p) {
    const mark = str(p, 'mark');
    if (mark) {
      const r = await autostart(mark);
      out(bulkTable(r));
      return r.every((x) => x.ok) ? 0 : 1;
    }
    if (!p.positionals.length)
      throw new JaulaError('usage', 'Give the guest(s) to start: jaula start NAME... (or --mark M)');
    let rc = 0;
    for (const name of p.positionals) {
      try {
        const st = await startGuest(name);
        out(`Started guest "${name}" (pid ${st.pid}).`);
      } catch (e) {
        if (p.positionals.length === 1) throw e;
        err(`jaula: ${(e as Error).message}`);
        rc = 1;
      }
    }
    return rc;
  },
};

export const stop: Command = {
  summary: 'stop a guest (asks its init to halt, then kills)',
  help: `Usage: jaula stop NAME... [--timeout S] [--kill]
       jaula stop --all | --mark M

Asks the guest's init to halt the way that init understands (busybox: SIGUSR2, sysvinit:
SIGPWR, systemd: SIGRTMIN+3, jaula-init: SIGPWR), waits up to --timeout seconds (default:
the guest's stop_timeout, 30), then kills every process of the guest.

Examples:
  jaula stop vs01
  jaula stop vs01 --timeout 5
  jaula stop --all`,
  specs: {
    timeout: { type: 'number', short: 't' },
    kill: { type: 'bool', short: 'k' },
    all: { type: 'bool' },
    mark: { type: 'string' },
  },
  async run(p) {
    const opts: { timeout?: number; kill?: boolean } = { kill: bool(p, 'kill') };
    const t = num(p, 'timeout');
    if (t !== undefined) opts.timeout = t;
    const mark = str(p, 'mark');
    if (bool(p, 'all') || mark) {
      const names = mark
        ? listGuests()
            .filter((g) => g.marks.includes(mark))
            .map((g) => g.name)
        : 'all';
      const r = await stopMany(names, opts);
      out(r.length ? bulkTable(r) : 'No guest was running.');
      return r.every((x) => x.ok) ? 0 : 1;
    }
    if (!p.positionals.length)
      throw new JaulaError('usage', 'Give the guest(s) to stop: jaula stop NAME... (or --all, --mark M)');
    let rc = 0;
    for (const name of p.positionals) {
      try {
        const e = await stopGuest(name, opts);
        out(`Stopped guest "${name}"${e.message ? ` (${e.message})` : ''}.`);
      } catch (e) {
        if (p.positionals.length === 1) throw e;
        err(`jaula: ${(e as Error).message}`);
        rc = 1;
      }
    }
    return rc;
  },
};

export const restart: Command = {
  summary: 'stop (if running) and start a guest',
  help: `Usage: jaula restart NAME [--timeout S] [--kill]`,
  specs: { timeout: { type: 'number', short: 't' }, kill: { type: 'bool', short: 'k' } },
  async run(p) {
    const name = onePositional(p, 'restart');
    const opts: { timeout?: number; kill?: boolean } = { kill: bool(p, 'kill') };
    const t = num(p, 'timeout');
    if (t !== undefined) opts.timeout = t;
    const st = await restartGuest(name, opts);
    out(`Restarted guest "${name}" (pid ${st.pid}).`);
    return 0;
  },
};

export const autostartCmd: Command = {
  summary: 'start the guests with a mark, in dependency order (for boot)',
  help: `Usage: jaula autostart [--mark M] [--parallel N]

Starts every guest marked M (default: "default") after the guests it depends on. Run at boot
by contrib/systemd/jaula-autostart.service.`,
  specs: { mark: { type: 'string' }, parallel: { type: 'number' }, ...FORMAT },
  async run(p) {
    const r = await autostart(str(p, 'mark') ?? 'default', num(p, 'parallel') ?? 4);
    if (formatOf(p) === 'json') json(r);
    else out(r.length ? bulkTable(r) : 'No guest has that mark.');
    return r.every((x) => x.ok) ? 0 : 1;
  },
};

export const exited: Command = {
  summary: "internal: run by a guest's supervisor when its init ended",
  help: 'Usage: jaula __exited NAME INSTANCE (internal)',
  specs: {},
  async run(p: Parsed) {
    const [name, instance] = p.positionals;
    if (!name || !instance) throw new JaulaError('usage', 'jaula __exited NAME INSTANCE');
    await onGuestExited(name, instance);
    return 0;
  },
};
