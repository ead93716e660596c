/**
 * bench/monitor: `jaula ps` over many running guests (BENCH_GUESTS, default 200) beside
 * `ps -e -o pid,comm` in the same run (median of BENCH_N runs, interleaved), and the CPU cost
 * of one `jaula top` refresh with those guests.
 *
 * The guests are busybox guests of init style cmd (`/bin/sleep 100000` under jaula-init), all
 * built from one template tarball. Everything is stopped and deleted at the end.
 *
 * Node's start-up is part of every jaula command. This machine sets NODE_EXTRA_CA_CERTS, which
 * makes Node read a CA bundle at start (tens of ms); jaula is timed both with the environment
 * as given and without that variable, and `node -e 0` is shown for reference.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { cgroupMode } from '../src/cgroups/detect.js';
import { Scratch, median, must, pct, sleeperFromTemplate, table, timeMs } from './lib.js';

const GUESTS = Number(process.env['BENCH_GUESTS'] ?? 200);
const RUNS = Number(process.env['BENCH_N'] ?? 15);
const s = new Scratch();
const names = Array.from({ length: GUESTS }, (_, i) => `g${String(i).padStart(3, '0')}`);
const plainEnv: NodeJS.ProcessEnv = { ...s.env };
delete plainEnv['NODE_EXTRA_CA_CERTS'];

/** Run `jaula ARGS` for each chunk of work, `width` at a time. */
async function pool(jobs: string[][], width: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const args = jobs[next++] as string[];
      await new Promise<void>((resolve, reject) => {
        const [cmd, ...rest] = s.jaulaArgv(args);
        const c = spawn(cmd as string, rest, {
          env: s.env,
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let err = '';
        c.stderr.on('data', (b: Buffer) => (err += b.toString()));
        c.on('close', (code) =>
          code === 0 ? resolve() : reject(new Error(`jaula ${args.join(' ')}: ${err}`)),
        );
      });
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
}

/** CPU time (user + system, ms) of the children this process waited for, from /proc/self/stat. */
function childrenCpuMs(): number {
  const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
  // fields 16 and 17 (cutime, cstime) are f[13] and f[14] here, in clock ticks (100 per second)
  return (Number(f[13]) + Number(f[14])) * 10;
}

function cpuOf(argv: string[], env: NodeJS.ProcessEnv): number {
  const before = childrenCpuMs();
  timeMs(argv, { env });
  return childrenCpuMs() - before;
}

try {
  await main();
} catch (e) {
  console.error(`bench/monitor failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
} finally {
  const t = Date.now();
  await pool(
    names.map((n) => ['delete', '--force', n]),
    4,
  ).catch(() => {}); // guests a failed setup never built
  s.cleanup();
  console.log(`(cleaned up in ${((Date.now() - t) / 1000).toFixed(0)} s)`);
}

async function main(): Promise<void> {
  const t0 = Date.now();
  s.jaula(['build', 'tpl', '-m', 'skeleton', '-q', '--storage', 'dir']);
  const tarball = join(s.root, 'tpl.tar');
  must(['tar', '-C', join(s.root, 'var/lib/jaula/guests/tpl/rootfs'), '-cf', tarball, '.']);
  s.jaula(['delete', 'tpl']);
  await pool(
    names.map((n) => sleeperFromTemplate(n, tarball)),
    4,
  );
  const chunks: string[][] = [];
  for (let i = 0; i < names.length; i += 25) chunks.push(['start', ...names.slice(i, i + 25)]);
  await pool(chunks, 4);
  const setup = (Date.now() - t0) / 1000;

  const listed = JSON.parse(s.jaula(['ps', '--format', 'json'])) as { guest: string }[];
  const hostProcs = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).length;
  if (listed.length !== 2 * GUESTS)
    throw new Error(
      `jaula ps listed ${listed.length} processes, expected ${2 * GUESTS} (init + sleep per guest)`,
    );

  const rows: { what: string; ms: number[]; cpu: number }[] = [];
  /** Time one run (wall clock) and add its CPU time (user + system of the child). */
  const record = (what: string, argv: string[], env?: NodeJS.ProcessEnv): void => {
    let r = rows.find((x) => x.what === what);
    if (!r) rows.push((r = { what, ms: [], cpu: 0 }));
    const c0 = childrenCpuMs();
    r.ms.push(timeMs(argv, env ? { env } : {}));
    r.cpu += childrenCpuMs() - c0;
  };
  for (let i = 0; i < 2; i++) {
    timeMs(['ps', '-e', '-o', 'pid,comm']);
    timeMs(s.jaulaArgv(['ps']), { env: plainEnv });
  }
  for (let i = 0; i < RUNS; i++) {
    record('ps -e -o pid,comm', ['ps', '-e', '-o', 'pid,comm']);
    record('jaula ps', s.jaulaArgv(['ps']), plainEnv);
    record('jaula ps --args', s.jaulaArgv(['ps', '--args']), plainEnv);
    record('jaula ps (NODE_EXTRA_CA_CERTS as set here)', s.jaulaArgv(['ps']), s.env);
    record('node -e 0', [process.execPath, '-e', '0'], plainEnv);
    record('jaula stat', s.jaulaArgv(['stat']), plainEnv);
    record('jaula metrics', s.jaulaArgv(['metrics']), plainEnv);
  }
  const med = (what: string): number => median(rows.find((r) => r.what === what)?.ms ?? [NaN]);
  const psMs = med('ps -e -o pid,comm');
  console.log(
    `\nbench/monitor: ${GUESTS} running guests (${2 * GUESTS} guest processes, ${hostProcs} processes on the host), median and p90 of ${RUNS} runs, wall-clock ms, and mean CPU time from cutime/cstime (cgroups: ${cgroupMode()}; load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; setup took ${setup.toFixed(0)} s)\n`,
  );
  console.log(
    table(
      ['command', 'median ms', 'p90 ms', 'vs ps', 'CPU ms (user+sys, mean)'],
      rows.map((r) => [
        r.what,
        median(r.ms),
        pct(r.ms, 90),
        `${(median(r.ms) / psMs).toFixed(2)}x`,
        r.cpu / r.ms.length,
      ]),
    ),
  );

  // CPU of one top refresh: (top -n 11) - (top -n 1), over 10 refreshes; both sample once before
  // the first refresh and pay Node's start-up once.
  const one: number[] = [];
  const eleven: number[] = [];
  for (let i = 0; i < 3; i++) {
    one.push(cpuOf(s.jaulaArgv(['top', '-n', '1', '--interval', '0']), plainEnv));
    eleven.push(cpuOf(s.jaulaArgv(['top', '-n', '11', '--interval', '0']), plainEnv));
  }
  const perRefresh = (median(eleven) - median(one)) / 10;
  console.log(
    `\nOne jaula top refresh with ${GUESTS} guests costs ${perRefresh.toFixed(1)} ms of CPU (user + system; jaula top -n 1: ${median(one).toFixed(0)} ms in all, -n 11: ${median(eleven).toFixed(0)} ms; median of 3, from cutime/cstime in /proc/self/stat)`,
  );
  console.log(
    `jaula ps / ps -e -o pid,comm: ${(med('jaula ps') / psMs).toFixed(2)}x (aim: at most 1.5x); with NODE_EXTRA_CA_CERTS as this machine sets it: ${(med('jaula ps (NODE_EXTRA_CA_CERTS as set here)') / psMs).toFixed(2)}x`,
  );
}
