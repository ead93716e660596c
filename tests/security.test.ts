/**
 * Unprivileged guests (user namespaces, idmapped roots), privileged ones as an opt-in, jaula cp
 * through the resolver, and templates that try to reach the host.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ESCAPE_PROBE_IN_GUEST, TestRoot, buildSkeleton, escapeProbeFstab, probeResults } from './helpers.js';
import { makeTar } from './tarwriter.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

const uidMap = (name: string): string =>
  t.sh(name, 'cat /proc/self/uid_map').stdout.trim().split(/\s+/).join(' ');
const hostUid = (name: string): number =>
  Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${Number(t.state(name)['pid'])}/status`, 'utf8'))?.[1]);

describe('unprivileged guests', () => {
  before(() => {
    buildSkeleton(t, 'u1', ['--context', '200']);
    buildSkeleton(t, 'u2', ['--context', '201']);
    buildSkeleton(t, 'p1', ['--privileged']);
    fs.appendFileSync(t.path('etc/jaula/guests/u1/fstab'), escapeProbeFstab());
    for (const g of ['u1', 'u2', 'p1']) t.ok(['start', g]);
  });

  it("map the guest's root to an unprivileged host uid, a disjoint range per guest", () => {
    assert.equal(uidMap('u1'), `0 ${1_000_000 + 198 * 65536} 65536`);
    assert.equal(uidMap('u2'), `0 ${1_000_000 + 199 * 65536} 65536`);
    assert.equal(hostUid('u1'), 1_000_000 + 198 * 65536, 'its init runs as that host uid');
    assert.equal(t.sh('u1', 'id -u').stdout.trim(), '0', 'and is root inside');
  });

  it('see their own files as root-owned through the idmapped root; files they make are plain on disk', () => {
    assert.match(t.sh('u1', 'ls -ln /bin/busybox').stdout, /^\S+\s+\d+\s+0\s+0\s/);
    assert.equal(t.sh('u1', 'echo made > /root/made-inside && chown 1000:1000 /root/made-inside').code, 0);
    const st = fs.statSync(`${t.guestRoot('u1')}/root/made-inside`);
    assert.deepEqual([st.uid, st.gid], [1000, 1000], 'on disk: the guest IDs, not host IDs');
  });

  it('cannot make new user namespaces, mount, or use raw sockets (default profile)', () => {
    assert.notEqual(t.sh('u1', 'unshare -U true').code, 0);
    assert.notEqual(t.sh('u1', 'mount -t tmpfs x /mnt').code, 0);
    assert.match(t.sh('u1', 'grep Seccomp: /proc/self/status').stdout, /Seccomp:\s+2/);
    // socket(2) itself: a raw IP socket and a packet socket (the probe of tests/escape).
    const r = t.jaula(['exec', 'u1', '--', ESCAPE_PROBE_IN_GUEST, 'net.raw_inet', 'net.af_packet']);
    assert.equal(r.code, 0, r.stderr);
    const res = probeResults(r.stdout);
    assert.deepEqual(
      res.map((x) => x.id),
      ['net.raw_inet', 'net.af_packet'],
    );
    for (const x of res) {
      assert.equal(x.blocked, true, `${x.id}: ${x.detail}`);
      assert.equal(x.errno, 'EPERM', `${x.id}: ${x.detail}`);
    }
  });

  it('privileged guests are opt-in, and shown as such by list and doctor', () => {
    assert.equal(uidMap('p1'), '0 0 4294967295');
    const list = JSON.parse(t.ok(['list', '--format', 'json']).stdout) as {
      name: string;
      privileged: boolean;
    }[];
    assert.deepEqual(
      list.filter((g) => g.privileged).map((g) => g.name),
      ['p1'],
    );
    assert.match(t.ok(['list']).stdout, /^p1\s.*PRIVILEGED/m);
    assert.match(t.ok(['list']).stdout, /^u1\s.*unprivileged/m);
    const doc = t.jaula(['doctor', '--security']);
    assert.match(doc.stdout, /privileged guests\s+warn\s+p1/);
    assert.match(doc.stdout, /user namespaces\s+ok/);
    assert.match(doc.stdout, /idmapped mounts\s+ok/);
    assert.match(doc.stdout, /disk limits\s+warn\s+.*u1.*no disk limit/);
  });
});

describe('jaula cp', () => {
  const host = t.path('cp-host');
  before(() => {
    fs.mkdirSync(`${host}/tree/sub`, { recursive: true });
    fs.writeFileSync(`${host}/file.txt`, 'from the host\n');
    fs.writeFileSync(`${host}/tree/sub/deep.txt`, 'deep\n');
    fs.symlinkSync('sub/deep.txt', `${host}/tree/link`);
    fs.writeFileSync(t.path('host-secret'), 'host secret\n');
    // The guest's hostile links: absolute to the host's /etc, and climbing out with "..".
    const r = t.guestRoot('u1');
    fs.symlinkSync('/etc', `${r}/evil-abs`);
    fs.symlinkSync('../../../../../../../../..' + t.root, `${r}/evil-up`);
  });

  it('copies files and trees in and out', () => {
    t.ok(['cp', `${host}/file.txt`, 'u1:/root/']);
    assert.equal(t.sh('u1', 'cat /root/file.txt').stdout, 'from the host\n');
    assert.match(t.sh('u1', 'ls -ln /root/file.txt').stdout, /\s0\s+0\s/, "copied in as the guest's root");
    t.ok(['cp', `${host}/tree`, 'u1:/srv']);
    assert.equal(t.sh('u1', 'cat /srv/sub/deep.txt; readlink /srv/link').stdout, 'deep\nsub/deep.txt\n');
    t.sh('u1', 'echo from-guest > /root/out.txt');
    t.ok(['cp', 'u1:/root/out.txt', `${host}/out.txt`]);
    assert.equal(fs.readFileSync(`${host}/out.txt`, 'utf8'), 'from-guest\n');
    t.ok(['cp', 'u1:/srv', `${host}/srv-copy`]);
    assert.equal(fs.readlinkSync(`${host}/srv-copy/link`), 'sub/deep.txt', 'links come out as links');
  });

  it("never follows the guest's symlinks to the host", () => {
    t.ok(['cp', `${host}/file.txt`, 'u1:/evil-abs/planted']);
    assert.equal(fs.existsSync('/etc/planted'), false, "the host's /etc is untouched");
    assert.equal(t.sh('u1', 'cat /etc/planted').stdout, 'from the host\n', "it went to the guest's /etc");
    t.ok(['cp', 'u1:/evil-abs/passwd', `${host}/passwd-out`]);
    assert.equal(
      fs.readFileSync(`${host}/passwd-out`, 'utf8'),
      fs.readFileSync(`${t.guestRoot('u1')}/etc/passwd`, 'utf8'),
      "the guest's passwd",
    );
    const r = t.jaula(['cp', 'u1:/evil-up/host-secret', `${host}/secret-out`]);
    assert.notEqual(r.code, 0, '".." stops at the guest root');
    assert.equal(fs.existsSync(`${host}/secret-out`), false);
    t.ok(['cp', 'u1:/', `${host}/whole`]);
    assert.equal(
      fs.lstatSync(`${host}/whole/evil-abs`).isSymbolicLink(),
      true,
      'a link in a copied tree stays a link',
    );
  });

  it('refuses a source that is not there and two guest paths', () => {
    assert.equal(t.jaula(['cp', 'u1:/nope', `${host}/x`]).code, 4);
    assert.equal(t.jaula(['cp', 'u1:/a', 'u2:/b']).code, 2);
  });
});

describe('hostile templates', () => {
  it('refuses device nodes for an unprivileged guest and keeps them for a privileged one', () => {
    const dir = t.path('devtpl');
    fs.mkdirSync(`${dir}/dev`, { recursive: true });
    fs.writeFileSync(`${dir}/marker`, 'x');
    assert.equal(spawnSync('mknod', [`${dir}/dev/sda-copy`, 'b', '8', '0']).status, 0);
    assert.equal(spawnSync('tar', ['-cf', t.path('dev.tar'), '-C', dir, '.']).status, 0);
    const r = t.jaula(['build', 'devu', '-m', 'template', '--', '-t', t.path('dev.tar')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /device node .*only privileged guests/);
    t.ok(['build', 'devp', '-m', 'template', '-q', '--privileged', '--', '-t', t.path('dev.tar')]);
    assert.ok(fs.statSync(`${t.guestRoot('devp')}/dev/sda-copy`).isBlockDevice());
  });

  it("cannot redirect the runtime's mounts with symlinked /proc, /sys, /dev or /tmp", () => {
    buildSkeleton(t, 'src1');
    const tpl = t.path('linktpl');
    fs.cpSync(t.guestRoot('src1'), tpl, { recursive: true, verbatimSymlinks: true });
    for (const d of ['proc', 'sys', 'dev', 'tmp']) fs.rmSync(`${tpl}/${d}`, { recursive: true, force: true });
    fs.symlinkSync('/etc', `${tpl}/proc`);
    fs.symlinkSync('/root', `${tpl}/sys`);
    fs.symlinkSync('../../../../../../tmp', `${tpl}/dev`);
    fs.symlinkSync('/etc/hostile-tmp', `${tpl}/tmp`);
    assert.equal(spawnSync('tar', ['-cf', t.path('links.tar'), '-C', tpl, '.']).status, 0);
    t.ok(['build', 'lnk', '-m', 'template', '-q', '--', '-t', t.path('links.tar')]);
    const hostEtc = fs.readdirSync('/etc').length;
    t.ok(['start', 'lnk']);
    assert.match(t.sh('lnk', 'cat /proc/self/status').stdout, /^Name:\s+cat/m, 'a real /proc inside');
    assert.equal(fs.readdirSync('/etc').length, hostEtc, "the host's /etc is untouched");
    assert.ok(
      fs.lstatSync(`${t.guestRoot('lnk')}/proc`).isDirectory(),
      'the link was replaced by a directory of the guest',
    );
    t.ok(['stop', 'lnk', '--kill']);
  });

  it('refuses a template with more members than allowed or a link out of the tree (checked before writing)', () => {
    const evil = makeTar([
      { name: 'etc', type: 'dir' },
      { name: 'etc/x', type: 'hardlink', linkname: '../../etc/shadow' },
    ]);
    fs.writeFileSync(t.path('hl.tar'), evil);
    const r = t.jaula(['build', 'hl', '-m', 'template', '--', '-t', t.path('hl.tar')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /contains "\.\."/);
  });
});
