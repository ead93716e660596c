/**
 * Several "hosts" on one machine, for moving guests between them (tests/migrate*.test.ts,
 * bench/migrate): each host is a jaula instance (its own TestRoot: JAULA_ROOT) whose jaulad
 * runs in a network namespace of its own and listens there on TCP with TLS and a token; the
 * hosts and a client namespace hang on one bridge (in a hub namespace), so that they share one
 * layer-2 segment, as machines on a switch do. On each host the jaula network "mnet" has the
 * same subnet, and the host's uplink is a port of that network's bridge: a guest keeps its
 * address on either host, and the client reaches it there directly.
 *
 * Everything is named from the first host's instance tag and removed by cleanup(): the guests
 * and networks (by jaula, inside each host's namespace), the jaulads, the namespaces.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import {
  apiRequest,
  collectTraces,
  jaulaBin,
  projectDir,
  selfSignedCert,
  slowdown,
  TestRoot,
  type Result,
  type TraceMark,
} from './helpers.js';

const sh = (argv: string[]): { status: number | null; stdout: string; stderr: string } =>
  spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });

function must(argv: string[]): string {
  const r = sh(argv);
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** A host's jaulad, in the host's namespace, listening on its address. */
export class HostDaemon {
  readonly proc: ChildProcess;
  log = '';
  readonly traces: TraceMark[] = [];
  private readonly closed: Promise<void>;
  constructor(
    readonly h: Host,
    env: NodeJS.ProcessEnv = {},
  ) {
    this.proc = spawn(
      'nsenter',
      [
        `--net=/run/netns/${h.ns}`,
        `--mount=${h.mntns}`,
        process.execPath,
        join(projectDir, 'bin/jaulad.cjs'),
        '--listen',
        `${h.address}:7443`,
        '--token-file',
        h.tokenFile,
        '--tls-cert',
        h.cert.cert,
        '--tls-key',
        h.cert.key,
      ],
      { env: { ...h.t.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc.stdout?.on('data', (b: Buffer) => (this.log += b.toString()));
    this.proc.stderr?.on('data', (b: Buffer) => (this.log += b.toString()));
    collectTraces(this.proc.stderr, this.traces);
    this.closed = new Promise((r) => this.proc.once('close', () => r()));
  }
  get pid(): number {
    return this.proc.pid as number;
  }
  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
  /** Stopped by itself at a JAULA_TRACE_STOP mark. */
  get held(): boolean {
    try {
      return /^\d+ \(.*\) T/.test(fs.readFileSync(`/proc/${this.pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  }
  async ready(): Promise<void> {
    const deadline = Date.now() + 30_000 * slowdown;
    for (;;) {
      if (!this.alive) throw new Error(`jaulad of ${this.h.name} exited: ${this.log}`);
      try {
        const r = await apiRequest(this.h.t.path('run/jaula/jaulad.sock'), 'GET', '/v1/info');
        if (r.status === 200 && this.log.includes('listening on')) return;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error(`jaulad of ${this.h.name} did not get ready: ${this.log}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  }
  async kill9(): Promise<void> {
    if (this.alive) this.proc.kill('SIGKILL');
    await this.closed;
  }
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
    await this.closed;
    clearTimeout(t);
  }
}

/** One host: a jaula instance in its own network namespace. */
export class Host {
  readonly t: TestRoot;
  readonly tokenFile: string;
  readonly cert: { cert: string; key: string };
  daemon: HostDaemon | undefined;
  /** Its network namespace and its address on the segment (set by Hosts). */
  ns = '';
  address = '';
  /** Its mount namespace (bound to a file): the host's mounts, but /sys/class/net of its own netns. */
  mntns = '';
  constructor(readonly name: string) {
    this.t = new TestRoot(`jaula-mig-${name}-`);
    this.tokenFile = this.t.path('api.token');
    fs.writeFileSync(this.tokenFile, randomBytes(24).toString('hex') + '\n', { mode: 0o600 });
    this.cert = selfSignedCert(this.t);
  }
  get url(): string {
    return `https://${this.address}:7443`;
  }
  /** `jaula ARGS` on this host (in its namespace), synchronously. */
  jaula(args: string[], env: NodeJS.ProcessEnv = {}): Result {
    const r = spawnSync(
      'nsenter',
      [`--net=/run/netns/${this.ns}`, `--mount=${this.mntns}`, process.execPath, jaulaBin, ...args],
      {
        env: { ...this.t.env, ...env },
        encoding: 'utf8',
        timeout: 300_000 * slowdown,
        input: '',
      },
    );
    return { code: r.status ?? 128, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }
  ok(args: string[], env: NodeJS.ProcessEnv = {}): Result {
    const r = this.jaula(args, env);
    if (r.code !== 0)
      throw new Error(`[${this.name}] jaula ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  }
  jaulaAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
    return new Promise((res) => {
      const c = spawn(
        'nsenter',
        [`--net=/run/netns/${this.ns}`, `--mount=${this.mntns}`, process.execPath, jaulaBin, ...args],
        {
          env: { ...this.t.env, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      c.on('close', (code) => res({ code: code ?? 128, stdout, stderr }));
    });
  }
  /** The environment its jaulad gets (Hosts.up's): a restarted one gets the same. */
  daemonEnv: NodeJS.ProcessEnv = {};
  async start(env: NodeJS.ProcessEnv = this.daemonEnv): Promise<HostDaemon> {
    this.daemonEnv = env;
    this.daemon = new HostDaemon(this, env);
    await this.daemon.ready();
    return this.daemon;
  }
  /** A guest's status here ("absent" when it is not here). */
  status(guest: string): string {
    const r = this.jaula(['status', guest, '--format', 'json']);
    if (r.code === 4) return 'absent';
    return (JSON.parse(r.stdout) as { status: string }).status;
  }
}

export interface HostsOptions {
  /** Number of hosts (a, b, c...). */
  count?: number;
}

/** The hosts, the client namespace, their segment. */
export class Hosts {
  readonly hosts: Host[] = [];
  readonly tag: string;
  readonly hub: string;
  readonly client: string;
  /** The segment's /24 prefix ("10.X.Y"). */
  readonly prefix: string;
  readonly clientAddress: string;
  private made: string[] = [];
  private mntDir = '';

  constructor(o: HostsOptions = {}) {
    const n = o.count ?? 2;
    for (let i = 0; i < n; i++) this.hosts.push(new Host(String.fromCharCode(97 + i)));
    this.tag = (this.hosts[0] as Host).t.tag.slice(0, 8);
    this.hub = `jm${this.tag}y`;
    this.client = `jm${this.tag}z`;
    this.prefix = `10.${150 + Math.floor(Math.random() * 40)}.${Math.floor(Math.random() * 250)}`;
    this.clientAddress = `${this.prefix}.250`;
  }

  /**
   * The host's mount namespace: a copy of the machine's mounts when it is made, whose
   * /sys/class/net and /sys/devices/virtual/net show the devices of the host's own network
   * namespace (sysfs shows those of its mounter's), as jaula reads them there. /sys is made
   * private in it first, so nothing of this reaches the machine's /sys. What the host's jaula
   * mounts stays in it where the machine's root mount is private (here): cleanup() checks it
   * for mounts under the host's root before it removes it.
   */
  private mountNs(h: Host): void {
    h.mntns = join(this.mntDir, h.name);
    fs.writeFileSync(h.mntns, '');
    const sysfs = join(this.mntDir, `sys-${h.name}`);
    fs.mkdirSync(sysfs);
    must([
      'nsenter',
      `--net=/run/netns/${h.ns}`,
      'unshare',
      `--mount=${h.mntns}`,
      '--propagation',
      'unchanged',
      '--',
      'sh',
      '-ec',
      // A sysfs of the host's netns on /sys itself, with the machine's sysfs submounts (cgroups)
      // bound back onto it: binds over its own directories (class/net) would leave no sysfs
      // "fully visible", and a guest's user namespace (runc's) could then mount none.
      'mount --make-rprivate /sys; mount --rbind /sys "$1"; mount -t sysfs sysfs /sys; ' +
        'id=$(findmnt -rno ID -M "$1"); ' +
        'for t in $(findmnt -rn -o PARENT,TARGET -R "$1" | awk -v p="$id" \'$1 == p { print $2 }\'); do ' +
        'mount --rbind "$t" "/sys${t#"$1"}"; done; umount -l "$1"',
      'sh',
      sysfs,
    ]);
  }

  private netns(ns: string): void {
    sh(['ip', 'netns', 'del', ns]);
    must(['ip', 'netns', 'add', ns]);
    this.made.push(ns);
    must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }

  /** A veth from `ns` (up0) to the hub's bridge (PEER). */
  private uplink(ns: string, peer: string): void {
    must(['ip', '-n', this.hub, 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'up0', 'netns', ns]);
    must(['ip', '-n', this.hub, 'link', 'set', peer, 'master', 'br0', 'up']);
    must(['ip', '-n', ns, 'link', 'set', 'up0', 'up']);
  }

  /**
   * Each host: the network "mnet" on the segment's subnet (its bridge carries the uplink and
   * the host's own address), its jaulad started; every host knows every other as a remote.
   */
  async up(env: NodeJS.ProcessEnv = {}): Promise<void> {
    this.netns(this.hub);
    must(['ip', '-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge']);
    must(['ip', '-n', this.hub, 'link', 'set', 'br0', 'up']);
    this.mntDir = `/run/jaula-mig-${this.tag}`;
    fs.mkdirSync(this.mntDir, { recursive: true });
    must(['mount', '--bind', this.mntDir, this.mntDir]);
    must(['mount', '--make-private', this.mntDir]);
    this.hosts.forEach((h, i) => {
      h.ns = `jm${this.tag}${h.name}`;
      h.address = `${this.prefix}.${201 + i}`;
      this.netns(h.ns);
      this.uplink(h.ns, `p${h.name}`);
      this.mountNs(h);
    });
    this.netns(this.client);
    this.uplink(this.client, 'pz');
    must(['ip', '-n', this.client, 'addr', 'add', `${this.clientAddress}/24`, 'dev', 'up0']);
    for (const [i, h] of this.hosts.entries()) {
      const bridge = `jb${this.tag.slice(0, 6)}`;
      h.ok(['network', 'create', 'mnet', '--subnet', `${this.prefix}.1/24`, '--bridge', bridge]);
      // (jaula makes a network's bridge at its first guest's start; the uplink needs it now)
      must(['ip', '-n', h.ns, 'link', 'add', bridge, 'type', 'bridge']);
      // Its MAC pinned: a bridge whose MAC is unset takes its ports' lowest, and would change it
      // as guests' veths come and go: the other hosts' ARP entries for its address went stale.
      must(['ip', '-n', h.ns, 'link', 'set', bridge, 'address', `02:00:00:00:00:${(0x11 + i).toString(16)}`]);
      // Its own address first: the primary one, that ARP requests come from (each host has the
      // gateway's .1 too, which must not be the source: the other hosts would take it for theirs).
      must(['ip', '-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', bridge]);
      must(['ip', '-n', h.ns, 'addr', 'add', `${this.prefix}.1/24`, 'dev', bridge]);
      must(['ip', '-n', h.ns, 'link', 'set', bridge, 'up']);
      must(['ip', '-n', h.ns, 'link', 'set', 'up0', 'master', bridge]);
      await h.start(env);
    }
    for (const h of this.hosts)
      for (const o of this.hosts)
        if (o !== h) h.ok(['remote', 'add', o.name, o.url, '--token', o.tokenFile, '--accept-certificate']);
  }

  host(name: string): Host {
    const h = this.hosts.find((x) => x.name === name);
    assert.ok(h, `no host ${name}`);
    return h;
  }

  /** Run `argv` in the client namespace. */
  fromClient(argv: string[], timeoutMs = 10_000): { status: number | null; stdout: string; stderr: string } {
    return spawnSync('nsenter', [`--net=/run/netns/${this.client}`, ...argv], {
      encoding: 'utf8',
      timeout: timeoutMs,
    });
  }

  /** What the guest's web service at `address` answers the client ("" when nothing answers). */
  fetch(address: string, path = '/'): string {
    const r = this.fromClient(['curl', '-s', '-m', '3', `http://${address}:8080${path}`]);
    return r.status === 0 ? r.stdout : '';
  }

  /** Remove everything: guests and networks (by jaula, in each host's namespace), jaulads, namespaces; what was left. */
  async cleanup(): Promise<string[]> {
    const left: string[] = [];
    for (const h of this.hosts) {
      if (h.daemon?.alive && !h.daemon.held) await h.daemon.stop();
      else await h.daemon?.kill9();
      const list = h.jaula(['list', '--format', 'json']);
      if (list.code === 0)
        for (const g of JSON.parse(list.stdout) as { name: string }[]) h.jaula(['delete', '--force', g.name]);
      h.jaula(['network', 'delete', 'mnet']);
      const devs = sh(['ip', '-n', h.ns, '-o', 'link']).stdout;
      for (const d of devs
        .split('\n')
        .map((l) => l.split(': ')[1]?.split('@')[0])
        .filter((x): x is string => !!x))
        if (!['lo', 'up0'].includes(d)) left.push(`[${h.name}] device ${d}`);
      const mounts = spawnSync('nsenter', [`--mount=${h.mntns}`, 'cat', '/proc/self/mountinfo'], {
        encoding: 'utf8',
      })
        .stdout.split('\n')
        .map((l) => l.split(' ')[4] ?? '')
        .filter((m) => m.startsWith(h.t.root + '/') && !m.endsWith('/var/lib/jaula'));
      left.push(...mounts.map((m) => `[${h.name}] mount ${m}`));
      const nft = spawnSync('nsenter', [`--net=/run/netns/${h.ns}`, 'nft', 'list', 'tables'], {
        encoding: 'utf8',
      }).stdout.trim();
      if (nft) left.push(`[${h.name}] nftables ${nft.replace(/\n/g, ', ')}`);
      left.push(...h.t.cleanup().map((x) => `[${h.name}] ${x}`));
    }
    for (const ns of this.made.reverse()) sh(['ip', 'netns', 'del', ns]);
    for (const h of this.hosts) if (h.mntns) sh(['umount', h.mntns]);
    if (this.mntDir) {
      sh(['umount', '-l', this.mntDir]);
      fs.rmSync(this.mntDir, { recursive: true, force: true });
    }
    return left;
  }
}

/** Write a file into a stopped guest's own tree (plain IDs: 0 is the guest's root). */
export function writeGuestFile(h: Host, guest: string, rel: string, text: string, mode = 0o644): void {
  const p = join(h.t.guestRoot(guest), rel);
  fs.mkdirSync(join(p, '..'), { recursive: true });
  fs.writeFileSync(p, text, { mode });
  fs.chmodSync(p, mode);
}

/**
 * Every entry of a tree: path, type, mode, owner, size, content digest and xattrs, one line
 * each, sorted: two trees with the same manifest hold the same files.
 */
export function manifest(dir: string): string[] {
  const out: string[] = [];
  const r = spawnSync('find', [dir, '-mindepth', '1', '-printf', '%P\\0%y %m %U:%G %s %l\\0'], {
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  const f = r.stdout.split('\0');
  for (let i = 0; i + 1 < f.length; i += 2) {
    const p = f[i] as string;
    let meta = f[i + 1] as string;
    if (meta.startsWith('d ')) meta = meta.replace(/ \d+ $/, ' - '); // (a directory's size is the filesystem's business)
    if (meta.startsWith('f '))
      meta += ` ${spawnSync('sha256sum', [join(dir, p)], { encoding: 'utf8' }).stdout.split(' ')[0]}`;
    const x = spawnSync('getfattr', ['-h', '-d', '-m', '-', '--absolute-names', join(dir, p)], {
      encoding: 'utf8',
    }).stdout;
    const attrs = x
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .sort()
      .join(',');
    out.push(`${p} ${meta}${attrs ? ` ${attrs}` : ''}`);
  }
  return out.sort();
}

/** Wait until `fn` holds (polling every 50 ms), or fail after `ms` (scaled by the test slowdown). */
export async function waitFor(what: string, fn: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms * slowdown;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
