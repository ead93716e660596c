/**
 * Scheduled snapshots and expiry (Incus' snapshots.schedule, snapshots.expiry, snapshots.pattern,
 * snapshots.schedule.stopped; `snapshot create --expiry`) on real guests. jaulad's tick is driven
 * in this process with the times the test chooses (runSnapshotTick(ctx, now)): nothing waits for
 * a minute to pass, and nothing asserts how long anything took.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needRoot, TestRoot } from './helpers.js';

interface Snap {
  name: string;
  running: boolean;
  expires?: string;
  scheduled?: boolean;
}

type Tick = typeof import('../src/core/snapshot-schedule.js').runSnapshotTick;

/** Local time, as schedules are read. */
const at = (y: number, mo: number, d: number, h: number, mi: number): Date => new Date(y, mo - 1, d, h, mi);

describe('scheduled snapshots and their expiry', { skip: needRoot }, () => {
  const t = new TestRoot('jaula-sched-');
  let tick: Tick;
  after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));
  before(async () => {
    // the tick runs in this process, on this root (paths() reads JAULA_ROOT once, at first use)
    process.env['JAULA_ROOT'] = t.root;
    tick = (await import('../src/core/snapshot-schedule.js')).runSnapshotTick;
    t.buildSleeper('sc');
    t.buildSleeper('bad', ['--storage', 'dir']);
  });
  const list = (g: string): Snap[] =>
    JSON.parse(t.ok(['snapshot', 'list', g, '--format', 'json']).stdout) as Snap[];

  it('refuses a bad schedule, expiry or pattern at "jaula set", naming the key with an example', () => {
    const cases: [string, RegExp][] = [
      [
        'snapshots.schedule=0 24 * * *',
        /Invalid snapshots.schedule "0 24 \* \* \*": the hour field has 24.*e\.g\./,
      ],
      ['snapshots.schedule=@often', /unknown alias "@often"/],
      ['snapshots.expiry=2 days', /Invalid snapshots.expiry "2 days": "2" has no unit.*units: M minutes/],
      ['snapshots.pattern=a/%d', /Invalid snapshots.pattern "a\/%d"/],
      ['snapshots.schedule.stopped=maybe', /give true or false/],
      ['snapshots.keep=3', /Unknown key "snapshots.keep": the snapshot keys are snapshots.schedule, /],
    ];
    for (const [kv, re] of cases) {
      const r = t.jaula(['set', 'sc', kv]);
      assert.equal(r.code, 2, kv);
      assert.match(r.stderr, re, kv);
    }
    assert.doesNotMatch(fs.readFileSync(t.path('etc/jaula/guests/sc/config.toml'), 'utf8'), /\[snapshots\]/);
  });

  it('takes one snapshot at a matching minute of a running guest, none at others or while it is stopped', async () => {
    const r = t.ok(['set', 'sc', 'snapshots.schedule=30 3 * * *', 'snapshots.expiry=2d']);
    assert.match(
      r.stdout,
      /Scheduled snapshots of "sc" \(30 3 \* \* \*, while it runs\): the next at \d{4}-\d\d-\d\d 03:30 /,
    );
    assert.match(r.stdout, /named snap%d, kept 2d/);
    assert.match(
      fs.readFileSync(t.path('etc/jaula/guests/sc/config.toml'), 'utf8'),
      /\[snapshots\]\nschedule = "30 3 \* \* \*"/,
    );
    const stopped = await tick({}, at(2030, 1, 1, 3, 30));
    assert.deepEqual(stopped.taken, [], 'a stopped guest is skipped (snapshots.schedule.stopped is false)');
    t.ok(['start', 'sc']);
    assert.deepEqual((await tick({}, at(2030, 1, 1, 3, 29))).taken, [], 'no match at 03:29');
    const hit = await tick({}, at(2030, 1, 1, 3, 30));
    assert.deepEqual(hit.taken, [{ guest: 'sc', snapshot: 'snap0' }]);
    assert.deepEqual(hit.failed, []);
    assert.deepEqual((await tick({}, at(2030, 1, 1, 3, 31))).taken, [], 'no match at 03:31');
    const [s] = list('sc');
    assert.equal(list('sc').length, 1, 'one snapshot');
    assert.equal(s?.scheduled, true);
    assert.equal(s?.running, true, 'taken like "snapshot create": the running guest frozen for it');
    assert.equal(s?.expires, at(2030, 1, 3, 3, 30).toISOString(), 'snapshots.expiry from the tick');
    assert.equal(t.assertConsistent('sc').status, 'running');
  });

  it('catches up on the minutes a late tick missed, with one snapshot, and goes on past a guest that fails', async () => {
    t.ok(['set', 'bad', 'snapshots.schedule=30 3 * * *', 'snapshots.schedule.stopped=true']);
    const tree = t.guestRoot('bad');
    fs.renameSync(tree, `${tree}.away`);
    try {
      const r = await tick({ since: at(2030, 1, 2, 3, 28) }, at(2030, 1, 2, 3, 32));
      assert.deepEqual(r.taken, [{ guest: 'sc', snapshot: 'snap1' }], '03:30 was missed: taken now, once');
      assert.equal(r.failed.length, 1);
      assert.equal(r.failed[0]?.guest, 'bad');
      assert.match(r.failed[0]?.error ?? '', /Guest "bad" has no files/);
    } finally {
      fs.renameSync(`${tree}.away`, tree);
      t.ok(['set', 'bad', 'snapshots.schedule=']);
    }
    const again = await tick({ since: at(2030, 1, 2, 3, 32) }, at(2030, 1, 2, 3, 33));
    assert.deepEqual(again.taken, [], 'not twice');
  });

  it('keeps a manual snapshot for ever, or until its --expiry, and deletes what expired', async () => {
    t.ok(['snapshot', 'create', 'sc', 'kept']);
    const c = t.ok(['snapshot', 'create', 'sc', 'brief', '--expiry', '1w']);
    assert.match(c.stdout, /; it expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\./);
    const bad = t.jaula(['snapshot', 'create', 'sc', 'x', '--expiry', '7']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid --expiry "7": "7" has no unit/);
    const table = t.ok(['snapshot', 'list', 'sc']).stdout;
    assert.match(table, /EXPIRES/);
    assert.match(table, /^kept .* never$/m);
    const utc = at(2030, 1, 3, 3, 30).toISOString().replace('T', ' ').replace('.000Z', 'Z');
    assert.ok(
      table.split('\n').some((l) => /^snap0 .*scheduled, running /.test(l) && l.endsWith(utc)),
      table,
    );
    assert.match(
      table,
      /^Schedule: 30 3 \* \* \*, the next at .* 03:30 .*, kept 2d \(taken by jaulad while the guest runs\)$/m,
    );
    // snap0 expires at 01-03 03:30, snap1 at 01-04 03:32; "brief" a week from today
    const r = await tick({}, at(2030, 1, 3, 3, 31));
    assert.deepEqual(r.expired.map((e) => e.snapshot).sort(), ['brief', 'snap0']);
    assert.deepEqual(r.taken, []);
    assert.deepEqual(
      list('sc')
        .map((s) => s.name)
        .sort(),
      ['kept', 'snap1'],
    );
    assert.match(
      fs.readFileSync(t.path('var/log/jaula/sc.log'), 'utf8'),
      /snapshot "snap0" deleted \(expired at /,
    );
  });

  it('names scheduled snapshots by snapshots.pattern', async () => {
    t.ok(['set', 'sc', 'snapshots.pattern=auto-{YYYY}{MM}{DD}-{hh}{mm}']);
    const r = await tick({}, at(2030, 1, 5, 3, 30));
    assert.deepEqual(r.taken, [{ guest: 'sc', snapshot: 'auto-20300105-0330' }]);
    t.ok(['set', 'sc', 'snapshots.schedule=', 'snapshots.pattern=', 'snapshots.expiry=']);
    assert.deepEqual((await tick({}, at(2030, 1, 6, 3, 30))).taken, [], 'no schedule: nothing taken');
    assert.doesNotMatch(fs.readFileSync(t.path('etc/jaula/guests/sc/config.toml'), 'utf8'), /\[snapshots\]/);
    t.ok(['stop', 'sc']);
  });

  it('deletes expired snapshots when jaulad starts', async () => {
    t.ok(['snapshot', 'create', 'bad', 'old', '--expiry', '1H']);
    const meta = join(t.path('var/lib/jaula/guests/bad/snapshots/old'), 'meta.json');
    const m = JSON.parse(fs.readFileSync(meta, 'utf8')) as Snap;
    fs.writeFileSync(meta, JSON.stringify({ ...m, expires: new Date(Date.now() - 60_000).toISOString() }));
    const d = t.daemon();
    await d.ready();
    await t.until('jaulad deletes the expired snapshot', () => !fs.existsSync(meta));
    await t.until('jaulad says so', () => /snapshot "old" of bad expired \(at .*\): deleted/.test(d.log));
    await d.stop();
  });
});
