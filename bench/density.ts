/**
 * bench/density: start and stop many guests, side by side in one run.
 *
 *   node scripts/bench.mjs density [--guests N] [--rounds R] [--only a,b,c,d] [--parallel P]
 *                                  [--curve] [--profile DIR]
 *
 * N guests (default 100, or BENCH_GUESTS), R rounds (default 3; medians reported, with the
 * range), each round in this order so that drift hits all alike:
 *   (a) plain LXC: `lxc-start -d` one after another on one shared busybox tree, no idmap, no
 *       network of its own (lxc.net.0.type = empty); stopped with `lxc-stop -k` one by one;
 *   (b) LXC doing a default jaula guest's work: unprivileged (lxc.idmap, its own 65536 IDs), an
 *       overlay rootfs over the same shared tree (its own upper), a veth on a bridge with an
 *       address and a gateway (so its own network namespace); `lxc-start -d` / `lxc-stop -k`;
 *   (c) jaula through jaulad: `jaula start --all --parallel P`, `jaula stop --all --kill`;
 *   (d) jaula without jaulad (JAULA_NO_DAEMON=1), the same commands; "until quiet" is the time
 *       until no exit handler of a guest runs any more (a stop leaves none: the stopper does
 *       that work; a guest that ends by itself starts `jaula __exited`).
 * jaula's guests are busybox guests of init style cmd (`/bin/sleep 100000` under jaula-init),
 * built through jaulad from one stored template on the instance's default storage, each with an
 * interface on a network of the bench (a veth on a bridge, an address from the pool). LXC's run
 * `/bin/sleep 100000` as their init. All guests of all kinds are in cgroups beneath this
 * process's own (LXC: lxc.cgroup.relative = 1).
 *
 * "CPU ms/start": the CPU time the whole host spent during the start (/proc/stat: every process
 * and the kernel, the peers' too), over N: on a machine with few cores, what bounds a bulk start.
 * With all N running: host memory added per guest, two ways: (1) /proc/meminfo, MemTotal -
 * MemAvailable after the start minus before it, over N (everything, kernel objects included,
 * but other work on the host moves it too); (2) the guests' memory cgroups (usage_in_bytes on v1,
 * memory.current on v2: their processes, page cache they brought in and kernel memory charged to
 * them) plus the PSS of the per-guest supervisors (jaula-helper shim; LXC's monitor) and of
 * jaula's one lxcfs, over N. And `jaula list` / `jaula ps` (median of 5) with and without jaulad.
 *
 * The 1000-guest mode (issue 16): `--guests 1000 --only c --rounds 1 --curve`: 1000 guests
 * built, started and stopped through jaulad, `jaula list` and `jaula ps` timed with all running
 * (aim: under 1 s), memory per guest, the time per start for each tenth, then all deleted and
 * the host checked for anything left. Run it rarely: it takes minutes of a shared machine.
 *
 * --curve: afterwards, start all N through the API (P at a time) and stop them again, and show the
 * time per guest for each tenth of them (does a start get slower as more guests run?).
 * --profile DIR: jaulad runs with `node --cpu-prof --cpu-prof-dir DIR` (see bench/tools/cpuprofile.ts).
 *
 * Everything is made under one temporary directory and named from the instance's tag (LXC
 * containers, bridges, veths, cgroups, the network), and removed at the end, also on failure or
 * on SIGINT/SIGTERM. Needs root, lxc (Debian's package) and the kernel's overlayfs.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupMode, ownCgroups } from '../src/cgroups/detect.js';
import { cgroupParents } from '../src/cgroups/parents.js';
import type { RemoteEngine } from '../src/client/remote-engine.js';
import { inParallel } from '../src/common/waves.js';
import {
  have,
  loadAvg,
  lxcCgroupDirs,
  lxcContainer,
  lxcPivotDirs,
  median,
  memOfPids,
  must,
  pidsMatching,
  Scratch,
  sh,
  startDaemon,
  table,
  timeMs,
} from './lib.js';
import { instanceLeftovers } from '../tests/helpers.js';

// ---- options ---------------------------------------------------------------------------------
const argv = process.argv.slice(2);
function opt(name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}
const GUESTS = Number(opt('guests') ?? process.env['BENCH_GUESTS'] ?? 100);
const ROUNDS = Number(opt('rounds') ?? process.env['BENCH_ROUNDS'] ?? 3);
const PARALLEL = Number(opt('parallel') ?? 8);
const ONLY = new Set((opt('only') ?? 'a,b,c,d').split(','));
const PROFILE = opt('profile');
const CURVE = argv.includes('--curve');
if (!Number.isInteger(GUESTS) || GUESTS < 1 || GUESTS > 1000) throw new Error('--guests: 1 to 1000');
/** How long jaulad may take to reconcile at its start: it looks at every guest (a busy host: 0.3 s each). */
const RECONCILE_MS = 60_000 + 300 * GUESTS;
if (!have('lxc-start') && (ONLY.has('a') || ONLY.has('b')))
  throw new Error('LXC is not installed (apt-get install lxc), or run with --only c,d');

