/**
 * Helpers for integration tests: every test gets its own JAULA_ROOT, drives the real `jaula`
 * CLI (the README's command), and checks at the end that nothing is left behind: no container,
 * no mount, no cgroup. Cleanup runs even when the test fails.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePaths } from '../src/os/paths.js';

export const projectDir = resolve(fileURLToPath(import.meta.url), '../../..');
export const jaulaBin = join(projectDir, 'bin/jaula.cjs');

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export class TestRoot {
  readonly root: string;
  readonly tag: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(prefix = 'jaula-test-', extraEnv: NodeJS.ProcessEnv = {}) {
    this.root = fs.mkdtempSync(join(tmpdir(), prefix));
    this.tag = makePaths(this.root).instanceTag;
    this.env = { ...process.env, JAULA_ROOT: this.root, ...extraEnv };
  }

  /** Run `jaula ARGS` synchronously. */
  jaula(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Result {
    const r = spawnSync(process.execPath, [jaulaBin, ...args], {
      env: { ...this.env, ...opts.env },
      input: opts.input ?? '',
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? 300_000,
      maxBuffer: 64 << 20,
    });
    return { code: r.status ?? 128, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** Run jaula and fail with its output unless it exits 0. */
  ok(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Result {
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

  /** `jaula exec NAME -- sh -c SCRIPT`, returning the result. */
  sh(name: string, script: string, input?: string): Result {
    return this.jaula(['exec', name, '--', '/bin/sh', '-c', script], input === undefined ? {} : { input });
  }

  path(...p: string[]): string {
    return join(this.root, ...p);
  }

  /** The directory that holds a guest's own files: its tree (dir), or its upper layer (overlay). */
  guestRoot(name: string): string {
    const upper = this.path('var/lib/jaula/guests', name, 'upper');
    return fs.existsSync(upper) ? upper : this.path('var/lib/jaula/guests', name, 'rootfs');
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
    const deadline = Date.now() + 3000;
    while (this.loops().length && Date.now() < deadline) spawnSync('sleep', ['0.05']);
    return [
      ...this.containers().map((c) => `container ${c}`),
      ...this.mounts().map((m) => `mount ${m}`),
      ...this.loops().map((l) => `loop device ${l}`),
      ...this.cgroups().map((c) => `cgroup ${c}`),
      ...this.devices().map((d) => `device ${d}`),
      ...this.netns().map((n) => `netns ${n}`),
      ...this.firewallElements().map((e) => `firewall ${e}`),
    ];
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
      // The kernel frees an autoclear loop device a moment after the last unmount.
      const deadline = Date.now() + 5000;
      while (this.loops().some((l) => l.includes(img)) && Date.now() < deadline) spawnSync('sleep', ['0.05']);
      for (const l of this.loops().filter((x) => x.includes(img)))
        spawnSync('losetup', ['-d', l.split(' ')[0] as string]);
      fs.rmSync(img, { force: true });
    });
  }

  /** Stop and delete every guest, check for leftovers, remove the root. */
  cleanup(): string[] {
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
    const left = this.leftovers();
    const nets = this.jaula(['network', 'list', '--format', 'json']);
    if (nets.code === 0)
      for (const n of JSON.parse(nets.stdout) as { name: string }[])
        this.jaula(['network', 'delete', n.name]);
    for (const d of this.devices()) spawnSync('ip', ['link', 'del', d]);
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
    const parent = `jaula-${this.tag}`;
    for (const base of fs.readdirSync('/sys/fs/cgroup')) {
      for (const p of [
        join('/sys/fs/cgroup', base, parent),
        ...ownCgroupDirs(base).map((d) => join(d, parent)),
      ]) {
        try {
          fs.rmdirSync(p);
        } catch {
          /* absent */
        }
      }
    }
    fs.rmSync(this.root, { recursive: true, force: true });
    return left;
  }
}

function ownCgroupDirs(hierarchy: string): string[] {
  const text = fs.readFileSync('/proc/self/cgroup', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const [, ctrls, path] = line.split(':');
    if (ctrls === undefined || path === undefined) continue;
    if (ctrls.split(',').includes(hierarchy) || (ctrls === '' && hierarchy === 'unified'))
      out.push(join('/sys/fs/cgroup', hierarchy, path));
  }
  return out;
}

export const isRoot = process.getuid?.() === 0;

/** The skip reason for tests that need root (integration tests run as root in CI). */
export const needRoot = isRoot ? false : 'integration tests need root';

/** A busybox guest built and reused by several tests in one file. */
export function buildSkeleton(t: TestRoot, name: string, extra: string[] = []): void {
  t.ok(['build', name, '-m', 'skeleton', '-q', ...extra]);
}

/** Write an executable script. */
export function writeScript(path: string, text: string): void {
  fs.mkdirSync(join(path, '..'), { recursive: true });
  fs.writeFileSync(path, text, { mode: 0o755 });
}
