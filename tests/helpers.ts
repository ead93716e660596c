/**
 * Helpers for integration tests: every test gets its own JAULA_ROOT, drives the real `jaula`
 * CLI (the README's command), and checks at the end that nothing is left behind: no container,
 * process, mount, loop device, cgroup, network namespace, veth, bridge or nftables table of the
 * instance. Cleanup runs even when the test fails.
 *
 * Every root is checked again when its file ends (a root its file never cleaned up is cleaned
 * then, and what it left fails the file), and scripts/test.mjs checks every root of the run once
 * more at the end (JAULA_TEST_LEDGER): the suite fails on anything left behind.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request as httpRequest, type ClientRequest } from 'node:http';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroupParents, removeCgroupParents } from '../src/cgroups/parents.js';
import { makePaths } from '../src/os/paths.js';
import { isReg, walkTree } from '../src/os/walk.js';

export const projectDir = resolve(fileURLToPath(import.meta.url), '../../..');
export const jaulaBin = join(projectDir, 'bin/jaula.cjs');

/**
 * How much slower than this machine the tests run: the time limits of waits and commands are
 * multiplied by it (JAULA_TEST_SLOWDOWN; scripts/test-v2.sh sets it for its emulated VM, where
 * a process start costs 30 to 80 times as much). Limits, not measurements: nothing asserts speed.
 */
export const slowdown = Math.max(1, Number(process.env['JAULA_TEST_SLOWDOWN']) || 1);

export interface GuestStatus {
  name: string;
  status: string;
  context: number;
  pid?: number;
  startedAt?: string;
  lastExit?: { reason: string };
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** The TestRoots of this file, checked when it ends (see the module comment). */
const madeHere: TestRoot[] = [];

/** The environment variable that names the run's ledger of roots (set by scripts/test.mjs). */
export const LEDGER_ENV = 'JAULA_TEST_LEDGER';

const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** One process per mount namespace that still mounts a loop device (what keeps it bound). */
function loopHolderProcs(dev: string): { pid: number; cmd: string; ns: string }[] {
  const holders = new Map<string, { pid: number; cmd: string; ns: string }>();
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const ns = fs.readlinkSync(`/proc/${p}/ns/mnt`);
      if (holders.has(ns)) continue;
      if (fs.readFileSync(`/proc/${p}/mountinfo`, 'utf8').includes(` ${dev} `))
        holders.set(ns, {
          ns,
          pid: Number(p),
          cmd: fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, 120),
        });
    } catch {
      /* gone */
    }
  }
  return [...holders.values()];
}

/**
 * A loop device that only other programs' mount namespaces still mount, once jaula let go of
 * it: unmounted here, set to go with its last mount (autoclear), no process of the instance
 * among its holders. A program that made a private mount namespace while it was mounted (on a
 * host whose root mount is private, as here: `ip netns exec`, `unshare -m`, another engineer's
 * long-lived test harness) holds a copy that nothing outside that namespace can unmount; the
 * device goes when that program ends. Reported on stderr, not counted as the instance's leftover.
 */
function pinnedElsewhere(dev: string, ours: Set<number>): boolean {
  const hostNs = fs.readlinkSync('/proc/self/ns/mnt');
  const h = loopHolderProcs(dev);
  let autoclear = '0';
  try {
    autoclear = fs.readFileSync(`/sys/block/${dev.replace('/dev/', '')}/loop/autoclear`, 'utf8').trim();
  } catch {
    /* gone */
  }
  const pinned = autoclear === '1' && h.length > 0 && h.every((x) => !ours.has(x.pid) && x.ns !== hostNs);
  if (pinned) console.error(`# note: ${dev} is released by jaula but still mounted${loopHolders(dev)}`);
  return pinned;
}

/** The processes whose mount namespace still mounts a loop device, as text. */
function loopHolders(dev: string): string {
  const holders = loopHolderProcs(dev);
  return holders.length
    ? ` (mounted in the mount namespace of ${holders.map((h) => `${h.pid} ${h.cmd}`).join('; ')})`
    : '';
}