// ---- the bench's directory, names and cleanup ------------------------------------------------
const top = fs.mkdtempSync(join(tmpdir(), 'jaula-density-'));
fs.chmodSync(top, 0o711); // LXC's unprivileged containers must traverse to their trees
const s = new Scratch(join(top, 'root'));
const tag = s.tag;
const lxcDir = join(top, 'lxc');
const tree = join(lxcDir, 'tree'); // the shared busybox tree of both LXC kinds
const lxcPlain = join(lxcDir, 'plain');
const lxcEquiv = join(lxcDir, 'equiv');
const jnames = Array.from({ length: GUESTS }, (_, i) => `d${String(i).padStart(4, '0')}`);
// LXC's cgroups are named after the container (lxc.payload.NAME): the tag keeps them apart.
const pnames = jnames.map((_, i) => `${tag}p${String(i).padStart(4, '0')}`);
const enames = jnames.map((_, i) => `${tag}e${String(i).padStart(4, '0')}`);
const lxcBridge = `lb${tag}`;
const jaulaNet = `dn${tag.slice(0, 6)}`;
const jaulaBridge = `jd${tag}`;
/** LXC's ID ranges: far above jaula's (1000000 + (context-2)*65536), one per container. */
const lxcIdBase = (i: number): number => 0x40000000 + i * 65536;
const hadPivot = lxcPivotDirs().length > 0;
const noDaemon = { ...s.env, JAULA_NO_DAEMON: '1' };

let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
let cleaned = false;

function stopAllLxc(): void {
  for (const [path, names] of [
    [lxcPlain, pnames],
    [lxcEquiv, enames],
  ] as const) {
    if (!fs.existsSync(path)) continue;
    const running = sh(['lxc-ls', '-P', path, '--running', '-1']).out.split('\n').filter(Boolean);
    for (const n of running) if (names.includes(n)) sh(['lxc-stop', '-P', path, '-n', n, '-k']);
  }
}

/** Remove everything the bench made. Synchronous, so that a signal handler can run it too. */
function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  stopAllLxc();
  for (const d of lxcCgroupDirs([...pnames, ...enames])) sh(['rmdir', d]);
  if (!hadPivot) for (const d of lxcPivotDirs()) sh(['rmdir', d]); // LXC's own, made by our first start
  sh(['ip', 'link', 'del', lxcBridge]);
  // jaula: jaulad (if it still runs) ends, every guest is stopped, deleted, and the network goes.
  if (daemon) {
    const pid = daemon.pid;
    sh(['kill', String(pid)]);
    waitQuiet(30_000, 'jaulad to end', () => !alive(pid));
    if (alive(pid)) sh(['kill', '-KILL', String(pid)]); // (still reconciling: it ends only after)
  }
  sh(s.jaulaArgv(['stop', '--all', '--kill', '--parallel', '8']), { env: noDaemon });
  waitQuiet(120_000, 'the guests to end', () => busy().length === 0);
  s.deleteGuests(noDaemon);
  sh(s.jaulaArgv(['network', 'delete', jaulaNet]), { env: noDaemon });
  sh(['ip', 'link', 'del', jaulaBridge]);
  s.cleanup();
  fs.rmSync(top, { recursive: true, force: true });
}

