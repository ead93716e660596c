/**
 * bench/migrate: a running busybox guest moved back and forth between two jaula hosts (the
 * harness of tests/hosts.ts: jaula instances whose jaulads run in network namespaces of their
 * own, on one segment with a client namespace), `--moves N` (default 20) moves of each mode (cold,
 * sync, live), interleaved two by two (a->b, b->a) so that every mode sees the same load. The
 * guest runs under runc in every mode (live moves need it: CRIU). `--modes cold,sync` leaves live
 * out. Two guests, one after the other (`--guest echo|deb`: one of them): a busybox guest, and a
 * Debian bookworm guest (the debootstrap cache's minbase, dir storage: its ~200 MiB of files all
 * its own) whose probe also keeps 100 MiB of memory changing. It measures:
 *
 *   client   the downtime as a client sees it: the client namespace sends one UDP datagram every
 *            millisecond to the guest's echo service; the largest gap between two replies
 *            within the move (bench/tools/migprobe.c, "ping")
 *   guest    the downtime as the guest sees it: a probe in the guest writes CLOCK_MONOTONIC to a
 *            file every millisecond; its next instance (a cold or sync move restarts the guest's
 *            processes) reads the last stamp there: the guest's "restart gap"; a live move keeps
 *            the probe running, which notes the jump between two of its own stamps
 *   jaula    the source's own measure ("down N ms": from the stop, or the freeze, to the
 *            target's answer that the guest runs), the phases of `jaula migrate -t`, the
 *            command's wall time and the bytes sent
 *
 * JAULA_BENCH_TRACE=1: the jaulads trace their phases (JAULA_TRACE), and a move whose "down"
 * passes 3 s prints the end of both jaulads' logs.
 *
 * A repeated backup of an unchanged guest (`jaula backup --from SNAP`, and a receiver that has
 * the layers) is measured by bench/backup.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Hosts, type Host } from '../tests/hosts.js';
import { debianTarball, loadAvg, median, pct, projectDir, table } from './lib.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MOVES = arg('moves', 20);
type Mode = 'cold' | 'sync' | 'live';
const MODES = ((): Mode[] => {
  const i = process.argv.indexOf('--modes');
  return (i > 0 ? (process.argv[i + 1] ?? '').split(',') : ['cold', 'sync', 'live']) as Mode[];
})();
const ns = (): number => Number(process.hrtime.bigint());

interface Move {
  mode: Mode;
  from: string;
  client: number;
  guest: number;
  down: number;
  wall: number;
  mib: number;
  phases: Map<string, number>;
  /** How many notes the guest's probe had written after this move. */
  notes: number;
}

