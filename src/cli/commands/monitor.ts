import { JaulaError } from '../../common/errors.js';
import type { Engine } from '../../api/engine.js';
import { formatBytesCompact } from '../../common/size.js';
import type { ProcessRow } from '../../core/monitor/ps.js';
import { rates, type GuestRates, type GuestSample } from '../../core/monitor/sample.js';
import { bool, list, num, str, type Parsed } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { engine, engineFor } from '../engine.js';
import { table } from '../table.js';

export const FORMAT = { format: { type: 'string' as const } };

export function guestsOf(p: Parsed): string[] {
  return [...p.positionals, ...list(p, 'guest')];
}

/** The hosts a fleet-wide view could not ask, said on stderr. */
export function noteMissing(missing: { host: string; error: string }[]): void {
  for (const m of missing) err(`jaula: note: host "${m.host}" was not asked: ${m.error}`);
}

function pick<T>(key: string, table: Record<string, T>, option: string): T {
  const v = table[key];
  if (v === undefined)
    throw new JaulaError('usage', `--${option} ${key}: use one of ${Object.keys(table).join(', ')}`);
  return v;
}

// ---- ps ------------------------------------------------------------------------------------------

type Cmp<T> = (a: T, b: T) => number;
const byNum =
  <T>(f: (x: T) => number, desc = false): Cmp<T> =>
  (a, b) =>
    desc ? f(b) - f(a) : f(a) - f(b);
const byStr =
  <T>(f: (x: T) => string): Cmp<T> =>
  (a, b) =>
    f(a) < f(b) ? -1 : f(a) > f(b) ? 1 : 0;

const byGuest = byStr<ProcessRow>((r) => r.guest ?? '');
const PS_SORT: Record<string, Cmp<ProcessRow>> = {
  ctx: (a, b) => a.context - b.context || byGuest(a, b) || a.pid - b.pid,
  guest: (a, b) => byGuest(a, b) || a.pid - b.pid,
  pid: byNum((r) => r.pid),
  vpid: byNum((r) => r.vpid),
  user: byStr((r) => r.user),
  cpu: byNum((r) => r.cpu, true),
  rss: byNum((r) => r.rssKb, true),
  mem: byNum((r) => r.rssKb, true),
  time: byNum((r) => r.time, true),
  command: byStr((r) => r.args ?? r.command),
};

function cpuTime(s: number): string {
  const t = Math.floor(s);
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, '0')}`;
}

export const ps: Command = {
  summary: 'list the processes of all guests from the host (vps)',
  help: `Usage: jaula ps [GUEST...] [--guest G]... [--user U]... [--all] [--args] [--fleet]
                [--sort ctx|guest|pid|vpid|user|cpu|rss|time|command] [--format table|json]

Every process of every running guest (or of the guests named), seen from the host: its guest
and context ID, its PID on the host and inside the guest (VPID), user, state, average CPU use
over its life, resident memory, CPU time and command. A process belongs to a guest because it
is in the guest's cgroup. --all adds the host's own processes as context 0.

Options:
  --user U      only processes of user U (name or uid), repeatable
  --args        full command lines instead of command names
  --sort KEY    order (default ctx: by context, then PID)
  --fleet       every host's guests (this host in a fleet), with a HOST column: the other hosts
                are asked through their jaulads, as the remotes of their fleet names; a host
                that cannot be asked is named on stderr

