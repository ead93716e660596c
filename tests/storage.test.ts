/**
 * Storage drivers, one conformance suite run against each: dir, overlay, and reflink on XFS and
 * on btrfs (each on a loop device this test makes and frees). Building from a stored template
 * and cloning copy no file data where the driver says so (info.cheapClone); clones get a new
 * identity.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestRoot } from './helpers.js';

const BIG_MIB = 32;

interface Variant {
  driver: string;
  fs?: 'xfs' | 'btrfs';
  cheap: boolean;
}

const VARIANTS: Variant[] = [
  { driver: 'dir', cheap: false },
  { driver: 'overlay', cheap: true },
  { driver: 'reflink', fs: 'xfs', cheap: true },
  { driver: 'reflink', fs: 'btrfs', cheap: true },
];

/** Bytes allocated under a directory, each inode once (du -s --block-size=1, one filesystem). */
function allocated(dir: string): number {
  const r = spawnSync('du', ['-s', '-x', '--block-size=1', dir], { encoding: 'utf8' });
  return Number(r.stdout.split('\t')[0]);
}

/** Bytes used on the filesystem holding `dir`, after a sync. */
function fsUsed(dir: string): number {
  spawnSync('sync', ['-f', dir]);
  const s = fs.statfsSync(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

for (const v of VARIANTS) {
  const label = v.fs ? `${v.driver} on ${v.fs}` : v.driver;
  describe(`storage driver ${label}`, () => {
    const t = new TestRoot();
    const pool = t.path('var/lib/jaula/reflink');
    after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));
    /** Where the bytes of a guest built on this driver land. */
    const dataDir = (name: string): string =>
      v.driver === 'reflink' ? join(pool, 'guests', name) : t.path('var/lib/jaula/guests', name);
    const storageArgs = ['--storage', v.driver, '--initstyle', 'cmd', '--cmd', '/bin/sleep 100000'];
    const sum = (name: string, path: string): string =>
      t.ok(['run', name, '--', '/bin/sh', '-c', `md5sum ${path} | cut -d" " -f1`]).stdout.trim();

    before(() => {
      if (v.fs) t.loopFs(v.fs, pool);
      t.ok(['build', 'src', '-m', 'skeleton', '-q', ...storageArgs]);
      t.ok(['run', 'src', '--', '/bin/sh', '-c', `head -c ${BIG_MIB * 2 ** 20} /dev/urandom > /big`]);
    });

    it('builds, keeps what a guest writes across restarts, and deletes it without a trace', () => {
      t.ok(['build', 'g1', '-m', 'skeleton', '-q', ...storageArgs]);
      const cfg = fs.readFileSync(t.path('etc/jaula/guests/g1/config.toml'), 'utf8');
      assert.match(cfg, new RegExp(`driver = "${v.driver}"`));
      t.ok(['start', 'g1']);
      t.ok(['exec', 'g1', '--', '/bin/sh', '-c', 'echo kept > /root/note']);
      t.ok(['restart', 'g1']);
      assert.equal(t.ok(['exec', 'g1', '--', '/bin/cat', '/root/note']).stdout, 'kept\n');
      t.ok(['stop', 'g1']);
      assert.deepEqual(
        t.mounts().filter((m) => m !== pool),
        [],
        'a stopped guest has nothing mounted',
      );
      t.ok(['delete', 'g1']);
      assert.equal(fs.existsSync(dataDir('g1')), false);
      assert.equal(fs.existsSync(t.path('var/lib/jaula/guests/g1')), false);
    });

    it(`builds from a stored template ${v.cheap ? 'without copying file data' : 'by copying it'}`, () => {
      t.ok(['template', 'save', 'src', 'tpl', '-q']);
      const want = sum('src', '/big');
      // reflink: the first build copies the template into the pool once (on another filesystem).
      if (v.driver === 'reflink')
        t.ok(['build', 'b0', '-m', 'template', '-q', ...storageArgs, '--', '-t', 'tpl']);
      const base = v.driver === 'reflink' ? fsUsed(pool) : 0;
      const r = t.ok(['build', 'b1', '-m', 'template', ...storageArgs, '--', '-t', 'tpl']);
      const copied = v.driver === 'reflink' ? fsUsed(pool) - base : allocated(dataDir('b1'));
      if (v.cheap)
        assert.ok(copied < 4 * 2 ** 20, `${copied} bytes were written for a ${BIG_MIB} MiB template`);
      else assert.ok(copied >= BIG_MIB * 2 ** 20, `a full copy: ${copied} bytes`);
      assert.match(r.stdout, /Built guest "b1"/);
      assert.equal(sum('b1', '/big'), want, 'the file is there, the same');
      const du = JSON.parse(t.ok(['du', 'b1', '--format', 'json']).stdout) as {
        guests: { exclusiveBytes: number; sharedBytes: number }[];
      };
      const g = du.guests[0];
      assert.ok(g);
      if (v.cheap) {
        assert.ok(g.sharedBytes >= (BIG_MIB - 1) * 2 ** 20, `du: ${JSON.stringify(g)}`);
        assert.ok(g.exclusiveBytes < BIG_MIB * 2 ** 20, `du: ${JSON.stringify(g)}`);
      } else assert.ok(g.exclusiveBytes >= BIG_MIB * 2 ** 20, `du: ${JSON.stringify(g)}`);
      // Writing in the new guest leaves the template and the source alone.
      t.ok(['run', 'b1', '--', '/bin/sh', '-c', 'echo changed >> /big']);
      assert.notEqual(sum('b1', '/big'), want);
      assert.equal(sum('src', '/big'), want);
      const tree = t.path('var/lib/jaula/templates/tpl/tree/big');
      assert.equal(spawnSync('md5sum', [tree], { encoding: 'utf8' }).stdout.split(' ')[0], want);
    });

    it('runs a guest unprivileged over plain owners on disk: its users, copy-up, the host view', () => {
      const own = (name: string): string =>
        v.driver === 'overlay' ? join(dataDir(name), 'upper') : join(dataDir(name), 'rootfs');
      t.ok(['build', 'o', '-m', 'skeleton', '-q', ...storageArgs]);
      const setup =
        'echo "u:x:1000:1000::/srv/u:/bin/sh" >> /etc/passwd && mkdir -p /srv/u && echo base > /srv/u/f';
      t.ok(['run', 'o', '--', '/bin/sh', '-c', `${setup} && chown -R 1000:1000 /srv/u`]);
      t.ok(['template', 'save', 'o', 'owners', '-q']);
      t.ok(['build', 'u1', '-m', 'template', '-q', ...storageArgs, '--', '-t', 'owners']);
      t.ok(['start', 'u1']);
      const inside = (cmd: string): string => t.ok(['exec', 'u1', '--', '/bin/sh', '-c', cmd]).stdout;
      assert.notEqual(inside('cat /proc/self/uid_map').trim().split(/\s+/)[1], '0', 'an unprivileged guest');
      // Its user changes a file of the template (overlay: a copy-up) and makes one; its root too.
      inside('su -s /bin/sh u -c "echo more >> /srv/u/f && echo new > /srv/u/g" && echo r > /root/r');
      fs.writeFileSync(t.path('from-host'), 'host\n');
      t.ok(['cp', t.path('from-host'), 'u1:/srv/u/h']);
      assert.equal(
        inside('stat -c "%u:%g %n" /srv/u/f /srv/u/g /srv/u/h /root/r'),
        '1000:1000 /srv/u/f\n1000:1000 /srv/u/g\n0:0 /srv/u/h\n0:0 /root/r\n',
      );
      assert.equal(inside('cat /srv/u/f /srv/u/h'), 'base\nmore\nhost\n');
      const owner = (p: string): string => {
        const st = fs.statSync(join(own('u1'), p));
        return `${st.uid}:${st.gid}`;
      };
      assert.deepEqual(
        ['srv/u/f', 'srv/u/g', 'srv/u/h', 'root/r'].map(owner),
        ['1000:1000', '1000:1000', '0:0', '0:0'],
        "on disk, the guest's own IDs",
      );
      t.ok(['stop', 'u1']);
      // A start that fails after the root is assembled leaves nothing mounted.
      fs.appendFileSync(t.path('etc/jaula/guests/u1/fstab'), `${t.path('no-such-dir')} /mnt none bind 0 0\n`);
      const r = t.jaula(['start', 'u1']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /bind mount source .* does not exist/);
      assert.deepEqual(
        t.mounts().filter((m) => m !== pool),
        [],
        'nothing mounted after stop or a failed start',
      );
      t.ok(['delete', 'u1']);
      t.ok(['delete', 'o']);
    });

    it(`clones a guest under a new identity${v.driver === 'reflink' ? ', cloning its files' : ''}`, () => {
      const base = v.driver === 'reflink' ? fsUsed(pool) : 0;
      t.ok(['clone', 'src', 'c1', '-q']);
      const copied = v.driver === 'reflink' ? fsUsed(pool) - base : allocated(dataDir('c1'));
      if (v.cheap && v.driver === 'reflink') assert.ok(copied < 4 * 2 ** 20, `${copied} bytes written`);
      assert.equal(sum('c1', '/big'), sum('src', '/big'));
      assert.equal(t.ok(['run', 'c1', '--', '/bin/hostname']).stdout.trim(), 'c1');
      const list = JSON.parse(t.ok(['list', '--format', 'json']).stdout) as {
        name: string;
        context: number;
      }[];
      const ctx = new Map(list.map((g) => [g.name, g.context]));
      assert.notEqual(ctx.get('c1'), ctx.get('src'));
    });
  });
}

