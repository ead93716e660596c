/**
 * bench/fleet: etcd clients side by side on one three-member etcd cluster on loopback: jaula's
 * own (the JSON gateway through fetch, src/fleet/etcd.ts), the npm `etcd3` package (gRPC; only
 * when ETCD3_DIR names a directory where it is installed: `npm i etcd3` there), and etcdctl
 * (one process per operation, as a shell script would). Per operation: put, linearizable get,
 * create-if-absent transaction, watch event latency (put to event). Then the fleet's own costs:
 * a fleet-wide reservation (name, context, MAC: one transaction), `list --fleet`'s read of
 * 1000 guest records of 3 hosts, and placement's reads (the hosts, every owner record).
 * Last, high availability (bench/tools/failover.ts): the time from a host's death to its HA
 * guest answering again on another host, over --kills N kills (default 10; 0: skipped), with
 * a lease TTL of --ttl S (default 3).
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Etcd } from '../src/fleet/etcd.js';
import { reserveIdentity } from '../src/fleet/reserve.js';
import { fleetGuests, fleetHosts, ownedPerHost, publishGuests } from '../src/fleet/records.js';
import { LoopbackEtcd } from './etcdlib.js';
import { median, must, N, pct, Scratch, table, timeMs } from './lib.js';
import { measureFailovers } from './tools/failover.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};

async function times(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

interface Client {
  name: string;
  put: (i: number) => Promise<unknown>;
  get: (i: number) => Promise<unknown>;
  create: (i: number) => Promise<unknown>;
  /** Resolves with the ms from a put to its watch event. */
  watchEvent: (i: number) => Promise<number>;
  close: () => void;
}

function ours(urls: string[]): Client {
  const e = new Etcd({ endpoints: urls });
  const ac = new AbortController();
  let pending: ((ms: number) => void) | undefined;
  let sent = 0n;
  const watching = e.watch(
    '/bench/w/',
    () => pending?.(Number(process.hrtime.bigint() - sent) / 1e6),
    ac.signal,
  );
  return {
    name: 'jaula (JSON gateway, fetch)',
    put: (i) => e.put(`/bench/o/p${i}`, 'x'.repeat(100)),
    get: (i) => e.get(`/bench/o/p${i}`),
    create: (i) => e.createIfAbsent(`/bench/o/c${i}`, 'x'),
    watchEvent: async (i) => {
      await watching;
      const got = new Promise<number>((r) => (pending = r));
      sent = process.hrtime.bigint();
      await e.put(`/bench/w/${i}`, 'x');
      return got;
    },
    close: () => ac.abort(),
  };
}

interface Etcd3Like {
  put(k: string): { value(v: string): Promise<unknown> };
  get(k: string): { string(): Promise<string | null> };
  if(k: string, t: string, c: string, v: number): { then(op: unknown): { commit(): Promise<unknown> } };
  watch(): { key(k: string): { create(): Promise<{ on(ev: string, f: () => void): void }> } };
  close(): void;
}

async function etcd3(urls: string[]): Promise<Client | undefined> {
  const dir = process.env['ETCD3_DIR'];
  if (!dir) return undefined;
  const req = createRequire(join(dir, 'package.json'));
  const { Etcd3 } = req('etcd3') as { Etcd3: new (o: { hosts: string[] }) => Etcd3Like };
  const c = new Etcd3({ hosts: urls });
  let pending: ((ms: number) => void) | undefined;
  let sent = 0n;
  const w = await c.watch().key('/bench/w3').create();
  w.on('put', () => pending?.(Number(process.hrtime.bigint() - sent) / 1e6));
  return {
    name: 'npm etcd3 (gRPC)',
    put: (i) => c.put(`/bench/e/p${i}`).value('x'.repeat(100)),
    get: (i) => c.get(`/bench/e/p${i}`).string(),
    create: (i) =>
      c
        .if(`/bench/e/c${i}`, 'Create', '==', 0)
        .then(c.put(`/bench/e/c${i}`).value('x'))
        .commit(),
    watchEvent: async (i) => {
      const got = new Promise<number>((r) => (pending = r));
      sent = process.hrtime.bigint();
      await c.put('/bench/w3').value(String(i));
      return got;
    },
    close: () => c.close(),
  };
}

function etcdctl(urls: string[]): Client {
  const ctl = (args: string[]): Promise<unknown> =>
    Promise.resolve(
      must(['etcdctl', `--endpoints=${urls.join(',')}`, ...args], {
        env: { ...process.env, ETCDCTL_API: '3' },
      }),
    );
  return {
    name: 'etcdctl (a process each)',
    put: (i) => ctl(['put', `/bench/c/p${i}`, 'x']),
    get: (i) => ctl(['get', `/bench/c/p${i}`]),
    create: (i) =>
      Promise.resolve(
        must(['etcdctl', `--endpoints=${urls.join(',')}`, 'txn'], {
          env: { ...process.env, ETCDCTL_API: '3' },
          stdio: ['pipe', 'pipe', 'pipe'],
          input: `create("/bench/c/c${i}") = "0"\n\nput /bench/c/c${i} x\n\n\n`,
        }),
      ),
    watchEvent: () => Promise.resolve(NaN),
    close: () => {},
  };
}

function row(name: string, xs: number[]): (string | number)[] {
  return xs.some((x) => Number.isNaN(x)) ? [name, '-', '-'] : [name, median(xs), pct(xs, 95)];
}

