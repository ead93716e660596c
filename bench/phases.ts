/**
 * bench/phases: where the time of one command goes, phase by phase, from JAULA_TRACE: a start, an
 * exec of /bin/true, a stop (--kill, and a halt), a one-shot run of /bin/true, a build from a
 * stored template and a delete, each run by the CLI without jaulad (so that its trace covers
 * the whole operation), median of --runs R (default 10) runs per phase, interleaved.
 *
 *   node scripts/bench.mjs phases [--runs R] [--others K] [--running]
 *
 * The guest is a busybox guest of init style cmd (`/bin/sleep 100000` under jaula-init) built
 * from a stored template, with an interface on a network of the bench, as in bench/density.
 * --others K: K more such guests exist (built through jaulad); --running: they run meanwhile.
 * That shows which phases grow with the number of guests.
 *
 * A phase is the time from the previous trace line to this one ("node start-up" is the time to
 * the first line, "exit" from the last line to the process's end, measured here). Everything is
 * removed at the end.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { inParallel } from '../src/common/waves.js';
import { loadAvg, median, must, Scratch, sh, startDaemon, table } from './lib.js';

const argv = process.argv.slice(2);
const opt = (n: string): string | undefined => {
  const i = argv.indexOf(`--${n}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const RUNS = Number(opt('runs') ?? 10);
const OTHERS = Number(opt('others') ?? 0);
const RUNNING = argv.includes('--running');

const s = new Scratch();
const local = { ...s.env, JAULA_NO_DAEMON: '1', JAULA_TRACE: '1' };
const net = `ph${s.tag.slice(0, 6)}`;
const phases = new Map<string, Map<string, number[]>>(); // op -> phase -> ms
const totals = new Map<string, number[]>();

/** Run one traced jaula command; its phases are added to `op`. */
function traced(op: string, args: string[], okCodes = [0]): void {
  const t0 = process.hrtime.bigint();
  const r = sh(s.jaulaArgv(args), { env: local });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!okCodes.includes(r.code)) throw new Error(`jaula ${args.join(' ')} exited ${r.code}: ${r.err}`);
  const m = phases.get(op) ?? phases.set(op, new Map()).get(op);
  const add = (label: string, ms: number): void => {
    const xs = m?.get(label) ?? [];
    xs.push(ms);
    m?.set(label, xs);
  };
  let last = 0;
  let first = true;
  for (const line of r.err.split('\n')) {
    const x = /^\[jaula ([\d.]+) ms\] (.*)$/.exec(line);
    if (!x) continue;
    const t = Number(x[1]);
    // Counts in labels ("every guest's config read (1000)") are the same each run: kept.
    add(first ? `node start-up, bundle loaded -> ${x[2]}` : (x[2] as string), t - last);
    first = false;
    last = t;
  }
  add('exit', wall - last);
  (totals.get(op) ?? totals.set(op, []).get(op))?.push(wall);
}

let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
try {
  const load0 = loadAvg();
  // The template and the network, as in bench/density.
  s.jaula(['build', 'tree', '-q', '-m', 'skeleton', '--storage', 'dir']);
  const tar = join(s.root, 'tree.tar');
  must(['tar', '-cf', tar, '-C', join(s.root, 'var/lib/jaula/guests/tree/rootfs'), '.']);
  s.jaula(['template', 'import', tar, 'bench']);
  s.jaula(['delete', 'tree']);
  const h = parseInt(s.tag, 16);
  const routes = sh(['ip', '-4', 'route', 'show', 'table', 'all']).out;
  let subnet = '';
  for (let k = 0; k < 48 && !subnet; k++)
    if (!routes.includes(`10.${150 + ((h + k) % 48)}.`)) subnet = `10.${150 + ((h + k) % 48)}.0.1/16`;
  s.jaula(['network', 'create', net, '--subnet', subnet, '--bridge', `jh${s.tag}`]);
  const build = (name: string): string[] => [
    'build',
    name,
    '-q',
    '-m',
    'template',
    '--initstyle',
    'cmd',
    '--cmd',
    '/bin/sleep 100000',
    '--interface',
    `eth0=${net}:auto`,
    '--',
    '-t',
    'bench',
  ];
  s.jaula(build('ph'));
  if (OTHERS > 0) {
    daemon = await startDaemon(s);
    const e = daemon.engine;
    const names = Array.from({ length: OTHERS }, (_, i) => `o${String(i).padStart(4, '0')}`);
    await inParallel(names, 4, (name) =>
      e
        .buildGuest({
          name,
          method: 'template',
          initstyle: 'cmd',
          cmd: ['/bin/sleep', '100000'],
          interfaces: [`eth0=${net}:auto`],
          methodArgs: ['-t', 'bench'],
        })
        .then(() => {}),
    );
    if (RUNNING) await inParallel(names, 8, (name) => e.startGuest({ name }).then(() => {}));
    await daemon.stop();
    daemon = undefined;
  }
  // Warm caches once.
  s.jaula(['start', 'ph']);
  s.jaula(['stop', '--kill', 'ph']);
  for (let i = 0; i < RUNS; i++) {
    traced('start', ['start', 'ph']);
    traced('exec /bin/true', ['exec', 'ph', '--', '/bin/true']);
    traced('stop --kill', ['stop', '--kill', 'ph']);
    traced('start', ['start', 'ph']);
    traced('stop (halt)', ['stop', 'ph']);
    traced('run /bin/true', ['run', 'ph', '--', '/bin/true']);
    traced('build from a stored template', build('pb'));
    traced('delete', ['delete', 'pb']);
  }
  console.log(
    `\nbench/phases: one command, phase by phase (JAULA_TRACE; the CLI without jaulad), median of ${RUNS} runs, ms; ${OTHERS} other guests${OTHERS ? (RUNNING ? ', running' : ', stopped') : ''}; load ${load0} -> ${loadAvg()}\n`,
  );
  for (const [op, m] of phases) {
    const rows: (string | number)[][] = [...m.entries()].map(([label, xs]) => [label, median(xs)]);
    rows.push(['(whole command, wall clock)', median(totals.get(op) ?? [])]);
    console.log(`${op}:\n`);
    console.log(table(['phase (ends at)', 'median ms'], rows));
    console.log('');
  }
} finally {
  await daemon?.stop();
  sh(s.jaulaArgv(['stop', '--all', '--kill']), { env: { ...s.env, JAULA_NO_DAEMON: '1' } });
  if (OTHERS > 0) {
    // Many guests: deleted through jaulad, 8 at a time (one CLI each would take minutes).
    const d = await startDaemon(s);
    const e = d.engine;
    const all = await e.listGuests({});
    await inParallel(all, 8, (g) => e.deleteGuest({ name: g.name }).then(() => {}));
    await d.stop();
  }
  s.deleteGuests({ ...s.env, JAULA_NO_DAEMON: '1' });
  sh(s.jaulaArgv(['network', 'delete', net]), { env: { ...s.env, JAULA_NO_DAEMON: '1' } });
  if (fs.existsSync(s.root)) s.cleanup();
}
