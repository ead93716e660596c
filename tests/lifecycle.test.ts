/**
 * Lifecycle of real guests: halt and reboot from inside, supervision after jaula exits, stop
 * timeouts, init styles, hooks, autostart order, and the crun runtime on this host.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { helperBin } from '../src/os/paths.js';
import { TestRoot, buildSkeleton, slowdown, writeScript } from './helpers.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

const running = (name: string): boolean => t.jaula(['status', name]).code === 0;
interface Exit {
  reason: string;
  code?: number;
  signal?: number;
  message?: string;
  at: string;
}
const statusJson = (name: string): { status: string; pid?: number; lastExit?: Exit } =>
  JSON.parse(t.jaula(['status', name, '--format', 'json']).stdout);
const lastExit = (name: string): Exit => {
  const e = statusJson(name).lastExit;
  assert.ok(e, `guest ${name} has a last exit`);
  return e;
};

describe('halt and reboot inside a guest', () => {
  it('halt inside stops that guest only', async () => {
    buildSkeleton(t, 'h1');
    buildSkeleton(t, 'h2');
    t.ok(['start', 'h1']);
    t.ok(['start', 'h2']);
    const before2 = statusJson('h2').pid;
    t.sh('h1', 'halt');
    await t.until(
      'h1 to stop',
      () => statusJson('h1').status === 'stopped' && statusJson('h1').lastExit?.reason === 'halt',
    );
    assert.equal(running('h2'), true, 'the neighbour keeps running');
    assert.equal(statusJson('h2').pid, before2);
    assert.deepEqual(
      t.containers().map((c) => c.split(':')[1]),
      ['h2'],
      'the halted guest was cleaned up',
    );
  });

  it('poweroff -f inside (the reboot(2) system call) stops the guest', async () => {
    t.ok(['start', 'h1']);
    t.sh('h1', 'poweroff -f');
    await t.until('h1 to stop', () => statusJson('h1').status === 'stopped');
    assert.equal(statusJson('h1').lastExit?.reason, 'halt');
    assert.equal(running('h2'), true);
  });

  it('reboot inside restarts the guest', async () => {
    t.ok(['start', 'h1']);
    const pid1 = statusJson('h1').pid;
    t.sh('h1', 'echo gone > /tmp/tmpfs-file; reboot');
    await t.until('h1 to come back with a new init', () => {
      const s = statusJson('h1');
      return s.status === 'running' && s.pid !== undefined && s.pid !== pid1;
    });
    assert.equal(statusJson('h1').lastExit?.reason, 'reboot');
    assert.equal(t.sh('h1', 'cat /tmp/tmpfs-file').code, 1, 'a fresh boot: the old tmpfs is gone');
    assert.equal(running('h2'), true);
    t.ok(['stop', 'h1']);
    t.ok(['stop', 'h2']);
  });
});

describe('supervision', () => {
  it('keeps the guest running after the jaula process that started it exits, and notices when it dies', async () => {
    buildSkeleton(t, 's1', ['--initstyle', 'cmd', '--cmd', '/bin/sleep 1000']);
    t.ok(['start', 's1']); // that jaula process has exited now
    const st = statusJson('s1');
    assert.equal(st.status, 'running');
    const pid = st.pid as number;
    const shimPid = Number(t.state('s1')['shimPid']);
    const shimParent = Number(fs.readFileSync(`/proc/${shimPid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
    assert.ok(
      !/node|jaula/.test(fs.readFileSync(`/proc/${shimParent}/cmdline`, 'utf8')),
      'the supervisor is no child of jaula',
    );
    // The supervisor holds little memory of its own (the issue asks under 1 MB per guest). Its
    // resident file pages are its static binary's text, shared by every guest's supervisor, and
    // their count follows the page cache (fault-around maps whatever neighbours are cached: a
    // busy host read 1092 kB of VmRSS once): what a guest adds is its private memory.
    const status = fs.readFileSync(`/proc/${shimPid}/status`, 'utf8');
    const kB = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1]);
    const own = kB('RssAnon') + kB('RssShmem');
    // In the host's mount table a running guest leaves its root and its two namespace files, not
    // the idmapped views of its layers (each runtime copies and reads every mount there).
    const mine = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(`${t.root}/`) && /\/s1(\/|$)/.test(m))
      .map((m) => m.slice(t.root.length))
      .sort();
    assert.deepEqual(mine, ['/run/jaula/guests/s1/root', '/run/jaula/netns/s1', '/run/jaula/userns/s1']);
    // The guest's processes ignore no signal they did not ask to: jaula starts the supervisor
    // by posix_spawn, which leaves glibc's own two (32, 33) ignored, and the supervisor resets them.
    const sleeper = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0];
    const ignored = /SigIgn:\s+([0-9a-f]+)/.exec(fs.readFileSync(`/proc/${sleeper}/status`, 'utf8'))?.[1];
    assert.equal(BigInt(`0x${ignored}`), 0n, `signals ignored by the guest's command: ${ignored}`);
    process.kill(pid, 'SIGKILL');
    await t.until(
      's1 to be seen stopped',
      () => statusJson('s1').status === 'stopped' && statusJson('s1').lastExit !== undefined,
    );
    const e = lastExit('s1');
    assert.equal(e.reason, 'killed');
    assert.equal(e.signal, 9);
    assert.deepEqual(t.containers(), []);
    assert.ok(own < 512, `supervisor's own memory ${own} kB (VmRSS ${kB('VmRSS')} kB)`);
  });

  it('records the exit status of a cmd guest whose command ends', async () => {
    buildSkeleton(t, 's2', ['--initstyle', 'cmd', '--cmd', '/bin/true']);
    fs.writeFileSync(
      t.path('etc/jaula/guests/s2/config.toml'),
      fs
        .readFileSync(t.path('etc/jaula/guests/s2/config.toml'), 'utf8')
        .replace(/^cmd = .*$/m, 'cmd = [ "/bin/sh", "-c", "sleep 0.3; exit 3" ]'),
    );
    t.ok(['start', 's2']);
    await t.until(
      's2 to end',
      () => statusJson('s2').status === 'stopped' && statusJson('s2').lastExit !== undefined,
    );
    const e = lastExit('s2');
    assert.equal(e.reason, 'exited');
    assert.equal(e.code, 3);
  });
});

describe('stop', () => {
  it('kills a guest whose init ignores the halt request after --timeout', () => {
    buildSkeleton(t, 'k1', ['--initstyle', 'cmd', '--cmd', '/bin/sleep 1000']);
    fs.writeFileSync(
      t.path('etc/jaula/guests/k1/config.toml'),
      fs
        .readFileSync(t.path('etc/jaula/guests/k1/config.toml'), 'utf8')
        .replace(/^cmd = .*$/m, 'cmd = [ "/bin/sh", "-c", "trap \\"\\" TERM; while :; do sleep 1; done" ]'),
    );
    t.ok(['start', 'k1']);
    const t0 = Date.now();
    const r = t.ok(['stop', 'k1', '--timeout', '1']);
    assert.match(r.stdout, /killed after 1 s/);
    assert.ok(Date.now() - t0 >= 1000);
    assert.equal(running('k1'), false);
    t.ok(['start', 'k1']);
    assert.match(t.ok(['stop', 'k1', '--kill']).stdout, /killed on request/);
  });

  it('halts a busybox guest cleanly, without killing it', () => {
    buildSkeleton(t, 'k2');
    t.ok(['start', 'k2']);
    const r = t.ok(['stop', 'k2', '--timeout', String(20 * slowdown)]);
    assert.doesNotMatch(r.stdout, /killed/);
    assert.equal(lastExit('k2').reason, 'stopped');
  });

  it("leaves a stopped guest's end to its stopper, and records a later death by itself", () => {
    // The supervisor's exit command does nothing while a stop is under way (no jaulad asked, no
    // `jaula __exited` process): run here in a directory with and without the stop's marker.
    const dir = t.path('notify-test');
    fs.mkdirSync(dir);
    const notify = (): number | null =>
      spawnSync(
        helperBin,
        ['notify', t.path('no.sock'), 'g', 'i', '--', '/bin/sh', '-c', 'echo ran > fallback'],
        {
          cwd: dir,
        },
      ).status;
    fs.writeFileSync(join(dir, 'stopping'), '');
    assert.equal(notify(), 0);
    assert.equal(fs.existsSync(join(dir, 'fallback')), false, 'a stop under way: no fallback');
    fs.rmSync(join(dir, 'stopping'));
    assert.equal(notify(), 0);
    assert.equal(fs.existsSync(join(dir, 'fallback')), true, 'no jaulad, no stop: the fallback runs');
    // A real guest: stopped (the stopper records it), started again, then killed from outside:
    // its end is recorded, so the stop's marker did not outlive the stop.
    buildSkeleton(t, 'k3', ['--initstyle', 'cmd', '--cmd', '/bin/sleep 1000']);
    t.ok(['start', 'k3']);
    t.ok(['stop', 'k3', '--kill']);
    assert.equal(lastExit('k3').message, 'killed on request');
    t.ok(['start', 'k3']);
    process.kill(statusJson('k3').pid as number, 'SIGKILL');
    // (the state file itself, as the exit's handler writes it: `status` would infer it)
    const recorded = (): string =>
      (JSON.parse(fs.readFileSync(t.path('run/jaula/guests/k3/state.json'), 'utf8')) as { status: string })
        .status;
    const deadline = Date.now() + 20_000 * slowdown;
    while (recorded() !== 'stopped' && Date.now() < deadline) spawnSync('sleep', ['0.05']);
    assert.equal(recorded(), 'stopped', "the exit's handler ran");
    assert.equal(lastExit('k3').signal, 9);
    t.ok(['delete', 'k3']);
  });

  it('restart gives a new init', () => {
    t.ok(['start', 'k2']);
    const pid = statusJson('k2').pid;
    t.ok(['restart', 'k2']);
    assert.notEqual(statusJson('k2').pid, pid);
    assert.equal(running('k2'), true);
    t.ok(['stop', 'k2', '--kill']);
  });
});

describe('init styles', () => {
  it('sysv runs "/etc/init.d/rc 3" at start and "rc 0" at stop under a minimal PID 1', () => {
    const marks = t.path('sysv-marks');
    fs.mkdirSync(marks);
    buildSkeleton(t, 'sv1', ['--initstyle', 'sysv']);
    writeScript(`${t.guestRoot('sv1')}/etc/init.d/rc`, '#!/bin/sh\necho "rc $1" >> /marks/log\n');
    fs.appendFileSync(t.path('etc/jaula/guests/sv1/fstab'), `${marks} /marks none bind,idmap 0 0\n`);
    t.ok(['start', 'sv1']);
    assert.match(
      t.sh('sv1', 'cat /proc/1/cmdline | tr "\\0" " "').stdout,
      /^\/dev\/\.jaula-init -k -s \/etc\/init\.d\/rc -- \/etc\/init\.d\/rc 3/,
    );
    assert.equal(fs.readFileSync(`${marks}/log`, 'utf8'), 'rc 3\n');
    assert.equal(running('sv1'), true, 'the guest keeps running after rc 3 ends');
    t.ok(['stop', 'sv1', '--timeout', String(20 * slowdown)]);
    assert.equal(fs.readFileSync(`${marks}/log`, 'utf8'), 'rc 3\nrc 0\n');
  });

  it('cmd runs the given command under jaula-init', () => {
    buildSkeleton(t, 'c1', ['--initstyle', 'cmd', '--cmd', '/bin/sleep 777']);
    t.ok(['start', 'c1']);
    assert.match(t.sh('c1', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "').stdout, /sleep 777/);
    t.ok(['stop', 'c1']);
    assert.equal(lastExit('c1').reason, 'stopped');
  });

  it("one-shot run returns the command's exit status and leaves the guest stopped", () => {
    const r = t.jaula(['run', 'c1', '--', '/bin/sh', '-c', 'echo out; exit 4']);
    assert.equal(r.code, 4);
    assert.equal(r.stdout, 'out\n');
    assert.equal(running('c1'), false);
    assert.deepEqual(t.containers(), []);
  });
});

describe('the runtime from its sealed copy', () => {
  it('runs from a sealed memfd that jaula made, not from a copy of its own (runtime/sealed.ts)', async () => {
    const pidFile = t.path('run/jaula/guests/c1/init.pid');
    const before = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8') : '';
    const running = t.jaulaAsync(['run', 'c1', '--', '/bin/sleep', '3']);
    const deadline = Date.now() + 20_000 * slowdown;
    const now = (): string => (fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8') : before);
    while ((now() === before || !fs.existsSync(`/proc/${now()}`)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    // (a foreground `runtime run`: the guest's init is its child)
    const init = Number(now());
    const runtime = Number(/^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${init}/status`, 'utf8'))?.[1]);
    const exe = fs.readlinkSync(`/proc/${runtime}/exe`);
    // crun's own copy would be a bind of its file on /tmp/crun.XXXXXX, deleted; a memfd of its own, "crun_cloned"
    assert.equal(exe, '/memfd:crun (deleted)');
    assert.equal((await running).code, 0);
  });
});

describe('hooks', () => {
  it('runs pre-start and post-stop on the host and start/stop inside', () => {
    const out = t.path('hook-out');
    fs.mkdirSync(out);
    buildSkeleton(t, 'hk', ['--context', '4242']);
    const hooks = t.path('etc/jaula/guests/hk/hooks');
    writeScript(
      `${hooks}/pre-start`,
      `#!/bin/sh\necho "$JAULA_HOOK $JAULA_GUEST $JAULA_CONTEXT $JAULA_ROOTFS" > ${out}/pre\n`,
    );
    writeScript(`${hooks}/post-stop`, `#!/bin/sh\necho "$JAULA_HOOK $JAULA_EXIT_REASON" > ${out}/post\n`);
    fs.writeFileSync(`${hooks}/start`, 'hostname > /out/start-inside\n');
    fs.writeFileSync(`${hooks}/stop`, 'echo stopping > /out/stop-inside\n');
    fs.appendFileSync(t.path('etc/jaula/guests/hk/fstab'), `${out} /out none bind,idmap 0 0\n`);
    t.ok(['start', 'hk']);
    assert.equal(fs.readFileSync(`${out}/pre`, 'utf8'), `pre-start hk 4242 ${t.guestRoot('hk')}\n`);
    assert.equal(fs.readFileSync(`${out}/start-inside`, 'utf8'), 'hk\n');
    t.ok(['stop', 'hk']);
    assert.equal(fs.readFileSync(`${out}/stop-inside`, 'utf8'), 'stopping\n');
    assert.equal(fs.readFileSync(`${out}/post`, 'utf8'), 'post-stop stopped\n');
  });

  it('a failing pre-start hook aborts the start cleanly', () => {
    writeScript(
      t.path('etc/jaula/guests/hk/hooks/pre-start'),
      '#!/bin/sh\necho "no disk for you" >&2\nexit 3\n',
    );
    const r = t.jaula(['start', 'hk']);
    assert.equal(r.code, 8);
    assert.match(r.stderr, /pre-start hook .*failed with status 3.*no disk for you/);
    assert.equal(running('hk'), false);
    assert.deepEqual(t.leftovers(), []);
  });
});

describe('autostart and dependencies', () => {
  it('starts marked guests after their dependencies and stops them before', () => {
    buildSkeleton(t, 'db', ['--mark', 'default']);
    buildSkeleton(t, 'app', ['--mark', 'default', '--depends', 'db']);
    buildSkeleton(t, 'web', ['--mark', 'default', '--depends', 'app']);
    buildSkeleton(t, 'other');
    const r = t.ok(['autostart', '--format', 'json']);
    const results = JSON.parse(r.stdout) as { name: string; ok: boolean }[];
    assert.deepEqual(
      results.map((x) => x.name),
      ['db', 'app', 'web'],
      'dependency order',
    );
    assert.ok(results.every((x) => x.ok));
    const started = (n: string): number => Date.parse(String(t.state(n)['startedAt']));
    assert.ok(started('db') <= started('app') && started('app') <= started('web'));
    assert.equal(running('other'), false, 'unmarked guests stay stopped');
    t.ok(['stop', '--all']);
    const stoppedAt = (n: string): number => {
      assert.equal(lastExit(n).reason, 'stopped');
      return Date.parse(lastExit(n).at);
    };
    assert.ok(
      stoppedAt('web') <= stoppedAt('app') && stoppedAt('app') <= stoppedAt('db'),
      'reverse order at stop',
    );
    for (const n of ['db', 'app', 'web']) assert.equal(running(n), false);
  });

  it('refuses a dependency cycle', () => {
    const cfg = t.path('etc/jaula/guests/db/config.toml');
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace(/^depends = \[\]/m, 'depends = [ "web" ]'));
    const r = t.jaula(['autostart']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /form a cycle/);
  });
});

describe('runtime choice', () => {
  it('runs a guest with crun on this hybrid cgroup host, in a private mount namespace', () => {
    buildSkeleton(t, 'cr1');
    const env = { JAULA_RUNTIME: 'crun' };
    t.ok(['start', 'cr1'], { env });
    assert.equal(t.state('cr1')['runtime'], 'crun');
    assert.equal(t.jaula(['exec', 'cr1', '--', 'hostname']).stdout.trim(), 'cr1');
    const pid = Number(t.state('cr1')['pid']);
    assert.match(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'), new RegExp(`jaula-${t.tag}/cr1`));
    t.ok(['stop', 'cr1']);
    assert.deepEqual(t.containers(), []);
    // (crun deletes it outside the private mount namespace: its cgroups go all the same)
    assert.deepEqual(t.runLeftovers('cr1'), []);
  });
});
