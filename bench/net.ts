/**
 * bench/net: guest-to-guest TCP throughput and request/response latency through a jaula network
 * (veth, bridge, anti-spoofing firewall), beside a raw veth pair between two namespaces and host
 * loopback, and a bare bridge with no firewall, in one run (three rounds, interleaved); and what network setup adds to a guest start, beside the CNI plugins
 * (bridge + host-local + firewall + portmap + bandwidth) doing the same job.
 * All traffic stays in namespaces this benchmark makes.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { makePaths } from '../src/os/paths.js';
import { N, Scratch, have, median, must, sh, sleeperSkeleton, table, timeMs } from './lib.js';

const SECONDS = Number(process.env['BENCH_NET_SECONDS'] ?? 5);
const s = new Scratch();
const nsA = 'jbench-a';
const nsB = 'jbench-b';

function iperf(serverNs: string[], clientNs: string[], ip: string): number {
  const srv = spawn(serverNs[0] as string, [...serverNs.slice(1), 'iperf3', '-s', '-1', '-p', '5299'], {
    stdio: 'ignore',
  });
  try {
    spawnSync('sleep', ['0.3']);
    const r = spawnSync(
      clientNs[0] as string,
      [...clientNs.slice(1), 'iperf3', '-c', ip, '-p', '5299', '-t', String(SECONDS), '-J'],
      { encoding: 'utf8', timeout: (SECONDS + 20) * 1000 },
    );
    if (r.status !== 0) throw new Error(`iperf3 failed: ${r.stderr}${r.stdout.slice(0, 300)}`);
    return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received
      .bits_per_second;
  } finally {
    srv.kill();
  }
}

function rtt(clientNs: string[], ip: string): number {
  const r = spawnSync(
    clientNs[0] as string,
    [...clientNs.slice(1), 'ping', '-q', '-c', '200', '-i', '0.005', ip],
    { encoding: 'utf8', timeout: 30_000 },
  );
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  if (!m) throw new Error(`ping failed: ${r.stdout}${r.stderr}`);
  return Number(m[1]) * 1000; // microseconds
}

const inNs = (ns: string): string[] => ['ip', 'netns', 'exec', ns];
const inGuest = (g: string): string[] => ['nsenter', `--net=${join(s.root, 'run/jaula/netns', g)}`];

try {
  // Raw veth pair between two namespaces.
  must(['ip', 'netns', 'add', nsA]);
  must(['ip', 'netns', 'add', nsB]);
  must(['ip', 'link', 'add', 'jbva', 'netns', nsA, 'type', 'veth', 'peer', 'name', 'jbvb', 'netns', nsB]);
  must(['ip', '-n', nsA, 'addr', 'add', '10.254.99.1/24', 'dev', 'jbva']);
  must(['ip', '-n', nsB, 'addr', 'add', '10.254.99.2/24', 'dev', 'jbvb']);
  for (const [ns, d] of [
    [nsA, 'jbva'],
    [nsB, 'jbvb'],
  ] as const) {
    must(['ip', '-n', ns, 'link', 'set', d, 'up']);
    must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  // The same two namespaces joined through a bare Linux bridge (no firewall, no br_netfilter):
  // what bridged mode costs by itself, before anything jaula adds.
  must(['ip', 'link', 'add', 'jbbr0', 'type', 'bridge', 'nf_call_iptables', '0', 'nf_call_ip6tables', '0']);
  must(['ip', 'link', 'set', 'jbbr0', 'up']);
  for (const [ns, h, ip] of [
    [nsA, 'jbba', '10.254.97.1/24'],
    [nsB, 'jbbb', '10.254.97.2/24'],
  ] as const) {
    must(['ip', 'link', 'add', h, 'type', 'veth', 'peer', 'name', `${h}g`, 'netns', ns]);
    must(['ip', 'link', 'set', h, 'master', 'jbbr0', 'up']);
    must(['ip', '-n', ns, 'addr', 'add', ip, 'dev', `${h}g`]);
    must(['ip', '-n', ns, 'link', 'set', `${h}g`, 'up']);
  }

  // Two jaula guests on a jaula network.
  s.jaula(['network', 'create', 'bn', '--subnet', '10.254.98.1/24', '--bridge', 'jbench0']);
  for (const g of ['ga', 'gb']) {
    s.jaula(sleeperSkeleton(g, ['--interface', 'eth0=bn:auto']));
    s.jaula(['start', g]);
  }
  const ipOf = (g: string): string =>
    /address = "([0-9.]+)\//.exec(
      fs.readFileSync(join(s.root, `etc/jaula/guests/${g}/config.toml`), 'utf8'),
    )?.[1] ?? '';

  const rows: (string | number)[][] = [];
  // Three rounds, the paths interleaved, the median of each: one noisy moment skews nothing.
  const tput: Record<'raw' | 'bridge' | 'jaula' | 'lo', number[]> = {
    raw: [],
    bridge: [],
    jaula: [],
    lo: [],
  };
  for (let round = 0; round < 3; round++) {
    tput.raw.push(iperf(inNs(nsB), inNs(nsA), '10.254.99.2'));
    tput.bridge.push(iperf(inNs(nsB), inNs(nsA), '10.254.97.2'));
    tput.jaula.push(iperf(inGuest('gb'), inGuest('ga'), ipOf('gb')));
    tput.lo.push(iperf(['env'], ['env'], '127.0.0.1'));
  }
  const [raw, bridge, jaula, lo] = [
    median(tput.raw),
    median(tput.bridge),
    median(tput.jaula),
    median(tput.lo),
  ];
  const rawRtt = rtt(inNs(nsA), '10.254.99.2');
  const bridgeRtt = rtt(inNs(nsA), '10.254.97.2');
  const jaulaRtt = rtt(inGuest('ga'), ipOf('gb'));
  const loRtt = rtt(['env'], '127.0.0.1');
  rows.push(['jaula guest -> guest (veth, bridge, firewall)', jaula / 1e9, jaula / raw, jaulaRtt]);
  rows.push(['bare bridge, two veths, no firewall', bridge / 1e9, bridge / raw, bridgeRtt]);
  rows.push(['raw veth pair, two namespaces', raw / 1e9, 1, rawRtt]);
  rows.push(['host loopback', lo / 1e9, lo / raw, loRtt]);
  console.log(
    `\nbench/net: TCP throughput (iperf3, ${SECONDS} s each) and ICMP request/response (200 pings), three rounds interleaved, medians\n`,
  );
  console.log(table(['path', 'Gbit/s', 'x raw veth', 'RTT us'], rows));
  console.log(
    `\nAim: jaula at least 0.95x the raw veth: ${(jaula / raw).toFixed(3)}x (the bare bridge alone: ${(bridge / raw).toFixed(3)}x; jaula / bare bridge: ${(jaula / bridge).toFixed(3)}x)`,
  );

  // Setup cost: a start with an interface against a start without, and the CNI chain.
  s.jaula(sleeperSkeleton('n0'));
  s.jaula(sleeperSkeleton('n1', ['--interface', 'eth0=bn:auto']));
  const t0: number[] = [];
  const t1: number[] = [];
  for (let i = 0; i < N; i++) {
    t0.push(timeMs(s.jaulaArgv(['start', 'n0']), { env: s.env }));
    s.jaula(['stop', 'n0', '--kill']);
    t1.push(timeMs(s.jaulaArgv(['start', 'n1']), { env: s.env }));
    s.jaula(['stop', 'n1', '--kill']);
  }
  const setup: (string | number)[][] = [
    ['jaula start, no interface', median(t0)],
    ['jaula start, one bridged interface', median(t1)],
    ['=> network setup in a jaula start', median(t1) - median(t0)],
  ];
  if (have('/usr/lib/cni/bridge')) {
    const conf = {
      cniVersion: '1.0.0',
      name: 'jbench',
      plugins: [
        {
          type: 'bridge',
          bridge: 'jbenchcni0',
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.254.97.0/24' }]],
            dataDir: join(s.root, 'cni-ipam'),
          },
        },
        { type: 'firewall' },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'bandwidth', capabilities: { bandwidth: true } },
      ],
    };
    const cni: number[] = [];
    const nsFile = join(s.root, 'cni-ns');
    for (let i = 0; i < N; i++) {
      fs.writeFileSync(nsFile, '');
      must(['unshare', `--net=${nsFile}`, 'true']);
      const t = process.hrtime.bigint();
      for (const p of conf.plugins) {
        const one = {
          cniVersion: conf.cniVersion,
          name: conf.name,
          ...p,
          runtimeConfig: {
            portMappings: [{ hostPort: 18099, containerPort: 80, protocol: 'tcp' }],
            bandwidth: {
              ingressRate: 100_000_000,
              ingressBurst: 1_000_000,
              egressRate: 100_000_000,
              egressBurst: 1_000_000,
            },
          },
        };
        const r = spawnSync(`/usr/lib/cni/${p.type}`, [], {
          input: JSON.stringify(one),
          env: {
            ...process.env,
            CNI_COMMAND: 'ADD',
            CNI_CONTAINERID: `b${i}`,
            CNI_NETNS: nsFile,
            CNI_IFNAME: 'eth0',
            CNI_PATH: '/usr/lib/cni',
          },
          encoding: 'utf8',
        });
        if (r.status !== 0 && p.type === 'bridge') throw new Error(`CNI ${p.type}: ${r.stdout}${r.stderr}`);
      }
      cni.push(Number(process.hrtime.bigint() - t) / 1e6);
      for (const p of [...conf.plugins].reverse())
        spawnSync(`/usr/lib/cni/${p.type}`, [], {
          input: JSON.stringify({ cniVersion: conf.cniVersion, name: conf.name, ...p }),
          env: {
            ...process.env,
            CNI_COMMAND: 'DEL',
            CNI_CONTAINERID: `b${i}`,
            CNI_NETNS: nsFile,
            CNI_IFNAME: 'eth0',
            CNI_PATH: '/usr/lib/cni',
          },
        });
      sh(['umount', nsFile]);
    }
    setup.push(['CNI chain ADD (bridge, host-local, firewall, portmap, bandwidth)', median(cni)]);
    sh(['ip', 'link', 'del', 'jbenchcni0']);
  }
  console.log(`\nNetwork setup at start, median of ${N}, ms\n`);
  console.log(table(['what', 'median ms'], setup));
} finally {
  sh(['ip', 'link', 'del', 'jbbr0']);
  sh(['ip', 'netns', 'del', nsA]);
  sh(['ip', 'netns', 'del', nsB]);
  for (const g of ['ga', 'gb', 'n0', 'n1'])
    sh([process.execPath, join(process.cwd(), 'bin/jaula.cjs'), 'delete', '--force', g], { env: s.env });
  sh([process.execPath, join(process.cwd(), 'bin/jaula.cjs'), 'network', 'delete', 'bn'], { env: s.env });
  const tag = makePaths(s.root).instanceTag;
  for (const fam of ['bridge', 'ip']) sh(['nft', 'delete', 'table', fam, `jaula_${tag}`]);
  s.cleanup();
}