/** Whether a process runs (a zombie does not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    console.error(`\n${sig}: removing what the bench made...`);
    cleanup();
    process.exit(130);
  });

// ---- helpers -------------------------------------------------------------------------------
const esc = (t: string): string => t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Processes of this bench still at work: supervisors, exit handlers, LXC monitors. */
function busy(): number[] {
  const mine = (p: number): boolean => {
    try {
      return fs.readFileSync(`/proc/${p}/environ`, 'latin1').includes(`JAULA_ROOT=${s.root}\0`);
    } catch {
      return false;
    }
  };
  return [
    ...pidsMatching(new RegExp(`jaula-helper shim --dir ${esc(s.root)}/`)),
    ...pidsMatching(/ __exited /).filter(mine),
    ...pidsMatching(new RegExp(`^\\[lxc monitor\\] ${esc(lxcDir)}/`)),
  ];
}

/** Poll (no fixed sleep) until `done()`; the milliseconds it took. */
function waitQuiet(limitMs: number, what: string, done: () => boolean): number {
  const t0 = Date.now();
  while (!done()) {
    if (Date.now() - t0 > limitMs) {
      console.error(`(gave up waiting for ${what} after ${limitMs / 1000} s)`);
      break;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  return Date.now() - t0;
}

/** Host memory in use (kB): MemTotal - MemAvailable. */
function memUsedKiB(): number {
  const t = fs.readFileSync('/proc/meminfo', 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)?.[1] ?? 0);
  return kb('MemTotal') - kb('MemAvailable');
}

/** Bytes charged to a memory cgroup (v1 usage_in_bytes, v2 memory.current), 0 if it has none. */
function cgroupMemBytes(dir: string): number {
  for (const f of ['memory.usage_in_bytes', 'memory.current']) {
    try {
      return Number(fs.readFileSync(join(dir, f), 'utf8').trim());
    } catch {
      /* other version, or gone */
    }
  }
  return 0;
}

/** The memory controller's directory for this process's own cgroup. */
function ownMemoryCgroup(): string | undefined {
  const own = ownCgroups();
  for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, dir, type, opts] = line.split(' ');
    if (type === 'cgroup' && (opts ?? '').split(',').includes('memory'))
      return join(dir as string, own.get('memory') ?? '/');
    if (type === 'cgroup2' && cgroupMode() === 'v2') return join(dir as string, own.get('') ?? '/');
  }
  return undefined;
}

/** Memory of the jaula guests' cgroups (each guest's, summed), kB. */
function jaulaCgroupKiB(): number {
  let b = 0;
  for (const parent of cgroupParents(tag))
    for (const n of fs.readdirSync(parent)) if (jnames.includes(n)) b += cgroupMemBytes(join(parent, n));
  return b / 1024;
}

function lxcCgroupKiB(names: string[]): number {
  const mem = ownMemoryCgroup();
  if (!mem) return NaN;
  return names.reduce((a, n) => a + cgroupMemBytes(join(mem, `lxc.payload.${n}`)), 0) / 1024;
}

function supervisorsKiB(kind: 'jaula' | 'plain' | 'equiv'): number {
  if (kind === 'jaula') {
    const shims = memOfPids(pidsMatching(new RegExp(`jaula-helper shim --dir ${esc(s.root)}/`)));
    const lxcfs = memOfPids(pidsMatching(new RegExp(`lxcfs .*${esc(s.root)}/`)));
    return shims.pss + lxcfs.pss;
  }
  const path = kind === 'plain' ? lxcPlain : lxcEquiv;
  return memOfPids(pidsMatching(new RegExp(`^\\[lxc monitor\\] ${esc(path)} `))).pss;
}

