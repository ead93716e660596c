/** Shared helpers for benchmarks: timing commands, medians, tables, a scratch JAULA_ROOT, jaulad. */
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ownCgroups } from '../src/cgroups/detect.js';
import { removeCgroupParents } from '../src/cgroups/parents.js';
import { RemoteEngine } from '../src/client/remote-engine.js';
import { MNT_DETACH, MS_NODEV, MS_NOSUID, native } from '../src/os/native.js';
import { makePaths } from '../src/os/paths.js';

export const projectDir = resolve(fileURLToPath(import.meta.url), '../../..');
export const jaulaBin = join(projectDir, 'bin/jaula.cjs');
export const N = Number(process.env['BENCH_N'] ?? 20);

export function sh(argv: string[], opts: SpawnSyncOptions = {}): { code: number; out: string; err: string } {
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  });
  return { code: r.status ?? 128, out: String(r.stdout ?? ''), err: String(r.stderr ?? '') };
}

export function must(argv: string[], opts: SpawnSyncOptions = {}): string {
  const r = sh(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.err}${r.out}`);
  return r.out;
}

/** Wall-clock milliseconds of one run of argv (must succeed). */
export function timeMs(argv: string[], opts: SpawnSyncOptions = {}): number {
  const t0 = process.hrtime.bigint();
  // No pipes: a detached container would inherit one and keep it open.
  const r = spawnSync(argv[0] as string, argv.slice(1), { stdio: 'ignore', ...opts });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status} (run it by hand to see why)`);
  return ms;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) =>
    r.map((c) => (typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c.toFixed(1)) : c)),
  );
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => '| ' + r.map((c, i) => c.padEnd(w[i] ?? 0)).join(' | ') + ' |';
  return [line(headers), '|' + w.map((x) => '-'.repeat(x + 2)).join('|') + '|', ...cells.map(line)].join(
    '\n',
  );
}

