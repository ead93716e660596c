/**
 * High availability in a fleet (tests/fleet-hosts.ts: three hosts, their jaulads listening on
 * TCP and knowing each other as remotes, a three-member etcd): an HA guest is replicated to a
 * standby; when its host dies (kill -9 of its jaulad and of every process of its guests) the
 * leader gives it to the standby, which starts it from the replica with what was written
 * before it; a guest without HA shows as lost; the old host, back, does not run its old copy.
 * A split-brain checker samples every host throughout.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { FleetHosts, fleetHooks, until, type FleetHost } from './fleet-hosts.js';
import { needRoot } from './helpers.js';

const fleet = new FleetHosts(3);
const [h1, h2, h3] = fleet.hosts as [FleetHost, FleetHost, FleetHost];
const byName = new Map(fleet.hosts.map((h) => [h.name, h]));

interface Ha {
  leader?: string;
  replicas: { guest: string; host: string; from: string; asOf: string; running: boolean }[];
  failovers: {
    guest: string;
    from: string;
    to: string;
    asOf: string;
    lostMs: { atMost: number; atLeast: number };
    outcome?: string;
  }[];
}
const ha = (h: FleetHost): Ha => JSON.parse(h.t.ok(['fleet', 'ha', '--format', 'json']).stdout) as Ha;
const status = (h: FleetHost, g: string): string =>
  (JSON.parse(h.t.ok(['list', '--format', 'json']).stdout) as { name: string; status: string }[]).find(
    (x) => x.name === g,
  )?.status ?? 'absent';
/** What a host's jaulad said of HA (for a failure's message). */
const haLog = (h: FleetHost): string =>
  h.log
    .split('\n')
    .filter((l) => / ha: /.test(l))
    .slice(-15)
    .join('\n');
/** Every host's jaulad's last words (for a failure's message). */
const logs = (): string =>
  fleet.hosts
    .map(
      (h) =>
        `${h.name}'s jaulad said:\n${h.log
          .split('\n')
          .filter((l) => / ha: |fleet: /.test(l) && !/replicated to/.test(l))
          .slice(-25)
          .join('\n')}`,
    )
    .join('\n');
/** until(), saying what every jaulad said when it times out. */
const waitFor = (what: string, fn: () => boolean, ms?: number): Promise<void> =>
  until(what, fn, ms).catch((e: Error) => {
    throw new Error(`${e.message}\n${logs()}`);
  });
const fleetList = (h: FleetHost): { host: string; name: string; state: string }[] =>
  JSON.parse(h.t.ok(['list', '--fleet', '--format', 'json']).stdout) as never;