interface Sample {
  startMs: number;
  /** CPU time the whole host spent during the start (/proc/stat: every process and the kernel). */
  startCpuMs: number;
  stopMs: number;
  /** (d): until the last exit handler ended. */
  quietMs?: number;
  memInfoKiB: number;
  memCgKiB: number;
  list?: number;
  ps?: number;
}
const results = new Map<string, Sample[]>();
const loads: string[] = [];
function record(kind: string, x: Sample): void {
  (results.get(kind) ?? results.set(kind, []).get(kind))?.push(x);
}

/** The host's busy CPU time so far, ms (/proc/stat: all but idle and iowait; USER_HZ 100). */
function cpuBusyMs(): number {
  const f = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return (total - (f[3] ?? 0) - (f[4] ?? 0)) * 10;
}

function timeEach(argvs: string[][]): number {
  const t0 = process.hrtime.bigint();
  for (const a of argvs) timeMs(a);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Milliseconds of one jaula command (must succeed; its output is shown if it does not). */
function timeJaula(args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = sh(s.jaulaArgv(args), { env, maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.code !== 0) {
    const failed = (r.out + r.err).split('\n').filter((l) => /FAILED|rror/.test(l));
    throw new Error(`jaula ${args.join(' ')} exited ${r.code}:\n${failed.slice(0, 20).join('\n')}`);
  }
  return ms;
}

function median5(argv: string[], env: NodeJS.ProcessEnv): number {
  return median(Array.from({ length: 5 }, () => timeMs(argv, { env })));
}

// ---- the four kinds --------------------------------------------------------------------------
function lxcRound(kind: 'plain' | 'equiv'): Sample {
  const [path, names] = kind === 'plain' ? [lxcPlain, pnames] : [lxcEquiv, enames];
  const m0 = memUsedKiB();
  const c0 = cpuBusyMs();
  const startMs = timeEach(names.map((n) => ['lxc-start', '-P', path, '-n', n, '-d']));
  const startCpuMs = cpuBusyMs() - c0;
  const memInfoKiB = (memUsedKiB() - m0) / GUESTS;
  const running = sh(['lxc-ls', '-P', path, '--running', '-1']).out.split('\n').filter(Boolean).length;
  if (running !== GUESTS) throw new Error(`${kind} LXC: ${running} of ${GUESTS} containers run`);
  const memCgKiB = (lxcCgroupKiB(names) + supervisorsKiB(kind)) / GUESTS;
  const stopMs = timeEach(names.map((n) => ['lxc-stop', '-P', path, '-n', n, '-k']));
  waitQuiet(120_000, 'the LXC monitors to end', () => busy().length === 0);
  return { startMs, startCpuMs, stopMs, memInfoKiB, memCgKiB };
}

/** One round of jaula's; `phase` runs before each part (--profile: a jaulad of its own for each). */
async function jaulaRound(
  env: NodeJS.ProcessEnv,
  phase: (p: 'start' | 'list' | 'stop') => Promise<void> = async () => {},
): Promise<Sample> {
  await phase('start');
  const m0 = memUsedKiB();
  const c0 = cpuBusyMs();
  const startMs = timeJaula(['start', '--all', '--parallel', String(PARALLEL)], env);
  const startCpuMs = cpuBusyMs() - c0;
  const memInfoKiB = (memUsedKiB() - m0) / GUESTS;
  const memCgKiB = (jaulaCgroupKiB() + supervisorsKiB('jaula')) / GUESTS;
  await phase('list');
  const list = median5(s.jaulaArgv(['list']), env);
  const ps = median5(s.jaulaArgv(['ps']), env);
  await phase('stop');
  const stopMs = timeJaula(['stop', '--all', '--kill', '--parallel', String(PARALLEL)], env);
  const quietMs = waitQuiet(300_000, 'the guests to end', () => busy().length === 0);
  return { startMs, startCpuMs, stopMs, quietMs: stopMs + quietMs, memInfoKiB, memCgKiB, list, ps };
}

// ---- setup -----------------------------------------------------------------------------------
function pickSubnets(): [string, string] {
  const routes = sh(['ip', '-4', 'route', 'show', 'table', 'all']).out;
  const h = parseInt(tag, 16);
  for (let k = 0; k < 48; k += 2) {
    const x = 100 + ((h + k) % 48);
    if (!routes.includes(`10.${x}.`) && !routes.includes(`10.${x + 1}.`))
      return [`10.${x}.0.1/16`, `10.${x + 1}.0.1/16`];
  }
  throw new Error('no free 10.x.0.0/16 pair for the bench networks');
}

async function setup(): Promise<{ buildMs: number }> {
  // The shared busybox tree: jaula's skeleton (a dir guest never started), copied where LXC's
  // unprivileged containers can reach it; stored as jaula's template too.
  s.jaula(['build', 'tree', '-q', '-m', 'skeleton', '--storage', 'dir']);
  fs.mkdirSync(lxcDir, { mode: 0o711 });
  must(['cp', '-a', join(s.root, 'var/lib/jaula/guests/tree/rootfs'), tree]);
  fs.chmodSync(tree, 0o755);
  const tar = join(top, 'tree.tar');
  must(['tar', '-cf', tar, '-C', tree, '.']);
  s.jaula(['template', 'import', tar, 'bench']);
  s.jaula(['delete', 'tree']);
  const [jaulaSubnet, lxcSubnet] = pickSubnets();
  s.jaula(['network', 'create', jaulaNet, '--subnet', jaulaSubnet, '--bridge', jaulaBridge]);

  // LXC: both kinds, one config each.
  const lxcGw = lxcSubnet.split('/')[0] as string;
  if (ONLY.has('b')) {
    must(['ip', 'link', 'add', lxcBridge, 'type', 'bridge']);
    must(['ip', 'addr', 'add', lxcSubnet, 'dev', lxcBridge]);
    must(['ip', 'link', 'set', lxcBridge, 'up']);
  }
  const [o1, o2] = lxcGw.split('.').map(Number);
  for (let i = 0; i < GUESTS; i++) {
    const cmd = '/bin/sleep 100000';
    if (ONLY.has('a'))
      lxcContainer(lxcPlain, pnames[i] as string, tree, cmd, { extra: ['lxc.cgroup.relative = 1'] });
    if (ONLY.has('b')) {
      const name = enames[i] as string;
      const dir = join(lxcEquiv, name);
      const id = lxcIdBase(i);
      for (const d of ['delta0', 'work']) {
        fs.mkdirSync(join(dir, d), { recursive: true });
        fs.chownSync(join(dir, d), id, id);
      }
      fs.chmodSync(lxcEquiv, 0o711);
      fs.chmodSync(dir, 0o711);
      const a = i + 2;
      lxcContainer(lxcEquiv, name, `overlay:${tree}:${join(dir, 'delta0')}`, cmd, {
        net: [
          'lxc.net.0.type = veth',
          `lxc.net.0.link = ${lxcBridge}`,
          `lxc.net.0.veth.pair = lv${tag.slice(0, 5)}${i}`,
          'lxc.net.0.flags = up',
          `lxc.net.0.ipv4.address = ${o1}.${o2}.${a >> 8}.${a & 255}/16`,
          `lxc.net.0.ipv4.gateway = ${lxcGw}`,
        ],
        extra: [`lxc.idmap = u 0 ${id} 65536`, `lxc.idmap = g 0 ${id} 65536`, 'lxc.cgroup.relative = 1'],
      });
    }
  }

  // jaula's guests, built through jaulad from the stored template.
  daemon = await startDaemon(s, [], RECONCILE_MS);
  const e = daemon.engine;
  const t0 = process.hrtime.bigint();
  await inParallel(jnames, 4, async (name) => {
    await e.buildGuest({
      name,
      method: 'template',
      initstyle: 'cmd',
      cmd: ['/bin/sleep', '100000'],
      interfaces: [`eth0=${jaulaNet}:auto`],
      methodArgs: ['-t', 'bench'],
    });
  });
  const buildMs = Number(process.hrtime.bigint() - t0) / 1e6;
  await daemon.stop();
  daemon = undefined;
  return { buildMs };
}

/** Start (then stop) all guests through the API, P at a time: ms per guest for each tenth. */
async function curve(e: RemoteEngine): Promise<{ up: number[]; down: number[] }> {
  const tenths = async (fn: (n: string) => Promise<unknown>): Promise<number[]> => {
    const done: number[] = [];
    const t0 = process.hrtime.bigint();
    await inParallel(jnames, PARALLEL, async (n) => {
      await fn(n);
      done.push(Number(process.hrtime.bigint() - t0) / 1e6);
    });
    done.sort((a, b) => a - b);
    const k = Math.max(1, Math.floor(GUESTS / 10));
    const out: number[] = [];
    for (let i = k - 1; i < done.length; i += k)
      out.push(((done[i] as number) - (i - k >= 0 ? (done[i - k] as number) : 0)) / k);
    return out;
  };
  const up = await tenths((name) => e.startGuest({ name }));
  const down = await tenths((name) => e.stopGuest({ name, kill: true }));
  return { up, down };
}

// ---- main ------------------------------------------------------------------------------------
console.error(`(bench/density: everything under ${top}, instance tag ${tag})`);
try {
  const loadBefore = loadAvg();
  const { buildMs } = await setup();
  for (let r = 0; r < ROUNDS; r++) {
    const l0 = loadAvg();
    if (ONLY.has('a')) record('plain', lxcRound('plain'));
    if (ONLY.has('b')) record('equiv', lxcRound('equiv'));
    if (ONLY.has('c')) {
      // --profile: one jaulad (and profile) for the start, one for list and ps, one for the stop.
      const profiled = async (p: string): Promise<void> => {
        await daemon?.stop();
        const name = `jaulad-${GUESTS}-${p}-round${r + 1}.cpuprofile`;
        daemon = await startDaemon(
          s,
          ['--cpu-prof', '--cpu-prof-dir', PROFILE as string, '--cpu-prof-name', name],
          RECONCILE_MS,
        );
      };
      if (!PROFILE) daemon = await startDaemon(s, [], RECONCILE_MS);
      record('jaulad', await jaulaRound(s.env, PROFILE ? profiled : undefined));
      await daemon?.stop();
      daemon = undefined;
    }
    if (ONLY.has('d')) record('local', await jaulaRound(noDaemon));
    loads.push(`round ${r + 1}: ${l0} -> ${loadAvg()}`);
    console.error(`(round ${r + 1} of ${ROUNDS} done; load ${loadAvg()})`);
  }
  let curveRows: { up: number[]; down: number[] } | undefined;
  daemon = await startDaemon(s, [], RECONCILE_MS);
  if (CURVE) curveRows = await curve(daemon.engine);
  const t0 = process.hrtime.bigint();
  const e = daemon.engine;
  await inParallel(jnames, PARALLEL, (name) => e.deleteGuest({ name }).then(() => {}));
  const deleteMs = Number(process.hrtime.bigint() - t0) / 1e6;
  await daemon.stop();
  daemon = undefined;

  // ---- report ----
  const med = (kind: string, f: (x: Sample) => number | undefined): number =>
    median((results.get(kind) ?? []).map(f).filter((x): x is number => x !== undefined));
  const range = (kind: string, f: (x: Sample) => number | undefined, scale: number): string => {
    const xs = (results.get(kind) ?? []).map(f).filter((x): x is number => x !== undefined);
    return xs.length ? `${(Math.min(...xs) / scale).toFixed(2)}-${(Math.max(...xs) / scale).toFixed(2)}` : '';
  };
  const labels: [string, string][] = [
    ['plain', 'plain LXC (lxc-start -d one by one; lxc-stop -k)'],
    ['equiv', 'equivalent LXC (idmap, overlay, veth on a bridge)'],
    ['jaulad', `jaula through jaulad (start/stop --all --parallel ${PARALLEL}, --kill)`],
    ['local', 'jaula without jaulad (JAULA_NO_DAEMON=1)'],
  ];
  const rows = labels
    .filter(([k]) => results.has(k))
    .map(([k, label]) => [
      label,
      (med(k, (x) => x.startMs) / 1000).toFixed(2),
      range(k, (x) => x.startMs, 1000),
      med(k, (x) => x.startMs) / GUESTS,
      (med(k, (x) => x.startCpuMs) / GUESTS).toFixed(1),
      (med(k, (x) => x.stopMs) / 1000).toFixed(2),
      range(k, (x) => x.stopMs, 1000),
      med(k, (x) => x.stopMs) / GUESTS,
      k === 'local' || k === 'jaulad' ? (med(k, (x) => x.quietMs) / 1000).toFixed(2) : '',
      (med(k, (x) => x.memInfoKiB) / 1024).toFixed(2),
      (med(k, (x) => x.memCgKiB) / 1024).toFixed(2),
    ]);
  console.log(
    `\nbench/density: ${GUESTS} guests, ${ROUNDS} round(s), medians (range); ${cgroupMode()} cgroups; load before: ${loadBefore}\n`,
  );
  console.log(
    table(
      [
        '',
        `start ${GUESTS} s`,
        'range',
        'ms/guest',
        'CPU ms/start',
        `stop ${GUESTS} s`,
        'range',
        'ms/guest',
        'until quiet s',
        'MiB/guest meminfo',
        'MiB/guest cgroups+sup.',
      ],
      rows,
    ),
  );
  const j = results.has('jaulad');
  const jl = results.has('local');
  const lrows: (string | number)[][] = [];
  if (j) lrows.push(['through jaulad', med('jaulad', (x) => x.list), med('jaulad', (x) => x.ps)]);
  if (jl) lrows.push(['without jaulad', med('local', (x) => x.list), med('local', (x) => x.ps)]);
  if (lrows.length) {
    console.log(`\nWith all ${GUESTS} guests running, median of 5 runs per round, ms:\n`);
    console.log(table(['', 'jaula list', 'jaula ps'], lrows));
  }
  console.log(
    `\nBuilding ${GUESTS} guests from a stored template through jaulad (4 at a time): ${(buildMs / 1000).toFixed(1)} s (${(buildMs / GUESTS).toFixed(1)} ms each); deleting them (${PARALLEL} at a time): ${(deleteMs / 1000).toFixed(1)} s (${(deleteMs / GUESTS).toFixed(1)} ms each).`,
  );
  if (j && results.has('equiv') && results.has('plain')) {
    const js = med('jaulad', (x) => x.startMs);
    console.log(
      `Aims (issue 16): start through jaulad / equivalent LXC ${(js / med('equiv', (x) => x.startMs)).toFixed(2)}x (aim <= 1.0), / plain LXC ${(js / med('plain', (x) => x.startMs)).toFixed(2)}x (aim <= 1.5); stop / plain LXC ${(med('jaulad', (x) => x.stopMs) / med('plain', (x) => x.stopMs)).toFixed(2)}x (aim <= 1.5).`,
    );
  }
  if (curveRows) {
    console.log(
      `\nThrough the API, ${PARALLEL} at a time: ms per guest for each tenth of the ${GUESTS} (first tenth first):\n`,
    );
    console.log(
      table(
        ['', ...curveRows.up.map((_, i) => `${i + 1}`)],
        [
          ['start', ...curveRows.up.map((x) => x.toFixed(1))],
          ['stop --kill', ...curveRows.down.map((x) => x.toFixed(1))],
        ],
      ),
    );
  }
  console.log(`\nMachine load (1, 5, 15 min) at the start and end of each round: ${loads.join('; ')}`);
} finally {
  cleanup();
  // Nothing of jaula's may stay (guests' processes, mounts, cgroups, veths, bridges, nftables
  // tables, loop devices, the root): checked as the tests check it.
  const left = instanceLeftovers(s.root).filter((l) => l !== `mount ${s.runMount}`); // (the bench's own)
  console.log(
    `\nLeft behind after the stop and delete of all ${GUESTS}: ${left.length ? left.join('; ') : 'nothing'}`,
  );
  if (left.length) process.exitCode = 1;
}
