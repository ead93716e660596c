/**
 * Crash-proof supervision: jaulad is killed with SIGKILL while it builds, starts or stops a
 * guest, five times each, every kill aimed at one phase of the operation (its JAULA_TRACE marks,
 * timed by an uninterrupted run in the same round, or holding the process at one of them:
 * tests/crashkit.ts), and the phase it really
 * interrupted recorded; the kills must land in at least three distinct phases of each
 * operation. After every kill a new jaulad reconciles, and then every guest must be
 * consistent: its state true (running with a live init that answers, or stopped with nothing
 * left of its run), its files intact, a half-built guest gone entirely or complete. The jaula
 * CLI (no jaulad: it starts and stops in-process) and a guest's supervisor are killed during
 * start and stop the same way. At the end nothing is left behind. (Clone, hashify and template
 * export: tests/crash-storage.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ReconcileReport } from '../src/api/types.js';
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
import {
  collectTraces,
  jaulaBin,
  skeletonTemplate,
  TestRoot,
  type GuestStatus,
  type Jaulad,
  type TraceMark,
} from './helpers.js';

const ROUNDS = 5;
/** Rounds of the CLI and supervisor campaigns. */
const SHORT_ROUNDS = 4;
/** Rounds of the supervisor killed during a start (timed: it exists only from the bundle on). */
const SUPERVISOR_START_ROUNDS = 3;
/** Distinct phases the kills of each operation must land in. */
const SPREAD = 3;
const t = new TestRoot('jaula-crash-');
let d: Jaulad;
const campaigns: Campaign[] = [];
/** Holds a traced process at the mark it names (JAULA_TRACE_STOP): written for one killed run. */
const STOP_FILE = t.path('trace-stop');
const TRACE = { JAULA_TRACE: '1', JAULA_TRACE_STOP: STOP_FILE };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function freshDaemon(): Promise<ReconcileReport> {
  d = t.daemon(['--no-autostart'], TRACE);
  await d.ready({ reconciled: true });
  const info = (await d.request('GET', '/v1/info')).json as { daemon: { reconcile: ReconcileReport } };
  return info.daemon.reconcile;
}

/** One uninterrupted run of a jaulad operation (`run` resolves when it has ended), as a timeline. */
async function calibrate(prefixes: string[], run: () => Promise<unknown>): Promise<Timeline> {
  const from = d.traces.length;
  const t0 = performance.now();
  await run();
  const t1 = performance.now();
  return timelineOf(marksOf(d.traces, from, prefixes), t0, t1);
}

/**
 * Ask jaulad for `method path` and kill it -9 as `how` says: `ms` later, or once it holds at the
 * mark `stopAt`. Returns the phase it was in (its marks by then).
 */
