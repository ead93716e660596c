/**
 * Quotas: a guest's own files live in an ext4 image of the allowed size and inode count (this
 * host's / has no project quotas). A guest at its limit gets ENOSPC while a neighbour keeps
 * writing; du shows usage against the limit; the limit can be changed later.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestRoot, jaulaBin } from './helpers.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

const CMD = ['--initstyle', 'cmd', '--cmd', '/bin/sleep 100000'];

interface Du {
  guests: {
    name: string;
    quota?: { bytes: number; bytesLimit: number; inodes: number; inodesLimit: number };
  }[];
}

for (const driver of ['overlay', 'dir']) {
  describe(`quotas on ${driver} storage`, () => {
    const q = `q-${driver}`;
    const free = `free-${driver}`;
    before(() => {
      t.ok([
        'build',
        q,
        '-m',
        'skeleton',
        '-q',
        '--storage',
        driver,
        '--quota',
        '24M',
        '--quota-inodes',
        '1000',
        ...CMD,
      ]);
      t.ok(['build', free, '-m', 'skeleton', '-q', '--storage', driver, ...CMD]);
      t.ok(['start', q]);
      t.ok(['start', free]);
    });

    it('gives the guest ENOSPC at its space limit while a neighbour keeps writing', () => {
      const r = t.sh(q, 'dd if=/dev/zero of=/fill bs=1M count=64 2>&1; echo status $?');
      assert.match(r.stdout, /No space left on device/);
      assert.match(r.stdout, /status 1/);
      const n = t.sh(free, 'dd if=/dev/zero of=/fill bs=1M count=40 2>&1 && echo ok');
      assert.match(n.stdout, /ok/, n.stdout);
      const du = JSON.parse(t.ok(['du', q, free, '--format', 'json']).stdout) as Du;
      const gq = du.guests.find((g) => g.name === q)?.quota;
      assert.ok(gq, 'du shows the quota');
      assert.ok(
        Math.abs(gq.bytesLimit - 24 * 2 ** 20) < 2 ** 20,
        `the limit is 24 MiB: ${JSON.stringify(gq)}`,
      );
      assert.ok(gq.bytes > 0.9 * gq.bytesLimit, `full: ${JSON.stringify(gq)}`);
      assert.equal(du.guests.find((g) => g.name === free)?.quota, undefined);
      t.sh(q, 'rm /fill');
      t.sh(free, 'rm /fill');
    });

    it('gives the guest ENOSPC at its inode limit', () => {
      const r = t.sh(
        q,
        'mkdir /many; i=0; while touch /many/f$i 2>/dev/null; do i=$((i+1)); done; echo made $i',
      );
      const made = Number(/made (\d+)/.exec(r.stdout)?.[1]);
      assert.ok(made > 100 && made < 1024, `${made} files made under a limit of about 1000 inodes`);
      assert.equal(
        t.sh(free, 'mkdir /many && for i in $(seq 1 1100); do touch /many/f$i; done && echo ok').stdout,
        'ok\n',
      );
      const du = JSON.parse(t.ok(['du', q, '--format', 'json']).stdout) as Du;
      const gq = du.guests[0]?.quota;
      assert.ok(gq && gq.inodes === gq.inodesLimit, JSON.stringify(gq));
      t.sh(q, 'rm -rf /many');
    });

    it('keeps the files across a stop and start, and can grow the limit later', () => {
      t.sh(q, 'echo kept > /root/note');
      t.ok(['stop', q]);
      assert.ok(!t.mounts().some((m) => m.includes(`/${q}/`)), 'a stopped guest has its image unmounted');
      const r = t.jaula(['set', q, '--quota', '48M']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /may use 48\.0M and 1000 inodes/);
      t.ok(['start', q]);
      assert.equal(t.sh(q, 'cat /root/note').stdout, 'kept\n');
      assert.match(t.sh(q, 'dd if=/dev/zero of=/fill bs=1M count=40 2>&1 && echo ok').stdout, /ok/);
      t.ok(['stop', q]);
      const more = t.jaula(['set', q, '--quota-inodes', '5000']);
      assert.equal(more.code, 0, more.stderr);
      t.ok(['start', q]);
      assert.equal(t.sh(q, 'cat /root/note').stdout, 'kept\n', 'copied into the new image');
      const du = JSON.parse(t.ok(['du', q, '--format', 'json']).stdout) as Du;
      assert.ok(Math.abs((du.guests[0]?.quota?.inodesLimit ?? 0) - 5000) <= 16, JSON.stringify(du));
      t.ok(['stop', q]);
      t.ok(['stop', free]);
    });
  });
}

describe('quota changes and refusals', () => {
  it('adds a quota to a guest that had none, and removes it again', () => {
    t.ok(['build', 'later', '-m', 'skeleton', '-q', ...CMD]);
    t.ok(['run', 'later', '--', '/bin/sh', '-c', 'echo before > /root/note']);
    t.ok(['set', 'later', '--quota', '16M']);
    assert.ok(fs.existsSync(t.path('var/lib/jaula/guests/later/quota.img')));
    assert.equal(t.ok(['run', 'later', '--', '/bin/cat', '/root/note']).stdout, 'before\n');
    assert.match(
      t.ok(['run', 'later', '--', '/bin/sh', '-c', 'dd if=/dev/zero of=/f bs=1M count=32 2>&1; true']).stdout,
      /No space left/,
    );
    t.ok(['set', 'later', '--quota', 'none']);
    assert.equal(fs.existsSync(t.path('var/lib/jaula/guests/later/quota.img')), false);
    assert.equal(t.ok(['run', 'later', '--', '/bin/cat', '/root/note']).stdout, 'before\n');
    assert.deepEqual(
      t.loops().filter((l) => l.includes('later')),
      [],
    );
  });

  it("grows a stopped guest's image only once no other mount namespace still holds it", async () => {
    t.ok(['build', 'held', '-m', 'skeleton', '-q', '--quota', '24M', ...CMD]);
    t.ok(['start', 'held']);
    // Another mount namespace copies the image's mount (as a runtime call's private namespace
    // does) and keeps it 4 s: grown meanwhile, its old superblock would come back and the next
    // mount would reuse its loop device at the old size.
    const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sleep', '4'], { stdio: 'ignore' });
    try {
      const holds = (): boolean => {
        try {
          return /\/guests\/held\/\S* .* ext4 /m.test(
            fs.readFileSync(`/proc/${holder.pid}/mountinfo`, 'utf8'),
          );
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 500 && !holds(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(holds(), 'the other namespace holds the image');
      t.ok(['stop', 'held']);
      t.ok(['set', 'held', '--quota', '48M']);
      t.ok(['start', 'held']);
      assert.match(t.sh('held', 'dd if=/dev/zero of=/fill bs=1M count=40 2>&1 && echo ok').stdout, /ok/);
      t.ok(['stop', 'held', '--kill']);
      t.ok(['delete', 'held']);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('refuses a change while running, an inode limit alone, and quotas on reflink storage', () => {
    t.ok(['start', 'later']);
    const r = t.jaula(['set', 'later', '--quota', '32M']);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /is running: stop it first, to change its quota/);
    t.ok(['stop', 'later']);
    const i = t.jaula(['build', 'x', '-m', 'skeleton', '--quota-inodes', '100']);
    assert.equal(i.code, 2);
    assert.match(i.stderr, /an inode limit needs a space limit too/);
    const s = t.jaula(['build', 'x', '-m', 'skeleton', '--storage', 'reflink', '--quota', '1G']);
    assert.notEqual(s.code, 0);
    assert.match(s.stderr, /reflink/);
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/x')), false);
  });
});

describe("an exec session and the other guests' storage", () => {
  it("does not keep another guest's quota image mounted, nor its loop device bound, after that guest stops", async () => {
    t.ok(['build', 'holder', '-m', 'skeleton', '-q', ...CMD]);
    t.ok(['build', 'imaged', '-m', 'skeleton', '-q', '--quota', '16M', ...CMD]);
    t.ok(['start', 'holder', 'imaged']);
    const image = (): string[] => t.loops().filter((l) => l.includes('/imaged/'));
    assert.equal(image().length, 1, `imaged's image is on a loop device: ${t.loops().join(', ')}`);
    // A long exec in one guest (as jaula enter is), while the other guest stops.
    const session = spawn(process.execPath, [jaulaBin, 'exec', 'holder', '--', '/bin/sleep', '60'], {
      env: t.env,
      stdio: 'ignore',
    });
    try {
      await t.until('the session to run', () =>
        /^\s*\d+\s+\S+\s+\/bin\/sleep 60$/m.test(t.sh('holder', 'ps -o pid,user,args').stdout),
      );
      t.ok(['stop', 'imaged', '--kill']);
      await t.until(
        "imaged's loop device to go while the session still runs",
        () => image().length === 0,
        10_000,
      );
      assert.equal(session.exitCode, null, 'the session still runs');
      t.ok(['start', 'imaged']);
      assert.equal(t.sh('imaged', 'echo ok').stdout, 'ok\n', 'and it starts again on its image');
    } finally {
      session.kill('SIGKILL');
      t.ok(['stop', 'holder', 'imaged', '--kill']);
    }
  });
});
