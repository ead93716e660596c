/**
 * bench/start: how long it takes to start a guest, exec /bin/true in it, stop it, and do a
 * one-shot run, with jaula beside lxc, runc, crun and systemd-nspawn on the same rootfs, in one
 * run; median of N (BENCH_N, default 20) runs, interleaved so that drift hits all alike.
 *
 * The guest runs `/bin/sleep` as its service (init style cmd, under jaula-init); the peers run the
 * same command with their own minimal init where they have one (lxc: its monitor + sleep as init).
 *
 * Then, as issue 16 measures them: (1) one-shot `/bin/true` with hyperfine (mean and sigma): `jaula
 * run` beside `lxc-execute`, crun and runc alone, `node -e 0` and `jaula --version`; (2) through
 * jaulad (no CLI start-up): a start request and a stop request beside `lxc-start -d` and
 * `lxc-stop -k`; (3) a build from a stored template through jaulad, from a small template (the
 * busybox tree) and a large one (the same with 20000 more files): jaula's own time, which should
 * not depend on the template's size. Options: --hyperfine-runs R (default 30).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { RemoteEngine } from '../src/client/remote-engine.js';
import { cgroupMode } from '../src/cgroups/detect.js';
import { cgroupParents } from '../src/cgroups/parents.js';
import {
  N,
  Scratch,
  have,
  lxcCgroupDirs,
  lxcContainer,
  lxcPivotDirs,
  median,
  must,
  pct,
  sh,
  sleeperSkeleton,
  startDaemon,
  table,
  timeMs,
} from './lib.js';

const hfi = process.argv.indexOf('--hyperfine-runs');
const HYPERFINE_RUNS = Number(hfi > 0 ? process.argv[hfi + 1] : 30);

const s = new Scratch();
const hadPivot = lxcPivotDirs().length > 0;
const rows: { op: string; tool: string; ms: number[] }[] = [];
function record(op: string, tool: string, ms: number): void {
  let r = rows.find((x) => x.op === op && x.tool === tool);
  if (!r) rows.push((r = { op, tool, ms: [] }));
  r.ms.push(ms);
}

const hybrid = cgroupMode() === 'hybrid';
const wrapCrun = (args: string[]): string[] =>
  hybrid
    ? [join(process.cwd(), 'native/out/jaula-helper'), 'private-cgroup2', '--', 'crun', ...args]
    : ['crun', ...args];

/** `jaula status` of a stopped guest exits 3 by design. */
function timeMsAnyExit(argv: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  sh(argv, { env, stdio: 'ignore' });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

try {
  // jaula's guest on its default storage; the peers on a plain tree of the same skeleton (a
  // guest on dir storage, never started).
  s.jaula(sleeperSkeleton('bs'));
  s.jaula(['build', 'peers', '-m', 'skeleton', '-q', '--storage', 'dir']);
  const rootfs = join(s.root, 'var/lib/jaula/guests/peers/rootfs');

  // OCI bundles for runc and crun, on the same tree: one for one-shot runs, one for a service.
  const mkBundle = (dir: string, args: string[]): void => {
    fs.mkdirSync(dir, { recursive: true });
    must(['runc', 'spec', '--bundle', dir]);
    const spec = JSON.parse(fs.readFileSync(join(dir, 'config.json'), 'utf8'));
    spec.root = { path: rootfs, readonly: false };
    spec.process.terminal = false;
    spec.process.args = args;
    spec.linux.cgroupsPath = `jaula-bench/${dir.split('/').pop()}`;
    fs.writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
  };
  const oneshot = join(s.root, 'oci-oneshot');
  const service = join(s.root, 'oci-service');
  mkBundle(oneshot, ['/bin/true']);
  mkBundle(service, ['/bin/sleep', '100000']);
  const ociRoot = join(s.root, 'oci-state');

  // LXC containers on the same tree.
  const lxcPath = join(s.root, 'lxc');
  const lxcOk = have('lxc-execute');
  if (lxcOk) {
    for (const [name, cmd] of [
      ['bs', '/bin/sleep 100000'],
      ['bx', '/bin/true'],
    ]) {
      lxcContainer(lxcPath, name as string, rootfs, cmd as string, { extra: ['lxc.cgroup.relative = 1'] });
    }
  }
  const nspawnOk = have('systemd-nspawn');

  // Warm caches once.
  s.jaula(['run', 'bs', '--', '/bin/true']);

  for (let i = 0; i < N; i++) {
    // CLI start-up
    record('CLI: start-up', 'node -e 0', timeMs([process.execPath, '-e', '0']));
    record('CLI: start-up', 'jaula --version', timeMs(s.jaulaArgv(['--version']), { env: s.env }));
    record('CLI: start-up', 'jaula status', timeMsAnyExit(s.jaulaArgv(['status', 'bs']), s.env));
    record('CLI: start-up', 'jaula list', timeMs(s.jaulaArgv(['list']), { env: s.env }));

    // jaula lifecycle
    record('start', 'jaula', timeMs(s.jaulaArgv(['start', 'bs']), { env: s.env }));
    record('exec /bin/true', 'jaula', timeMs(s.jaulaArgv(['exec', 'bs', '--', '/bin/true']), { env: s.env }));
    record('stop', 'jaula', timeMs(s.jaulaArgv(['stop', 'bs']), { env: s.env }));
    record(
      'one-shot /bin/true',
      'jaula',
      timeMs(s.jaulaArgv(['run', 'bs', '--', '/bin/true']), { env: s.env }),
    );

    // runc
    record('start', 'runc', timeMs(['runc', '--root', ociRoot, 'run', '-d', '--bundle', service, 'svc']));
    record('exec /bin/true', 'runc', timeMs(['runc', '--root', ociRoot, 'exec', 'svc', '/bin/true']));
    record('stop', 'runc', timeMs(['runc', '--root', ociRoot, 'delete', '--force', 'svc']));
    record(
      'one-shot /bin/true',
      'runc',
      timeMs(['runc', '--root', ociRoot, 'run', '--bundle', oneshot, 'one']),
    );

    // crun
    record('start', 'crun', timeMs(wrapCrun(['--root', ociRoot, 'run', '-d', '--bundle', service, 'csvc'])));
    record('exec /bin/true', 'crun', timeMs(wrapCrun(['--root', ociRoot, 'exec', 'csvc', '/bin/true'])));
    record('stop', 'crun', timeMs(wrapCrun(['--root', ociRoot, 'delete', '--force', 'csvc'])));
    record(
      'one-shot /bin/true',
      'crun',
      timeMs(wrapCrun(['--root', ociRoot, 'run', '--bundle', oneshot, 'cone'])),
    );

    if (lxcOk) {
      record('start', 'lxc', timeMs(['lxc-start', '-P', lxcPath, '-n', 'bs', '-d']));
      sh(['lxc-wait', '-P', lxcPath, '-n', 'bs', '-s', 'RUNNING', '-t', '5']);
      record('exec /bin/true', 'lxc', timeMs(['lxc-attach', '-P', lxcPath, '-n', 'bs', '--', '/bin/true']));
      record('stop', 'lxc', timeMs(['lxc-stop', '-P', lxcPath, '-n', 'bs', '-k']));
      record(
        'one-shot /bin/true',
        'lxc',
        timeMs(['lxc-execute', '-P', lxcPath, '-n', 'bx', '--', '/bin/true']),
      );
    }
    if (nspawnOk)
      record(
        'one-shot /bin/true',
        'systemd-nspawn',
        timeMs(['systemd-nspawn', '-q', '-D', rootfs, '--register=no', '--keep-unit', '/bin/true']),
      );
  }

  const out: (string | number)[][] = rows.map((r) => [
    r.op,
    r.tool,
    median(r.ms),
    pct(r.ms, 90),
    r.ms.length,
  ]);
  console.log(
    `\nbench/start: median and p90 of ${N} runs, milliseconds (cgroups: ${cgroupMode()}; crun ${hybrid ? 'in a private mount namespace, as jaula runs it on a hybrid host' : 'plain'})\n`,
  );
  console.log(table(['operation', 'tool', 'median ms', 'p90 ms', 'runs'], out));

  const med = (op: string, tool: string): number =>
    median(rows.find((r) => r.op === op && r.tool === tool)?.ms ?? [NaN]);
  const cliBase = med('CLI: start-up', 'jaula --version');
  const node0 = med('CLI: start-up', 'node -e 0');
  console.log(
    '\nDerived: jaula after start-up = jaula\'s time minus its CLI start-up ("jaula --version"); the OCI runtime jaula uses here is crun, whose own time is shown:\n',
  );
  const derived: (string | number)[][] = [];
  for (const op of ['start', 'exec /bin/true', 'stop', 'one-shot /bin/true']) {
    const j = med(op, 'jaula');
    const c = med(op, 'crun');
    const l = lxcOk ? med(op, 'lxc') : NaN;
    derived.push([
      op,
      j,
      j - cliBase,
      c,
      l,
      lxcOk ? `${(c / l).toFixed(2)}x` : 'n/a',
      lxcOk ? `${((j - cliBase) / l).toFixed(2)}x` : 'n/a',
    ]);
  }
  console.log(
    table(
      [
        'operation',
        'jaula total',
        'jaula after start-up',
        'crun alone',
        'lxc',
        'crun / lxc',
        'jaula after start-up / lxc',
      ],
      derived,
    ),
  );
  console.log(
    `\nCLI overhead above node -e 0: --version ${(cliBase - node0).toFixed(1)} ms, status ${(med('CLI: start-up', 'jaula status') - node0).toFixed(1)} ms, list ${(med('CLI: start-up', 'jaula list') - node0).toFixed(1)} ms (aim: at most 15 ms)`,
  );

  // (1) one-shot /bin/true, hyperfine.
  if (have('hyperfine')) {
    const cmds: [string, string[]][] = [
      ['node -e 0', [process.execPath, '-e', '0']],
      ['jaula --version', s.jaulaArgv(['--version'])],
      ['jaula run bs -- /bin/true', s.jaulaArgv(['run', 'bs', '--', '/bin/true'])],
      ['crun run (alone)', wrapCrun(['--root', ociRoot, 'run', '--bundle', oneshot, 'cone'])],
      ['runc run (alone)', ['runc', '--root', ociRoot, 'run', '--bundle', oneshot, 'one']],
    ];
    if (lxcOk) cmds.push(['lxc-execute', ['lxc-execute', '-P', lxcPath, '-n', 'bx', '--', '/bin/true']]);
    const json = join(s.root, 'hyperfine.json');
    must(
      [
        'hyperfine',
        '-N',
        '--warmup',
        '3',
        '--runs',
        String(HYPERFINE_RUNS),
        '--export-json',
        json,
        ...cmds.map(([, a]) => a.join(' ')),
      ],
      { env: s.env },
    );
    const res = (
      JSON.parse(fs.readFileSync(json, 'utf8')) as {
        results: { mean: number; stddev: number; median: number }[];
      }
    ).results;
    console.log(`\nOne-shot /bin/true, hyperfine (${HYPERFINE_RUNS} runs, 3 warm-up), ms:\n`);
    console.log(
      table(
        ['command', 'mean', 'sigma', 'median'],
        cmds.map(([label], i) => [
          label,
          (res[i]?.mean ?? NaN) * 1000,
          (res[i]?.stddev ?? NaN) * 1000,
          (res[i]?.median ?? NaN) * 1000,
        ]),
      ),
    );
    const node0 = (res[0]?.mean ?? NaN) * 1000;
    console.log(
      `\nAim (issue 16): jaula run at most node -e 0 + 15 ms = ${(node0 + 15).toFixed(1)} ms; it is ${((res[2]?.mean ?? NaN) * 1000).toFixed(1)} ms (node -e 0 + ${((res[2]?.mean ?? NaN) * 1000 - node0).toFixed(1)} ms).`,
    );
  }

  // (2) and (3): through jaulad.
  const d = await startDaemon(s);
  try {
    const e: RemoteEngine = d.engine;
    const api: Record<string, number[]> = {};
    const rec = (k: string, ms: number): void => void (api[k] ??= []).push(ms);
    const timed = async (k: string, fn: () => Promise<unknown>): Promise<void> => {
      // Let the event loop see connections jaulad closed while this process was blocked in a
      // spawnSync (a kept-alive socket closed after 5 s idle would be reused: EPIPE); a timer
      // takes the loop through its poll phase, where it sees them (setImmediate does not).
      await new Promise((r) => setTimeout(r, 1));
      const t0 = process.hrtime.bigint();
      await fn();
      rec(k, Number(process.hrtime.bigint() - t0) / 1e6);
    };
    // Templates: the busybox tree, and the same with 20000 more small files.
    const small = join(s.root, 'small.tar');
    must(['tar', '-cf', small, '-C', rootfs, '.']);
    const bigTree = join(s.root, 'big-tree');
    must(['cp', '-a', rootfs, bigTree]);
    for (let i = 0; i < 200; i++) {
      const dir = join(bigTree, 'usr/share/bulk', String(i));
      fs.mkdirSync(dir, { recursive: true });
      for (let j = 0; j < 100; j++) fs.writeFileSync(join(dir, `f${j}`), `file ${i}/${j}\n`.repeat(50));
    }
    const big = join(s.root, 'big.tar');
    must(['tar', '-cf', big, '-C', bigTree, '.']);
    fs.rmSync(bigTree, { recursive: true });
    s.jaula(['template', 'import', small, 'small']);
    s.jaula(['template', 'import', big, 'big']);
    const sizes = Object.fromEntries(
      ['small', 'big'].map((t) => [
        t,
        must(['du', '-sh', join(s.root, 'var/lib/jaula/templates', t)]).split('\t')[0],
      ]),
    );
    await timed('warm-up', () => e.startGuest({ name: 'bs' }));
    await e.stopGuest({ name: 'bs', kill: true });
    delete api['warm-up'];
    for (let i = 0; i < N; i++) {
      await timed('start request (jaulad)', () => e.startGuest({ name: 'bs' }));
      await timed('stop --kill request (jaulad)', () => e.stopGuest({ name: 'bs', kill: true }));
      if (lxcOk) {
        rec('lxc-start -d', timeMs(['lxc-start', '-P', lxcPath, '-n', 'bs', '-d']));
        rec('lxc-stop -k', timeMs(['lxc-stop', '-P', lxcPath, '-n', 'bs', '-k']));
      }
      for (const t of ['small', 'big']) {
        const name = `b${t}${i}`;
        await timed(`build from stored template "${t}" (${sizes[t]}) (jaulad)`, () =>
          e.buildGuest({
            name,
            method: 'template',
            initstyle: 'cmd',
            cmd: ['/bin/sleep', '100000'],
            methodArgs: ['-t', t],
          }),
        );
        await timed(`delete, built from "${t}" (jaulad)`, () => e.deleteGuest({ name }));
      }
    }
    console.log(
      `\nThrough jaulad (requests from this process, no CLI start-up) beside LXC, ${N} runs, ms:\n`,
    );
    console.log(
      table(
        ['operation', 'median ms', 'p90 ms'],
        Object.entries(api).map(([k, v]) => [k, median(v), pct(v, 90)]),
      ),
    );
    if (lxcOk)
      console.log(
        `\nAim (issue 16): a start request at most 1.0x lxc-start -d: ${(median(api['start request (jaulad)'] ?? []) / median(api['lxc-start -d'] ?? [])).toFixed(2)}x; a build from a stored template under 20 ms.`,
      );
  } finally {
    await d.stop();
  }
} finally {
  sh(['runc', '--root', join(s.root, 'oci-state'), 'delete', '--force', 'svc']);
  sh(wrapCrun(['--root', join(s.root, 'oci-state'), 'delete', '--force', 'csvc']));
  sh(['lxc-stop', '-P', join(s.root, 'lxc'), '-n', 'bs', '-k']);
  for (const d of lxcCgroupDirs(['bs', 'bx'])) sh(['rmdir', d]);
  if (!hadPivot) for (const d of lxcPivotDirs()) sh(['rmdir', d]);
  // The peers' cgroups (jaula-bench/..., where runc and crun put them: beneath this process's
  // cgroups, as jaula's own parents are; cgroupParents finds them by that name).
  for (const d of cgroupParents('bench')) {
    for (const c of fs.readdirSync(d, { withFileTypes: true }))
      if (c.isDirectory()) sh(['rmdir', join(d, c.name)]);
    sh(['rmdir', d]);
  }
  s.cleanup();
}
