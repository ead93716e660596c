/**
 * jaula console, logs and rename, as a user runs them: attaching to the console the guest's
 * supervisor holds and detaching with Ctrl-a q (with and without jaulad), reading and
 * following what the console showed and jaula's events, and renaming a stopped guest in a
 * storage pool with everything keyed by its name following it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestRoot, buildSkeleton, jaulaBin, type Result } from './helpers.js';

const t = new TestRoot('jaula-console-');
after(async () => {
  for (const d of t.daemons) await d.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

/** A jaula command with its stdin held open, its output collected as it comes. */
class Session {
  stdout = '';
  stderr = '';
  private readonly child;
  readonly done: Promise<Result>;
  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [jaulaBin, ...args], {
      env: { ...t.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.on('data', (b: Buffer) => (this.stdout += b.toString()));
    this.child.stderr.on('data', (b: Buffer) => (this.stderr += b.toString()));
    this.done = new Promise((res) =>
      this.child.on('close', (code) => res({ code: code ?? 128, stdout: this.stdout, stderr: this.stderr })),
    );
  }
  type(s: string): void {
    this.child.stdin.write(s);
  }
  kill(): void {
    this.child.kill();
  }
}

/** Attach, get the console's shell, run a command there, detach with Ctrl-a q. */
async function consoleRoundTrip(name: string, word: string, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  const s = new Session(['console', name], env);
  await t.until('attached', () => s.stderr.includes('Attached to the console'));
  s.type('\n'); // (the skeleton's console asks for Enter before it starts a shell)
  await t.until('a prompt', () => s.stdout.includes('$ '));
  s.type(`echo ${word}-$((6*7))\n`);
  await t.until(`${word}-42 on the console`, () => s.stdout.includes(`${word}-42`));
  s.type('\x01q');
  return s.done;
}

describe('jaula console', () => {
  before(() => {
    buildSkeleton(t, 'k1');
    t.ok(['start', 'k1']);
  });

  it("attaches to the guest's console and detaches with Ctrl-a q, leaving it running", async () => {
    const r = await consoleRoundTrip('k1', 'local', { JAULA_NO_DAEMON: '1' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Detached from the console of guest "k1"; it keeps running/);
    assert.equal(JSON.parse(t.ok(['status', 'k1', '--format', 'json']).stdout).status, 'running');
  });

  it('does the same through jaulad', async () => {
    const d = t.daemon(['--no-autostart']);
    await d.ready();
    const r = await consoleRoundTrip('k1', 'remote');
    assert.equal(r.code, 0, r.stderr);
    await d.stop();
  });

  it('says when the guest stops under it, and refuses a stopped guest', async () => {
    const s = new Session(['console', 'k1'], { JAULA_NO_DAEMON: '1' });
    await t.until('attached', () => s.stderr.includes('Attached to the console'));
    t.ok(['stop', 'k1']);
    const r = await s.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /The console of guest "k1" closed: the guest stopped/);
    const again = t.jaula(['console', 'k1'], { env: { JAULA_NO_DAEMON: '1' } });
    assert.equal(again.code, 6);
    assert.match(again.stderr, /Guest "k1" is not running \(start it with "jaula start k1"\)/);
  });
});

describe('jaula logs', () => {
  it("shows the console's output and jaula's events, with -n, --events and --console", () => {
    const r = t.ok(['logs', 'k1']);
    assert.match(r.stdout, /^==> jaula's events of k1 <==\n/);
    assert.match(r.stdout, /Z started \(pid \d+/);
    assert.match(r.stdout, /Z stopped: stopped/);
    assert.match(r.stdout, /\n==> console of k1 <==\n[^]*Please press Enter to activate this console/);
    assert.match(r.stdout, /local-42/, 'what was typed on the console before');
    const ev = t.ok(['logs', 'k1', '--events', '-n', '1']).stdout;
    assert.equal(ev.trim().split('\n').length, 1, ev);
    assert.match(ev, /stopped: stopped/);
    assert.doesNotMatch(t.ok(['logs', 'k1', '--console']).stdout, /==>|started \(pid/);
    assert.equal(t.jaula(['logs', 'nosuch']).code, 4);
  });

  it('follows both with -f', async () => {
    const f = new Session(['logs', 'k1', '-f', '-n', '0']);
    t.ok(['start', 'k1']);
    await t.until('the start event', () => /started \(pid/.test(f.stdout));
    assert.equal(t.sh('k1', 'echo followed-$((6*7)) > /dev/console').code, 0);
    await t.until('the console line', () => f.stdout.includes('followed-42'));
    f.kill();
    await f.done;
    assert.match(f.stdout, /==> jaula's events of k1 <==[^]*==> console of k1 <==/);
  });
});

describe('jaula rename', () => {
  // (a root of its own: a storage pool is made before the first guest)
  const t = new TestRoot('jaula-rename-');
  after(async () => {
    for (const d of t.daemons) await d.stop();
    assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
  });
  before(() => {
    t.pool(512, 48);
    buildSkeleton(t, 'db', ['--interface', 'eth0=jaula0:auto']);
    buildSkeleton(t, 'app', ['--depends', 'db']);
    t.ok(['start', 'db']);
    t.sh('db', 'echo kept > /root/data');
    t.ok(['stop', 'db']);
  });

  it('refuses a running guest, a taken name and a bad one, with what to do', () => {
    t.ok(['start', 'db']);
    const r = t.jaula(['rename', 'db', 'db2']);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /Guest "db" is running: stop it first, then rename it \("jaula stop db"\)/);
    t.ok(['stop', 'db']);
    assert.match(t.jaula(['rename', 'db', 'app']).stderr, /A guest named "app" already exists/);
    assert.equal(t.jaula(['rename', 'db', 'a/b']).code, 2);
    assert.equal(t.jaula(['rename', 'nosuch', 'x']).code, 4);
  });

  it('moves everything keyed by its name: config, files, quota group, logs, state; depends follow', () => {
    const before = JSON.parse(t.ok(['list', '--format', 'json']).stdout).find(
      (g: { name: string }) => g.name === 'db',
    ) as { context: number; interfaces: string[] };
    const r = t.ok(['rename', 'db', 'store']);
    assert.match(r.stdout, /Renamed guest "db" to "store"/);
    const list = JSON.parse(t.ok(['list', '--format', 'json']).stdout) as {
      name: string;
      context: number;
      interfaces: string[];
      depends: string[];
    }[];
    assert.deepEqual(list.map((g) => g.name).sort(), ['app', 'store']);
    const s = list.find((g) => g.name === 'store');
    assert.deepEqual(
      [s?.context, s?.interfaces],
      [before.context, before.interfaces],
      'its address and MAC stay',
    );
    assert.deepEqual(list.find((g) => g.name === 'app')?.depends, ['store']);
    for (const p of [
      'etc/jaula/guests/db',
      'var/lib/jaula/guests/db',
      'run/jaula/guests/db',
      'var/log/jaula/db.log',
    ])
      assert.equal(fs.existsSync(t.path(p)), false, `${p} is gone`);
    assert.match(fs.readFileSync(t.path('var/log/jaula/store.log'), 'utf8'), /renamed from "db"/);
    const du = JSON.parse(t.ok(['du', 'store', '--format', 'json']).stdout) as {
      guests: { name: string; quota?: { bytesLimit: number } }[];
    };
    assert.equal(du.guests[0]?.quota?.bytesLimit, 48 * 2 ** 20, "the pool's limit (its quota group) follows");
    t.ok(['start', 'app', 'store']); // (in dependency order: a depends on "db" would be refused)
    assert.equal(t.sh('store', 'cat /root/data').stdout, 'kept\n', 'its files');
    assert.match(t.ok(['logs', 'store', '--events']).stdout, /renamed from "db"/);
    t.ok(['stop', 'app']);
    t.ok(['stop', 'store']);
  });

  it('is finished by jaulad when it was interrupted halfway', async () => {
    // What a crash right after the first step leaves: the journal, and the files moved.
    fs.mkdirSync(t.path('etc/jaula/renames'), { recursive: true });
    fs.writeFileSync(t.path('etc/jaula/renames/app'), 'front\n');
    fs.renameSync(t.path('var/lib/jaula/guests/app'), t.path('var/lib/jaula/guests/front'));
    const d = t.daemon(['--no-autostart']);
    await d.ready({ reconciled: true });
    const names = (JSON.parse(t.ok(['list', '--format', 'json']).stdout) as { name: string }[]).map(
      (g) => g.name,
    );
    assert.deepEqual(names.sort(), ['front', 'store']);
    t.ok(['start', 'front']);
    t.ok(['stop', 'front']);
    assert.equal(fs.existsSync(t.path('etc/jaula/renames/app')), false, 'the journal is gone');
    await d.stop();
  });
});
