/**
 * bench/api: lifecycle through jaulad. With 200 guests (busybox, `sleep` as init): the latency
 * of one start and one stop request (median, p90, p99) and the throughput (guests per second)
 * when clients send 1, 8 and 32 requests at a time; the start path beside lxc (lxc-start -d,
 * lxc-execute of /bin/true) and `jaula start` from the CLI; then jaulad's memory (RSS) idle, with
 * 1000 registered guests, and while serving the list and the event stream to clients.
 * Clients are jaula's own RemoteEngine (the CLI's client of jaulad).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { inParallel } from '../src/common/waves.js';
import { have, lxcContainer, median, must, N, pct, Scratch, sh, startDaemon, table, timeMs } from './lib.js';

const GUESTS = Number(process.env['BENCH_GUESTS'] ?? 200);
const REGISTERED = 1000;
const s = new Scratch();
const names = Array.from({ length: GUESTS }, (_, i) => `ba${String(i).padStart(3, '0')}`);

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

/** Run fn over every guest, `conc` at a time: each call's latency, and guests per second. */
async function wave(
  conc: number,
  fn: (n: string) => Promise<unknown>,
): Promise<{ ms: number[]; perS: number }> {
  const ms: number[] = [];
  const t0 = process.hrtime.bigint();
  await inParallel(names, conc, async (n) => {
    const a = process.hrtime.bigint();
    await fn(n);
    ms.push(Number(process.hrtime.bigint() - a) / 1e6);
  });
  const total = Number(process.hrtime.bigint() - t0) / 1e9;
  return { ms, perS: names.length / total };
}

try {
  const d = await startDaemon(s);
  const e = d.engine;
  const tb = process.hrtime.bigint();
  await inParallel(names, 4, (name) =>
    e
      .buildGuest({ name, method: 'skeleton', initstyle: 'cmd', cmd: ['/bin/sleep', '100000'] })
      .then(() => {}),
  );
  const buildS = Number(process.hrtime.bigint() - tb) / 1e9;
  const idle = rssKiB(d.pid);

  const rows: (string | number)[][] = [];
  const throughput = async (conc: number): Promise<void> => {
    const up = await wave(conc, (name) => e.startGuest({ name }));
    const runningRss = rssKiB(d.pid);
    const down = await wave(conc, (name) => e.stopGuest({ name, timeout: 10 }));
    for (const [op, w] of [
      ['start', up],
      ['stop', down],
    ] as const)
      rows.push([op, conc, median(w.ms), pct(w.ms, 90), pct(w.ms, 99), w.perS, runningRss]);
  };
  for (const conc of [1, 8, 32]) await throughput(conc);

  // The start path beside lxc: one guest at a time, N times, interleaved.
  const path: Record<string, number[]> = {};
  const rec = (k: string, ms: number): void => void (path[k] ??= []).push(ms);
  const lxcPath = join(s.root, 'lxc');
  const lxcOk = have('lxc-execute');
  if (lxcOk) {
    // (LXC's rootfs: a plain tree of the same skeleton, a guest on dir storage never started)
    s.jaula(['build', 'lxctree', '-m', 'skeleton', '-q', '--storage', 'dir']);
    const tree = join(s.root, 'var/lib/jaula/guests/lxctree/rootfs');
    lxcContainer(lxcPath, 'ls', tree, '/bin/sleep 100000');
    lxcContainer(lxcPath, 'lx', tree, '/bin/true');
  }
  for (let i = 0; i < N; i++) {
    let t0 = process.hrtime.bigint();
    await e.startGuest({ name: 'ba001' });
    rec('start: API request to jaulad', Number(process.hrtime.bigint() - t0) / 1e6);
    t0 = process.hrtime.bigint();
    await e.stopGuest({ name: 'ba001', kill: true });
    rec('stop --kill: API request to jaulad', Number(process.hrtime.bigint() - t0) / 1e6);
    rec('start: jaula start (CLI through jaulad)', timeMs(s.jaulaArgv(['start', 'ba002']), { env: s.env }));
    must(s.jaulaArgv(['stop', 'ba002', '--kill']), { env: s.env });
    if (lxcOk) {
      rec('start: lxc-start -d', timeMs(['lxc-start', '-P', lxcPath, '-n', 'ls', '-d']));
      sh(['lxc-wait', '-P', lxcPath, '-n', 'ls', '-s', 'RUNNING', '-t', '5']);
      sh(['lxc-stop', '-P', lxcPath, '-n', 'ls', '-k']);
      rec(
        'one-shot /bin/true: lxc-execute',
        timeMs(['lxc-execute', '-P', lxcPath, '-n', 'lx', '--', '/bin/true']),
      );
    }
  }

  // Memory with 1000 registered guests (configs only beyond the built ones: the daemon's cost
  // is per registered guest, not per tree).
  const proto = fs.readFileSync(join(s.root, 'etc/jaula/guests/ba000/config.toml'), 'utf8');
  for (let i = GUESTS; i < REGISTERED; i++) {
    const n = `br${String(i).padStart(4, '0')}`;
    fs.mkdirSync(join(s.root, 'etc/jaula/guests', n), { recursive: true });
    fs.writeFileSync(
      join(s.root, 'etc/jaula/guests', n, 'config.toml'),
      proto
        .replace(/^name = .*$/m, `name = "${n}"`)
        .replace(/^hostname = .*$/m, `hostname = "${n}"`)
        .replace(/^context = .*$/m, `context = ${5000 + i}`),
    );
  }
  await d.stop();
  const d2 = await startDaemon(s);
  const rss1000 = rssKiB(d2.pid);
  const listed = await e.listGuests({});
  await inParallel(
    Array.from({ length: 20 }, (_, i) => i),
    20,
    () => e.listGuests({}).then(() => {}),
  );
  const rssServing = rssKiB(d2.pid);
  await inParallel(names, 8, (name) => e.deleteGuest({ name }).then(() => {}));
  await d2.stop();

  console.log(
    `\nbench/api: jaulad with ${GUESTS} busybox guests (init: sleep); latency per request in ms, throughput in guests/s, jaulad's RSS in MiB\n`,
  );
  console.log(
    table(
      [
        'operation',
        'clients at once',
        'median ms',
        'p90 ms',
        'p99 ms',
        'guests/s',
        `RSS with ${GUESTS} running`,
      ],
      rows.map((r) => [...r.slice(0, 6), `${((r[6] as number) / 1024).toFixed(1)} MiB`]),
    ),
  );
  console.log(`\nThe start path, one guest at a time, median and p90 of ${N} runs, ms:\n`);
  console.log(
    table(
      ['path', 'median ms', 'p90 ms'],
      Object.entries(path).map(([k, v]) => [k, median(v), pct(v, 90)]),
    ),
  );
  console.log(`\njaulad's memory (VmRSS):\n`);
  console.log(
    table(
      ['situation', 'RSS MiB'],
      [
        [
          `idle, ${GUESTS} guests registered, after building them (${buildS.toFixed(0)} s through the API)`,
          idle / 1024,
        ],
        [`${listed.length} guests registered, just started and reconciled`, rss1000 / 1024],
        [`${listed.length} guests registered, after 21 full listings`, rssServing / 1024],
      ],
    ),
  );
} finally {
  for (let i = GUESTS; i < REGISTERED; i++)
    fs.rmSync(join(s.root, 'etc/jaula/guests', `br${String(i).padStart(4, '0')}`), {
      recursive: true,
      force: true,
    });
  sh(['lxc-stop', '-P', join(s.root, 'lxc'), '-n', 'ls', '-k']);
  s.cleanup();
}
