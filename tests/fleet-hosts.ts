/**
 * Three hosts of a fleet on one machine: three jaula instances (a TestRoot each), each with its
 * jaulad in its own network namespace, the namespaces joined by a bridge, and a three-member
 * etcd cluster whose members listen on the namespaces' own addresses (member i in host i's
 * namespace). Everything is named from the first host's instance tag and removed by
 * `teardown()`: jaulads, etcd members, namespaces, veths, the bridge, the etcd data.
 *
 * jaulad enters its namespace with nsenter --net (not `ip netns exec`, which would remount /sys
 * and hide the cgroup hierarchies from it). The test's own CLI runs stay in the host's
 * namespace: they reach jaulad on its unix socket, and etcd through the bridge's address.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { apiRequest, instanceProcesses, projectDir, selfSignedCert, slowdown, TestRoot } from './helpers.js';

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

/** A /24 of 10.150-189.x.0 that no route of this machine touches. */
function freeSubnet(): string {
  const routes = spawnSync('ip', ['-4', 'route'], { encoding: 'utf8' }).stdout;
  for (let i = 0; i < 50; i++) {
    const base = `10.${150 + Math.floor(Math.random() * 40)}.${Math.floor(Math.random() * 250)}`;
    if (!routes.includes(`${base}.`)) return base;
  }
  throw new Error('no free /24 for the fleet bridge');
}

export class FleetHost {
  jaulad: ChildProcess | undefined;
  log = '';
  /** Its jaulad also listens on TCP (ADDRESS:7443, TLS and a token) for the other hosts: moves. */
  listen = false;
  /** More options of its jaulad (with listen: --allow-moves). */
  extraArgs: string[] = [];
  constructor(
    readonly t: TestRoot,
    readonly name: string,
    readonly netns: string,
    readonly address: string,
  ) {}

  get socket(): string {
    return this.t.path('run/jaula/jaulad.sock');
  }

  get alive(): boolean {
    return !!this.jaulad && this.jaulad.exitCode === null && this.jaulad.signalCode === null;
  }

  get tokenFile(): string {
    return this.t.path('api.token');
  }