async function clientRows(c: Client, n: number): Promise<(string | number)[][]> {
  const put = await times(n, c.put);
  const get = await times(n, c.get);
  const create = await times(n, c.create);
  const watch: number[] = [];
  for (let i = 0; i < n; i++) watch.push(await c.watchEvent(i));
  c.close();
  return [
    row(`${c.name}: put`, put),
    row(`${c.name}: linearizable get`, get),
    row(`${c.name}: create-if-absent txn`, create),
    row(`${c.name}: watch event`, watch),
  ];
}

async function fleetRows(urls: string[], n: number): Promise<(string | number)[][]> {
  const e = new Etcd({ endpoints: urls });
  const reserve = await times(n, (i) =>
    reserveIdentity(
      e,
      'hb1',
      {
        name: `rb${i}`,
        context: 1000 + i,
        macs: [`02:00:00:00:${(i >> 8) & 255}:${i & 255}`],
        addresses: [],
      },
      { fixedContext: true },
    ),
  );
  for (const h of ['hb1', 'hb2', 'hb3']) {
    const lease = await e.grant(60);
    const rows = Array.from({ length: 334 }, (_, i) => ({
      name: `${h}g${String(i).padStart(3, '0')}`,
      state: 'running',
      context: 100 + i,
      addresses: [`10.9.${i >> 8}.${i & 255}`],
      marks: ['web'],
    }));
    await publishGuests(e, h, lease, rows);
  }
  const list = await times(n, () => fleetGuests(e));
  // What placement (build --host auto) and drain read before they choose: the hosts' records and
  // every owner record (the names reserved above), at once.
  const place = await times(n, () => Promise.all([fleetHosts(e), ownedPerHost(e)]));
  // The command itself, in a process of its own (no jaulad: the CLI reads etcd).
  const s = new Scratch();
  try {
    fs.mkdirSync(join(s.root, 'etc/jaula'), { recursive: true });
    const fc = { endpoints: urls, host: 'hb1', labels: {}, ttl: 5, networks: [] };
    fs.writeFileSync(join(s.root, 'etc/jaula/fleet.json'), JSON.stringify(fc));
    const argv = s.jaulaArgv(['list', '--fleet', '--format', 'json']);
    const count = (JSON.parse(must(argv, { env: s.env })) as unknown[]).length;
    const cli = Array.from({ length: Math.min(n, 20) }, () => timeMs(argv, { env: s.env }));
    const status = Array.from({ length: Math.min(n, 20) }, () =>
      timeMs(s.jaulaArgv(['fleet', 'status']), { env: s.env }),
    );
    return [
      row('reserve name+context+MAC (one txn)', reserve),
      row(`list --fleet: the read of ${count} guests of 3 hosts`, list),
      row(`placement's reads: the hosts and ${n} owner records`, place),
      row(`jaula list --fleet --format json (${count} guests, a process)`, cli),
      row('jaula fleet status (a process, no etcd request)', status),
    ];
  } finally {
    s.cleanup();
  }
}

const cluster = new LoopbackEtcd(Number(process.env['BENCH_ETCD_PORT'] ?? 23600));
try {
  await cluster.start();
  const rows: (string | number)[][] = [];
  const n = Math.max(N, 50);
  for (const make of [ours, etcd3, etcdctl] as ((
    u: string[],
  ) => Client | undefined | Promise<Client | undefined>)[]) {
    const c = await make(cluster.clientUrls);
    if (c) rows.push(...(await clientRows(c, c.name.startsWith('etcdctl') ? Math.min(n, 20) : n)));
  }
  rows.push(...(await fleetRows(cluster.clientUrls, n)));
  console.log(`etcd 3.4, three members on loopback; ${n} operations each (ms)\n`);
  console.log(table(['operation', 'median', 'p95'], rows));
} finally {
  cluster.stop();
}

const KILLS = arg('kills', 10);
const TTL = arg('ttl', 3);
if (KILLS > 0) {
  const { kills: ks, watcherKiB } = await measureFailovers(KILLS, TTL);
  const r = (name: string, xs: number[]): (string | number)[] => [
    name,
    median(xs),
    pct(xs, 95),
    Math.max(...xs),
  ];
  console.log(
    `\nHA: a host dies (kill -9 of its jaulad and its guests); its HA guest (replicated every 2 s) on another host; lease TTL ${TTL} s; ${ks.length} kills (ms from the kill)\n`,
  );
  console.log(
    table(
      ['until', 'p50', 'p95', 'max'],
      [
        r(
          "the leader's failover order",
          ks.map((k) => k.order),
        ),
        r(
          'the guest running on its standby',
          ks.map((k) => k.running),
        ),
        r(
          'the guest answering (exec through its new host)',
          ks.map((k) => k.answer),
        ),
        r(
          'writes lost at most (replica age at the order)',
          ks.map((k) => k.lostAtMost),
        ),
      ],
    ),
  );
  console.log(
    `\nThe fence watcher of a host with an HA guest: ${watcherKiB.map((k) => `${(k / 1024).toFixed(1)} MiB`).join(', ')} resident.`,
  );
  console.log(
    "\nFor comparison (documented, not measured here): Proxmox VE HA recovers a lost node's services in about 2 minutes (its watchdog fencing, then the CRM's recovery).",
  );
}