async function killDuring(
  method: string,
  path: string,
  body: unknown,
  how: { ms: number; stopAt?: string },
  prefixes: string[],
): Promise<string> {
  const from = d.traces.length;
  if (how.stopAt) fs.writeFileSync(STOP_FILE, how.stopAt);
  const answer = d.request(method, path, body).catch(() => undefined);
  if (how.stopAt) await waitStopped(d.pid);
  else await sleep(how.ms);
  await d.kill9();
  fs.rmSync(STOP_FILE, { force: true });
  await answer;
  return phaseReached(marksOf(d.traces, from, prefixes));
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

/** The jaula CLI, in-process (no jaulad), traced; `done` resolves with its exit code. */
function cli(args: string[]): {
  pid: number;
  marks: TraceMark[];
  done: Promise<number | null>;
  signal: (s: NodeJS.Signals) => void;
} {
  const marks: TraceMark[] = [];
  const p = spawn(process.execPath, [jaulaBin, ...args], {
    env: { ...t.env, JAULA_NO_DAEMON: '1', ...TRACE },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  collectTraces(p.stderr, marks);
  const done = new Promise<number | null>((r) => p.once('close', (code) => r(code)));
  return { pid: p.pid as number, marks, done, signal: (sig) => p.kill(sig) };
}

/** Run the CLI and kill it -9 as `how` says (`ms` after it began, or held at a mark); the phase it was in. */
async function killCli(
  args: string[],
  how: { ms: number; stopAt?: string },
  prefixes: string[],
): Promise<string> {
  if (how.stopAt) fs.writeFileSync(STOP_FILE, how.stopAt);
  const run = cli(args);
  if (how.stopAt) await waitStopped(run.pid);
  else await sleep(how.ms);
  run.signal('SIGKILL');
  await run.done;
  fs.rmSync(STOP_FILE, { force: true });
  return phaseReached(marksOf(run.marks, 0, prefixes));
}

/** One uninterrupted CLI run, as a timeline. */
async function calibrateCli(args: string[], prefixes: string[]): Promise<Timeline> {
  const t0 = performance.now();
  const c = cli(args);
  assert.equal(await c.done, 0, `jaula ${args.join(' ')}`);
  return timelineOf(marksOf(c.marks, 0, prefixes), t0, performance.now());
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
    const c = new Campaign('jaulad start');
    campaigns.push(c);
    const print = prepare('cs');
    let tl: Timeline | undefined;
    for (let i = 0; i < ROUNDS; i++) {
      const round = `start round ${i}`;
      if (timedRound(i) || !tl) {
        tl = await calibrate(['start:'], () => d.request('POST', '/v1/guests/cs/start'));
        t.ok(['stop', 'cs', '--kill']);
      }
      const aim = plan(tl, i, ROUNDS);
      const landed = await killDuring('POST', '/v1/guests/cs/start', undefined, aim, ['start:']);
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      const st = assertConsistent('cs', print, round);
      c.add(aim.aimed, landed, rep.rolledBack.includes('cs') ? 'rolled back' : st.status);
      if (st.status === 'running') t.ok(['stop', 'cs', '--kill']);
    }
    c.assertSpread(SPREAD);
    assert.ok(
      c.rounds.some((r) => r.outcome === 'rolled back'),
      `some kills interrupted a start: ${c.summary()}`,
    );
  });

  it(`during stop, ${ROUNDS} times: the stop is completed or the guest still runs`, async () => {
    const c = new Campaign('jaulad stop');
    campaigns.push(c);
    const print = prepare('ct');
    let tl: Timeline | undefined;
    for (let i = 0; i < ROUNDS; i++) {
      const round = `stop round ${i}`;
      if (timedRound(i) || !tl) {
        t.ok(['start', 'ct']);
        tl = await calibrate(['stop:'], () => d.request('POST', '/v1/guests/ct/stop', {}));
      }
      t.ok(['start', 'ct']);
      const aim = plan(tl, i, ROUNDS);
      const landed = await killDuring('POST', '/v1/guests/ct/stop', {}, aim, ['stop:']);
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      const st = assertConsistent('ct', print, round);
      c.add(
        aim.aimed,
        landed,
        rep.completedStops.includes('ct')
          ? 'completed'
          : rep.settled.includes('ct')
            ? 'settled'
            : `${st.status}${st.lastExit ? ` (${st.lastExit.reason})` : ''}`,
      );
      if (st.status === 'running') t.ok(['stop', 'ct', '--kill']);
      else assert.equal(st.lastExit?.reason, 'stopped', `${round}: the reason is recorded`);
    }
    c.assertSpread(SPREAD);
    assert.ok(
      c.rounds.some((r) => r.outcome !== 'running'),
      `some kills came after the stop began: ${c.summary()}`,
    );
  });

  it(`during build, ${ROUNDS} times: the guest is gone entirely or complete`, async () => {
    const c = new Campaign('jaulad build');
    campaigns.push(c);
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
        await sleep(20);
      }
    };
    const want = sha(join(dir, 'data', 'f11'));
    let tl: Timeline | undefined;
    for (let i = 0; i < ROUNDS; i++) {
      const round = `build round ${i}`;
      if (timedRound(i) || !tl) {
        tl = await calibrate(['build:'], async () => {
          const j = (await d.request('POST', '/v1/guests', body(`bx${i}`))).json as { id: string };
          await wait(j.id);
        });
        t.ok(['delete', `bx${i}`]);
      }
      const name = `bk${i}`;
      const aim = plan(tl, i, ROUNDS);
      const landed = await killDuring('POST', '/v1/guests', body(name), aim, ['build:']);
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      const exists = t.jaula(['status', name, '--format', 'json']);
      if (exists.code !== 4) {
        // Complete: every file of the template, a guest that starts.
        assert.equal(sha(join(t.guestRoot(name), 'data/f11')), want, `${round}: the last file is whole`);
        t.ok(['start', name]);
        assert.equal(t.jaula(['exec', name, '--', 'cat', '/etc/hostname']).stdout, `${name}\n`);
        t.ok(['delete', name, '--force']);
        c.add(aim.aimed, landed, 'complete');
      } else {
        for (const p of [t.path('etc/jaula/guests', name), t.path('var/lib/jaula/guests', name)])
          assert.equal(fs.existsSync(p), false, `${round}: ${p} is removed`);
        c.add(aim.aimed, landed, rep.staleBuilds.includes(name) ? 'removed' : 'not begun');
      }
    }
    c.assertSpread(SPREAD);
    assert.ok(
      c.rounds.some((r) => r.outcome === 'removed'),
      `some kills interrupted a build: ${c.summary()}`,
    );
  });
});

