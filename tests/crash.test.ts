/**
 * Crash-proof supervision: jaulad is killed with SIGKILL while it builds, starts or stops a
 * guest, at moments spread over the operation (from before it begins to after it ends), ten
 * times each. After every kill a new jaulad reconciles, and then every guest must be
 * consistent: its state true (running with a live init that answers, or stopped with nothing
 * left of its run), its files intact, a half-built guest gone entirely or complete. At the end
 * nothing is left behind. (Clone, hashify and template export: tests/crash-storage.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ReconcileReport } from '../src/api/types.js';
import { skeletonTemplate, TestRoot, type GuestStatus, type Jaulad } from './helpers.js';

const ROUNDS = 10;
const t = new TestRoot('jaula-crash-');
let d: Jaulad;
/** How each interrupted operation was found by the next jaulad, per operation. */
const outcomes: Record<string, string[]> = { start: [], stop: [], build: [] };

async function freshDaemon(): Promise<ReconcileReport> {
  d = t.daemon(['--no-autostart']);
  await d.ready({ reconciled: true });
  const info = (await d.request('GET', '/v1/info')).json as { daemon: { reconcile: ReconcileReport } };
  return info.daemon.reconcile;
}

/** Send a request, and kill jaulad -9 `ms` later, whatever it is doing. */
async function killDuring(method: string, path: string, body: unknown, ms: number): Promise<void> {
  const answer = d.request(method, path, body).catch(() => undefined);
  await new Promise((r) => setTimeout(r, ms));
  await d.kill9();
  await answer;
}

/**
 * How long the operation takes when nothing interrupts it, the median of three runs (`before`
 * prepares each): the kills are spread over that time.
 */
async function duration(fn: (i: number) => Promise<unknown>, before: () => void): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < 3; i++) {
    before();
    const t0 = Date.now();
    await fn(i);
    ms.push(Date.now() - t0);
  }
  return ms.sort((a, b) => a - b)[1] as number;
}

const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** The guest's files that no operation may change: checksums by path. */
function fingerprint(name: string): Record<string, string> {
  const root = t.guestRoot(name);
  const out: Record<string, string> = {};
  for (const f of ['bin/busybox', 'etc/passwd', 'etc/group', 'root/marker'])
    out[f] = fs.existsSync(join(root, f)) ? sha(join(root, f)) : 'missing';
  out['config'] = sha(t.path('etc/jaula/guests', name, 'config.toml'));
  return out;
}

/** A guest's state is true and its files are intact. */
function assertConsistent(name: string, print: Record<string, string>, round: string): GuestStatus {
  const st = t.assertConsistent(name, round);
  assert.deepEqual(fingerprint(name), print, `${round}: the files of ${name} are intact`);
  return st;
}

function prepare(name: string): Record<string, string> {
  t.buildSleeper(name);
  fs.writeFileSync(join(t.guestRoot(name), 'root/marker'), `${name} ${Date.now()}\n`);
  return fingerprint(name);
}

before(async () => {
  await freshDaemon();
});