/** Processes that belong to the jaula instance at `root`: its JAULA_ROOT, or the root in their command line. */
export function instanceProcesses(root: string): string[] {
  const out: string[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const env = fs.readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
      const mine =
        env.includes(`JAULA_ROOT=${root}`) || cmd.some((a) => a === root || a.includes(`${root}/`));
      // A zombie has no command line left, and nothing it can do.
      if (mine && cmd.length) out.push(`${p} ${cmd.join(' ').slice(0, 200)}`);
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return out;
}

/**
 * What the instance at `root` (its tag `tag`) left on the host once its test is over and its
 * root removed: processes, mounts, loop devices, cgroups, network devices, nftables tables,
 * and the root itself. scripts/test.mjs runs it for every root of the run.
 */
export function instanceLeftovers(root: string): string[] {
  const tag = makePaths(root).instanceTag;
  const left = instanceProcesses(root).map((p) => `process ${p}`);
  for (const l of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const m = l.split(' ')[4] ?? '';
    if (m === root || m.startsWith(`${root}/`)) left.push(`mount ${m}`);
  }
  const ours = new Set(left.map((p) => Number(p.split(' ')[1])));
  for (const d of fs.readdirSync('/sys/block').filter((x) => x.startsWith('loop'))) {
    try {
      const f = fs.readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim();
      if ((f === root || f.startsWith(`${root}/`)) && !pinnedElsewhere(`/dev/${d}`, ours))
        left.push(`loop device /dev/${d} ${f}`);
    } catch {
      /* not set up */
    }
  }
  left.push(...cgroupParents(tag).map((c) => `cgroup ${c}`));
  const pre = tag.slice(0, 4);
  for (const d of fs.readdirSync('/sys/class/net'))
    if (['jv', 'ji', 'jm'].some((k) => d.startsWith(`${k}${pre}`)) || d === `jb${tag}`)
      left.push(`network device ${d}`);
  for (const fam of ['bridge', 'ip'])
    if (spawnSync('nft', ['list', 'table', fam, `jaula_${tag}`], { stdio: 'ignore' }).status === 0)
      left.push(`nftables table ${fam} jaula_${tag}`);
  if (fs.existsSync(root)) left.push(`directory ${root}`);
  return left;
}

export class TestRoot {
  readonly root: string;
  readonly tag: string;
  readonly env: NodeJS.ProcessEnv;
  /** Set once cleanup() ran. */
  cleanedUp = false;

  constructor(prefix = 'jaula-test-', extraEnv: NodeJS.ProcessEnv = {}) {
    this.root = fs.mkdtempSync(join(tmpdir(), prefix));
    this.tag = makePaths(this.root).instanceTag;
    this.env = { ...process.env, JAULA_ROOT: this.root, ...extraEnv };
    madeHere.push(this);
    const ledger = process.env[LEDGER_ENV];
    if (ledger) fs.appendFileSync(ledger, `${this.root}\n`);
  }

  /** Run `jaula ARGS` synchronously. */
  jaula(
    args: string[],
    opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
  ): Result {
    const r = spawnSync(process.execPath, [jaulaBin, ...args], {
      env: { ...this.env, ...opts.env },
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      input: opts.input ?? '',
      encoding: 'utf8',
      timeout: (opts.timeoutMs ?? 300_000) * slowdown,
      maxBuffer: 64 << 20,
    });
    return { code: r.status ?? 128, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Run jaula and fail with its output unless it exits 0. */
  ok(
    args: string[],
    opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
  ): Result {
    const r = this.jaula(args, opts);
    if (r.code !== 0)
      throw new Error(`jaula ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r;
  }

  /** Run jaula asynchronously (for concurrent operations). */
  jaulaAsync(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
    return new Promise((res) => {
      const child = spawn(process.execPath, [jaulaBin, ...args], {
        env: { ...this.env, ...opts.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('close', (code) => res({ code: code ?? 128, stdout, stderr }));
    });
  }

  /** Build a skeleton guest whose init is `sleep` (cheap to start and stop), with more build options. */
  buildSleeper(name: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Result {
    return this.ok(
      ['build', name, '-m', 'skeleton', '-q', '--initstyle', 'cmd', '--cmd', '/bin/sleep 100000', ...extra],
      { env },
    );
  }

  /** `jaula exec NAME -- sh -c SCRIPT`, returning the result. */
  sh(name: string, script: string, input?: string): Result {
    return this.jaula(['exec', name, '--', '/bin/sh', '-c', script], input === undefined ? {} : { input });
  }

  path(...p: string[]): string {
    return join(this.root, ...p);
  }

  /** The directory that holds a guest's own files: its tree (dir), or its upper layer (overlay). */
  guestRoot(name: string): string {
    // (in a storage pool, or with a quota: below the guest's vol/)
    for (const base of [
      this.path('var/lib/jaula/guests', name),
      this.path('var/lib/jaula/guests', name, 'vol'),
    ]) {
      if (fs.existsSync(join(base, 'upper'))) return join(base, 'upper');
      if (fs.existsSync(join(base, 'rootfs'))) return join(base, 'rootfs');
    }
    return this.path('var/lib/jaula/guests', name, 'rootfs');
  }

  /** Loop devices backed by files under this root: "/dev/loopN FILE". */
  loops(): string[] {
    const out: string[] = [];
    for (const d of fs.readdirSync('/sys/block').filter((x) => x.startsWith('loop'))) {
      try {
        const f = fs.readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim();
        if (f === this.root || f.startsWith(this.root + '/')) out.push(`/dev/${d} ${f}`);
      } catch {
        /* not set up */
      }
    }
    return out;
  }

  state(name: string): Record<string, unknown> {
    return JSON.parse(fs.readFileSync(this.path('run/jaula/guests', name, 'state.json'), 'utf8')) as Record<
      string,
      unknown
    >;
  }

  /** Wait until `fn` returns true (polling), or fail after `ms`. */
  async until(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
    ms *= slowdown;
    const deadline = Date.now() + ms;
    while (!fn()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Containers the runtimes still list for this root. */
  containers(): string[] {
    const out: string[] = [];
    for (const rt of ['runc', 'crun']) {
      const r = spawnSync(rt, ['--root', this.path('run/jaula/runtime'), 'list', '-q'], { encoding: 'utf8' });
      if (r.status === 0)
        out.push(
          ...r.stdout
            .split('\n')
            .filter(Boolean)
            .map((x) => `${rt}:${x}`),
        );
    }
    return out;
  }

  mounts(): string[] {
    const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    return text
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((p) => p === this.root || p.startsWith(this.root + '/'));
  }

  /** cgroup directories of this root's guests, in every hierarchy. */
  cgroups(): string[] {
    const parent = `jaula-${this.tag}`;
    const found: string[] = [];
    const walk = (dir: string, depth: number): void => {
      if (depth > 6) return;
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        const p = join(dir, e.name);
        if (e.name === parent) {
          for (const c of fs.readdirSync(p, { withFileTypes: true }))
            if (c.isDirectory()) found.push(join(p, c.name));
        } else walk(p, depth + 1);
      }
    };
    walk('/sys/fs/cgroup', 0);
    return found;
  }

  /** Network devices of this root's guests (veth host ends, ifb, macvlan temporaries). */
  devices(): string[] {
    const pre = this.tag.slice(0, 4);
    return fs
      .readdirSync('/sys/class/net')
      .filter((d) => ['jv', 'ji', 'jm'].some((k) => d.startsWith(`${k}${pre}`)));
  }

  /** Network namespaces jaula bound for this root's guests. */
  netns(): string[] {
    try {
      return fs.readdirSync(this.path('run/jaula/netns'));
    } catch {
      return [];
    }
  }

  /** Processes of this instance still running (jaulad, supervisors, `jaula __exited`, lxcfs, ...). */
  processes(): string[] {
    return instanceProcesses(this.root);
  }

  /** This instance's nftables tables (they go with its last network). */
  firewallTables(): string[] {
    return ['bridge', 'ip'].filter(
      (fam) =>
        spawnSync('nft', ['list', 'table', fam, `jaula_${this.tag}`], { stdio: 'ignore' }).status === 0,
    );
  }

  /** Elements left in this root's firewall sets and maps. */
  firewallElements(): string[] {
    const out: string[] = [];
    for (const fam of ['bridge', 'ip']) {
      const r = spawnSync('nft', ['-j', 'list', 'table', fam, `jaula_${this.tag}`], { encoding: 'utf8' });
      if (r.status !== 0) continue;
      for (const o of (
        JSON.parse(r.stdout) as { nftables: Record<string, { name: string; elem?: unknown[] }>[] }
      ).nftables) {
        const s = o['set'] ?? o['map'];
        if (s?.elem?.length && s.name !== 'nat') out.push(`${fam} ${s.name}: ${JSON.stringify(s.elem)}`);
      }
    }
    return out;
  }

  /** Everything a guest run may leave behind on the host. */
  leftovers(): string[] {
    // A loop device goes a moment after its last unmount (quota images): give it that moment.
    // One that only other programs still mount goes when they end (pinnedElsewhere): a moment
    // for the short-lived ones (another test's `ip netns exec`), then it is only noted.
    const t0 = Date.now();
    while (this.loops().length && Date.now() - t0 < 3000) sleepSync(50);
    const ours = new Set(this.processes().map((p) => Number(p.split(' ')[0])));
    return [
      ...this.containers().map((c) => `container ${c}`),
      ...this.mounts().map((m) => `mount ${m}`),
      ...this.loops()
        .filter((l) => !pinnedElsewhere(l.split(' ')[0] as string, ours))
        .map((l) => `loop device ${l}${loopHolders(l.split(' ')[0] as string)}`),
      ...this.cgroups().map((c) => `cgroup ${c}`),
      ...this.devices().map((d) => `device ${d}`),
      ...this.netns().map((n) => `netns ${n}`),
      ...this.firewallElements().map((e) => `firewall ${e}`),
    ];
  }

  /** What a stopped guest must not have: a runtime container, mounts, cgroups, namespaces. */
  runLeftovers(name: string): string[] {
    const mine = (p: string): boolean =>
      [`/guests/${name}/`, `/netns/${name}`, `/userns/${name}`].some((x) => p.includes(x)) ||
      p.endsWith(`/guests/${name}/root`);
    return [
      ...this.containers().filter((c) => c.endsWith(`:${name}`)),
      ...this.mounts().filter(mine),
      ...this.cgroups().filter((c) => c.endsWith(`/${name}`)),
      ...['runtime', 'netns', 'userns']
        .map((dir) => this.path('run/jaula', dir, name))
        .filter((p) => fs.existsSync(p)),
    ];
  }

  /**
   * The guest's state is true: running with a live init that answers an exec, or stopped with
   * nothing left of its last run (never "starting" or "stopping" once nothing works on it).
   */
  assertConsistent(name: string, what = ''): GuestStatus {
    const st = JSON.parse(this.jaula(['status', name, '--format', 'json']).stdout) as GuestStatus;
    assert.ok(['running', 'stopped'].includes(st.status), `${what}: ${name} is ${st.status}`);
    if (st.status === 'running') {
      assert.ok(st.pid && fs.existsSync(`/proc/${st.pid}`), `${what}: the init of ${name} lives`);
      const r = this.jaula(['exec', name, '--', 'true']);
      assert.equal(r.code, 0, `${what}: ${name} answers: ${r.stderr}`);
    } else assert.deepEqual(this.runLeftovers(name), [], `${what}: nothing is left of ${name}'s last run`);
    return st;
  }

  /** jaulads started by daemon(), killed by cleanup(). */
  readonly daemons: Jaulad[] = [];

  /** Start a jaulad for this root (wait with `await d.ready()`); `env` adds to the root's. */
  daemon(args: string[] = [], env: NodeJS.ProcessEnv = {}): Jaulad {
    const d = new Jaulad(this, args, env);
    this.daemons.push(d);
    return d;
  }

  private readonly cleanups: (() => void)[] = [];

  /** Run `fn` at cleanup, after the guests are deleted and before leftovers are counted. */
  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /**
   * A fresh XFS (reflink=1) or btrfs filesystem in an image file under this root, mounted on
   * `at` through a loop device; unmounted (the loop device freed) at cleanup.
   */
  loopFs(type: 'xfs' | 'btrfs', at: string, sizeMiB = 320): void {
    const img = this.path(`${type}-${this.cleanups.length}.img`);
    fs.writeFileSync(img, '');
    fs.truncateSync(img, sizeMiB * 2 ** 20);
    const mk =
      type === 'xfs'
        ? spawnSync('mkfs.xfs', ['-q', '-f', '-m', 'reflink=1', img], { encoding: 'utf8' })
        : spawnSync('mkfs.btrfs', ['-q', '-f', img], { encoding: 'utf8' });
    if (mk.status !== 0) throw new Error(`mkfs.${type} failed: ${mk.stderr}`);
    fs.mkdirSync(at, { recursive: true });
    const m = spawnSync('mount', ['-o', 'loop', img, at], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`mounting the ${type} image failed: ${m.stderr}`);
    this.onCleanup(() => {
      spawnSync('umount', [at]);
      // The kernel frees an autoclear loop device a moment after the last unmount; a runtime
      // call under way on the host (crun's private mount namespace copies every mount) keeps
      // it a while longer: 15 s, as deletePool waits for the pool's.
      const deadline = Date.now() + 15_000;
      while (this.loops().some((l) => l.includes(img)) && Date.now() < deadline) spawnSync('sleep', ['0.05']);
      for (const l of this.loops().filter((x) => x.includes(img)))
        spawnSync('losetup', ['-d', l.split(' ')[0] as string]);
      fs.rmSync(img, { force: true });
    });
  }

  /**
   * Make this root's storage pool (jaula pool create: a btrfs image mounted on var/lib/jaula,
   * a subvolume with a space limit per guest); deleted at cleanup, after the guests.
   */
  pool(sizeMiB = 512, guestQuotaMiB = 64): void {
    this.ok(['pool', 'create', '--size', `${sizeMiB}M`, '--guest-quota', `${guestQuotaMiB}M`]);
    this.onCleanup(() => {
      const r = this.jaula(['pool', 'delete']);
      if (r.code !== 0) throw new Error(`jaula pool delete: ${r.stderr}`);
    });
  }

  /**
   * Stop and delete every guest and network, wait for every process of the instance to end,
   * remove the root; returns what was left behind (and removes that too, so that one failing
   * test does not break the next).
   */
  cleanup(): string[] {
    this.cleanedUp = true;
    for (const d of this.daemons)
      if (d.alive)
        try {
          process.kill(d.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
    fs.rmSync(this.path('run/jaula/jaulad.sock'), { force: true });
    const list = this.jaula(['list', '--format', 'json']);
    if (list.code === 0) {
      for (const g of JSON.parse(list.stdout) as { name: string }[])
        this.jaula(['delete', '--force', g.name]);
    }
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        fn();
      } catch {
        /* the leftovers check reports what stays */
      }
    }
    // A deleted guest's supervisor may still run its exit command (`jaula __exited`), a killed
    // jaulad may not have ended yet: wait for every process of the instance, and count one
    // that stays as left behind (it could still write under the root, or hold a guest).
    const deadline = Date.now() + 20_000;
    while (this.processes().length && Date.now() < deadline) sleepSync(50);
    const stayed = this.processes();
    for (const p of stayed)
      try {
        process.kill(Number(p.split(' ')[0]), 'SIGKILL');
      } catch {
        /* gone */
      }
    const left = [...stayed.map((p) => `process ${p}`), ...this.leftovers()];
    const nets = this.jaula(['network', 'list', '--format', 'json']);
    const bridges: string[] = [];
    if (nets.code === 0)
      for (const n of JSON.parse(nets.stdout) as { name: string; bridge?: string }[]) {
        if (n.bridge) bridges.push(n.bridge);
        const r = this.jaula(['network', 'delete', n.name]);
        if (r.code !== 0) left.push(`network ${n.name}: jaula network delete: ${r.stderr.trim()}`);
      }
    // The last network takes the firewall tables and the bridges with it.
    left.push(...bridges.filter((b) => fs.existsSync(`/sys/class/net/${b}`)).map((b) => `bridge ${b}`));
    left.push(...this.firewallTables().map((f) => `nftables table ${f} jaula_${this.tag}`));
    for (const d of this.devices()) spawnSync('ip', ['link', 'del', d]);
    for (const b of bridges) spawnSync('ip', ['link', 'del', b]);
    for (const fam of ['bridge', 'ip']) spawnSync('nft', ['delete', 'table', fam, `jaula_${this.tag}`]);
    // Remove what is left anyway, so that one failing test does not break the next.
    for (const c of this.containers())
      spawnSync(c.split(':')[0] as string, [
        '--root',
        this.path('run/jaula/runtime'),
        'delete',
        '-f',
        c.split(':')[1] as string,
      ]);
    for (const m of this.mounts().sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
    for (const l of this.loops()) spawnSync('losetup', ['-d', l.split(' ')[0] as string]);
    for (const c of this.cgroups()) spawnSync('rmdir', [c]);
    // The instance's parent cgroups (empty now) go too; one that stays is a leak.
    left.push(...removeCgroupParents(this.tag).map((d) => `cgroup parent ${d}`));
    try {
      fs.rmSync(this.root, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch (e) {
      left.push(`directory ${this.root}: ${(e as Error).message}`);
    }
    return left;
  }
}

/**
 * Clean up a root that a test left behind without its TestRoot (scripts/test.mjs does, once it
 * has reported it): everything cleanup() does. Returns what it found.
 */
export function cleanupLeftRoot(root: string): string[] {
  const t = Object.create(TestRoot.prototype) as TestRoot;
  Object.assign(t, {
    root,
    tag: makePaths(root).instanceTag,
    env: { ...process.env, JAULA_ROOT: root },
    cleanedUp: false,
    daemons: [],
    cleanups: [],
  });
  return t.cleanup();
}

// When the file ends: a root its tests never cleaned up is cleaned now, and whatever it (or a
// cleaned one, since) left behind fails the file.
process.once('beforeExit', () => {
  const problems: string[] = [];
  for (const t of madeHere) {
    if (!t.cleanedUp) {
      problems.push(`${t.root}: never cleaned up by its test`);
      problems.push(...t.cleanup().map((l) => `${t.root}: ${l}`));
    }
    problems.push(...instanceLeftovers(t.root).map((l) => `${t.root}: ${l}`));
  }
  if (problems.length) {
    process.stderr.write(`# left behind when the file ended:\n${problems.map((p) => `#   ${p}\n`).join('')}`);
    process.exitCode = 1;
  }
});

export const isRoot = process.getuid?.() === 0;

/** The skip reason for tests that need root (integration tests run as root in CI). */
export const needRoot = isRoot ? false : 'integration tests need root';

/** A busybox guest built and reused by several tests in one file. */
export function buildSkeleton(t: TestRoot, name: string, extra: string[] = []): void {
  t.ok(['build', name, '-m', 'skeleton', '-q', ...extra]);
}

/**
 * `jaula network create NAME` on a random /24 of 10.(FIRST..FIRST+39).x that no other test (or
 * the host) uses, its bridge named from the test's tag; returns the gateway address.
 */
export function makeNetwork(t: TestRoot, name: string, first = 190): string {
  for (let i = 0; i < 20; i++) {
    const base = `10.${first + Math.floor(Math.random() * 40)}.${Math.floor(Math.random() * 250)}`;
    const bridge = `j${name.slice(0, 3)}${t.tag.slice(0, 6)}`;
    const r = t.jaula(['network', 'create', name, '--subnet', `${base}.1/24`, '--bridge', bridge]);
    if (r.code === 0) return `${base}.1`;
  }
  throw new Error(`could not make the network "${name}"`);
}

/** Run host tools (ip, iputils ping) in a guest's network namespace; the script's exit status. */
export function inGuestNet(t: TestRoot, guest: string, script: string): number {
  return (
    spawnSync('nsenter', [`--net=${t.path('run/jaula/netns', guest)}`, 'sh', '-c', script], {
      stdio: 'ignore',
      timeout: 30_000,
    }).status ?? 1
  );
}

/** The escape suite's probe (tests/escape/probe.c) on the host, built when missing or stale. */
export function escapeProbe(): string {
  const bin = join(projectDir, 'native/out/jaula-escape-probe');
  const src = join(projectDir, 'tests/escape/probe.c');
  if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(src).mtimeMs) return bin;
  const r = spawnSync('make', ['-s', '-C', join(projectDir, 'native'), 'out/jaula-escape-probe'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `building the escape probe failed: ${r.stderr}`);
  return bin;
}

/** Where the escape probe appears in guests that bind it in (escapeProbeFstab). */
export const ESCAPE_PROBE_IN_GUEST = '/usr/local/sbin/jaula-escape-probe';

/** The fstab line that binds the escape probe into a guest, read-only. */
export function escapeProbeFstab(): string {
  return `${escapeProbe()} ${ESCAPE_PROBE_IN_GUEST} none bind,ro 0 0\n`;
}

/** One attempt's result, as the escape probe prints it (a JSON line). */
export interface ProbeResult {
  id: string;
  blocked: boolean;
  errno: string;
  detail: string;
  absent?: boolean;
  inconclusive?: boolean;
}

/** The probe's JSON result lines in some output. */
export function probeResults(text: string): ProbeResult[] {
  const out: ProbeResult[] = [];
  for (const line of text.split('\n')) {
    const m = /\{"id":.*\}/.exec(line);
    if (m) out.push(JSON.parse(m[0]) as ProbeResult);
  }
  return out;
}

/** Write an executable script. */
export function writeScript(path: string, text: string): void {
  fs.mkdirSync(join(path, '..'), { recursive: true });
  fs.writeFileSync(path, text, { mode: 0o755 });
}

/** A trace mark (JAULA_TRACE=1): its label, and when the test read it (performance.now()). */
export interface TraceMark {
  label: string;
  at: number;
}

/** Collect the JAULA_TRACE marks a process prints on `stream` into `into`, as they arrive. */
export function collectTraces(stream: NodeJS.ReadableStream | null | undefined, into: TraceMark[]): void {
  let partial = '';
  stream?.on('data', (b: Buffer) => {
    const at = performance.now();
    const lines = (partial + b.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      const m = /^\[jaula [\d.]+ ms\] (.*)$/.exec(l);
      if (m) into.push({ label: m[1] as string, at });
    }
  });
}

/** A jaulad of a TestRoot: started on the root's socket, stopped (or killed) by the test. */
export class Jaulad {
  readonly proc: ChildProcess;
  log = '';
  /** Its JAULA_TRACE marks (when started with JAULA_TRACE=1). */
  readonly traces: TraceMark[] = [];
  private readonly closed: Promise<void>;
  constructor(
    readonly t: TestRoot,
    args: string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.proc = spawn(process.execPath, [join(projectDir, 'bin/jaulad.cjs'), ...args], {
      env: { ...t.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout?.on('data', (b: Buffer) => (this.log += b.toString()));
    this.proc.stderr?.on('data', (b: Buffer) => (this.log += b.toString()));
    collectTraces(this.proc.stderr, this.traces);
    this.closed = new Promise((r) => this.proc.once('close', () => r()));
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  get socket(): string {
    return this.t.path('run/jaula/jaulad.sock');
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Wait until it serves (GET /v1/info answers); with `reconciled`, until its reconcile is done. */
  async ready(opts: { reconciled?: boolean; ms?: number } = {}): Promise<void> {
    const deadline = Date.now() + (opts.ms ?? 30_000) * slowdown;
    for (;;) {
      if (!this.alive) throw new Error(`jaulad exited (${this.proc.exitCode}): ${this.log}`);
      try {
        const r = await apiRequest(this.socket, 'GET', '/v1/info');
        const d = (r.json as { daemon?: { reconcile?: unknown } }).daemon;
        if (r.status === 200 && (!opts.reconciled || d?.reconcile)) return;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error(`jaulad did not get ready: ${this.log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async exited(): Promise<number | null> {
    if (!this.alive) return this.proc.exitCode;
    return new Promise((r) => this.proc.once('exit', (code) => r(code)));
  }

  /** kill -9: what a crash does. Returns once everything it printed before has been read. */
  async kill9(): Promise<void> {
    if (this.alive) this.proc.kill('SIGKILL');
    await this.closed;
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    const done = this.exited();
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 15_000 * slowdown);
    await done;
    clearTimeout(t);
  }

  request(method: string, path: string, body?: unknown): Promise<ApiResult> {
    return apiRequest(this.socket, method, path, body);
  }
}

export interface ApiResult {
  status: number;
  json: unknown;
  text: string;
}

/** One HTTP request to jaulad's unix socket. */
export function apiRequest(socket: string, method: string, path: string, body?: unknown): Promise<ApiResult> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = {};
    if (data !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(data);
    }
    const req = httpRequest({ socketPath: socket, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, json, text });
      });
    });
    req.setTimeout(300_000 * slowdown, () => req.destroy(new Error(`${method} ${path}: timed out`)));
    // Say which request failed: a bare "read ECONNRESET" names none.
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(Object.assign(new Error(`${method} ${path}: ${e.message}`), { code: e.code })),
    );
    req.end(data);
  });
}

/** Follow jaulad's event stream; `events` collects every event, `waitFor` waits for one. */
export class EventStream {
  readonly events: Record<string, unknown>[] = [];
  private req: ClientRequest;
  private waiters: {
    fn: (e: Record<string, unknown>) => boolean;
    resolve: (e: Record<string, unknown>) => void;
  }[] = [];
  constructor(socket: string, path = '/v1/events') {
    this.req = httpRequest({ socketPath: socket, path, agent: false }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let at: number;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          for (const line of block.split('\n'))
            if (line.startsWith('data: ')) this.push(JSON.parse(line.slice(6)) as Record<string, unknown>);
        }
      });
    });
    this.req.on('error', () => {});
    this.req.end();
  }
  private push(e: Record<string, unknown>): void {
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (!w.fn(e)) return true;
      w.resolve(e);
      return false;
    });
  }
  waitFor(
    what: string,
    fn: (e: Record<string, unknown>) => boolean,
    ms = 20_000,
  ): Promise<Record<string, unknown>> {
    const hit = this.events.find(fn);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`timed out waiting for the event: ${what}`)),
        ms * slowdown,
      );
      this.waiters.push({
        fn,
        resolve: (e) => {
          clearTimeout(t);
          resolve(e);
        },
      });
    });
  }
  close(): void {
    this.req.destroy();
  }
}

/** A template tarball of a busybox skeleton (made once per TestRoot, by building and packing a guest). */
export function skeletonTemplate(t: TestRoot): string {
  const file = t.path('skeleton-template.tar');
  if (fs.existsSync(file)) return file;
  t.ok(['build', 'tplsrc', '-m', 'skeleton', '-q'], { env: { JAULA_NO_DAEMON: '1' } });
  const r = spawnSync('tar', ['-C', t.guestRoot('tplsrc'), '-cf', file, '.']);
  if (r.status !== 0) throw new Error(`tar failed: ${String(r.stderr)}`);
  t.ok(['delete', 'tplsrc'], { env: { JAULA_NO_DAEMON: '1' } });
  return file;
}

/** A self-signed P-256 certificate for CN=localhost in this root (made once): {cert, key} paths. */
export function selfSignedCert(t: TestRoot): { cert: string; key: string } {
  const cert = t.path('cert.pem');
  const key = t.path('key.pem');
  if (fs.existsSync(cert)) return { cert, key };
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const r = spawnSync(
    'openssl',
    [...args, '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { cert, key };
}

/**
 * Everything about every entry of a tree: type and mode, owner, size, mtime (to the second: tar
 * keeps no more), xattrs, contents, symlink target, device number, hard-link group.
 */
export function treeManifest(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const firstOfIno = new Map<number, string>();
  for (const e of walkTree(dir, { xattrs: true })) {
    const xs = (e.xattrs ?? []).map(([k, v]) => `${k}=${v.toString('hex')}`).join(',');
    let what = '';
    const p = join(dir, e.path);
    if (isReg(e)) {
      what = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
      const first = firstOfIno.get(e.ino);
      if (first !== undefined) what += ` link-of ${first}`;
      else firstOfIno.set(e.ino, e.path);
    } else if (fs.lstatSync(p).isSymbolicLink()) what = `-> ${fs.readlinkSync(p)}`;
    else if (e.rdev) what = `dev ${e.rdev}`;
    const size = isReg(e) ? e.size : '';
    out.set(e.path, `${e.mode.toString(8)} ${e.uid}:${e.gid} ${size} ${e.mtimeSec} ${xs} ${what}`);
  }
  return out;
}

/** Two trees hold the same entries (treeManifest), or the differences are the failure. */
export function assertSameTree(a: string, b: string, what: string): void {
  const ma = treeManifest(a);
  const mb = treeManifest(b);
  const diff = [...new Set([...ma.keys(), ...mb.keys()])]
    .filter((p) => ma.get(p) !== mb.get(p))
    .map((p) => `${p}: ${ma.get(p)} | ${mb.get(p)}`);
  assert.deepEqual(diff, [], what);
}