describe('kill -9 the jaula CLI (no jaulad: it works in-process)', () => {
  it(`during start, ${SHORT_ROUNDS} times: the next jaulad's reconcile rolls it back, or the guest runs`, async () => {
    const c = new Campaign('CLI start');
    campaigns.push(c);
    const print = prepare('us');
    let tl: Timeline | undefined;
    for (let i = 0; i < SHORT_ROUNDS; i++) {
      const round = `CLI start round ${i}`;
      if (timedRound(i) || !tl) {
        tl = await calibrateCli(['start', 'us'], ['start:']);
        t.ok(['stop', 'us', '--kill']);
      }
      const aim = plan(tl, i, SHORT_ROUNDS);
      const landed = await killCli(['start', 'us'], aim, ['start:']);
      // The crash recovery of a host: the next jaulad reconciles at its start.
      await d.stop();
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      const st = assertConsistent('us', print, round);
      c.add(aim.aimed, landed, rep.rolledBack.includes('us') ? 'rolled back' : st.status);
      if (st.status === 'running') t.ok(['stop', 'us', '--kill']);
    }
    c.assertSpread(SPREAD);
  });

  it(`during stop, ${SHORT_ROUNDS} times: the next jaulad's reconcile completes it, or the guest still runs`, async () => {
    const c = new Campaign('CLI stop');
    campaigns.push(c);
    const print = prepare('ut');
    let tl: Timeline | undefined;
    for (let i = 0; i < SHORT_ROUNDS; i++) {
      const round = `CLI stop round ${i}`;
      if (timedRound(i) || !tl) {
        t.ok(['start', 'ut']);
        tl = await calibrateCli(['stop', 'ut'], ['stop:']);
      }
      t.ok(['start', 'ut']);
      const aim = plan(tl, i, SHORT_ROUNDS);
      const landed = await killCli(['stop', 'ut'], aim, ['stop:']);
      await d.stop();
      const rep = await freshDaemon();
      assert.deepEqual(rep.problems, [], round);
      const st = assertConsistent('ut', print, round);
      c.add(
        aim.aimed,
        landed,
        rep.completedStops.includes('ut')
          ? 'completed'
          : rep.settled.includes('ut')
            ? 'settled'
            : `${st.status}${st.lastExit ? ` (${st.lastExit.reason})` : ''}`,
      );
      if (st.status === 'running') t.ok(['stop', 'ut', '--kill']);
      else assert.equal(st.lastExit?.reason, 'stopped', `${round}: the reason is recorded`);
    }
    c.assertSpread(SPREAD);
  });
});

