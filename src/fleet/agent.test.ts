import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FleetAgent, type AgentHooks } from './agent.js';
import type { Etcd } from './etcd.js';
import { prefixEnd } from './etcd.js';

/** An etcd that answers, or (down) fails every request as a cluster without quorum does. */
class FakeEtcd {
  down = false;
  leases = 0;
  puts: string[] = [];
  private check(): void {
    if (this.down) throw new Error('etcd did not answer');
  }
  grant(): Promise<string> {
    this.check();
    return Promise.resolve(String(++this.leases));
  }
  keepAlive(): Promise<number> {
    this.check();
    return Promise.resolve(1);
  }
  put(key: string): Promise<number> {
    this.check();
    this.puts.push(key);
    return Promise.resolve(1);
  }
  txn(): Promise<{ succeeded: boolean; found: [] }> {
    this.check();
    return Promise.resolve({ succeeded: true, found: [] });
  }
  revoke(): Promise<void> {
    return Promise.resolve();
  }
}

function hooks(log: string[], fenced: string[][]): AgentHooks {
  return {
    hostRecord: () =>
      Promise.resolve({
        cpus: 1,
        memoryBytes: 1,
        memoryFreeBytes: 1,
        diskFreeBytes: 1,
        guests: 1,
        running: 1,
        liveMigration: 'no',
      }),
    guests: () => Promise.resolve([{ name: 'g1', state: 'running', context: 100, addresses: [], marks: [] }]),
    fence: () => {
      fenced.push(['g1']);
      return Promise.resolve(['g1']);
    },
    rejoined: () => Promise.resolve(),
    log: (l) => log.push(l),
  };
}

const until = async (fn: () => boolean, ms: number): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('the fleet agent', () => {
  it('joins: a lease, the host record and its guests on it', async () => {
    const etcd = new FakeEtcd();
    const a = new FleetAgent(etcd as unknown as Etcd, { host: 'h1', ttl: 2, labels: {} }, hooks([], []));
    await a.start();
    assert.equal(a.state, 'up');
    assert.equal(a.lease, '1');
    assert.deepEqual(etcd.puts, ['/jaula/hosts/h1']);
    await a.stop();
  });

  it('fences once etcd has not renewed the lease for its TTL, then rejoins with a new lease', async () => {
    const etcd = new FakeEtcd();
    const log: string[] = [];
    const fenced: string[][] = [];
    const a = new FleetAgent(etcd as unknown as Etcd, { host: 'h1', ttl: 2, labels: {} }, hooks(log, fenced));
    await a.start();
    const t0 = Date.now();
    etcd.down = true;
    await until(() => a.state === 'fenced', 5000);
    // Not before the TTL less its margin (2 s - 0.5 s), counted from the last renewal.
    assert.ok(Date.now() - t0 >= 800, `fenced after ${Date.now() - t0} ms`);
    assert.deepEqual(fenced, [['g1']]);
    assert.ok(log.some((l) => /FENCED/.test(l)));
    etcd.down = false;
    await until(() => a.state === 'up', 5000);
    assert.equal(a.lease, '2', 'a new lease');
    assert.ok(log.some((l) => /rejoined/.test(l)));
    assert.equal(fenced.length, 1, 'fenced once');
    await a.stop();
  });

  it('does not fence while etcd answers', async () => {
    const etcd = new FakeEtcd();
    const fenced: string[][] = [];
    const a = new FleetAgent(etcd as unknown as Etcd, { host: 'h1', ttl: 2, labels: {} }, hooks([], fenced));
    await a.start();
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(a.state, 'up');
    assert.deepEqual(fenced, []);
    await a.stop();
  });
});

describe('prefixEnd', () => {
  it('is the key just after every key with the prefix', () => {
    const dec = (b: string): string => Buffer.from(b, 'base64').toString('latin1');
    assert.equal(dec(prefixEnd('/jaula/')), '/jaula0');
    assert.equal(dec(prefixEnd('a')), 'b');
  });
});
