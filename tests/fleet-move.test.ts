/**
 * Moving guests within a fleet (tests/fleet-hosts.ts, the jaulads listening on TCP and knowing
 * each other as remotes): a move hands the guest over in etcd (its owner record follows it,
 * its reservations stay), so that only its new host may start it; `jaula fleet drain` moves
 * every guest of a host to the others. A split-brain checker samples every host throughout.
 */
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { describe, it } from 'node:test';
import { Etcd } from '../src/fleet/etcd.js';
import { nameKey } from '../src/fleet/keys.js';
import { FleetHosts, fleetHooks, until, type FleetHost } from './fleet-hosts.js';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { makeNetwork, needRoot } from './helpers.js';
import { chromium, type Browser } from 'playwright-core';

const CHROMIUM = process.env['JAULA_CHROMIUM'] ?? '/usr/bin/chromium';

const fleet = new FleetHosts(3);
const [h1, h2, h3] = fleet.hosts as [FleetHost, FleetHost, FleetHost];
// h1's token holders may move its guests (the dashboard's Move and Drain); h2's and h3's not.
h1.extraArgs = ['--allow-moves'];

const owner = async (name: string): Promise<string | undefined> => {
  const etcd = new Etcd({ endpoints: fleet.endpoints.split(',') });
  const kv = await etcd.get(nameKey(name));
  return kv ? (JSON.parse(kv.value) as { host: string }).host : undefined;
};
const fleetList = (h: FleetHost): { host: string; name: string; state: string }[] =>
  JSON.parse(h.t.ok(['list', '--fleet', '--format', 'json']).stdout) as never;
/** The guest's status on that host itself ("absent": not there), from its own list. */
const status = (h: FleetHost, g: string): string =>
  (JSON.parse(h.t.ok(['list', '--format', 'json']).stdout) as { name: string; status: string }[]).find(
    (x) => x.name === g,
  )?.status ?? 'absent';
const sleeper = (h: FleetHost, name: string): void => {
  h.t.ok(['build', name, '-m', 'skeleton', '-q', '--initstyle', 'cmd', '--cmd', 'sleep 100000']);
};

