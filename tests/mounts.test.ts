/**
 * A running guest's own mounts, as the user meets them: `jaula cp` into and out of the guest's
 * /tmp and /run (tmpfs) and its fstab binds goes where the guest sees it, never out of its root;
 * fstab binds into unprivileged guests are idmapped (the guest's root owns what the host's root
 * owns), unless the line says noidmap.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestRoot } from './helpers.js';

const t = new TestRoot('jaula-mounts-');
after(async () => {
  for (const d of t.daemons) await d.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

describe('jaula cp into a running guest', () => {
  const host = t.path('cp-host');
  before(() => {
    fs.mkdirSync(host, { recursive: true });
    fs.writeFileSync(`${host}/file.txt`, 'from the host\n');
    t.buildSleeper('c1');
    t.ok(['start', 'c1']);
  });

  it("goes to the guest's own /tmp and /run (tmpfs), as the guest's root, and comes out of them", () => {
    t.ok(['cp', `${host}/file.txt`, 'c1:/tmp/']);
    assert.equal(t.sh('c1', 'cat /tmp/file.txt').stdout, 'from the host\n', 'the guest sees it in its /tmp');
    assert.match(t.sh('c1', 'ls -ln /tmp/file.txt').stdout, /\s0\s+0\s/, "owned by the guest's root");
    assert.equal(fs.existsSync(`${t.guestRoot('c1')}/tmp/file.txt`), false, 'not in the layer beneath');
    assert.equal(t.sh('c1', 'echo made-in-run > /run/r.txt').code, 0);
    t.ok(['cp', 'c1:/run/r.txt', `${host}/r.txt`]);
    assert.equal(fs.readFileSync(`${host}/r.txt`, 'utf8'), 'made-in-run\n');
    t.ok(['cp', 'c1:/tmp', `${host}/tmp-copy`]);
    assert.equal(
      fs.readFileSync(`${host}/tmp-copy/file.txt`, 'utf8'),
      'from the host\n',
      'a tree from the tmpfs',
    );
    // A special file below the source (jaula-init's /run/initctl fifo, one made here) is left
    // out and named; one named as the source is refused.
    assert.equal(t.sh('c1', 'mkfifo /tmp/a-fifo').code, 0);
    const whole = t.ok(['cp', 'c1:/', `${host}/whole`]);
    assert.equal(fs.readFileSync(`${host}/whole/tmp/file.txt`, 'utf8'), 'from the host\n', 'the whole guest');
    assert.match(whole.stderr, /left out \d+ special files? .*\/tmp\/a-fifo/, whole.stderr);
    assert.equal(fs.existsSync(`${host}/whole/tmp/a-fifo`), false);
    const fifo = t.jaula(['cp', 'c1:/tmp/a-fifo', `${host}/fifo`]);
    assert.equal(fifo.code, 2, fifo.stderr);
    assert.match(fifo.stderr, /not a regular file, directory or symlink/);
    for (const d of ['proc', 'sys', 'dev'])
      assert.deepEqual(fs.readdirSync(`${host}/whole/${d}`), [], `the kernel's /${d} is left out`);
  });

  it("never follows the guest's links out of its root, inside its mounts either", () => {
    assert.equal(t.sh('c1', 'ln -s / /tmp/up && ln -s ../../../../../../.. /run/dots').code, 0);
    t.ok(['cp', `${host}/file.txt`, 'c1:/tmp/up/etc/planted']);
    assert.equal(fs.existsSync('/etc/planted'), false, "the host's /etc is untouched");
    assert.equal(t.sh('c1', 'cat /etc/planted').stdout, 'from the host\n', "it went to the guest's /etc");
    t.ok(['cp', 'c1:/run/dots/etc/hostname', `${host}/hostname`]);
    assert.equal(fs.readFileSync(`${host}/hostname`, 'utf8'), 'c1\n', "the guest's hostname, not the host's");
  });

  it('does the same through jaulad', async () => {
    const d = t.daemon();
    await d.ready();
    fs.writeFileSync(`${host}/api.txt`, 'through jaulad\n');
    const r = t.ok(['cp', `${host}/api.txt`, 'c1:/run/api.txt']);
    assert.match(r.stdout, /Copied 1 file into the guest/);
    assert.equal(t.sh('c1', 'cat /run/api.txt').stdout, 'through jaulad\n');
    await d.stop();
  });
});

describe('fstab bind mounts into an unprivileged guest', () => {
  const share = t.path('share');
  const plain = t.path('plain');
  before(() => {
    fs.chmodSync(t.root, 0o711); // (a noidmap bind's source must be reachable by the guest's root)
    fs.mkdirSync(share);
    fs.mkdirSync(plain);
    fs.writeFileSync(`${share}/by-host-root`, 'host\n');
    fs.writeFileSync(`${plain}/by-host-root`, 'host\n');
    t.buildSleeper('b1');
    fs.appendFileSync(
      t.path('etc/jaula/guests/b1/fstab'),
      [
        `${share} /mnt/share none bind 0 0`,
        `${share} /mnt/ro none bind,ro 0 0`,
        `${share} /mnt/r none rbind 0 0`,
        `${share}/by-host-root /mnt/file none bind 0 0`,
        `${plain} /mnt/plain none bind,noidmap 0 0`,
        '',
      ].join('\n'),
    );
    t.ok(['start', 'b1']);
  });

  it("are idmapped: the host's root owns them as the guest's root, who may write there", () => {
    assert.match(t.sh('b1', 'ls -ln /mnt/share/by-host-root').stdout, /^\S+\s+\d+\s+0\s+0\s/);
    assert.equal(t.sh('b1', 'echo from-guest > /mnt/share/made && chown 1000:1000 /mnt/share/made').code, 0);
    const st = fs.statSync(`${share}/made`);
    assert.deepEqual([st.uid, st.gid], [1000, 1000], 'on the host: the same IDs the guest gave');
    assert.equal(fs.readFileSync(`${share}/made`, 'utf8'), 'from-guest\n');
    assert.equal(t.sh('b1', 'cat /mnt/file').stdout, 'host\n', 'a file bound on a file');
    assert.match(t.sh('b1', 'ls -ln /mnt/file').stdout, /^\S+\s+\d+\s+0\s+0\s/);
  });

  it('keep ro read-only, idmap rbinds too, and leave noidmap binds as they are', () => {
    assert.match(t.sh('b1', 'ls -ln /mnt/ro/by-host-root').stdout, /^\S+\s+\d+\s+0\s+0\s/);
    assert.match(t.sh('b1', 'echo x > /mnt/ro/nope').stderr, /Read-only file system/);
    // (crun 1.8 binds an rbind's source without the mounts below it in a user namespace, with
    // or without idmapping; the source itself is idmapped)
    assert.match(t.sh('b1', 'ls -ln /mnt/r/by-host-root').stdout, /^\S+\s+\d+\s+0\s+0\s/);
    assert.match(t.sh('b1', 'ls -ln /mnt/plain/by-host-root').stdout, /^\S+\s+\d+\s+65534\s+65534\s/);
    assert.notEqual(t.sh('b1', 'echo x > /mnt/plain/nope').code, 0, "a plain bind refuses the guest's root");
  });

  it('take what jaula cp writes into the running guest there', () => {
    fs.writeFileSync(t.path('cp-in.txt'), 'copied in\n');
    t.ok(['cp', t.path('cp-in.txt'), 'b1:/mnt/share/']);
    assert.equal(fs.readFileSync(`${share}/cp-in.txt`, 'utf8'), 'copied in\n');
    assert.equal(fs.statSync(`${share}/cp-in.txt`).uid, 0, "the guest's root is the host's root there");
    // (jaula cp writes as the guest's root, with the host's privileges: a plain bind too)
    t.ok(['cp', t.path('cp-in.txt'), 'b1:/mnt/plain/']);
    assert.match(t.sh('b1', 'ls -ln /mnt/plain/cp-in.txt').stdout, /^\S+\s+\d+\s+0\s+0\s/);
    const ro = t.jaula(['cp', t.path('cp-in.txt'), 'b1:/mnt/ro/']);
    assert.equal(ro.code, 13, ro.stderr);
    assert.match(ro.stderr, /read-only in the guest/);
  });

  it('are unmounted when the guest stops', () => {
    t.ok(['stop', 'b1']);
    assert.deepEqual(t.runLeftovers('b1'), []);
    assert.equal(fs.existsSync(t.path('run/jaula/guests/b1/binds')), false);
  });
});