Examples:
  jaula ps
  jaula ps --fleet --sort cpu
  jaula ps web1 db1 --sort cpu
  jaula ps --all --format json`,
  specs: {
    ...FORMAT,
    guest: { type: 'list' },
    user: { type: 'list' },
    all: { type: 'bool', short: 'a' },
    args: { type: 'bool' },
    sort: { type: 'string' },
    fleet: { type: 'bool' },
  },
  async run(p) {
    const cmp = pick(str(p, 'sort') ?? 'ctx', PS_SORT, 'sort');
    const fleet = bool(p, 'fleet');
    let rows: (ProcessRow & { host?: string })[];
    if (fleet) {
      const r = await (await engine()).fleetProcesses({ args: bool(p, 'args') });
      noteMissing(r.missing);
      const names = guestsOf(p);
      rows = r.hosts
        .flatMap((h) => h.rows.map((row) => ({ host: h.host, ...row })))
        .filter((row) => !names.length || names.includes(row.guest ?? ''));
    } else
      // In this process even while jaulad runs: the route is marked local (api/routes.ts says why).
      rows = await (
        await engineFor('listProcesses')
      ).listProcesses({ names: guestsOf(p), all: bool(p, 'all'), args: bool(p, 'args') });
    const users = list(p, 'user');
    if (users.length) rows = rows.filter((r) => users.includes(r.user) || users.includes(String(r.uid)));
    rows.sort(cmp);
    if (formatOf(p) === 'json') {
      json(rows);
      return 0;
    }
    out(
      table(
        [
          ...(fleet ? ['HOST'] : []),
          'GUEST',
          'CTX',
          'PID',
          'VPID',
          'USER',
          'STAT',
          '%CPU',
          'RSS',
          'TIME',
          'COMMAND',
        ],
        rows.map((r) => [
          ...(fleet ? [r.host] : []),
          r.guest ?? '(host)',
          r.context,
          r.pid,
          r.vpid,
          r.user,
          r.state,
          r.cpu.toFixed(1),
          formatBytesCompact(r.rssKb * 1024),
          cpuTime(r.time),
          r.args ?? r.command,
        ]),
      ),
    );
    return 0;
  },
};

let sampler: Promise<Engine> | undefined;

/** Running guests' counters, in this process even while jaulad runs (the route is local: api/routes.ts says why). */
export async function sample(names: string[], detail = false): Promise<GuestSample[]> {
  sampler ??= engineFor('sampleGuests');
  return (await sampler).sampleGuests({ names, detail });
}

// ---- top -----------------------------------------------------------------------------------------

const TOP_SORT: Record<string, Cmp<GuestRates>> = {
  cpu: byNum((r) => r.cpu, true),
  mem: byNum((r) => r.memory, true),
  pids: byNum((r) => r.pids, true),
  io: byNum((r) => r.ioRead + r.ioWrite, true),
  net: byNum((r) => r.netRx + r.netTx, true),
  name: byStr((r) => r.name),
  ctx: byNum((r) => r.context),
};
const KEYS: Record<string, string> = {
  c: 'cpu',
  m: 'mem',
  p: 'pids',
  i: 'io',
  n: 'net',
  N: 'name',
  x: 'ctx',
};

const rate = (b: number): string => `${formatBytesCompact(Math.round(b))}/s`;

function topFrame(rows: GuestRates[], interval: number, sort: string): string {
  const now = new Date().toTimeString().slice(0, 8);
  const cpu = rows.reduce((a, r) => a + r.cpu, 0);
  const head = `jaula top - ${now}, ${rows.length} guest${rows.length === 1 ? '' : 's'} running, ${cpu.toFixed(1)}% CPU in guests, every ${interval}s, sorted by ${sort} (keys: c m p i n N x, q quits)`;
  return `${head}\n\n${table(
    [
      'NAME',
      'CTX',
      '%CPU',
      'MEM',
      'MEMLIMIT',
      'PIDS',
      'IO-READ',
      'IO-WRITE',
      'NET-RX',
      'NET-TX',
      'OOM',
      'MEMHITS',
      'THROTTLED',
      'PIDSREFUSED',
    ],
    rows.map((r) => [
      r.name,
      r.context,
      r.cpu.toFixed(1),
      formatBytesCompact(r.memory),
      r.memoryLimit === null ? 'max' : formatBytesCompact(r.memoryLimit),
      `${r.pids}/${r.pidsLimit ?? 'max'}`,
      rate(r.ioRead),
      rate(r.ioWrite),
      rate(r.netRx),
      rate(r.netTx),
      r.oomKills,
      r.memoryHits,
      r.throttled,
      r.pidsRefused,
    ]),
  )}`;
}

export const top: Command = {
  summary: 'live per-guest view of CPU, memory, pids, I/O, network and limit hits (vtop)',
  help: `Usage: jaula top [GUEST...] [--interval S] [-n N | --once] [--sort cpu|mem|pids|io|net|name|ctx]
                 [--format table|json]

Refreshes every --interval seconds (default 2): per guest its CPU use (% of one CPU), memory
and its limit, tasks and their limit, block I/O and network rates, and the limit hits since it
started: processes killed by the OOM killer, memory limit hits, CPU periods throttled at
cpu.max, forks refused at pids.max. On a terminal the keys c m p i n N x change the order and
q quits. -n N stops after N refreshes (--once: after one); with --format json each refresh is
one JSON line.

Examples:
  jaula top
  jaula top --sort mem --interval 5
  jaula top --once --format json`,
  specs: {
    ...FORMAT,
    guest: { type: 'list' },
    interval: { type: 'string', short: 'd' },
    iterations: { type: 'number', short: 'n' },
    once: { type: 'bool' },
    sort: { type: 'string' },
  },
  async run(p) {
    const intervalText = str(p, 'interval') ?? '2';
    const interval = Number(intervalText);
    if (!Number.isFinite(interval) || interval < 0)
      throw new JaulaError('usage', `--interval needs a number of seconds, not "${intervalText}"`);
    const n = bool(p, 'once') ? 1 : num(p, 'iterations');
    if (n !== undefined && (!Number.isInteger(n) || n < 1))
      throw new JaulaError('usage', `-n needs a whole number of refreshes (1 or more)`);
    let sort = str(p, 'sort') ?? 'cpu';
    pick(sort, TOP_SORT, 'sort');
    const asJson = formatOf(p) === 'json';
    const names = guestsOf(p);
    const tty = process.stdout.isTTY && !asJson;
    let quit = false;
    let wake: (() => void) | undefined;
    const stdin = process.stdin;
    const interactive = tty && stdin.isTTY && n === undefined;
    if (interactive) {
      stdin.setRawMode(true);
      stdin.resume();
      stdin.on('data', (b: Buffer) => {
        const k = b.toString();
        if (k === 'q' || k === '\u0003') quit = true;
        else if (KEYS[k]) sort = KEYS[k] as string;
        wake?.();
      });
    }
    const onSignal = (): void => {
      quit = true;
      wake?.();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      let prev: GuestSample[] = await sample(names);
      for (let i = 0; n === undefined || i < n; i++) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, interval * 1000);
          wake = (): void => {
            clearTimeout(t);
            r();
          };
        });
        if (quit) break;
        const cur = await sample(names);
        const rows = rates(prev, cur).sort(pick(sort, TOP_SORT, 'sort'));
        prev = cur;
        if (asJson) out(JSON.stringify({ time: new Date().toISOString(), interval, guests: rows }));
        else out(`${tty ? '\x1b[H\x1b[2J' : i ? '\n' : ''}${topFrame(rows, interval, sort)}`);
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (interactive) {
        stdin.setRawMode(false);
        stdin.pause();
      }
    }
    return 0;
  },
};
