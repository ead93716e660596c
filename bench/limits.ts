/**
 * bench/limits: how precisely the limits hold, the figures the tests no longer assert (they keep
 * only the bound that matters: tests/limits.test.ts, tests/network.test.ts). Side by side in one
 * run: jaula guests, and the same limits set by hand on the same kernel (cgroups beneath this
 * benchmark's own cgroup; tc tbf on a raw veth pair between two namespaces):
 *
 * - CPU weights 100 and 300 on one CPU: the share of the lighter (25% aimed);
 * - a CPU cap of 20%: the CPU used;
 * - egress 20 Mbit/s and ingress 40 Mbit/s: the rates iperf3 measures.
 *
 * Each figure is the median of ROUNDS measurements of SECONDS (BENCH_LIMITS_SECONDS, default 5).
 * All traffic stays in namespaces this benchmark makes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { cgroupMode, ownCgroups } from '../src/cgroups/detect.js';
import { Scratch, median, must, sh, table } from './lib.js';

const SECONDS = Number(process.env['BENCH_LIMITS_SECONDS'] ?? 5);
const ROUNDS = 3;
const s = new Scratch();
const v2 = cgroupMode() === 'v2';
const cpu = String(
  Number(fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim().split(/[-,]/).pop()),
);
const sleep = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** CPU time (ns) used by the processes of a cgroup directory set. */
type Usage = () => number;

/** Measure the CPU time used over SECONDS by each of `usage`, as a fraction of the wall time. */
function used(usage: Usage[]): number[] {
  const u0 = usage.map((u) => u());
  const t0 = process.hrtime.bigint();
  sleep(SECONDS * 1000);
  const wall = Number(process.hrtime.bigint() - t0);
  return usage.map((u, i) => (u() - (u0[i] as number)) / wall);
}

/** A jaula guest's CPU usage (ns), from its cgroup. */
function guestUsage(name: string): Usage {
  const pid = Number(
    JSON.parse(fs.readFileSync(join(s.root, 'run/jaula/guests', name, 'state.json'), 'utf8')).pid,
  );
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  if (v2) {
    const dir = `/sys/fs/cgroup${lines.find((l) => l.startsWith('0::'))?.slice(3)}`;
    return () => Number(/usage_usec (\d+)/.exec(fs.readFileSync(`${dir}/cpu.stat`, 'utf8'))?.[1]) * 1000;
  }
  const line = lines.find((l) => l.split(':')[1]?.split(',').includes('cpuacct')) ?? '';
  const f = `/sys/fs/cgroup/cpuacct${line.split(':')[2]}/cpuacct.usage`;
  return () => Number(fs.readFileSync(f, 'utf8'));
}

/** A hand-made cgroup beneath this process's own, with a busy loop in it: the peer of a guest. */
class HandCgroup {
  readonly dirs: Record<string, string> = {};
  proc: ChildProcess | undefined;
  constructor(name: string) {
    const own = ownCgroups();
    const ctrls = v2 ? [''] : ['cpu', 'cpuacct', 'cpuset'];
    for (const c of ctrls) {
      const base = v2 ? '/sys/fs/cgroup' : `/sys/fs/cgroup/${c}`;
      const dir = join(base, own.get(c) ?? own.get('') ?? '/', `jaula-bench-limits-${process.pid}-${name}`);
      fs.mkdirSync(dir, { recursive: true });
      this.dirs[c] = dir;
    }
    if (!v2) {
      const cs = this.dirs['cpuset'] as string;
      fs.writeFileSync(join(cs, 'cpuset.mems'), fs.readFileSync(join(cs, '../cpuset.mems'), 'utf8'));
      fs.writeFileSync(join(cs, 'cpuset.cpus'), fs.readFileSync(join(cs, '../cpuset.cpus'), 'utf8'));
    }
  }
  set(ctrl: string, file: string, value: string): void {
    fs.writeFileSync(join(this.dirs[v2 ? '' : ctrl] as string, file), value);
  }
  /** Start the busy loop inside (sh puts itself in the cgroups, then loops). */
  run(): void {
    const join_ = Object.values(this.dirs)
      .map((d) => `echo $$ > ${d}/cgroup.procs`)
      .join('; ');
    this.proc = spawn('sh', ['-c', `${join_}; exec sh -c 'while :; do :; done'`], { stdio: 'ignore' });
    sleep(200);
  }
  usage(): Usage {
    if (v2)
      return () =>
        Number(
          /usage_usec (\d+)/.exec(fs.readFileSync(join(this.dirs[''] as string, 'cpu.stat'), 'utf8'))?.[1],
        ) * 1000;
    return () => Number(fs.readFileSync(join(this.dirs['cpuacct'] as string, 'cpuacct.usage'), 'utf8'));
  }
  /** End the busy loop. */
  stop(): void {
    if (!this.proc) return;
    const pid = this.proc.pid as number;
    this.proc.kill('SIGKILL');
    for (
      let i = 0;
      i < 250 &&
      fs.existsSync(`/proc/${pid}/stat`) &&
      !/\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      i++
    )
      sleep(20);
    this.proc = undefined;
  }
  remove(): void {
    this.stop();
    for (const d of Object.values(this.dirs))
      for (let i = 0; i < 100; i++) {
        try {
          fs.rmdirSync(d);
          break;
        } catch {
          sleep(20);
        }
      }
  }
}