describe('moving guests within a fleet', { skip: needRoot, timeout: 600_000 }, () => {
  fleetHooks(fleet, { ttl: 10, listen: true });

  it('hands a moved guest over in etcd: only its new host may start it, its name stays taken', async () => {
    sleeper(h1, 'fm1');
    h1.t.ok(['start', 'fm1']);
    assert.equal(await owner('fm1'), 'h1');
    h1.t.ok(['migrate', 'fm1', 'h2']);
    assert.equal(await owner('fm1'), 'h2');
    assert.equal(status(h2, 'fm1'), 'running');
    assert.equal(status(h1, 'fm1'), 'absent');
    // (each host publishes its guests at its lease's renewals: the view follows within one)
    await until('fm1 listed on h2 only', () =>
      isDeepStrictEqual(
        fleetList(h3)
          .filter((g) => g.name === 'fm1')
          .map((g) => [g.host, g.state]),
        [['h2', 'running']],
      ),
    );
    // The name is still the fleet's: no other host can build one, the old host included.
    const dup = h1.t.jaula(['build', 'fm1', '-m', 'skeleton', '-q']);
    assert.equal(dup.code, 5, dup.stderr);
    assert.match(dup.stderr, /already exists in the fleet, on host h2/);
    // A stopped move back and forth: the owner follows each time.
    h2.t.ok(['stop', 'fm1', '--kill']);
    h2.t.ok(['migrate', 'fm1', 'h1']);
    assert.equal(await owner('fm1'), 'h1');
    h1.t.ok(['start', 'fm1']);
    h1.t.ok(['delete', '--force', 'fm1']);
    assert.equal(await owner('fm1'), undefined, 'a delete on its owner gives the name back');
  });

  it('drains a host: every guest moves to the others, the emptier first, and the drain says where', async () => {
    sleeper(h3, 'busy3');
    for (const g of ['dr1', 'dr2', 'dr3']) sleeper(h1, g);
    h1.t.ok(['start', 'dr1']);
    h1.t.ok(['start', 'dr2']);
    const none = h1.t.jaula(['fleet', 'drain', '--to', 'nosuch']);
    assert.equal(none.code, 6, none.stderr);
    assert.match(none.stderr, /No host to drain "h1" to: no other host of nosuch is up/);
    const r = h1.t.ok(['fleet', 'drain', '--format', 'json']);
    const res = JSON.parse(r.stdout) as {
      moved: { guest: string; to: string; state: string }[];
      failed: unknown[];
    };
    assert.deepEqual(res.failed, []);
    assert.deepEqual(res.moved.map((m) => m.guest).sort(), ['dr1', 'dr2', 'dr3']);
    // h2 owns no guest, h3 one: the first goes to h2, then one each way.
    assert.equal(res.moved[0]?.to, 'h2');
    assert.deepEqual(res.moved.map((m) => m.to).sort(), ['h2', 'h2', 'h3']);
    assert.deepEqual(JSON.parse(h1.t.ok(['list', '--format', 'json']).stdout), []);
    for (const m of res.moved) {
      const h = m.to === 'h2' ? h2 : h3;
      assert.equal(status(h, m.guest), m.guest === 'dr3' ? 'stopped' : 'running');
      assert.equal(await owner(m.guest), m.to);
    }
    // One view of their processes and counters, from the drained host: the others are asked.
    const running = res.moved.filter((m) => m.guest !== 'dr3').map((m) => [m.guest, m.to]);
    const ps = JSON.parse(h1.t.ok(['ps', '--fleet', '--format', 'json']).stdout) as {
      host: string;
      guest: string;
      command: string;
    }[];
    for (const [g, host] of running)
      assert.ok(
        ps.some((r) => r.host === host && r.guest === g && r.command === 'sleep'),
        `ps --fleet shows ${g}'s sleep on ${host}`,
      );
    const st = JSON.parse(h1.t.ok(['stat', '--fleet', '--format', 'json']).stdout) as {
      host: string;
      name: string;
      processes: number;
    }[];
    assert.deepEqual(
      st
        .filter((r) => r.name.startsWith('dr'))
        .map((r) => [r.name, r.host])
        .sort(),
      running.sort(),
    );
    for (const m of res.moved) (m.to === 'h2' ? h2 : h3).t.ok(['delete', '--force', m.guest]);
    h3.t.ok(['delete', '--force', 'busy3']);
  });

  it("runs commands on another host's guest from any host: its host answers them", async () => {
    sleeper(h2, 'fw1');
    h2.t.ok(['start', 'fw1']);
    assert.equal(status(h1, 'fw1'), 'absent');
    const st = JSON.parse(h1.t.ok(['status', 'fw1', '--format', 'json']).stdout) as { status: string };
    assert.equal(st.status, 'running');
    // An attach (a WebSocket) relayed byte for byte: the command runs on h2, in the guest.
    assert.equal(h1.t.ok(['exec', 'fw1', '--', 'hostname']).stdout.trim(), 'fw1');
    h1.t.ok(['stop', 'fw1', '--kill']);
    assert.equal(status(h2, 'fw1'), 'stopped');
    h1.t.ok(['start', 'fw1']);
    assert.equal(status(h2, 'fw1'), 'running');
    // A job is not forwarded (its events are the other host's): the error says where to run it.
    const bk = h1.t.jaula(['backup', 'fw1', '--to', h1.t.path('fw1.jaula')]);
    assert.equal(bk.code, 6, bk.stderr);
    assert.match(bk.stderr, /Guest "fw1" is on host "h2" of the fleet: run this command there/);
    // Nothing was made here meanwhile.
    assert.equal(status(h1, 'fw1'), 'absent');
    h1.t.ok(['delete', '--force', 'fw1']);
    assert.equal(status(h2, 'fw1'), 'absent');
  });

  it('builds a guest where placement says: a named host, a label, or the host owning the fewest', async () => {
    h1.t.ok(['build', 'pl1', '-m', 'skeleton', '-q', '--host', 'h3']);
    assert.equal(status(h3, 'pl1'), 'stopped');
    assert.equal(status(h1, 'pl1'), 'absent');
    assert.equal(await owner('pl1'), 'h3');
    h1.t.ok(['build', 'pl2', '-m', 'skeleton', '-q', '--host', 'zone=z2']);
    assert.equal(await owner('pl2'), 'h2');
    // h1 owns none now, h2 and h3 one each: auto, asked on h2, builds on h1.
    h2.t.ok(['build', 'pl3', '-m', 'skeleton', '-q', '--host', 'auto']);
    assert.equal(await owner('pl3'), 'h1');
    assert.equal(status(h1, 'pl3'), 'stopped');
    const bad = h1.t.jaula(['build', 'pl4', '-m', 'skeleton', '-q', '--host', 'zone=z9']);
    assert.equal(bad.code, 4, bad.stderr);
    assert.match(bad.stderr, /No host of the fleet that is up has the label zone=z9/);
    assert.equal(await owner('pl4'), undefined);
    // (deleted from h1: the others' through their hosts)
    for (const g of ['pl1', 'pl2', 'pl3']) h1.t.ok(['delete', g]);
    for (const g of ['pl1', 'pl2', 'pl3']) assert.equal(await owner(g), undefined);
  });

  it('balances a loaded host: its guests go to the hosts owning the fewest, stopped ones first', async () => {
    for (const g of ['b1', 'b2', 'b3', 'b4']) sleeper(h1, g);
    h1.t.ok(['start', 'b1']);
    // (the plan knows which guests run from what each host last published)
    await until('b1 published as running', () =>
      fleetList(h2).some((g) => g.name === 'b1' && g.state === 'running'),
    );
    // A host moves only its own guests: h2 owns none, so it has nothing to move.
    assert.match(h2.t.ok(['fleet', 'balance', '--dry-run']).stdout, /Balanced already/);
    const plan = JSON.parse(h1.t.ok(['fleet', 'balance', '--dry-run', '--format', 'json']).stdout) as {
      planned: { guest: string; from: string; to: string }[];
    };
    assert.deepEqual(plan.planned, [
      { guest: 'b2', from: 'h1', to: 'h2' },
      { guest: 'b3', from: 'h1', to: 'h3' },
    ]);
    assert.equal(await owner('b2'), 'h1', 'a dry run moves nothing');
    const r = JSON.parse(h1.t.ok(['fleet', 'balance', '--format', 'json']).stdout) as {
      moved: { guest: string; to: string }[];
      failed: unknown[];
    };
    assert.deepEqual(r.failed, []);
    assert.deepEqual(
      r.moved.map((m) => [m.guest, m.to]),
      [
        ['b2', 'h2'],
        ['b3', 'h3'],
      ],
    );
    assert.equal(await owner('b2'), 'h2');
    assert.equal(await owner('b3'), 'h3');
    assert.equal(status(h1, 'b1'), 'running');
    assert.match(h1.t.ok(['fleet', 'balance', '--dry-run']).stdout, /Balanced already/);
    for (const g of ['b1', 'b2', 'b3', 'b4']) h1.t.ok(['delete', '--force', g]);
  });

  it('places by what a guest needs: its template, its network, and no host holding its spread group', async () => {
    const hosts = (): { host: string; templates?: string[]; networks?: string[] }[] =>
      JSON.parse(h1.t.ok(['fleet', 'hosts', '--format', 'json']).stdout) as never;
    // Anti-affinity: sp1 (group db) on h3; h3 alone cannot take sp2 of the same group.
    h1.t.ok(['build', 'sp1', '-m', 'skeleton', '-q', '--spread', 'db', '--host', 'h3']);
    assert.equal(await owner('sp1'), 'h3');
    // (at once: its group is reserved with it, not only published at the next renewal)
    const near = h1.t.jaula(['build', 'sp2', '-m', 'skeleton', '-q', '--spread', 'db', '--host', 'zone=z3']);
    assert.notEqual(near.code, 0);
    assert.match(near.stderr, /No host can take the guest: h3 holds sp1 \(spread group db\)/);
    assert.equal(await owner('sp2'), undefined);
    // Without --host: placed (auto), elsewhere.
    h1.t.ok(['build', 'sp2', '-m', 'skeleton', '-q', '--spread', 'db']);
    assert.notEqual(await owner('sp2'), 'h3');
    // A stored template only some hosts have: only those.
    const tdir = h1.t.path('tpl-src');
    fs.mkdirSync(`${tdir}/etc`, { recursive: true });
    fs.writeFileSync(`${tdir}/etc/hostname`, 'tpl\n');
    spawnSync('tar', ['-C', tdir, '-cf', `${tdir}.tar`, '.']);
    h2.t.ok(['template', 'import', `${tdir}.tar`, 'ptpl']);
    await until(
      'h2 publishes its template',
      () => hosts().some((h) => h.host === 'h2' && h.templates?.includes('ptpl')),
      20_000,
    );
    h1.t.ok(['build', 'tp1', '-m', 'template', '-q', '--host', 'auto', '--', '-t', 'ptpl']);
    assert.equal(await owner('tp1'), 'h2');
    const none = h1.t.jaula([
      'build',
      'tp2',
      '-m',
      'template',
      '-q',
      '--host',
      'zone=z1',
      '--',
      '-t',
      'ptpl',
    ]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /h1 has no template "ptpl"/);
    // A network only h3 has: there.
    makeNetwork(h3.t, 'pn1');
    await until(
      'h3 publishes its network',
      () => hosts().some((h) => h.host === 'h3' && h.networks?.includes('pn1')),
      20_000,
    );
    h1.t.ok(['build', 'nw1', '-m', 'skeleton', '-q', '--host', 'auto', '--interface', 'eth0=pn1:auto']);
    assert.equal(await owner('nw1'), 'h3');
    for (const g of ['sp1', 'sp2', 'tp1', 'nw1']) h1.t.ok(['delete', g]);
  });

  it("starts and stops guests across the fleet by their marks, or one host's, each through its host", async () => {
    const sleeperOn = (name: string, host: string, mark: string): void => {
      h1.t.ok([
        ...['build', name, '-m', 'skeleton', '-q', '--mark', mark, '--host', host],
        ...['--initstyle', 'cmd', '--cmd', 'sleep 100000'],
      ]);
    };
    sleeperOn('fb1', 'h2', 'web');
    sleeperOn('fb2', 'h3', 'web');
    sleeperOn('fb3', 'h3', 'db');
    // (selected from what each host published: at its next renewal)
    await until(
      'fb1-3 published',
      () => fleetList(h1).filter((g) => /^fb/.test(g.name) && g.state === 'stopped').length === 3,
    );
    const started = JSON.parse(h1.t.ok(['start', '--fleet', '--mark', 'web', '--format', 'json']).stdout) as {
      name: string;
      ok: boolean;
    }[];
    assert.deepEqual(
      started.map((r) => [r.name, r.ok]),
      [
        ['fb1', true],
        ['fb2', true],
      ],
    );
    assert.deepEqual(
      [status(h2, 'fb1'), status(h3, 'fb2'), status(h3, 'fb3')],
      ['running', 'running', 'stopped'],
    );
    // One host's: h3's web guests only.
    h1.t.ok(['stop', '--host', 'h3', '--mark', 'web', '--kill']);
    assert.deepEqual([status(h2, 'fb1'), status(h3, 'fb2')], ['running', 'stopped']);
    const none = h1.t.jaula(['stop', '--fleet', 'nosuch']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /The fleet has no guest "nosuch"/);
    h1.t.ok(['stop', '--fleet', 'fb1', '--kill']);
    assert.equal(status(h2, 'fb1'), 'stopped');
    for (const g of ['fb1', 'fb2', 'fb3']) h1.t.ok(['delete', g]);
  });

  it('moves guests from the dashboard as jobs where jaulad allows moves, and offers none where not', async () => {
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
      const page = await browser.newPage({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
      page.setDefaultTimeout(60_000);
      const token = (h: FleetHost): string => fs.readFileSync(h.tokenFile, 'utf8').trim();
      // h2 without --allow-moves: no Move or Drain, the page says why, and the API refuses.
      sleeper(h2, 'dm0');
      await page.goto(`https://${h2.address}:7443/#token=${token(h2)}`);
      await page.locator('#rows .row[data-name="dm0"]').waitFor();
      await page.locator('#hosts-note', { hasText: '--allow-moves' }).waitFor();
      assert.equal(await page.locator('button[data-action="move"], button[data-action="drain"]').count(), 0);
      const refused = await page.request.post(`https://${h2.address}:7443/v1/guests/dm0/migrate`, {
        headers: { authorization: `Bearer ${token(h2)}` },
        data: { remote: 'h1' },
      });
      assert.equal(refused.status(), 403);
      assert.match(await refused.text(), /start it with --allow-moves/);
      h2.t.ok(['delete', 'dm0']);

      // h1 with --allow-moves: Move a running guest from the guest list, then Drain the host.
      for (const g of ['dm1', 'dm2', 'dm3']) sleeper(h1, g);
      h1.t.ok(['start', 'dm1']);
      h1.t.ok(['start', 'dm2']);
      await page.goto(`https://${h1.address}:7443/#token=${token(h1)}`);
      await page.locator('#rows .row[data-name="dm1"][data-status="running"]').waitFor();
      await page.locator('#rows .row[data-name="dm1"] button[data-action="move"]').click();
      await page.locator('#move-to').selectOption('h3');
      await page.locator('#move-mode').selectOption('sync');
      await page.click('#confirm-ok');
      await page.locator('#job-list .job[data-op="migrateGuest"][data-state="succeeded"]').waitFor();
      await page.locator('#rows .row[data-name="dm1"]').waitFor({ state: 'detached' });
      assert.equal(status(h3, 'dm1'), 'running');
      assert.equal(await owner('dm1'), 'h3');

      const drain = page.locator('#hosts-table tr[data-host="h1"] button[data-action="drain"]');
      await drain.waitFor();
      await drain.click();
      await page.locator('#move-mode').selectOption('cold');
      await page.click('#confirm-ok');
      const job = page.locator('#job-list .job[data-op="fleetDrain"]');
      await job.and(page.locator('[data-state="succeeded"]')).waitFor({ timeout: 120_000 });
      assert.equal(await page.locator('#rows .row').count(), 0, 'the drained host lists no guest');
      assert.deepEqual(JSON.parse(h1.t.ok(['list', '--format', 'json']).stdout), []);
      for (const g of ['dm2', 'dm3']) {
        const to = await owner(g);
        assert.ok(to === 'h2' || to === 'h3', `${g} went to ${to}`);
        assert.equal(status(to === 'h2' ? h2 : h3, g), g === 'dm2' ? 'running' : 'stopped');
        (to === 'h2' ? h2 : h3).t.ok(['delete', '--force', g]);
      }
      h3.t.ok(['delete', '--force', 'dm1']);
    } finally {
      await browser?.close();
    }
  });
});
