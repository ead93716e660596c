/**
 * Crash-proof storage jobs: jaulad is killed with SIGKILL while it clones a guest, exports a
 * template or runs hashify, five times each, every kill aimed at one phase of the job (its
 * JAULA_TRACE marks, timed by an uninterrupted run of the same work in the same round:
 * tests/crashkit.ts; every other round holds jaulad at one of the marks and kills it there), and
 * the phase it really interrupted recorded; the kills must land in at least three distinct
 * phases of each job. After every kill a new jaulad reconciles, and then: the
 * source guests' files are intact (checksums of everything they see), a half-made clone is gone
 * entirely or complete, an export leaves either the whole archive or nothing at its path (and
 * no temporary file, no stray template), and after a killed hashify every guest sees every file
 * as before and the next hashify finishes. At the end nothing is left behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ReconcileReport } from '../src/api/types.js';
import { isDir, isReg, walkTree } from '../src/os/walk.js';
import {
  Campaign,
  marksOf,
  phaseReached,
  plan,
  timedRound,
  timelineOf,
  waitStopped,
  type Timeline,
} from './crashkit.js';
import { TestRoot, type Jaulad } from './helpers.js';

const ROUNDS = 5;
/** Distinct phases the kills of each job must land in. */
const SPREAD = 3;
const t = new TestRoot('jaula-crashst-');
let d: Jaulad;
const campaigns: Campaign[] = [];
const SOURCES = ['sa', 'sb'];
/** Holds jaulad at the mark it names (JAULA_TRACE_STOP): written for one killed run. */
const STOP_FILE = t.path('trace-stop');

async function freshDaemon(): Promise<ReconcileReport> {
  d = t.daemon(['--no-autostart'], { JAULA_TRACE: '1', JAULA_TRACE_STOP: STOP_FILE });
  await d.ready({ reconciled: true });
  const info = (await d.request('GET', '/v1/info')).json as { daemon: { reconcile: ReconcileReport } };
  return info.daemon.reconcile;
}

/**
 * Start a job, and kill jaulad -9 as `how` says: `ms` later, or once it holds at the mark
 * `stopAt`. Returns the phase it was in (its marks by then).
 */
async function killDuring(
  path: string,
  body: unknown,
  how: { ms: number; stopAt?: string },
  prefix: string,
): Promise<string> {
  const from = d.traces.length;
  if (how.stopAt) fs.writeFileSync(STOP_FILE, how.stopAt);
  const answer = d.request('POST', path, body).catch(() => undefined);
  if (how.stopAt) await waitStopped(d.pid);
  else await new Promise((r) => setTimeout(r, Math.max(0, how.ms)));
  await d.kill9();
  fs.rmSync(STOP_FILE, { force: true });
  await answer;
  return phaseReached(marksOf(d.traces, from, [prefix]));
}

/** Run a job to its end, uninterrupted (it must succeed): its timeline and result. */
async function calibrate(
  path: string,
  body: unknown,
  prefix: string,
): Promise<{ tl: Timeline; result: unknown }> {
  const from = d.traces.length;
  const t0 = performance.now();
  const { result } = await runJob(path, body);
  return { tl: timelineOf(marksOf(d.traces, from, [prefix]), t0, performance.now()), result };
}

interface Job {
  id: string;
  state: string;
  result?: unknown;
  error?: { message: string };
}