function busyGuest(name: string, limits: string[]): void {
  s.jaula(['build', name, '-m', 'skeleton', '-q', '--initstyle', 'cmd', '--cmd', '/bin/sh /busy']);
  const tree = fs.existsSync(join(s.root, 'var/lib/jaula/guests', name, 'upper'))
    ? join(s.root, 'var/lib/jaula/guests', name, 'upper')
    : join(s.root, 'var/lib/jaula/guests', name, 'rootfs');
  fs.writeFileSync(join(tree, 'busy'), 'while :; do :; done\n', { mode: 0o755 });
  s.jaula(['set', name, ...limits, '--save']);
  s.jaula(['start', name]);
}

function iperf(server: string[], client: string[], ip: string, reverse = false): number {
  const srv = spawn(server[0] as string, [...server.slice(1), 'iperf3', '-s', '-1', '-p', '5298'], {
    stdio: 'ignore',
  });
  try {
    for (let i = 0; i < 400; i++) {
      const t = sh([...server, 'cat', '/proc/net/tcp', '/proc/net/tcp6']).out;
      if (/:14B2 [0:]+ 0A/.test(t)) break;
      sleep(25);
    }
    const r = spawnSync(
      client[0] as string,
      [
        ...client.slice(1),
        'iperf3',
        '-c',
        ip,
        '-p',
        '5298',
        '-t',
        String(SECONDS),
        '-J',
        ...(reverse ? ['-R'] : []),
      ],
      { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 },
    );
    if (r.status !== 0) throw new Error(`iperf3 failed: ${r.stderr}${r.stdout.slice(0, 300)}`);
    return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received
      .bits_per_second;
  } finally {
    srv.kill();
  }
}

