import { JaulaError } from '../../common/errors.js';
import { autostart, stopMany, type BulkResult } from '../../core/autostart.js';
import { buildGuest } from '../../core/build.js';
import { enterGuest, execInGuest, runOnce } from '../../core/exec.js';
import { deleteGuest, guestStatus, listGuests, type GuestSummary } from '../../core/guests.js';
import { onGuestExited, restartGuest, startGuest, stopGuest } from '../../core/lifecycle.js';
import { parseInterfaceSpec } from '../../network/ifspec.js';
import { bool, list, num, onePositional, str, type Parsed } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { duration, table } from '../table.js';

const FORMAT = { format: { type: 'string' as const } };

function bulkTable(results: BulkResult[]): string {
  return table(
    ['GUEST', 'RESULT', 'MESSAGE'],
    results.map((r) => [r.name, r.ok ? 'ok' : 'FAILED', r.message]),
  );
}

export const build: Command = {
  summary: 'build a guest (skeleton, template or debootstrap)',
  help: `Usage: jaula build NAME -m skeleton|template|debootstrap [options] [-- METHOD-ARGS]

Options:
  -m, --method M          skeleton | template | debootstrap
  --hostname H            the guest's hostname (default: NAME)
  --context N             its context ID (default: the next free one from 100)
  --interface SPEC        [name=][dev:]ip/prefix, repeatable (e.g. vs01=eth1:192.168.39.1/24)
  --initstyle S           plain (/sbin/init) | sysv (/etc/init.d/rc 3) | cmd (a command)
  --cmd "CMD ARGS"        the command of the cmd init style (split on spaces)
  --mark M                a mark for autostart and bulk operations, repeatable
  --depends G             a guest this one starts after, repeatable
  --storage D             storage driver (default dir)

Method arguments (after --):
  template:     -t FILE.tar|.tar.gz|.tar.zst
  debootstrap:  -d RELEASE [-m MIRROR] [--variant minbase] [--include P1,P2] [--init sysvinit|systemd|none]

Examples:
  jaula build vs01 -m skeleton --hostname vs01 --context 1001 --interface vs01=eth1:192.168.39.1/24
  jaula build web1 -m debootstrap --mark default -- -d bookworm
  jaula build web2 -m template -- -t /var/lib/jaula/bookworm.tar.zst
  jaula build job1 -m skeleton --initstyle cmd --cmd "/bin/sleep 3600"`,
  specs: {
    method: { type: 'string', short: 'm' },
    hostname: { type: 'string' },
    context: { type: 'number' },
    interface: { type: 'list' },
    initstyle: { type: 'string' },
    cmd: { type: 'string' },
    mark: { type: 'list' },
    depends: { type: 'list' },
    storage: { type: 'string' },
    quiet: { type: 'bool', short: 'q' },
  },
  async run(p) {
    const name = onePositional(p, 'build');
    const method = str(p, 'method');
    if (!method)
      throw new JaulaError('usage', 'Give a build method: jaula build NAME -m skeleton|template|debootstrap');
    const ac = new AbortController();
    const abort = (): void =>
      ac.abort(new JaulaError('runtime', 'The build was interrupted; what it made was removed'));
    process.once('SIGINT', abort);
    process.once('SIGTERM', abort);
    const cmd = str(p, 'cmd');
    const o: Parameters<typeof buildGuest>[0] = {
      name,
      method,
      interfaces: list(p, 'interface').map(parseInterfaceSpec),
      marks: list(p, 'mark'),
      depends: list(p, 'depends'),
      methodArgs: p.rest,
      signal: ac.signal,
      onProgress: bool(p, 'quiet') ? () => {} : (l) => err(`jaula: ${l}`),
    };
    const hostname = str(p, 'hostname');
    const context = num(p, 'context');
    const initstyle = str(p, 'initstyle');
    const storage = str(p, 'storage');
    if (hostname !== undefined) o.hostname = hostname;
    if (context !== undefined) o.context = context;
    if (initstyle !== undefined) o.initstyle = initstyle;
    if (storage !== undefined) o.storage = storage;
    if (cmd !== undefined) o.cmd = cmd.split(/\s+/).filter(Boolean);
    const cfg = await buildGuest(o);
    out(
      `Built guest "${cfg.name}" (context ${cfg.context}, hostname ${cfg.hostname}, init style ${cfg.initstyle}). Start it with: jaula start ${cfg.name}`,
    );
    return 0;
  },
};

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

