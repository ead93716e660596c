/**
 * bench/fleet's HA part: the time from a host's death to its HA guest answering again on
 * another host. Three hosts of tests/fleet-hosts.ts (jaulads in network namespaces, a
 * three-member etcd), lease TTL as given; one HA guest replicated every 2 s. Each kill: the
 * guest's host dies (kill -9 of its jaulad and of every process of its guests), and the clock
 * runs until the guest answers a command (exec, through the API of its new host) with a file
 * written before the last replica; the dead host then comes back, and the next kill is of the
 * guest's new host, once its replica is made from there.
 */
import * as fs from 'node:fs';
import { Etcd } from '../../src/fleet/etcd.js';
import { failoverKey, replicaKey, type FailoverRecord, type ReplicaRecord } from '../../src/fleet/ha.js';
import { FleetHosts, type FleetHost } from '../../tests/fleet-hosts.js';
import { apiRequest } from '../../tests/helpers.js';

/** The fence watchers' resident memory (KiB each), from /proc. */
export function watcherRss(): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (!fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('--fence-watch')) continue;
      const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) out.push(Number(m[1]));
    } catch {
      /* gone */
    }
  }
  return out;
}

export interface Kill {
  /** kill -9 to the leader's failover order, to the guest running, to it answering (ms). */
  order: number;
  running: number;
  answer: number;
  lostAtMost: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export async function measureFailovers(
  kills: number,
  ttl: number,
): Promise<{ kills: Kill[]; watcherKiB: number[] }> {
  const fleet = new FleetHosts(3);
  const byName = new Map(fleet.hosts.map((h) => [h.name, h]));
  const out: Kill[] = [];
  let watcherKiB: number[] = [];
  try {
    await fleet.setup({ ttl, listen: true });
    const etcd = new Etcd({ endpoints: fleet.endpoints.split(',') });
    const first = fleet.hosts[0] as FleetHost;
    first.t.ok([
      'build',
      'hab',
      '-m',
      'skeleton',
      '-q',
      '--ha',
      '--initstyle',
      'cmd',
      '--cmd',
      'sleep 100000',
    ]);
    first.t.ok(['set', 'hab', 'ha.interval=2']);
    first.t.ok(['start', 'hab']);
    let owner = first;
    await waitFor('the fence watcher', () => {
      watcherKiB = watcherRss();
      return Promise.resolve(watcherKiB.length ? true : undefined);
    });
    for (let k = 0; k < kills; k++) {
      const mark = `k${k}`;
      owner.t.ok(['exec', 'hab', '--', 'sh', '-c', `echo ${mark} > /root/mark`]);
      const written = Date.now();
      const rep = await waitFor('a replica after the write', async () => {
        const kv = await etcd.get(replicaKey('hab'));
        const r = kv ? (JSON.parse(kv.value) as ReplicaRecord) : undefined;
        return r && r.from === owner.name && Date.parse(r.asOf) > written ? r : undefined;
      });
      const standby = byName.get(rep.host) as FleetHost;
      const t0 = Date.now();
      await owner.killHost();
      const order = await waitFor('the failover order', async () => {
        const kv = await etcd.get(failoverKey('hab'));
        const f = kv ? (JSON.parse(kv.value) as FailoverRecord) : undefined;
        return f && Date.parse(f.at) >= t0 ? f : undefined;
      });
      const running = await waitFor('running on the standby', async () => {
        const r = await apiRequest(standby.socket, 'GET', '/v1/guests/hab');
        return (r.json as { status?: string } | undefined)?.status === 'running' ? Date.now() : undefined;
      });
      const answer = await waitFor('an answer from the guest', async () => {
        const r = await apiRequest(standby.socket, 'POST', '/v1/guests/hab/exec', {
          cmd: ['cat', '/root/mark'],
        });
        return r.status === 200 && (r.json as { stdout?: string }).stdout?.trim() === mark
          ? Date.now()
          : undefined;
      });
      out.push({
        order: Date.parse(order.at) - t0,
        running: running - t0,
        answer: answer - t0,
        lostAtMost: order.lostMs.atMost,
      });
      await owner.startJaulad();
      await waitFor('the dead host back', () => Promise.resolve(/joined/.test(owner.log) ? true : undefined));
      owner = standby;
    }
    owner.t.ok(['stop', 'hab', '--kill']);
  } finally {
    const left = await fleet.teardown();
    if (left.length) console.error(`bench/fleet: left behind: ${left.join(', ')}`);
  }
  return { kills: out, watcherKiB };
}