const hand: HandCgroup[] = [];
const nsA = `jbl-a-${process.pid}`;
const nsB = `jbl-b-${process.pid}`;
try {
  const rows: (string | number)[][] = [];

  // CPU weights 100 and 300 on one CPU.
  busyGuest('w1', ['cpu.weight=100', `cpuset=${cpu}`]);
  busyGuest('w3', ['cpu.weight=300', `cpuset=${cpu}`]);
  const [h1, h3] = [new HandCgroup('w1'), new HandCgroup('w3')];
  hand.push(h1, h3);
  for (const [h, w] of [
    [h1, 100],
    [h3, 300],
  ] as const) {
    if (v2) h.set('', 'cpu.weight', String(w));
    else h.set('cpu', 'cpu.shares', String((w * 1024) / 100));
    if (v2) h.set('', 'cpuset.cpus', cpu);
    else h.set('cpuset', 'cpuset.cpus', cpu);
  }
  const share = (us: number[]): number => (us[0] as number) / ((us[0] as number) + (us[1] as number));
  const jw: number[] = [];
  const hw: number[] = [];
  // The two sides take turns on the one CPU: the guests, then the hand-made cgroups.
  for (let r = 0; r < ROUNDS; r++) {
    if (r > 0) s.jaula(['start', 'w1', 'w3']);
    jw.push(share(used([guestUsage('w1'), guestUsage('w3')])));
    s.jaula(['stop', 'w1', 'w3', '--kill']);
    h1.run();
    h3.run();
    hw.push(share(used([h1.usage(), h3.usage()])));
    h1.stop();
    h3.stop();
  }
  rows.push([
    'CPU weight 100 against 300, one CPU: share of 100',
    `${(median(jw) * 100).toFixed(1)}%`,
    `${(median(hw) * 100).toFixed(1)}%`,
    '25%',
  ]);
  for (const h of hand) h.remove();
  hand.length = 0;

  // A CPU cap of 20%.
  s.jaula(['set', 'w3', 'cpu.max=20%', 'cpuset=', '--save']);
  s.jaula(['start', 'w3']);
  const hc = new HandCgroup('cap');
  hand.push(hc);
  if (v2) hc.set('', 'cpu.max', '20000 100000');
  else {
    hc.set('cpu', 'cpu.cfs_period_us', '100000');
    hc.set('cpu', 'cpu.cfs_quota_us', '20000');
  }
  hc.run();
  const jc: number[] = [];
  const hcu: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const [a, b] = used([guestUsage('w3'), hc.usage()]);
    jc.push(a as number);
    hcu.push(b as number);
  }
  rows.push([
    'cpu.max 20%: CPU used',
    `${(median(jc) * 100).toFixed(1)}%`,
    `${(median(hcu) * 100).toFixed(1)}%`,
    '20%',
  ]);
  s.jaula(['stop', 'w3', '--kill']);
  for (const h of hand) h.remove();
  hand.length = 0;

  // Egress 20 Mbit/s and ingress 40 Mbit/s: two jaula guests on a network, and a raw veth pair
  // between two namespaces shaped with the same tbf by hand.
  // A /24 no one uses (the host's routes and other instances' networks are refused by jaula).
  let made = false;
  for (let i = 0; i < 20 && !made; i++) {
    const net = `10.254.${100 + Math.floor(Math.random() * 150)}.1/24`;
    made =
      sh(s.jaulaArgv(['network', 'create', 'bl', '--subnet', net, '--bridge', `jbl${process.pid % 10000}`]), {
        env: s.env,
      }).code === 0;
  }
  if (!made) throw new Error('no free /24 for the benchmark network in 10.254.100-249.0/24');
  s.jaula(['build', 'bw', '-m', 'skeleton', '-q', '--interface', 'eth0=bl:auto,egress=20M,ingress=40M']);
  s.jaula(['build', 'peer', '-m', 'skeleton', '-q', '--interface', 'eth0=bl:auto']);
  s.jaula(['start', 'bw', 'peer']);
  const ipOf = (g: string): string =>
    /address = "([0-9.]+)\//.exec(
      fs.readFileSync(join(s.root, `etc/jaula/guests/${g}/config.toml`), 'utf8'),
    )?.[1] ?? '';
  const inGuest = (g: string): string[] => ['nsenter', `--net=${join(s.root, 'run/jaula/netns', g)}`];
  must(['ip', 'netns', 'add', nsA]);
  must(['ip', 'netns', 'add', nsB]);
  must(['ip', 'link', 'add', 'jblva', 'netns', nsA, 'type', 'veth', 'peer', 'name', 'jblvb', 'netns', nsB]);
  for (const [ns, dev, ip] of [
    [nsA, 'jblva', '10.254.95.1/24'],
    [nsB, 'jblvb', '10.254.95.2/24'],
  ] as const) {
    must(['ip', '-n', ns, 'addr', 'add', ip, 'dev', dev]);
    must(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  // A's egress: tbf on its own end; A's ingress: tbf on B's end (what B sends to A).
  const tbf = (rate: number): string[] => [
    'root',
    'tbf',
    'rate',
    `${rate}bit`,
    'burst',
    `${Math.max(32 * 1024, Math.round(rate / 8 / 100))}`,
    'latency',
    '50ms',
  ];
  must(['ip', 'netns', 'exec', nsA, 'tc', 'qdisc', 'replace', 'dev', 'jblva', ...tbf(20e6)]);
  must(['ip', 'netns', 'exec', nsB, 'tc', 'qdisc', 'replace', 'dev', 'jblvb', ...tbf(40e6)]);
  const inNs = (ns: string): string[] => ['ip', 'netns', 'exec', ns];
  const je: number[] = [];
  const ji: number[] = [];
  const he: number[] = [];
  const hi: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    je.push(iperf(inGuest('peer'), inGuest('bw'), ipOf('peer')));
    ji.push(iperf(inGuest('peer'), inGuest('bw'), ipOf('peer'), true));
    he.push(iperf(inNs(nsB), inNs(nsA), '10.254.95.2'));
    hi.push(iperf(inNs(nsB), inNs(nsA), '10.254.95.2', true));
  }
  rows.push(['egress 20 Mbit/s: Mbit/s', median(je) / 1e6, median(he) / 1e6, '20']);
  rows.push(['ingress 40 Mbit/s: Mbit/s', median(ji) / 1e6, median(hi) / 1e6, '40']);

  console.log(
    `\nbench/limits: each figure the median of ${ROUNDS} measurements of ${SECONDS} s (${v2 ? 'cgroup v2' : 'cgroup v1'})\n`,
  );
  console.log(table(['limit', 'jaula guest', 'set by hand (cgroup, tc tbf)', 'aimed'], rows));
} finally {
  for (const h of hand) h.remove();
  sh(['ip', 'netns', 'del', nsA]);
  sh(['ip', 'netns', 'del', nsB]);
  for (const g of ['bw', 'peer']) sh(s.jaulaArgv(['delete', '--force', g]), { env: s.env });
  sh(s.jaulaArgv(['network', 'delete', 'bl']), { env: s.env });
  s.cleanup();
}