after(async () => {
  await d?.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

describe('kill -9 jaulad', () => {
  it(`during start, ${ROUNDS} times: the start is rolled back or the guest runs`, async () => {
    const print = prepare('cs');
    const ms = await duration(
      () => d.request('POST', '/v1/guests/cs/start'),
      () => t.jaula(['stop', 'cs', '--kill']),
    );
    t.ok(['stop', 'cs', '--kill']);
    for (let i = 0; i < ROUNDS; i++) {
      const round = `start round ${i}`;
      await killDuring('POST', '/v1/guests/cs/start', undefined, (ms * 1.3 * i) / ROUNDS);
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      const st = assertConsistent('cs', print, round);
      outcomes['start']?.push(rep.rolledBack.includes('cs') ? 'rolled back' : st.status);
      if (st.status === 'running') t.ok(['stop', 'cs', '--kill']);
    }
    assert.ok(
      outcomes['start']?.includes('rolled back'),
      `some kills interrupted a start: ${outcomes['start']}`,
    );
  });

  it(`during stop, ${ROUNDS} times: the stop is completed or the guest still runs`, async () => {
    const print = prepare('ct');
    const ms = await duration(
      () => d.request('POST', '/v1/guests/ct/stop', {}),
      () => t.ok(['start', 'ct']),
    );
    for (let i = 0; i < ROUNDS; i++) {
      const round = `stop round ${i}`;
      t.ok(['start', 'ct']);
      await killDuring('POST', '/v1/guests/ct/stop', {}, (ms * 1.3 * i) / ROUNDS);
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      const st = assertConsistent('ct', print, round);
      outcomes['stop']?.push(
        rep.completedStops.includes('ct')
          ? 'completed'
          : rep.settled.includes('ct')
            ? 'settled'
            : `${st.status}${st.lastExit ? ` (${st.lastExit.reason})` : ''}`,
      );
      if (st.status === 'running') t.ok(['stop', 'ct', '--kill']);
      else assert.equal(st.lastExit?.reason, 'stopped', `${round}: the reason is recorded`);
    }
    assert.ok(
      outcomes['stop']?.some((o) => o !== 'running'),
      `some kills came after the stop began: ${outcomes['stop']}`,
    );
  });

  it(`during build, ${ROUNDS} times: the guest is gone entirely or complete`, async () => {
    // A template with some bulk, so that unpacking takes a while.
    const src = skeletonTemplate(t);
    const dir = t.path('tpl');
    fs.mkdirSync(join(dir, 'data'), { recursive: true });
    spawnTar(['-C', dir, '-xf', src]);
    for (let i = 0; i < 12; i++) fs.writeFileSync(join(dir, 'data', `f${i}`), Buffer.alloc(2 << 20, i + 1));
    const tpl = t.path('crash.tar');
    spawnTar(['-C', dir, '-cf', tpl, '.']);
    const body = (name: string) => ({
      name,
      method: 'template',
      methodArgs: ['-t', tpl],
      initstyle: 'cmd',
      cmd: ['/bin/sleep', '100000'],
    });
    const wait = async (id: string): Promise<void> => {
      for (;;) {
        const j = (await d.request('GET', `/v1/jobs/${id}`)).json as { state: string };
        if (j.state !== 'running') return;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const ms = await duration(
      async (i) => {
        const j = (await d.request('POST', '/v1/guests', body(`bx${i}`))).json as { id: string };
        await wait(j.id);
      },
      () => {},
    );
    const want = sha(join(dir, 'data', 'f11'));
    for (let i = 0; i < ROUNDS; i++) {
      const round = `build round ${i}`;
      const name = `bk${i}`;
      await killDuring('POST', '/v1/guests', body(name), (ms * 1.3 * i) / ROUNDS);
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      const exists = t.jaula(['status', name, '--format', 'json']);
      if (exists.code !== 4) {
        // Complete: every file of the template, a guest that starts.
        assert.equal(sha(join(t.guestRoot(name), 'data/f11')), want, `${round}: the last file is whole`);
        t.ok(['start', name]);
        assert.equal(t.jaula(['exec', name, '--', 'cat', '/etc/hostname']).stdout, `${name}\n`);
        t.ok(['delete', name, '--force']);
        outcomes['build']?.push('complete');
      } else {
        for (const p of [t.path('etc/jaula/guests', name), t.path('var/lib/jaula/guests', name)])
          assert.equal(fs.existsSync(p), false, `${round}: ${p} is removed`);
        outcomes['build']?.push(rep.staleBuilds.includes(name) ? 'removed' : 'not begun');
      }
    }
    assert.ok(outcomes['build']?.includes('removed'), `some kills interrupted a build: ${outcomes['build']}`);
  });

  it('left every guest consistent and nothing behind once they stop', (ctx) => {
    ctx.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
    const names = (JSON.parse(t.ok(['list', '--format', 'json']).stdout) as { name: string }[]).map(
      (g) => g.name,
    );
    assert.deepEqual(names.sort(), ['bx0', 'bx1', 'bx2', 'cs', 'ct']);
    t.ok(['stop', '--all']);
    for (const n of names) assert.deepEqual(t.runLeftovers(n), [], n);
    assert.deepEqual(t.leftovers(), []);
  });
});

function spawnTar(args: string[]): void {
  const r = spawnSync('tar', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')}: ${r.stderr}`);
}
