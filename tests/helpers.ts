/**
 * Helpers for integration tests: every test gets its own JAULA_ROOT, drives the real `jaula`
 * CLI (the README's command), and checks at the end that nothing is left behind: no container,
 * no mount, no cgroup. Cleanup runs even when the test fails.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type ClientRequest } from 'node:http';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeCgroupParents } from '../src/cgroups/parents.js';
import { makePaths } from '../src/os/paths.js';

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

  /** Start a jaulad for this root (wait with `await d.ready()`). */
  daemon(args: string[] = []): Jaulad {
    const d = new Jaulad(this, args);
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
      // The kernel frees an autoclear loop device a moment after the last unmount.
      const deadline = Date.now() + 5000;
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

  /** Stop and delete every guest, check for leftovers, remove the root. */
  cleanup(): string[] {
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
    // The instance's parent cgroups (empty now) go too; one that stays is a leak.
    left.push(...removeCgroupParents(this.tag).map((d) => `cgroup parent ${d}`));
    fs.rmSync(this.root, { recursive: true, force: true });
    return left;
  }
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

/** A jaulad of a TestRoot: started on the root's socket, stopped (or killed) by the test. */
export class Jaulad {
  readonly proc: ChildProcess;
  log = '';
  constructor(
    readonly t: TestRoot,
    args: string[],
  ) {
    this.proc = spawn(process.execPath, [join(projectDir, 'bin/jaulad.cjs'), ...args], {
      env: t.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout?.on('data', (b: Buffer) => (this.log += b.toString()));
    this.proc.stderr?.on('data', (b: Buffer) => (this.log += b.toString()));
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

  /** kill -9: what a crash does. */
  async kill9(): Promise<void> {
    if (!this.alive) return;
    const done = this.exited();
    this.proc.kill('SIGKILL');
    await done;
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
    req.on('error', reject);
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
