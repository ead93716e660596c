/**
 * Crash-proof storage jobs: jaulad is killed with SIGKILL while it clones a guest, exports a
 * template or runs hashify, at moments spread over the operation (from before it begins to
 * after it ends), ten times each. After every kill a new jaulad reconciles, and then: the
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
import { TestRoot, type Jaulad } from './helpers.js';

const ROUNDS = 10;
const t = new TestRoot('jaula-crashst-');
let d: Jaulad;
const outcomes: Record<string, string[]> = { clone: [], export: [], hashify: [] };
const SOURCES = ['sa', 'sb'];

async function freshDaemon(): Promise<ReconcileReport> {
  d = t.daemon(['--no-autostart']);
  await d.ready({ reconciled: true });
  const info = (await d.request('GET', '/v1/info')).json as { daemon: { reconcile: ReconcileReport } };
  return info.daemon.reconcile;
}

/** Start a job, and kill jaulad -9 `ms` later, whatever it is doing. */
async function killDuring(path: string, body: unknown, ms: number): Promise<void> {
  const answer = d.request('POST', path, body).catch(() => undefined);
  await new Promise((r) => setTimeout(r, ms));
  await d.kill9();
  await answer;
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
    const before = manifests();
    const { ms } = await runJob('/v1/guests/sa/clone', { dst: 'cx' });
    t.ok(['delete', 'cx']);
    const want = manifest('sa').get('data/f15');
    for (let i = 0; i < ROUNDS; i++) {
      const round = `clone round ${i}`;
      const name = `ck${i}`;
      await killDuring('/v1/guests/sa/clone', { dst: name }, (ms * 1.3 * i) / ROUNDS);
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
        outcomes['clone']?.push('complete');
      } else {
        for (const p of [t.path('etc/jaula/guests', name), t.path('var/lib/jaula/guests', name)])
          assert.equal(fs.existsSync(p), false, `${round}: ${p} is removed`);
        outcomes['clone']?.push(rep.staleBuilds.includes(name) ? 'removed' : 'not begun');
      }
      assert.deepEqual(t.runLeftovers(name), [], round);
    }
    assert.ok(outcomes['clone']?.includes('removed'), `some kills interrupted a clone: ${outcomes['clone']}`);
  });

  it(`during template export, ${ROUNDS} times: the whole archive or nothing, no stray file or template`, async () => {
    await runJob('/v1/templates', { name: 'tx', guest: 'sa' });
    const out = t.path('out');
    fs.mkdirSync(out);
    const { ms } = await runJob('/v1/templates/tx/export', { file: join(out, 'base.tar.gz') });
    const members = (f: string): string[] => {
      const r = spawnSync('tar', ['-tzf', f], { encoding: 'utf8', maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, `${f} is a whole archive: ${r.stderr}`);
      return r.stdout.split('\n').sort();
    };
    const want = members(join(out, 'base.tar.gz'));
    assert.ok(want.includes('./data/f15'));
    for (let i = 0; i < ROUNDS; i++) {
      const round = `export round ${i}`;
      const file = join(out, `e${i}.tar.gz`);
      await killDuring('/v1/templates/tx/export', { file }, (ms * 1.3 * i) / ROUNDS);
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      assert.deepEqual(
        fs.readdirSync(out).filter((n) => n.includes('.tmp-')),
        [],
        `${round}: no temporary archive is left`,
      );
      if (fs.existsSync(file)) {
        assert.deepEqual(members(file), want, `${round}: the archive is whole`);
        outcomes['export']?.push('complete');
      } else outcomes['export']?.push(rep.storage.length ? 'removed' : 'not begun');
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
    assert.ok(
      outcomes['export']?.includes('removed'),
      `some kills interrupted an export: ${outcomes['export']}`,
    );
    t.ok(['template', 'delete', 'tx']);
  });

  it(`during hashify, ${ROUNDS} times: every file as before, and the next hashify finishes`, async () => {
    addTwins('warm', 6, 1);
    const { ms } = await runJob('/v1/hashify', { guests: SOURCES });
    for (let i = 0; i < ROUNDS; i++) {
      const round = `hashify round ${i}`;
      addTwins(`r${i}`, 6, 1);
      const before = manifests();
      await killDuring('/v1/hashify', { guests: SOURCES }, (ms * 1.3 * i) / ROUNDS);
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      assertGuestsConsistent(round);
      assertSame(before, `${round}, after the kill`);
      const dry = await runJob('/v1/hashify', { guests: SOURCES, dryRun: true });
      await runJob('/v1/hashify', { guests: SOURCES });
      assertSame(before, `${round}, after the next hashify`);
      const left = (dry.result as { unified: { files: number } } | undefined)?.unified.files;
      outcomes['hashify']?.push(left === 0 ? 'done before the kill' : `${left ?? '?'} files left`);
    }
    // Every twin is shared now: the objects hold one copy, each guest's unified layer links it.
    const du = (await d.request('GET', '/v1/du?names=sa,sb')).json as { guests: { sharedBytes: number }[] };
    for (const g of du.guests)
      assert.ok(g.sharedBytes >= (16 * 2 + 6 + 6 * ROUNDS) << 20, JSON.stringify(du));
    assert.ok(
      outcomes['hashify']?.some((o) => o !== 'done before the kill'),
      `some kills interrupted a hashify: ${outcomes['hashify']}`,
    );
  });

  it('left every guest consistent and nothing behind', (ctx) => {
    ctx.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
    const names = (JSON.parse(t.ok(['list', '--format', 'json']).stdout) as { name: string }[]).map(
      (g) => g.name,
    );
    assert.deepEqual(names.sort(), SOURCES);
    for (const n of names) assert.deepEqual(t.runLeftovers(n), [], n);
    assert.deepEqual(t.leftovers(), []);
  });
});