describe('clone: a new identity', () => {
  const t = new TestRoot();
  after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));
  const inside = (name: string, cmd: string): string =>
    t.ok(['run', name, '--', '/bin/sh', '-c', cmd]).stdout.trim();

  before(() => {
    t.ok([
      'build',
      'orig',
      '-m',
      'skeleton',
      '-q',
      '--interface',
      'eth0=jaula0:auto',
      '--initstyle',
      'cmd',
      '--cmd',
      '/bin/sleep 100000',
    ]);
    const keygen = spawnSync('ssh-keygen', ['-q', '-N', '', '-t', 'ed25519', '-f', t.path('hostkey')]);
    assert.equal(keygen.status, 0, 'ssh-keygen runs on the host');
    const root = t.guestRoot('orig');
    fs.mkdirSync(join(root, 'etc/ssh'), { recursive: true });
    fs.copyFileSync(t.path('hostkey'), join(root, 'etc/ssh/ssh_host_ed25519_key'));
    fs.copyFileSync(t.path('hostkey.pub'), join(root, 'etc/ssh/ssh_host_ed25519_key.pub'));
    fs.writeFileSync(join(root, 'etc/machine-id'), '0123456789abcdef0123456789abcdef\n');
  });

  it('gets the next context, its name as hostname, new MACs and pool addresses, machine-id and SSH host keys', () => {
    t.ok(['clone', 'orig', 'copy', '-q']);
    const cfg = (n: string): string => fs.readFileSync(t.path('etc/jaula/guests', n, 'config.toml'), 'utf8');
    const field = (text: string, k: string): string | undefined =>
      new RegExp(`^${k} = "?([^"\\n]*)"?$`, 'm').exec(text)?.[1];
    const a = cfg('orig');
    const b = cfg('copy');
    assert.notEqual(field(b, 'context'), field(a, 'context'));
    assert.equal(field(b, 'hostname'), 'copy');
    assert.match(field(b, 'mac') ?? '', /^02:/);
    assert.notEqual(field(b, 'mac'), field(a, 'mac'));
    const net = (x: string | undefined): string => (x ?? '').split('.').slice(0, 3).join('.');
    assert.match(field(b, 'address') ?? '', /^\d+\.\d+\.\d+\.\d+\/\d+$/);
    assert.notEqual(field(b, 'address'), field(a, 'address'));
    assert.equal(net(field(b, 'address')), net(field(a, 'address')), 'from the same pool');
    assert.match(b, /method = "clone"/);
    const id = inside('copy', 'cat /etc/machine-id');
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.notEqual(id, '0123456789abcdef0123456789abcdef');
    assert.equal(inside('orig', 'cat /etc/machine-id'), '0123456789abcdef0123456789abcdef');
    const pub = inside('copy', 'cat /etc/ssh/ssh_host_ed25519_key.pub');
    assert.match(pub, /^ssh-ed25519 \S+ root@copy$/);
    assert.notEqual(pub.split(' ')[1], fs.readFileSync(t.path('hostkey.pub'), 'utf8').split(' ')[1]);
    assert.equal(inside('copy', 'stat -c %a /etc/ssh/ssh_host_ed25519_key'), '600');
    assert.equal(inside('copy', 'cat /etc/hostname'), 'copy');
  });

  it('refuses to clone a running guest, and an interface with a static address it cannot renew', () => {
    t.ok(['start', 'orig']);
    const r = t.jaula(['clone', 'orig', 'x1']);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /is running: stop it first/);
    t.ok(['stop', 'orig']);
    t.ok(['build', 'st', '-m', 'skeleton', '-q', '--interface', 'eth0=lo:192.0.2.7/24,mode=macvlan']);
    const s = t.jaula(['clone', 'st', 'st2']);
    assert.equal(s.code, 2, s.stderr);
    assert.match(
      s.stderr,
      /static address 192\.0\.2\.7\/24 .* --interface SPEC \(or none with --no-interfaces\)/,
    );
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/st2')), false, 'nothing made');
    t.ok(['clone', 'st', 'st2', '--no-interfaces', '-q']);
    assert.doesNotMatch(fs.readFileSync(t.path('etc/jaula/guests/st2/config.toml'), 'utf8'), /interface/);
  });
});
