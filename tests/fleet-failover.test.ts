/**
 * The leader's side of high availability on a real etcd (one member on loopback): the
 * election, and failovers as transactions: two leaders racing give a guest to its standby
 * once; a guest is failed over only when its owner's record is gone and its replica is from
 * that owner, to a live host; others (no replica: lost) are left alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd } from '../src/fleet/etcd.js';
import { campaign, failOver, failoverKey, ordersFor, putReplica } from '../src/fleet/ha.js';
import { hostKey, nameKey } from '../src/fleet/keys.js';
import { loopbackEtcd } from './fleet-hosts.js';
import { needRoot, TestRoot } from './helpers.js';

describe('HA failovers in etcd', { skip: needRoot, timeout: 120_000 }, () => {
  const t = new TestRoot('jaula-failover-');
  let etcd: Etcd;
  let stop: () => Promise<void>;
  before(async () => {
    const e = await loopbackEtcd(t);
    stop = e.stop;
    etcd = new Etcd({ endpoints: [e.url] });
  });
  after(async () => {
    await stop();
    assert.deepEqual(t.cleanup(), []);
  });

  const owner = async (g: string): Promise<string | undefined> => {
    const kv = await etcd.get(nameKey(g));
    return kv ? (JSON.parse(kv.value) as { host: string }).host : undefined;
  };

  it('elects one leader, and another once its lease is gone', async () => {
    const [la, lb] = [await etcd.grant(30), await etcd.grant(30)];
    assert.equal(await campaign(etcd, 'a', la), true);
    assert.equal(await campaign(etcd, 'b', lb), false);
    assert.equal(await campaign(etcd, 'a', la), true, 'the leader stays the leader');
    await etcd.revoke(la);
    assert.equal(await campaign(etcd, 'b', lb), true);
    await etcd.revoke(lb);
  });

  it("gives a lost host's HA guest to its standby once, however many leaders race", async () => {
    const lease = await etcd.grant(30);
    await etcd.put(hostKey('b'), '{}', lease); // b lives; a is gone (no record)
    const put = (g: string, host: string): Promise<number> =>
      etcd.put(nameKey(g), JSON.stringify({ host, context: 100 }));
    await put('g1', 'a'); // HA, its replica on b: fails over
    await put('g2', 'a'); // no replica: lost, left
    await put('g3', 'b'); // its host lives: left
    await put('g4', 'a'); // a replica from an older owner: left
    await put('g5', 'a'); // a replica on a host that is gone too: left
    const asOf = new Date(Date.now() - 2000).toISOString();
    const rep = { round: 'r1', running: true, bytes: 1, asOf };
    await putReplica(etcd, { guest: 'g1', host: 'b', from: 'a', ...rep });
    await putReplica(etcd, { guest: 'g3', host: 'a', from: 'b', ...rep });
    await putReplica(etcd, { guest: 'g4', host: 'b', from: 'c', ...rep });
    await putReplica(etcd, { guest: 'g5', host: 'c', from: 'a', ...rep });
    const live = new Set(['b']);
    const made = (await Promise.all([1, 2, 3, 4].map((i) => failOver(etcd, `l${i}`, live, 3000)))).flat();
    assert.deepEqual(
      made.map((f) => [f.guest, f.from, f.to]),
      [['g1', 'a', 'b']],
    );
    const f = made[0];
    assert.ok(f && f.lostMs.atMost >= 2000 && f.lostMs.atLeast === Math.max(0, f.lostMs.atMost - 3000));
    assert.deepEqual(
      [await owner('g1'), await owner('g2'), await owner('g3'), await owner('g4'), await owner('g5')],
      ['b', 'a', 'b', 'a', 'a'],
    );
    assert.deepEqual(
      (await ordersFor(etcd, 'b')).map((o) => o.guest),
      ['g1'],
    );
    assert.ok(await etcd.get(failoverKey('g1')));
    // Once given away, a later pass leaves it: its owner lives.
    assert.deepEqual(await failOver(etcd, 'l1', live, 3000), []);
    await etcd.revoke(lease);
  });

  it('fails over nothing while the lost host still holds its lease', async () => {
    const lease = await etcd.grant(30);
    await etcd.put(hostKey('x'), '{}', lease);
    await etcd.put(nameKey('g6'), JSON.stringify({ host: 'x', context: 101 }));
    await putReplica(etcd, {
      guest: 'g6',
      host: 'y',
      from: 'x',
      round: 'r',
      running: true,
      bytes: 1,
      asOf: new Date().toISOString(),
    });
    // A leader whose view is stale (x absent from it): the transaction compares x's record.
    assert.deepEqual(await failOver(etcd, 'l1', new Set(['y']), 3000), []);
    assert.equal(await owner('g6'), 'x');
    await etcd.revoke(lease);
  });
});