function describeExit(g: GuestSummary): string {
  const e = g.lastExit;
  if (!e) return '';
  const how =
    e.reason === 'exited'
      ? `exited with status ${e.code ?? '?'}`
      : e.reason === 'killed'
        ? `killed by signal ${e.signal ?? '?'}`
        : e.reason;
  return `${how} at ${e.at}${e.message ? `: ${e.message}` : ''}`;
}

export const status: Command = {
  summary: 'tell whether a guest runs (exit status 0 if it does, 3 if not)',
  help: `Usage: jaula status NAME [--format table|json]`,
  specs: FORMAT,
  async run(p) {
    const g = guestStatus(onePositional(p, 'status'));
    if (formatOf(p) === 'json') json(g);
    else if (g.status === 'stopped')
      out(
        `Guest "${g.name}" (context ${g.context}) is stopped${g.lastExit ? `; last run: ${describeExit(g)}` : ''}.`,
      );
    else
      out(
        `Guest "${g.name}" (context ${g.context}) is ${g.status}: pid ${g.pid}, up ${g.startedAt ? duration(Date.now() - Date.parse(g.startedAt)) : '?'}, runtime ${g.runtime}.`,
      );
    return g.status === 'running' ? 0 : 3;
  },
};

export const listCmd: Command = {
  summary: 'list guests',
  help: `Usage: jaula list [--format table|json] [--running] [--mark M]`,
  specs: { ...FORMAT, running: { type: 'bool' }, mark: { type: 'string' } },
  async run(p) {
    let guests = listGuests();
    const mark = str(p, 'mark');
    if (bool(p, 'running')) guests = guests.filter((g) => g.status !== 'stopped');
    if (mark) guests = guests.filter((g) => g.marks.includes(mark));
    if (formatOf(p) === 'json') {
      json(guests);
      return 0;
    }
    out(
      table(
        ['NAME', 'CONTEXT', 'STATUS', 'INIT', 'HOSTNAME', 'PID', 'UPTIME', 'MARKS', 'INTERFACES'],
        guests.map((g) => [
          g.name,
          g.context,
          g.status,
          g.initstyle,
          g.hostname,
          g.pid,
          g.startedAt && g.status !== 'stopped' ? duration(Date.now() - Date.parse(g.startedAt)) : undefined,
          g.marks.join(',') || undefined,
          g.interfaces.join(' ') || undefined,
        ]),
      ),
    );
    return 0;
  },
};

export const enter: Command = {
  summary: 'open an interactive shell inside a running guest',
  help: `Usage: jaula enter NAME

A login shell (bash if the guest has it, else sh) on a fresh pty inside the guest, with no
password: the host may always enter its guests, never the reverse.`,
  specs: {},
  async run(p) {
    return enterGuest(onePositional(p, 'enter'));
  },
};

export const exec: Command = {
  summary: 'run a command inside a running guest',
  help: `Usage: jaula exec NAME [-t] [-e VAR=VALUE]... [--cwd DIR] [--user UID[:GID]] -- CMD [ARGS...]

Standard input, output and error are passed through; the exit status is the command's.

Examples:
  jaula exec vs01 -- ps aux
  echo hello | jaula exec vs01 -- cat`,
  specs: {
    tty: { type: 'bool', short: 't' },
    env: { type: 'list', short: 'e' },
    cwd: { type: 'string' },
    user: { type: 'string', short: 'u' },
  },
  async run(p) {
    const name = onePositional(p, 'exec');
    const o: { tty: boolean; env: string[]; cwd?: string; user?: string } = {
      tty: bool(p, 'tty'),
      env: list(p, 'env'),
    };
    const cwd = str(p, 'cwd');
    const user = str(p, 'user');
    if (cwd) o.cwd = cwd;
    if (user) o.user = user;
    return execInGuest(name, p.rest, o);
  },
};

export const runCmd: Command = {
  summary: 'one-shot: start a stopped guest with a command, stop it when the command ends',
  help: `Usage: jaula run NAME -- CMD [ARGS...]

Like lxc-execute: the command runs under jaula-init as the guest's only program, with stdio
attached; the exit status is the command's.

Example:
  jaula run vs01 -- /bin/true`,
  specs: {},
  async run(p) {
    return runOnce(onePositional(p, 'run'), p.rest);
  },
};

export const del: Command = {
  summary: 'delete a guest (its config, files and state)',
  help: `Usage: jaula delete NAME [--force]

Refuses a running guest unless --force, which kills it first.`,
  specs: { force: { type: 'bool', short: 'f' } },
  async run(p) {
    const name = onePositional(p, 'delete');
    await deleteGuest(name, { force: bool(p, 'force') });
    out(`Deleted guest "${name}".`);
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
