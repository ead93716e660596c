import { JaulaError } from '../../common/errors.js';
import { bool, list, num, onePositional, type Parsed } from '../args.js';
import {
  eachGuest,
  isBulk,
  parallelOf,
  printBulk,
  selectGuests,
  SELECTOR_SPECS,
  startMany,
  stopMany,
} from '../bulk.js';
import { out, type Command } from '../command.js';
import { engine } from '../engine.js';

function stopOpts(p: Parsed): { timeout?: number; kill?: boolean } {
  const o: { timeout?: number; kill?: boolean } = { kill: bool(p, 'kill') };
  const t = num(p, 'timeout');
  if (t !== undefined) o.timeout = t;
  return o;
}

export const start: Command = {
  summary: 'start guests',
  help: `Usage: jaula start NAME
       jaula start NAME... | --mark M | --all  [--fleet | --host HOST] [--parallel N] [--format table|json]

Starts the guest's init in new PID, mount, UTS, IPC, network and cgroup namespaces. The guest
keeps running after jaula exits. Several guests start in dependency order (a guest after the
guests it depends on, which are started too), at most --parallel N (default 8) at a time, with
one result line per guest. In a fleet, --fleet selects among every host's guests (--host HOST:
that host's), each started by its host through this host's jaulad.

Examples:
  jaula start vs01
  jaula start --fleet --mark web
  jaula start --mark web --parallel 4
  jaula start --all --format json`,
  specs: SELECTOR_SPECS,
  async run(p) {
    const e = await engine();
    if (isBulk(p))
      return printBulk(
        p,
        await startMany(e, await selectGuests(e, p, 'start'), parallelOf(p)),
        'No guest selected.',
      );
    if (!p.positionals.length)
      throw new JaulaError('usage', 'Give the guest(s) to start: jaula start NAME... (or --mark M, --all)');
    const name = p.positionals[0] as string;
    const g = await e.startGuest({ name });
    out(`Started guest "${name}" (pid ${g.pid ?? '?'}).`);
    return 0;
  },
};

export const stop: Command = {
  summary: 'stop guests (asks their init to halt, then kills)',
  help: `Usage: jaula stop NAME [--timeout S] [--kill]
       jaula stop NAME... | --mark M | --all  [--fleet | --host HOST] [--parallel N] [--format table|json]

Asks the guest's init to halt the way that init understands (busybox: SIGUSR2, sysvinit:
SIGPWR, systemd: SIGRTMIN+3, jaula-init: SIGPWR), waits up to --timeout seconds (default:
the guest's stop_timeout, 30), then kills every process of the guest. Several guests stop
dependents first, at most --parallel N (default 8) at a time.

Examples:
  jaula stop vs01
  jaula stop vs01 --timeout 5
  jaula stop --mark web --kill
  jaula stop --all`,
  specs: {
    ...SELECTOR_SPECS,
    timeout: { type: 'number', short: 't' },
    kill: { type: 'bool', short: 'k' },
  },
  async run(p) {
    const e = await engine();
    if (isBulk(p)) {
      const rows = await stopMany(e, await selectGuests(e, p, 'stop'), parallelOf(p), stopOpts(p));
      // Whatever ran before (a start rolled back after a crash included), an lxcfs this instance
      // started and no guest uses any more goes now.
      await (await import('../../core/lxcfs.js')).stopLxcfsIfIdle();
      return printBulk(p, rows, 'No guest was running.');
    }
    if (!p.positionals.length)
      throw new JaulaError('usage', 'Give the guest(s) to stop: jaula stop NAME... (or --all, --mark M)');
    const name = p.positionals[0] as string;
    const x = await e.stopGuest({ name, ...stopOpts(p) });
    out(`Stopped guest "${name}"${x.message ? ` (${x.message})` : ''}.`);
    return 0;
  },
};

export const restart: Command = {
  summary: 'stop (if running) and start guests',
  help: `Usage: jaula restart NAME [--timeout S] [--kill]
       jaula restart NAME... | --mark M | --all  [--parallel N] [--format table|json]

Examples:
  jaula restart vs01
  jaula restart --mark web --parallel 2`,
  specs: {
    ...SELECTOR_SPECS,
    timeout: { type: 'number', short: 't' },
    kill: { type: 'bool', short: 'k' },
  },
  async run(p) {
    const e = await engine();
    if (isBulk(p))
      return printBulk(
        p,
        await eachGuest(await selectGuests(e, p, 'restart'), parallelOf(p), async (g) => {
          const s = await e.restartGuest({ name: g.name, ...stopOpts(p) });
          return { name: g.name, ok: true, message: `restarted (pid ${s.pid ?? '?'})` };
        }),
        'No guest selected.',
      );
    const name = onePositional(p, 'restart');
    const g = await e.restartGuest({ name, ...stopOpts(p) });
    out(`Restarted guest "${name}" (pid ${g.pid ?? '?'}).`);
    return 0;
  },
};

export const autostartCmd: Command = {
  summary: 'start the guests with a mark, in dependency order (for boot)',
  help: `Usage: jaula autostart [--mark M] [--parallel N] [--format table|json]

Starts every guest marked M (default: "default") after the guests it depends on. Run at boot
by contrib/systemd/jaula-autostart.service. (jaulad, when it sees a new boot, starts only those
marked "default" that ran when the host went down: never one that was stopped on purpose.)

Examples:
  jaula autostart
  jaula autostart --mark web --parallel 2`,
  specs: { mark: { type: 'list' }, parallel: { type: 'number' }, format: { type: 'string' } },
  async run(p) {
    const e = await engine();
    if (!list(p, 'mark').length) p.opts['mark'] = ['default'];
    const chosen = await selectGuests(e, p, 'autostart');
    return printBulk(p, await startMany(e, chosen, num(p, 'parallel') ?? 4), 'No guest has that mark.');
  },
};

export const exited: Command = {
  summary: "internal: run by a guest's supervisor when its init ended",
  help: 'Usage: jaula __exited NAME INSTANCE (internal)',
  specs: {},
  async run(p: Parsed) {
    const [name, instance] = p.positionals;
    if (!name || !instance) throw new JaulaError('usage', 'jaula __exited NAME INSTANCE');
    const { onGuestExited } = await import('../../core/lifecycle.js');
    await onGuestExited(name, instance);
    return 0;
  },
};