/** Run a job to its end; it must succeed. Returns how long it took and its result. */
async function runJob(path: string, body: unknown): Promise<{ ms: number; result: unknown }> {
  const t0 = Date.now();
  const r = await d.request('POST', path, body);
  assert.equal(r.status, 202, r.text);
  const id = (r.json as Job).id;
  for (;;) {
    const j = (await d.request('GET', `/v1/jobs/${id}`)).json as Job;
    if (j.state !== 'running') {
      assert.equal(j.state, 'succeeded', JSON.stringify(j));
      return { ms: Date.now() - t0, result: j.result };
    }
    await new Promise((res) => setTimeout(res, 20));
  }
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * Everything a stopped overlay guest sees, by path: mode, owner, size, mtime and content, read
 * through a read-only overlay of its own layers (upper over hashify's unified layer).
 */
function manifest(g: string): Map<string, string> {
  const dir = (sub: string): string => t.path('var/lib/jaula/guests', g, sub);
  const mnt = t.path(`view-${g}`);
  fs.mkdirSync(mnt, { recursive: true });
  const lower = fs.existsSync(dir('unified')) ? `${dir('upper')}:${dir('unified')}` : dir('upper');
  const m = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lower}`, mnt], {
    encoding: 'utf8',
  });
  assert.equal(m.status, 0, m.stderr);
  try {
    const out = new Map<string, string>();
    for (const e of walkTree(mnt)) {
      const base = `${e.mode.toString(8)} ${e.uid}:${e.gid}`;
      if (isDir(e)) out.set(e.path, base);
      else
        out.set(
          e.path,
          `${base} ${e.size} ${e.mtimeSec}.${e.mtimeNsec} ${
            isReg(e) ? sha(fs.readFileSync(join(mnt, e.path))) : fs.readlinkSync(join(mnt, e.path))
          }`,
        );
    }
    return out;
  } finally {
    spawnSync('umount', [mnt]);
  }
}

function manifests(): Map<string, Map<string, string>> {
  return new Map(SOURCES.map((g) => [g, manifest(g)]));
}

function assertSame(before: Map<string, Map<string, string>>, when: string): void {
  for (const [g, m] of before) {
    const now = manifest(g);
    const diff = [...new Set([...m.keys(), ...now.keys()])].filter((p) => m.get(p) !== now.get(p));
    assert.deepEqual(diff, [], `${when}: guest ${g} sees every file as before`);
  }
}

/** The same random files in every source guest (so that hashify has work): `n` of `mib` MiB. */
function addTwins(dir: string, n: number, mib: number): void {
  for (let i = 0; i < n; i++) {
    const data = randomBytes(mib << 20);
    for (const g of SOURCES) {
      const p = t.path('var/lib/jaula/guests', g, 'upper', dir);
      fs.mkdirSync(p, { recursive: true });
      fs.writeFileSync(join(p, `f${i}`), data);
      fs.utimesSync(join(p, `f${i}`), 1_700_000_000, 1_700_000_000);
    }
  }
}

function assertGuestsConsistent(round: string): void {
  for (const g of SOURCES) assert.equal(t.assertConsistent(g, round).status, 'stopped');
}

before(async () => {
  await freshDaemon();
  for (const g of SOURCES) t.buildSleeper(g);
  addTwins('data', 16, 2);
});

after(async () => {
  await d?.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

describe('kill -9 jaulad', () => {
  it(`during clone, ${ROUNDS} times: the clone is gone entirely or complete, the source intact`, async () => {
    const c = new Campaign('clone');
    campaigns.push(c);
    const before = manifests();
    const want = manifest('sa').get('data/f15');
    let tl: Timeline | undefined;
    for (let i = 0; i < ROUNDS; i++) {
      const round = `clone round ${i}`;
      if (timedRound(i) || !tl) {
        tl = (await calibrate('/v1/guests/sa/clone', { dst: `cx${i}` }, 'clone:')).tl;
        t.ok(['delete', `cx${i}`]);
      }
      const name = `ck${i}`;
      const aim = plan(tl, i, ROUNDS);
      const landed = await killDuring('/v1/guests/sa/clone', { dst: name }, aim, 'clone:');
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      assertGuestsConsistent(round);
      assertSame(before, round);
      if (t.jaula(['status', name, '--format', 'json']).code !== 4) {
        assert.equal(t.assertConsistent(name, round).status, 'stopped');
        const m = manifest(name);
        assert.equal(m.get('data/f15'), want, `${round}: the clone's last file is whole`);
        assert.equal(
          fs.readFileSync(t.path('etc/jaula/guests', name, 'config.toml'), 'utf8').includes('clone'),
          true,
        );
        t.ok(['delete', name]);
        c.add(aim.aimed, landed, 'complete');
      } else {
        for (const p of [t.path('etc/jaula/guests', name), t.path('var/lib/jaula/guests', name)])
          assert.equal(fs.existsSync(p), false, `${round}: ${p} is removed`);
        c.add(aim.aimed, landed, rep.staleBuilds.includes(name) ? 'removed' : 'not begun');
      }
      assert.deepEqual(t.runLeftovers(name), [], round);
    }
    c.assertSpread(SPREAD);
    assert.ok(
      c.rounds.some((r) => r.outcome === 'removed'),
      `some kills interrupted a clone: ${c.summary()}`,
    );
  });

  it(`during template export, ${ROUNDS} times: the whole archive or nothing, no stray file or template`, async () => {
    const c = new Campaign('template export');
    campaigns.push(c);
    await runJob('/v1/templates', { name: 'tx', guest: 'sa' });
    const out = t.path('out');
    fs.mkdirSync(out);
    const members = (f: string): string[] => {
      const r = spawnSync('tar', ['-tzf', f], { encoding: 'utf8', maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, `${f} is a whole archive: ${r.stderr}`);
      return r.stdout.split('\n').sort();
    };
    let want: string[] | undefined;
    let tl: Timeline | undefined;
    for (let i = 0; i < ROUNDS; i++) {
      const round = `export round ${i}`;
      if (timedRound(i) || !tl) {
        const whole = join(out, `whole${i}.tar.gz`);
        tl = (await calibrate('/v1/templates/tx/export', { file: whole }, 'export:')).tl;
        want ??= members(whole);
        assert.ok(want.includes('./data/f15'));
        fs.rmSync(whole);
      }
      const file = join(out, `e${i}.tar.gz`);
      const aim = plan(tl, i, ROUNDS);
      const landed = await killDuring('/v1/templates/tx/export', { file }, aim, 'export:');
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      assert.deepEqual(
        fs.readdirSync(out).filter((n) => n.includes('.tmp-')),
        [],
        `${round}: no temporary archive is left`,
      );
      if (fs.existsSync(file)) {
        assert.deepEqual(members(file), want, `${round}: the archive is whole`);
        c.add(aim.aimed, landed, 'complete');
      } else c.add(aim.aimed, landed, rep.storage.length ? 'removed' : 'not begun');
      const tpls = JSON.parse(t.ok(['template', 'list', '--format', 'json']).stdout) as { name: string }[];
      assert.deepEqual(
        tpls.map((x) => x.name),
        ['tx'],
        `${round}: no stray template`,
      );
      assert.deepEqual(
        fs.readdirSync(t.path('var/lib/jaula/templates')).filter((n) => n !== 'tx' && n !== '.exports'),
        [],
        round,
      );
      assertGuestsConsistent(round);
    }
    c.assertSpread(SPREAD);
    assert.ok(
      c.rounds.some((r) => r.outcome === 'removed'),
      `some kills interrupted an export: ${c.summary()}`,
    );
    t.ok(['template', 'delete', 'tx']);
  });

  it(`during hashify, ${ROUNDS} times: every file as before, and the next hashify finishes`, async () => {
    const c = new Campaign('hashify');
    campaigns.push(c);
    addTwins('warm', 6, 1);
    await runJob('/v1/hashify', { guests: SOURCES });
    let tl: Timeline | undefined;
    for (let i = 0; i < ROUNDS; i++) {
      const round = `hashify round ${i}`;
      // Calibrated on the same work as the killed run: as many new twins, of the same size.
      if (timedRound(i) || !tl) {
        addTwins(`c${i}`, 6, 1);
        tl = (await calibrate('/v1/hashify', { guests: SOURCES }, 'hashify:')).tl;
      }
      addTwins(`r${i}`, 6, 1);
      const before = manifests();
      const aim = plan(tl, i, ROUNDS);
      const landed = await killDuring('/v1/hashify', { guests: SOURCES }, aim, 'hashify:');
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      assertGuestsConsistent(round);
      assertSame(before, `${round}, after the kill`);
      const dry = await runJob('/v1/hashify', { guests: SOURCES, dryRun: true });
      await runJob('/v1/hashify', { guests: SOURCES });
      assertSame(before, `${round}, after the next hashify`);
      const left = (dry.result as { unified: { files: number } } | undefined)?.unified.files;
      c.add(aim.aimed, landed, left === 0 ? 'done before the kill' : `${left ?? '?'} files left`);
    }
    // Every twin is shared now: the objects hold one copy, each guest's unified layer links it.
    const du = (await d.request('GET', '/v1/du?names=sa,sb')).json as { guests: { sharedBytes: number }[] };
    for (const g of du.guests)
      assert.ok(
        g.sharedBytes >= (16 * 2 + 6 + 6 * Math.ceil(ROUNDS / 3) + 6 * ROUNDS) << 20,
        JSON.stringify(du),
      );
    c.assertSpread(SPREAD);
    assert.ok(
      c.rounds.some((r) => r.outcome !== 'done before the kill'),
      `some kills interrupted a hashify: ${c.summary()}`,
    );
  });

  it('left every guest consistent and nothing behind', (ctx) => {
    for (const c of campaigns) ctx.diagnostic(c.summary());
    const names = (JSON.parse(t.ok(['list', '--format', 'json']).stdout) as { name: string }[]).map(
      (g) => g.name,
    );
    assert.deepEqual(names.sort(), SOURCES);
    for (const n of names) assert.deepEqual(t.runLeftovers(n), [], n);
    assert.deepEqual(t.leftovers(), []);
  });
});
