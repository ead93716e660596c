/**
 * A busybox guest, started through the jaula CLI under a real OCI runtime: every isolation
 * property of the foundation issue is asserted from inside the guest.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestRoot, buildSkeleton } from './helpers.js';

describe('isolation of a running guest', () => {
  const t = new TestRoot();
  const shared = t.path('host-shared');
  const sharedRw = t.path('host-shared-rw');
  let hostSleeper: ReturnType<typeof spawn> | undefined;

  before(() => {
    fs.mkdirSync(shared);
    fs.mkdirSync(sharedRw);
    fs.writeFileSync(`${shared}/from-host`, 'host data\n');
    buildSkeleton(t, 'iso1', ['--hostname', 'iso1.example', '--context', '1001']);
    buildSkeleton(t, 'iso2', ['--context', '1002', '--initstyle', 'cmd', '--cmd', '/bin/sleep 4321']);
    fs.appendFileSync(
      t.path('etc/jaula/guests/iso1/fstab'),
      `${shared} /mnt/ro none bind,ro 0 0\n${sharedRw} /mnt/rw none bind,idmap 0 0\n`,
    );
    fs.writeFileSync(`${t.guestRoot('iso1')}/marker-iso1`, 'x');
    t.ok(['start', 'iso1']);
    t.ok(['start', 'iso2']);
    // A host process with a recognisable command line, which no guest may see.
    hostSleeper = spawn('sleep', ['1234.5'], { stdio: 'ignore' });
  });

  after(() => {
    hostSleeper?.kill();
    const left = t.cleanup();
    assert.deepEqual(left, [], 'nothing is left behind');
  });

  /**
   * A knob that exists, written back with its own value: only the read-only mount refuses it
   * (the guest's root owns lo's and its network namespace's knobs, and the write would change
   * nothing), so the error must be EROFS, and the value stays.
   */
  const assertReadOnlyKnob = (knob: string): void => {
    const before = t.sh('iso1', `cat ${knob}`);
    assert.equal(before.code, 0, `${knob} exists and reads: ${before.stderr}`);
    assert.ok(before.stdout.trim(), `${knob} has a value`);
    const w = t.sh('iso1', `v=$(cat ${knob}) && echo "$v" > ${knob}`);
    assert.notEqual(w.code, 0, `writing ${knob} back to itself is refused`);
    assert.match(w.stderr, /Read-only file system/, `${knob}: ${w.stderr}`);
    assert.equal(t.sh('iso1', `cat ${knob}`).stdout, before.stdout, `${knob} is unchanged`);
  };

  it('runs the guest init as PID 1 in a new PID namespace', () => {
    const r = t.sh('iso1', 'cat /proc/1/cmdline | tr "\\0" " "; echo; echo $$');
    assert.equal(r.code, 0, r.stderr);
    const [cmdline, mypid] = r.stdout.trim().split('\n');
    assert.equal(cmdline?.trim(), 'init');
    assert.ok(Number(mypid) < 100, `a guest's pids are small, got ${mypid}`);
    const hostPid = Number(t.state('iso1')['pid']);
    assert.ok(hostPid > 1, 'the host sees the init under another pid');
    assert.notEqual(fs.readlinkSync(`/proc/${hostPid}/ns/pid`), fs.readlinkSync('/proc/self/ns/pid'));
  });

  it('hides host processes and other guests from inside', () => {
    const r = t.sh('iso1', 'for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr "\\0" " "; echo; done');
    assert.equal(r.code, 0);
    assert.doesNotMatch(r.stdout, /1234\.5/, 'the host sleeper is invisible');
    assert.doesNotMatch(r.stdout, /jaula-helper|runc/, 'the supervisor is invisible');
    const procs = r.stdout.split('\n').filter((l) => l.trim());
    assert.ok(procs.length <= 6, `only the guest's own few processes: ${procs.join(' | ')}`);
    assert.doesNotMatch(r.stdout, /4321/, 'the other guest is invisible');
    assert.match(
      t.sh('iso2', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "').stdout,
      /sleep 4321/,
      'it runs, in its own view',
    );
  });

  it('has its own hostname (UTS namespace)', () => {
    assert.equal(t.sh('iso1', 'hostname').stdout.trim(), 'iso1.example');
    assert.equal(t.sh('iso2', 'hostname').stdout.trim(), 'iso2');
    assert.equal(t.sh('iso1', 'cat /etc/hostname').stdout.trim(), 'iso1.example');
  });

  it('has its own network namespace with only loopback', () => {
    const r = t.sh('iso1', 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "');
    assert.deepEqual(r.stdout.trim().split('\n'), ['lo']);
    const pid = Number(t.state('iso1')['pid']);
    assert.notEqual(fs.readlinkSync(`/proc/${pid}/ns/net`), fs.readlinkSync('/proc/self/ns/net'));
  });

  it('has its own IPC, mount and cgroup namespaces', () => {
    const pid = Number(t.state('iso1')['pid']);
    for (const ns of ['ipc', 'mnt', 'cgroup', 'uts'])
      assert.notEqual(fs.readlinkSync(`/proc/${pid}/ns/${ns}`), fs.readlinkSync(`/proc/self/ns/${ns}`), ns);
    const other = Number(t.state('iso2')['pid']);
    for (const ns of ['ipc', 'mnt', 'net', 'pid'])
      assert.notEqual(
        fs.readlinkSync(`/proc/${pid}/ns/${ns}`),
        fs.readlinkSync(`/proc/${other}/ns/${ns}`),
        `guests do not share ${ns}`,
      );
    // Host SysV IPC is invisible inside.
    const id = spawnSync('ipcmk', ['-Q'], { encoding: 'utf8' });
    assert.equal(id.status, 0, id.stderr);
    const key = /(\d+)/.exec(id.stdout)?.[1] ?? '';
    try {
      assert.match(fs.readFileSync('/proc/sysvipc/msg', 'utf8'), new RegExp(`\\b${key}\\b`));
      const inside = t.sh('iso1', 'cat /proc/sysvipc/msg');
      assert.equal(
        inside.stdout.trim().split('\n').length,
        1,
        `only the header line inside: ${inside.stdout}`,
      );
    } finally {
      spawnSync('ipcrm', ['-q', key]);
    }
    // The guest sees itself at the root of its cgroup namespace.
    assert.match(t.sh('iso1', 'cat /proc/self/cgroup').stdout, /:\/$/m);
  });

  it('has its own root (pivot_root): the guest tree is /, the host tree is unreachable', () => {
    assert.equal(t.sh('iso1', 'test -f /marker-iso1 && echo yes').stdout.trim(), 'yes');
    assert.equal(t.sh('iso2', 'test -f /marker-iso1 && echo yes || echo no').stdout.trim(), 'no');
    assert.equal(t.sh('iso1', `test -e ${t.root} && echo yes || echo no`).stdout.trim(), 'no');
    assert.equal(
      t.sh('iso1', 'cd /; cd ../../..; test -f marker-iso1 && echo still-inside').stdout.trim(),
      'still-inside',
    );
  });

  it('mounts /proc, /dev/pts, a read-only /sys and a tmpfs /tmp', () => {
    const mounts = t.sh('iso1', 'cat /proc/mounts').stdout;
    assert.match(mounts, /^proc \/proc proc /m);
    assert.match(mounts, /^devpts \/dev\/pts devpts /m);
    assert.match(mounts, /^\S+ \/sys sysfs ro,/m);
    assert.match(mounts, /^\S+ \/tmp tmpfs rw,/m);
    assertReadOnlyKnob('/sys/class/net/lo/mtu');
    assert.equal(t.sh('iso1', 'echo x > /tmp/probe && cat /tmp/probe').stdout.trim(), 'x');
    assert.equal(
      fs.existsSync(`${t.guestRoot('iso1')}/tmp/probe`),
      false,
      '/tmp is a tmpfs, not the guest tree',
    );
  });

  it('makes a read-only bind mount really read-only, and a read-write one writable', () => {
    assert.equal(t.sh('iso1', 'cat /mnt/ro/from-host').stdout, 'host data\n');
    const w = t.sh('iso1', 'echo evil > /mnt/ro/new-file');
    assert.notEqual(w.code, 0, 'a write into the read-only bind fails');
    assert.match(w.stderr, /Read-only file system/);
    assert.equal(fs.existsSync(`${shared}/new-file`), false);
    assert.equal(t.sh('iso1', 'echo written > /mnt/rw/inside').code, 0);
    assert.equal(fs.readFileSync(`${sharedRw}/inside`, 'utf8'), 'written\n');
  });

  it('masks /proc/kmsg and keeps /proc/sys read-only', () => {
    assert.equal(
      t.sh('iso1', 'stat -c %t:%T /proc/kmsg').stdout.trim(),
      '1:3',
      '/proc/kmsg is /dev/null inside',
    );
    assertReadOnlyKnob('/proc/sys/net/ipv4/ip_forward');
    assertReadOnlyKnob('/proc/sys/kernel/hostname');
  });

  it('passes stdin, stdout, stderr and the exit status through exec', () => {
    const r = t.jaula(
      ['exec', 'iso1', '--', '/bin/sh', '-c', 'read x; echo "got $x"; echo oops >&2; exit 42'],
      { input: 'hello\n' },
    );
    assert.equal(r.code, 42);
    assert.equal(r.stdout, 'got hello\n');
    assert.equal(r.stderr, 'oops\n');
  });

  it('gives a fresh pty to enter', () => {
    const r = spawnSync(
      'script',
      ['-qec', `${process.execPath} ${process.cwd()}/bin/jaula.cjs enter iso1`, '/dev/null'],
      {
        input: 'tty; echo "in=$(hostname)"; exit 5\n',
        env: t.env,
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    assert.match(r.stdout, /\/dev\/pts\/\d+/);
    assert.match(r.stdout, /in=iso1\.example/);
    assert.equal(r.status, 5);
  });

  it('lists guests as a table and as JSON, and reports status by exit code', () => {
    const j = JSON.parse(t.ok(['list', '--format', 'json']).stdout) as {
      name: string;
      status: string;
      context: number;
    }[];
    assert.deepEqual(
      j.map((g) => [g.name, g.status, g.context]),
      [
        ['iso1', 'running', 1001],
        ['iso2', 'running', 1002],
      ],
    );
    assert.match(t.ok(['list']).stdout, /^iso1\s+1001\s+running/m);
    assert.equal(t.jaula(['status', 'iso1']).code, 0);
  });

  it('refuses to start a running guest', () => {
    const r = t.jaula(['start', 'iso1']);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /already running/);
  });
});
