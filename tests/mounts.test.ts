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
    t.ok(['cp', 'c1:/', `${host}/whole`]);
    assert.equal(fs.readFileSync(`${host}/whole/tmp/file.txt`, 'utf8'), 'from the host\n', 'the whole guest');
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