describe("kill -9 a guest's supervisor (jaula-helper shim)", () => {
  // The supervisor holds the guest's console: its death hangs the console up and the guest's
  // init ends with it (docs/adr/0001-supervision.md); the next jaula command on the guest
  // records it as lost and cleans up. Here that command is `jaula stop`.
  /** The supervisor of `name` once its start recorded it, or undefined. */
  const shimOf = (name: string): number | undefined => {
    try {
      const pid = Number(t.state(name)['shimPid']);
      return pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  /** The next command: `jaula stop` stops the guest, or finds it ended and cleans up (exit status 6). */
  const settleByStop = (name: string, round: string): number => {
    const r = t.jaula(['stop', name], { env: { JAULA_NO_DAEMON: '1' } });
    assert.ok(r.code === 0 || (r.code === 6 && /is not running/.test(r.stderr)), `${round}: ${r.stderr}`);
    return r.code;
  };

  it(`during start, ${SUPERVISOR_START_ROUNDS} times: the start fails cleanly, or the guest ends with its supervisor and the next command cleans up`, async () => {
    const c = new Campaign('supervisor during start');
    campaigns.push(c);
    const print = prepare('vs');
    // Three kills, in three phases whatever the machine's load does to the timing: with the start
    // held (JAULA_TRACE_STOP) just after it spawned the supervisor (the runtime creates the guest
    // meanwhile), held once the guest runs (before the start records it), and after it returned.
    const HOLD = ['start: supervisor spawned', 'start: guest running', undefined];
    for (let i = 0; i < SUPERVISOR_START_ROUNDS; i++) {
      const round = `supervisor start round ${i}`;
      const hold = HOLD[i % HOLD.length];
      if (hold) fs.writeFileSync(STOP_FILE, hold);
      const run = cli(['start', 'vs']);
      if (hold) assert.ok(await waitStopped(run.pid), `${round}: the start stopped after "${hold}"`);
      else assert.equal(await run.done, 0, `${round}: the start`);
      const landed = hold ? `after ${hold}` : 'after the start returned';
      const shim = shimOf('vs');
      assert.ok(shim, `${round}: the start recorded its supervisor`);
      process.kill(shim, 'SIGKILL');
      fs.rmSync(STOP_FILE, { force: true });
      run.signal('SIGCONT');
      const code = await run.done;
      const next = settleByStop('vs', round);
      const st = assertConsistent('vs', print, round);
      assert.equal(st.status, 'stopped', round);
      assert.ok(
        ['failed', 'lost', 'stopped'].includes(st.lastExit?.reason ?? ''),
        `${round}: ${JSON.stringify(st.lastExit)}`,
      );
      c.add(
        hold ? `held after "${hold}"` : 'once it returned',
        landed,
        `start ${code === 0 ? 'succeeded' : 'failed'}, then ${next === 0 ? 'stopped' : `${st.lastExit?.reason}`}`,
      );
    }
    c.assertSpread(SUPERVISOR_START_ROUNDS);
  });

  it(`during stop, ${SHORT_ROUNDS} times: the stop completes, or finds the guest ended with its supervisor and cleans up`, async () => {
    const c = new Campaign('supervisor during stop');
    campaigns.push(c);
    const print = prepare('vt');
    let tl: Timeline | undefined;
    for (let i = 0; i < SHORT_ROUNDS; i++) {
      const round = `supervisor stop round ${i}`;
      if (timedRound(i) || !tl) {
        t.ok(['start', 'vt']);
        tl = await calibrateCli(['stop', 'vt'], ['stop:']);
      }
      t.ok(['start', 'vt']);
      const shim = shimOf('vt');
      assert.ok(shim, `${round}: the supervisor is recorded`);
      const aim = plan(tl, i, SHORT_ROUNDS);
      if (aim.stopAt) fs.writeFileSync(STOP_FILE, aim.stopAt);
      const run = cli(['stop', 'vt']);
      const held = aim.stopAt ? await waitStopped(run.pid) : (await sleep(aim.ms), false);
      const at = performance.now();
      try {
        process.kill(shim, 'SIGKILL');
      } catch {
        /* it had ended with the guest */
      }
      fs.rmSync(STOP_FILE, { force: true });
      run.signal('SIGCONT');
      const code = await run.done;
      // Held at a mark, the stop was after it; else the marks read before the kill tell.
      const landed = held
        ? `after ${aim.stopAt}`
        : phaseReached(
            marksOf(
              run.marks.filter((m) => m.at <= at),
              0,
              ['stop:'],
            ),
          );
      assert.ok(code === 0 || code === 6, `${round}: the stop ended with ${code}`);
      const st = assertConsistent('vt', print, round);
      assert.equal(st.status, 'stopped', round);
      assert.ok(
        ['stopped', 'lost'].includes(st.lastExit?.reason ?? ''),
        `${round}: ${JSON.stringify(st.lastExit)}`,
      );
      c.add(aim.aimed, landed, `${code === 0 ? 'stopped' : 'found ended'} (${st.lastExit?.reason})`);
    }
    c.assertSpread(SPREAD);
  });
});

describe('after the kills', () => {
  it('left every guest consistent and nothing behind once they stop', (ctx) => {
    for (const c of campaigns) ctx.diagnostic(c.summary());
    const names = (JSON.parse(t.ok(['list', '--format', 'json']).stdout) as { name: string }[]).map(
      (g) => g.name,
    );
    assert.deepEqual(names.sort(), ['cs', 'ct', 'us', 'ut', 'vs', 'vt']);
    t.ok(['stop', '--all']);
    for (const n of names) assert.deepEqual(t.runLeftovers(n), [], n);
    assert.deepEqual(t.leftovers(), []);
  });
});

function spawnTar(args: string[]): void {
  const r = spawnSync('tar', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar ${args.join(' ')}: ${r.stderr}`);
}