/** The client's probe: replies' gaps (ns pairs) and the time of its last reply. */
class Client {
  gaps: [number, number][] = [];
  last = 0;
  private buf = '';
  private readonly proc;
  constructor(netns: string, probe: string, address: string) {
    this.proc = spawn('nsenter', [`--net=/run/netns/${netns}`, probe, 'ping', address, '7'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.proc.stdout.on('data', (b: Buffer) => {
      this.buf += b.toString();
      const lines = this.buf.split('\n');
      this.buf = lines.pop() ?? '';
      for (const l of lines) {
        const f = l.split(' ').map(Number);
        if (l.startsWith('gap ')) this.gaps.push([f[1] as number, f[2] as number]);
        else if (l.startsWith('r ')) this.last = f[1] as number;
      }
    });
  }
  /** Wait until a reply came after `t` (ns), for at most `ms`. */
  async answeredAfter(t: number, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.last <= t) {
      if (Date.now() > deadline) throw new Error(`the guest did not answer the client within ${ms / 1000} s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  /** The largest gap between replies that overlaps [t0, t1] (ms); 5 ms or less shows as 5. */
  largestGap(t0: number, t1: number): number {
    const g = this.gaps.filter(([a, b]) => b > t0 && a < t1).map(([a, b]) => (b - a) / 1e6);
    return Math.max(5, ...g);
  }
  stop(): void {
    this.proc.kill('SIGKILL');
  }
}

/** The guest's probe's notes so far, "restart MS" or "jump MS" (in the files it carries along). */
function probeNotes(h: Host, guest: string): [string, number][] {
  const f = join(h.t.guestRoot(guest), 'var/probe.gaps');
  if (!fs.existsSync(f)) return [];
  return fs
    .readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => /^(restart|jump) /.test(l))
    .map((l) => [l.split(' ')[0] as string, Number(l.split(' ')[1])]);
}

async function move(c: Client, guest: string, from: Host, to: Host, mode: Mode, seen: number): Promise<Move> {
  const t0 = ns();
  const r = await from.jaulaAsync(['migrate', guest, to.name, '--mode', mode, '-t']);
  const t1 = ns();
  if (r.code !== 0) throw new Error(`jaula migrate (${mode}) from ${from.name} failed: ${r.stderr}`);
  await c.answeredAfter(t1);
  // The move's note: a restart (cold, sync), or the live probe's jump over its frozen time.
  const kind = mode === 'live' ? 'jump' : 'restart';
  let notes = probeNotes(to, guest).slice(seen);
  for (let i = 0; !notes.some(([k]) => k === kind) && i < 250; i++) {
    await new Promise((res) => setTimeout(res, 20));
    notes = probeNotes(to, guest).slice(seen);
  }
  const phases = new Map<string, number>();
  for (const m of r.stdout.matchAll(/^(\S.*?)\s+(\d+\.\d{3}) s$/gm))
    phases.set(m[1] as string, Number(m[2]) * 1000);
  return {
    mode,
    from: from.name,
    client: c.largestGap(t0, t1),
    guest: Math.max(...notes.filter(([k]) => k === kind).map(([, ms]) => ms)),
    notes: probeNotes(to, guest).length,
    down: Number(/down (\d+) ms/.exec(r.stdout)?.[1]),
    wall: (t1 - t0) / 1e6,
    mib: Number(/([\d.]+) MiB sent/.exec(r.stdout)?.[1]),
    phases,
  };
}

function report(title: string, done: Move[]): void {
  const f = (xs: number[]): string => `${median(xs).toFixed(0)} / ${pct(xs, 95).toFixed(0)}`;
  const rows = MODES.map((mode) => {
    const ms = done.filter((m) => m.mode === mode);
    return [
      `${mode} (${ms.length} moves)`,
      f(ms.map((m) => m.client)),
      `${Math.max(...ms.map((m) => m.client)).toFixed(0)}`,
      f(ms.map((m) => m.guest)),
      f(ms.map((m) => m.down)),
      median(ms.map((m) => m.phases.get('total') ?? NaN)).toFixed(0),
      median(ms.map((m) => m.wall)).toFixed(0),
      median(ms.map((m) => m.mib)).toFixed(1),
    ];
  });
  console.log(
    `\nbench/migrate: ${title} moved between two hosts, ${new Date().toISOString()}, load ${loadAvg()}\n`,
  );
  console.log(
    table(
      [
        'mode',
        'client down ms p50 / p95',
        'max',
        'guest gap ms p50 / p95',
        'jaula "down" ms p50 / p95',
        'total ms p50',
        'command ms p50',
        'MiB sent',
      ],
      rows,
    ),
  );
  const names = [...new Set(done.flatMap((m) => [...m.phases.keys()]))];
  console.log('\nphases of `jaula migrate -t`, ms p50 (p95)\n');
  console.log(
    table(
      ['phase', ...MODES],
      names.map((p) => [
        p,
        ...MODES.map((mode) => {
          const xs = done
            .filter((m) => m.mode === mode && m.phases.has(p))
            .map((m) => m.phases.get(p) as number);
          return xs.length ? `${median(xs).toFixed(0)} (${pct(xs, 95).toFixed(0)})` : '-';
        }),
      ]),
    ),
  );
  console.log(
    '\nclient: the largest gap between two replies to a datagram sent every ms (5 = none longer); guest: the time its\n' +
      'clock probe saw between its last stamp on the source and its first on the target (its processes restart in\n' +
      "cold and sync moves; a live move keeps them: its probe notes its own jump, which CRIU's time namespace\n" +
      'shortens); jaula "down": the source\'s measure,\n' +
      'from the stop (cold), the freeze (sync) or the checkpoint (live) to the answer.\n' +
      'A repeated backup of an unchanged guest (an increment, jaula backup --from SNAP): bench/backup.',
  );
}

/** A guest of the bench: built on `h`, given the probes (at /srv/migprobe), not started. */
interface Case {
  title: string;
  guest: string;
  build(h: Host, address: string): void;
  /** Its init's script, after the clock probe and before the echo service. */
  extra: string;
}

const CASES: Case[] = [
  {
    title: 'a running busybox guest under runc (UDP echo + clock probe)',
    guest: 'echo1',
    build: (h, address) =>
      h.ok([
        ...['build', 'echo1', '-m', 'skeleton', '-q', '--initstyle', 'cmd', '--cmd', '/bin/sh /srv/run.sh'],
        ...['--interface', `eth0=mnet:${address}/24`],
      ]),
    extra: '',
  },
  {
    title:
      'a running Debian bookworm guest under runc (dir storage: all its ~200 MiB of files its own; UDP echo + clock probe + 100 MiB of memory written over and over)',
    guest: 'deb1',
    build: (h, address) => {
      h.ok(['template', 'import', debianTarball('bench/migrate'), 'deb', '-q']);
      h.ok([
        ...['build', 'deb1', '-m', 'template', '-q', '--storage', 'dir', '--initstyle', 'cmd'],
        ...['--cmd', '/bin/sh /srv/run.sh', '--interface', `eth0=mnet:${address}/24`, '--', '-t', 'deb'],
      ]);
    },
    extra: '/srv/migprobe mem 100 &\n',
  },
];

/** One guest moved MOVES times in each mode, back and forth; its table. */
async function runCase(hs: Hosts, c: Case, probe: string, address: string): Promise<void> {
  const [a, b] = [hs.host('a'), hs.host('b')];
  c.build(a, address);
  const root = a.t.guestRoot(c.guest);
  for (const d of ['srv', 'var']) fs.mkdirSync(join(root, d), { recursive: true });
  fs.copyFileSync(probe, join(root, 'srv/migprobe'));
  fs.chmodSync(join(root, 'srv/migprobe'), 0o755);
  fs.writeFileSync(
    join(root, 'srv/run.sh'),
    `#!/bin/sh\n/srv/migprobe clock /var/probe &\n${c.extra}exec /srv/migprobe echo 7\n`,
    { mode: 0o755 },
  );
  a.ok(['set', c.guest, '--runtime', 'runc']);
  a.ok(['start', c.guest]);
  const client = new Client(hs.client, probe, address);
  try {
    await client.answeredAfter(ns());
    const done: Move[] = [];
    let [from, to] = [a, b];
    for (let i = 0; i < MODES.length * MOVES; i++) {
      const mode = MODES[Math.floor(i / 2) % MODES.length] as Mode;
      const m = await move(client, c.guest, from, to, mode, done.at(-1)?.notes ?? 0);
      done.push(m);
      process.stderr.write(
        `${c.guest}: move ${i + 1}/${MODES.length * MOVES} ${mode} ${from.name}->${to.name}: client ${m.client.toFixed(0)} ms, guest ${m.guest.toFixed(0)} ms, down ${m.down} ms, ${m.mib} MiB\n`,
      );
      if (process.env['JAULA_BENCH_TRACE'] && m.down > 3000)
        for (const h of [from, to])
          console.error(`--- ${h.name}\n${h.daemon?.log.split('\n').slice(-80).join('\n')}`);
      [from, to] = [to, from];
    }
    report(c.title, done);
    from.ok(['delete', '--force', c.guest]);
  } finally {
    client.stop();
  }
}

async function main(): Promise<void> {
  const hs = new Hosts({ count: 2 });
  try {
    await hs.up(process.env['JAULA_BENCH_TRACE'] ? { JAULA_TRACE: '1' } : {});
    const probe = hs.host('a').t.path('migprobe');
    const cc = spawnSync('gcc', ['-O2', '-static', '-o', probe, join(projectDir, 'bench/tools/migprobe.c')], {
      encoding: 'utf8',
    });
    if (cc.status !== 0) throw new Error(`gcc -static (bench/tools/migprobe.c) failed: ${cc.stderr}`);
    const only = process.argv.includes('--guest')
      ? process.argv[process.argv.indexOf('--guest') + 1]
      : undefined;
    for (const [i, c] of CASES.entries())
      if (!only || c.guest.startsWith(only)) await runCase(hs, c, probe, `${hs.prefix}.${20 + i}`);
  } finally {
    const left = await hs.cleanup();
    if (left.length) {
      console.error(`bench/migrate left behind: ${left.join(', ')}`);
      process.exitCode = 1;
    }
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