describe('high availability in a fleet', { skip: needRoot, timeout: 600_000 }, () => {
  fleetHooks(fleet, { ttl: 3, listen: true });

  it('starts an HA guest from its replica on a standby when its host dies, and the host, back, does not run it', async (t) => {
    for (const g of ['ha1', 'plain1'])
      h1.t.ok(['build', g, '-m', 'skeleton', '-q', '--initstyle', 'cmd', '--cmd', 'sleep 100000']);
    h1.t.ok(['start', 'ha1']);
    h1.t.ok(['start', 'plain1']);
    const set = h1.t.ok(['set', 'ha1', 'ha=on', 'ha.interval=1']);
    assert.match(set.stdout, /is HA: jaulad replicates it to a standby host every 1 s/);
    // A write, then a round after it: the replica has it.
    h1.t.ok(['exec', 'ha1', '--', 'sh', '-c', 'echo before > /root/mark']);
    const written = Date.now();
    let standby: FleetHost | undefined;
    await waitFor('a replica of ha1 made after the write', () => {
      const r = ha(h2).replicas.find((x) => x.guest === 'ha1');
      standby = r ? byName.get(r.host) : undefined;
      return !!r && r.from === 'h1' && r.running && Date.parse(r.asOf) > written + 100;
    });
    assert.ok(standby && standby !== h1, 'the standby is another host');
    // The replica is hidden on the standby: no command there lists or starts it.
    assert.equal(status(standby, 'ha1'), 'absent');
    const hidden = standby.t.jaula(['start', 'ha1']);
    assert.notEqual(hidden.code, 0);
    assert.match(hidden.stderr, /kept here as its HA replica/);

    const killed = Date.now();
    await h1.killHost();
    await waitFor(
      'ha1 running on its standby',
      () => status(standby as FleetHost, 'ha1') === 'running',
      30_000,
    );
    t.diagnostic(`ha1 ran again on ${standby.name} ${Date.now() - killed} ms after h1 died (TTL 3 s)`);
    assert.equal(standby.t.ok(['exec', 'ha1', '--', 'cat', '/root/mark']).stdout.trim(), 'before');
    const f = ha(h2).failovers.find((x) => x.guest === 'ha1');
    assert.ok(f, 'the failover is recorded');
    assert.equal(f.from, 'h1');
    assert.equal(f.to, standby.name);
    assert.match(f.outcome ?? '', /started/);
    assert.ok(f.lostMs.atMost >= f.lostMs.atLeast && f.lostMs.atMost < 60_000, JSON.stringify(f.lostMs));
    // Without HA: lost, with its host.
    const other = standby === h2 ? h3 : h2;
    await waitFor('plain1 shown lost', () =>
      fleetList(other).some((g) => g.name === 'plain1' && g.host === 'h1' && g.state === 'lost'),
    );

    // h1 comes back (its guests died with it): it may not start its old copy of ha1.
    await h1.startJaulad();
    await waitFor('h1 up again', () => /joined|rejoined/.test(h1.log), 30_000);
    const again = h1.t.jaula(['start', 'ha1']);
    assert.notEqual(again.code, 0, again.stdout);
    assert.match(again.stderr, new RegExp(`gave it to host "${standby.name}"`));
    h1.t.ok(['start', 'plain1']);
    assert.equal(status(h1, 'plain1'), 'running');
    // ha1 goes on being replicated, now from its new host, to a host without an old copy.
    await waitFor('a replica of ha1 from its new host', () =>
      ha(other).replicas.some(
        (x) => x.guest === 'ha1' && x.from === (standby as FleetHost).name && x.host === other.name,
      ),
    );
    for (const h of fleet.hosts) t.diagnostic(`${h.name}: ${haLog(h)}`);
    for (const [h, g] of [
      [h1, 'plain1'],
      [standby, 'ha1'],
    ] as const)
      h.t.ok(['stop', g, '--kill']);
  });

  it("stops an HA guest whose host's jaulad is killed (its watcher fences it) before the fleet starts it elsewhere", async (t) => {
    h1.t.ok(['build', 'ha2', '-m', 'skeleton', '-q', '--ha', '--initstyle', 'cmd', '--cmd', 'sleep 100000']);
    h1.t.ok(['set', 'ha2', 'ha.interval=1']);
    h1.t.ok(['start', 'ha2']);
    let standby: FleetHost | undefined;
    await waitFor(
      'a replica of ha2',
      () => {
        const r = ha(h3).replicas.find((x) => x.guest === 'ha2' && x.running);
        standby = r ? byName.get(r.host) : undefined;
        return !!standby;
      },
      60_000,
    );
    assert.ok(standby && standby !== h1);
    const killed = Date.now();
    await h1.killJaulad(); // (its guests go on running: only the watcher can stop them)
    await waitFor('ha2 fenced on h1', () => status(h1, 'ha2') === 'stopped', 15_000);
    await waitFor(
      'ha2 running on its standby',
      () => status(standby as FleetHost, 'ha2') === 'running',
      30_000,
    );
    t.diagnostic(`ha2 ran again on ${standby.name} ${Date.now() - killed} ms after h1's jaulad was killed`);
    assert.match(h1.t.ok(['logs', 'ha2']).stdout, /fenced: no renewal of the host's lease answered/);
    await h1.startJaulad();
    await waitFor('h1 up again', () => /joined|rejoined/.test(h1.log), 30_000);
    assert.equal(status(h1, 'ha2'), 'stopped');
    // HA off: the fleet forgets its replica, and the host that kept it drops it.
    await waitFor('a replica of ha2 from its new host', () =>
      ha(h1).replicas.some((x) => x.guest === 'ha2' && x.from === (standby as FleetHost).name),
    );
    const keeper = byName.get(ha(h1).replicas.find((x) => x.guest === 'ha2')?.host ?? '') as FleetHost;
    assert.ok(fs.existsSync(keeper.t.path('etc/jaula/guests/ha2')), 'the replica is kept there');
    assert.match(standby.t.ok(['set', 'ha2', 'ha=off']).stdout, /is not HA/);
    assert.equal(
      ha(h1).replicas.some((x) => x.guest === 'ha2'),
      false,
    );
    await waitFor(
      'the replica of ha2 dropped',
      () => !fs.existsSync(keeper.t.path('etc/jaula/guests/ha2')),
      30_000,
    ).catch((e: Error) => {
      const dir = keeper.t.path('etc/jaula/guests/ha2');
      const files = fs.existsSync(dir) ? fs.readdirSync(dir).join(',') : '-';
      const mark = fs.existsSync(`${dir}/.replica`) ? fs.readFileSync(`${dir}/.replica`, 'utf8') : '-';
      throw new Error(
        `${e.message}\nkeeper ${keeper.name}: ${files}; mark ${mark}; ${keeper.log
          .split('\n')
          .filter((l) => /ha2/.test(l))
          .slice(-10)
          .join('\n')}`,
      );
    });
    standby.t.ok(['stop', 'ha2', '--kill']);
  });
});