  /** --listen and what it needs: a token file and a self-signed certificate (made once). */
  private listenArgs(): string[] {
    if (!this.listen) return [];
    if (!fs.existsSync(this.tokenFile))
      fs.writeFileSync(this.tokenFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
    const { cert, key } = selfSignedCert(this.t);
    return [
      '--listen',
      `${this.address}:7443`,
      '--token-file',
      this.tokenFile,
      '--tls-cert',
      cert,
      '--tls-key',
      key,
    ];
  }

  /** Start this host's jaulad in its namespace and wait until it answers. */
  async startJaulad(): Promise<void> {
    this.log = '';
    const p = spawn(
      'nsenter',
      [
        `--net=/run/netns/${this.netns}`,
        process.execPath,
        join(projectDir, 'bin/jaulad.cjs'),
        ...this.listenArgs(),
        ...this.extraArgs,
      ],
      {
        env: this.t.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    p.stdout.on('data', (b: Buffer) => (this.log += b.toString()));
    p.stderr.on('data', (b: Buffer) => (this.log += b.toString()));
    this.jaulad = p;
    const deadline = Date.now() + 30_000 * slowdown;
    for (;;) {
      if (!this.alive) throw new Error(`jaulad of ${this.name} exited: ${this.log}`);
      const r = await apiRequest(this.socket, 'GET', '/v1/info').catch(() => undefined);
      if (r?.status === 200) return;
      if (Date.now() > deadline) throw new Error(`jaulad of ${this.name} did not get ready: ${this.log}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  async killJaulad(): Promise<void> {
    const p = this.jaulad;
    if (!p || !this.alive) return;
    const closed = new Promise((r) => p.once('close', r));
    p.kill('SIGKILL');
    await closed;
  }

  /**
   * The host dies: kill -9 of its jaulad, then of every process of its guests (their cgroups)
   * and of its instance (supervisors), until none is left. Its files stay, as after a power cut.
   */
  async killHost(): Promise<void> {
    await this.killJaulad();
    const procs = (dir: string): number[] => {
      const out: number[] = [];
      try {
        out.push(
          ...fs.readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number),
        );
        for (const e of fs.readdirSync(dir, { withFileTypes: true }))
          if (e.isDirectory()) out.push(...procs(join(dir, e.name)));
      } catch {
        /* gone */
      }
      return out;
    };
    for (let i = 0; i < 100; i++) {
      const pids = new Set([
        ...this.t.cgroups().flatMap(procs),
        ...instanceProcesses(this.t.root).map((l) => Number(l.split(' ')[0])),
      ]);
      if (!pids.size) return;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      // A guest frozen when its jaulad died (a replica round's last pass) dies only once thawed.
      const thaw = (dir: string): void => {
        for (const [f, v] of [
          ['freezer.state', 'THAWED'],
          ['cgroup.freeze', '0'],
        ] as const)
          try {
            fs.writeFileSync(join(dir, f), v);
          } catch {
            /* not that hierarchy */
          }
      };
      for (const d of this.t.cgroups()) thaw(d);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`host ${this.name}: processes survive kill -9`);
  }
}

export class EtcdMember {
  proc: ChildProcess | undefined;
  constructor(
    readonly name: string,
    readonly netns: string,
    readonly address: string,
    readonly dataDir: string,
    readonly cluster: string,
  ) {}

  get clientUrl(): string {
    return `http://${this.address}:2379`;
  }

  start(): void {
    this.proc = spawn(
      'nsenter',
      [
        `--net=/run/netns/${this.netns}`,
        'etcd',
        `--name=${this.name}`,
        `--data-dir=${this.dataDir}`,
        `--listen-client-urls=${this.clientUrl}`,
        `--advertise-client-urls=${this.clientUrl}`,
        `--listen-peer-urls=http://${this.address}:2380`,
        `--initial-advertise-peer-urls=http://${this.address}:2380`,
        `--initial-cluster=${this.cluster}`,
        '--initial-cluster-state=new',
        '--heartbeat-interval=100',
        '--election-timeout=1000',
        '--log-level=error',
      ],
      { stdio: 'ignore' },
    );
  }

  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const closed = new Promise((r) => p.once('close', r));
    p.kill('SIGKILL');
    await closed;
  }
}

export class FleetHosts {
  readonly hosts: FleetHost[] = [];
  readonly members: EtcdMember[] = [];
  readonly tag: string;
  readonly bridge: string;
  readonly base = freeSubnet();
  private readonly etcdDir = fs.mkdtempSync(join(tmpdir(), 'jaula-fleet-etcd-'));

  constructor(n = 3) {
    const roots = Array.from({ length: n }, () => new TestRoot('jaula-fleet-'));
    this.tag = (roots[0] as TestRoot).tag;
    this.bridge = `jfb${this.tag.slice(0, 8)}`;
    const cluster = roots.map((_, i) => `e${i + 1}=http://${this.base}.${i + 1}:2380`).join(',');
    roots.forEach((t, i) => {
      const ns = `jf${this.tag}-${i + 1}`;
      const addr = `${this.base}.${i + 1}`;
      this.hosts.push(new FleetHost(t, `h${i + 1}`, ns, addr));
      this.members.push(new EtcdMember(`e${i + 1}`, ns, addr, join(this.etcdDir, `e${i + 1}`), cluster));
    });
  }

  get endpoints(): string {
    return this.members.map((m) => m.clientUrl).join(',');
  }

  /** The bridge, the namespaces and their veths (the host side on the bridge, .254). */
  private makeNetwork(): void {
    ip(['link', 'add', this.bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${this.base}.254/24`, 'dev', this.bridge]);
    ip(['link', 'set', this.bridge, 'up']);
    this.hosts.forEach((h, i) => {
      const veth = `jfv${this.tag.slice(0, 6)}${i + 1}`;
      ip(['netns', 'add', h.netns]);
      ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'fleet0', 'netns', h.netns]);
      ip(['link', 'set', veth, 'master', this.bridge, 'up']);
      ip(['-n', h.netns, 'addr', 'add', `${h.address}/24`, 'dev', 'fleet0']);
      ip(['-n', h.netns, 'link', 'set', 'fleet0', 'up']);
      ip(['-n', h.netns, 'link', 'set', 'lo', 'up']);
    });
  }

  /** Wait until etcd answers a linearizable write through any member. */
  async etcdReady(ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms * slowdown;
    for (;;) {
      for (const m of this.members) {
        try {
          const r = await fetch(`${m.clientUrl}/v3/kv/put`, {
            method: 'POST',
            body: JSON.stringify({ key: 'L2phdWxhLXRlc3QvcmVhZHk=', value: 'MQ==' }),
            signal: AbortSignal.timeout(1000),
          });
          if (r.ok && !('error' in ((await r.json()) as object))) return;
        } catch {
          /* not yet */
        }
      }
      if (Date.now() > deadline) throw new Error('the fleet test etcd cluster did not get ready');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Network, etcd, jaulads; then host 1 makes the fleet and the others join it. `listen`: the
   * jaulads listen on TCP too, and every host knows every other as a remote of its fleet name.
   */
  async setup(o: { ttl?: number; networks?: string[]; listen?: boolean } = {}): Promise<void> {
    this.makeNetwork();
    for (const m of this.members) m.start();
    await this.etcdReady();
    for (const h of this.hosts) {
      h.listen = o.listen === true;
      await h.startJaulad();
    }
    for (const [i, h] of this.hosts.entries())
      h.t.ok([
        'fleet',
        i === 0 ? 'init' : 'join',
        '--endpoints',
        this.endpoints,
        '--host',
        h.name,
        '--ttl',
        String(o.ttl ?? 3),
        '--label',
        `zone=z${i + 1}`,
        ...(o.networks ?? []).flatMap((n) => ['--network', n]),
      ]);
    if (o.listen)
      for (const h of this.hosts)
        for (const other of this.hosts)
          if (other !== h)
            h.t.ok([
              ...['remote', 'add', other.name, `https://${other.address}:7443`],
              ...['--token', other.tokenFile, '--accept-certificate'],
            ]);
  }

  /**
   * Remove everything: jaulads killed, each instance cleaned up (outside the fleet: its
   * fleet.json goes first, so deleting its guests asks no etcd), etcd killed, namespaces, veths
   * and the bridge deleted. Returns what was left behind.
   */
  async teardown(): Promise<string[]> {
    const left: string[] = [];
    for (const h of this.hosts) await h.killJaulad();
    for (const h of this.hosts) {
      fs.rmSync(h.t.path('etc/jaula/fleet.json'), { force: true });
      left.push(...h.t.cleanup().map((x) => `${h.name}: ${x}`));
    }
    for (const m of this.members) await m.kill();
    // Each veth goes with its host side, at once: a namespace's own devices go only when the
    // kernel's cleanup of the namespace has run, later (a clean-clone run saw two still there).
    this.hosts.forEach((h, i) => {
      spawnSync('ip', ['link', 'del', `jfv${this.tag.slice(0, 6)}${i + 1}`]);
      spawnSync('ip', ['netns', 'del', h.netns]);
    });
    spawnSync('ip', ['link', 'del', this.bridge]);
    fs.rmSync(this.etcdDir, { recursive: true, force: true });
    const links = fs
      .readdirSync('/sys/class/net')
      .filter((d) => d === this.bridge || d.startsWith(`jfv${this.tag.slice(0, 6)}`));
    const ns = fs.existsSync('/run/netns')
      ? fs.readdirSync('/run/netns').filter((n) => n.startsWith(`jf${this.tag}`))
      : [];
    return [...left, ...links.map((l) => `link ${l}`), ...ns.map((n) => `netns ${n}`)];
  }

  /** The guests host h runs, by its own view (jaula list --running there); undefined: no answer. */
  runningOn(h: FleetHost): string[] | undefined {
    const r = h.t.jaula(['list', '--running', '--format', 'json']);
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.stdout) as { name: string; status: string }[])
      .filter((g) => g.status === 'running')
      .map((g) => g.name);
  }

  /** The guests each host runs, by its own view, asked of one host after another. */
  running(): Map<string, FleetHost[]> {
    const out = new Map<string, FleetHost[]>();
    for (const h of this.hosts)
      for (const g of this.runningOn(h) ?? []) out.set(g, [...(out.get(g) ?? []), h]);
    return out;
  }
}

/**
 * The split-brain checker: samples every host's running guests every `everyMs` until stopped,
 * and records each moment a guest ran on two hosts at once. `stop()` returns those findings.
 */
export class SplitBrainChecker {
  readonly findings: string[] = [];
  samples = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(
    readonly fleet: FleetHosts,
    everyMs = 500,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  /**
   * One sample. The hosts are asked one after another (a list takes 50-150 ms), so a guest
   * moved from an earlier host to a later one between their answers shows on both without
   * having run twice: each host that answered before the last is asked again, and the guest
   * is a finding only if one of them still runs it after the last host said it ran there.
   */
  sample(): void {
    this.samples++;
    for (const [g, hosts] of this.fleet.running()) {
      if (hosts.length < 2) continue;
      const still = hosts.slice(0, -1).filter((h) => this.fleet.runningOn(h)?.includes(g));
      const last = hosts[hosts.length - 1] as FleetHost;
      if (still.length)
        this.findings.push(
          `${new Date().toISOString()}: ${g} runs on ${[...still, last].map((h) => h.name).join(' and ')}`,
        );
    }
  }

  stop(): string[] {
    clearInterval(this.timer);
    this.sample();
    return this.findings;
  }
}

/** Wait (at most `ms`, scaled by the run's slowdown) until `fn` holds. */
export async function until(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms * slowdown;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Inside a describe: the fleet set up before its tests, with a split-brain checker sampling
 * every host; after them, torn down, asserting that no guest ever ran on two hosts at once and
 * that nothing is left behind.
 */
export function fleetHooks(fleet: FleetHosts, o: Parameters<FleetHosts['setup']>[0]): void {
  let checker: SplitBrainChecker | undefined;
  before(async () => {
    await fleet.setup(o);
    checker = new SplitBrainChecker(fleet);
  });
  after(async () => {
    const split = checker?.stop() ?? [];
    const left = await fleet.teardown();
    assert.deepEqual(split, [], 'no guest ever ran on two hosts at once');
    assert.deepEqual(left, [], 'nothing is left behind');
  });
}

/** Assert that the fleet left nothing on the machine. */
export async function assertTornDown(fleet: FleetHosts): Promise<void> {
  assert.deepEqual(await fleet.teardown(), [], 'nothing is left behind');
}

/** A free TCP port on loopback (the kernel's pick, released for the caller to bind). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** A one-member etcd on loopback, its data under the root; `stop()` before the root's cleanup. */
export async function loopbackEtcd(t: TestRoot): Promise<{ url: string; stop: () => Promise<void> }> {
  const [client, peer] = [await freePort(), await freePort()];
  const m = new EtcdMember('e1', '', '127.0.0.1', t.path('etcd'), `e1=http://127.0.0.1:${peer}`);
  const url = `http://127.0.0.1:${client}`;
  m.proc = spawn(
    'etcd',
    [
      '--name=e1',
      `--data-dir=${t.path('etcd')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=e1=http://127.0.0.1:${peer}`,
      '--log-level=error',
    ],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 30_000 * slowdown;
  for (;;) {
    const r = await fetch(`${url}/v3/kv/range`, { method: 'POST', body: '{"key":"AA=="}' }).catch(
      () => undefined,
    );
    if (r?.ok) break;
    if (Date.now() > deadline) throw new Error('the test etcd did not get ready');
    await new Promise((res) => setTimeout(res, 100));
  }
  return { url, stop: () => m.kill() };
}