export class Scratch {
  /** A new temporary JAULA_ROOT, or `root` (made here, empty). */
  readonly root: string;
  readonly env: NodeJS.ProcessEnv;
  /** The instance's tag: what jaula names its host objects (bridges, cgroups, tables) after. */
  readonly tag: string;
  /**
   * $ROOT/run, a tmpfs as /run is on a real host: jaula's run directory (each running guest's
   * state, bundle and namespace files, the locks) is not written to the scratch directory's disk,
   * whose journal would cost every start what a host does not pay.
   */
  readonly runMount: string;
  constructor(root?: string) {
    if (root) fs.mkdirSync(root, { mode: 0o700 });
    this.root = root ?? fs.mkdtempSync(join(tmpdir(), 'jaula-bench-'));
    this.env = { ...process.env, JAULA_ROOT: this.root };
    this.tag = makePaths(this.root).instanceTag;
    this.runMount = join(this.root, 'run');
    fs.mkdirSync(this.runMount, { mode: 0o755 });
    native().mount('tmpfs', this.runMount, 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=0755');
  }
  jaula(args: string[]): string {
    return must([process.execPath, jaulaBin, ...args], { env: this.env });
  }
  jaulaArgv(args: string[]): string[] {
    return [process.execPath, jaulaBin, ...args];
  }
  /** Delete every guest of the instance (running ones too), one `jaula delete --force` each. */
  deleteGuests(env: NodeJS.ProcessEnv = this.env): void {
    const list = sh([process.execPath, jaulaBin, 'list', '--format', 'json'], { env });
    if (list.code === 0)
      for (const g of JSON.parse(list.out) as { name: string }[])
        sh([process.execPath, jaulaBin, 'delete', '--force', g.name], { env });
  }
  cleanup(): void {
    this.deleteGuests();
    // The instance's parent cgroups (empty now) go too.
    removeCgroupParents(this.tag);
    native().umount2(this.runMount, MNT_DETACH);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** The service of the benchmarks' busybox guests: `/bin/sleep 100000` under jaula-init. */
const SLEEPER = ['-q', '--initstyle', 'cmd', '--cmd', '/bin/sleep 100000'];

/** `jaula build` arguments for a busybox skeleton guest running `/bin/sleep 100000` (then `extra`). */
export function sleeperSkeleton(name: string, extra: string[] = []): string[] {
  return ['build', name, '-m', 'skeleton', ...SLEEPER, ...extra];
}

/** `jaula build` arguments for a busybox guest running `/bin/sleep 100000` from a template tarball. */
export function sleeperFromTemplate(name: string, tarball: string): string[] {
  return ['build', name, '-m', 'template', ...SLEEPER, '--', '-t', tarball];
}

export function have(cmd: string): boolean {
  return sh(['sh', '-c', `command -v ${cmd}`]).code === 0;
}

/**
 * An LXC container `name` under `lxcPath` running `cmd` as its init: on an existing tree
 * (`rootfs` a directory, or an LXC rootfs spec such as `overlay:LOWER:UPPER`), no network unless
 * `o.net` gives the lxc.net.0 lines, with `o.extra` lines added (lxc.idmap, lxc.cgroup.relative).
 */
export function lxcContainer(
  lxcPath: string,
  name: string,
  rootfs: string,
  cmd: string,
  o: { net?: string[]; extra?: string[] } = {},
): void {
  fs.mkdirSync(join(lxcPath, name), { recursive: true });
  fs.writeFileSync(
    join(lxcPath, name, 'config'),
    [
      `lxc.uts.name = ${name}`,
      `lxc.rootfs.path = ${rootfs.startsWith('/') ? `dir:${rootfs}` : rootfs}`,
      ...(o.net ?? ['lxc.net.0.type = empty']),
      'lxc.apparmor.profile = unconfined',
      'lxc.mount.auto = proc:mixed sys:ro',
      `lxc.init.cmd = ${cmd}`,
      ...(o.extra ?? []),
      '',
    ].join('\n'),
  );
}

/**
 * jaulad of a scratch root, started with `--no-autostart` (and `nodeArgs`, e.g. --cpu-prof), once
 * it has reconciled (it looks at every guest: with a thousand on a busy host that takes minutes,
 * so the wait is `waitMs`, 60 s unless told).
 */
export async function startDaemon(
  s: Scratch,
  nodeArgs: string[] = [],
  waitMs = 60_000,
): Promise<{ pid: number; engine: RemoteEngine; stop: () => Promise<void> }> {
  // Its log: JAULA_BENCH_JAULAD_LOG=FILE (appended), else nowhere.
  const logFile = process.env['JAULA_BENCH_JAULAD_LOG'];
  const log = logFile ? fs.openSync(logFile, 'a') : 'ignore';
  const child = spawn(process.execPath, [...nodeArgs, join(projectDir, 'bin/jaulad.cjs'), '--no-autostart'], {
    env: s.env,
    stdio: ['ignore', log, log],
  });
  if (typeof log === 'number') fs.closeSync(log);
  const e = new RemoteEngine(join(s.root, 'run/jaula/jaulad.sock'));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`jaulad ended (status ${child.exitCode})`);
    try {
      const info = await e.getInfo();
      if (info.daemon?.reconcile) break;
    } catch {
      if (i > waitMs / 50) throw new Error(`jaulad did not answer, reconciled, within ${waitMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    pid: child.pid as number,
    engine: e,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** PIDs of processes whose command line (NULs as spaces) matches `re`. */
export function pidsMatching(re: RegExp): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (re.test(fs.readFileSync(`/proc/${d}/cmdline`, 'latin1').replace(/\0/g, ' '))) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** RSS and PSS (kB) of the processes, summed (RSS counts shared pages in each, PSS shares them out). */
export function memOfPids(pids: number[]): { n: number; rss: number; pss: number } {
  let rss = 0;
  let pss = 0;
  let n = 0;
  for (const p of pids) {
    try {
      const text = fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
      rss += kb('Rss');
      pss += kb('Pss');
      n++;
    } catch {
      /* gone */
    }
  }
  return { n, rss, pss };
}

/** The 1-, 5- and 15-minute load averages of the host. */
export function loadAvg(): string {
  return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

function cgroupMounts(): string[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2')
    .map((f) => f[1] as string);
}

/** `name` in every cgroup hierarchy, at its root and beneath this process's own cgroups: those that exist. */
function cgroupDirsNamed(names: string[]): string[] {
  const own = [...new Set(['/', ...ownCgroups().values()])];
  return cgroupMounts()
    .flatMap((m) => own.flatMap((b) => names.map((n) => join(m, b, n))))
    .filter((d) => fs.existsSync(d));
}

/**
 * The cgroups LXC made for these containers (lxc.payload.NAME, lxc.monitor.NAME; the monitor's
 * stays after a stop), wherever it put them: beneath ours with lxc.cgroup.relative, else at the root.
 */
export function lxcCgroupDirs(containers: string[]): string[] {
  return cgroupDirsNamed(containers.flatMap((n) => [`lxc.payload.${n}`, `lxc.monitor.${n}`]));
}

/** LXC's own lxc.pivot cgroups (its monitors pass through them). */
export function lxcPivotDirs(): string[] {
  return cgroupDirsNamed(['lxc.pivot']);
}

/**
 * The newest Debian bookworm minbase tree that tests/debian.test.ts cached (JAULA_CACHE_DIR,
 * default /var/cache/jaula-test): a Debian-sized guest without a 30 s debootstrap.
 */
export function debianTarball(who: string): string {
  const dir = join(process.env['JAULA_CACHE_DIR'] ?? '/var/cache/jaula-test', 'debootstrap');
  const f = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((x) => /^bookworm-.*-minbase-.*\.tar\.zst$/.test(x))
        .map((x) => join(dir, x))
        .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0]
    : undefined;
  if (!f) throw new Error(`${who}: no cached Debian tree in ${dir}: run tests/debian.test.ts once`);
  return f;
}
