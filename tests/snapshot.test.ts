/**
 * Snapshots (jaula snapshot create|list|restore|delete), on every storage this host has: overlay
 * and dir on the host's filesystem (a plain copy: ext4 cannot reflink), reflink on XFS (a reflink
 * copy), and the btrfs storage pool (a read-only subvolume snapshot in the guest's quota group).
 * Running guests are frozen for the instant and thawed; a snapshot keeps owners, modes, xattrs,
 * overlay whiteouts and opaque directories, hard links and holes; a restore is exact, and a
 * failed one leaves the guest as it was; hostile symlinks are kept as links, never followed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestRoot } from './helpers.js';

interface Snap {
  name: string;
  kind: string;
  running: boolean;
  frozenMs?: number;
  bytes?: number;
}

/** Every entry below `dir`: type, mode, owner, links (as groups), size, blocks, device, target; and xattrs. */
function manifest(dir: string): string {
  const lines: string[] = [];
  const inodes = new Map<number, string>();
  const walk = (rel: string): void => {
    const p = join(dir, rel);
    const st = fs.lstatSync(p);
    const link = st.nlink > 1 && !st.isDirectory() ? (inodes.get(st.ino) ?? rel) : '';
    if (link === rel) inodes.set(st.ino, rel);
    const target = st.isSymbolicLink() ? fs.readlinkSync(p) : '';
    lines.push(
      [rel, st.mode.toString(8), `${st.uid}:${st.gid}`, link, st.size, st.blocks, st.rdev, target].join(' '),
    );
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  const x = spawnSync('getfattr', ['-R', '-h', '-P', '-d', '-m', '-', '.'], { cwd: dir, encoding: 'utf8' });
  return `${lines.join('\n')}\n${x.stdout.split('\n\n').sort().join('\n\n')}`;
}

/** Bind `dir` on itself for `fn` (a mount point cannot be renamed: EBUSY), unmounted after. */
function pinned<T>(dir: string, fn: () => T): T {
  assert.equal(spawnSync('mount', ['--bind', dir, dir]).status, 0);
  try {
    return fn();
  } finally {
    spawnSync('umount', [dir]);
  }
}

const CMD = ['--initstyle', 'cmd', '--cmd', '/bin/sleep 100000'];

describe('snapshots without a pool: overlay and dir (copies), reflink on XFS', () => {
  const t = new TestRoot('jaula-snap-');
  after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));
  before(() => {
    t.loopFs('xfs', t.path('var/lib/jaula/reflink'));
    t.buildSleeper('ov');
    t.buildSleeper('dr', ['--storage', 'dir']);
    t.buildSleeper('rf', ['--storage', 'reflink']);
  });
  const list = (g: string): Snap[] =>
    JSON.parse(t.ok(['snapshot', 'list', g, '--format', 'json']).stdout) as Snap[];
  const snapTree = (g: string, s: string, sub = 'upper'): string =>
    g === 'rf'
      ? t.path('var/lib/jaula/reflink/guests', g, 'snapshots', s, 'vol', sub)
      : t.path('var/lib/jaula/guests', g, 'snapshots', s, 'vol', sub);
  const leftovers = (g: string): string[] => {
    const dirs = [t.path('var/lib/jaula/guests', g), t.path('var/lib/jaula/guests', g, 'snapshots')];
    return dirs
      .flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d) : []))
      .filter((n) => /\.(new|old)-/.test(n));
  };

  it('names snapshots snap0, snap1, ... and says how each was made: a copy here, a reflink copy on XFS', () => {
    const a = t.ok(['snapshot', 'create', 'ov']);
    assert.match(
      a.stdout,
      /Snapshot "snap0" of guest "ov": a full copy of its files \(this filesystem cannot reflink\)/,
    );
    t.ok(['snapshot', 'create', 'ov']);
    assert.deepEqual(
      list('ov').map((s) => [s.name, s.kind, s.running]),
      [
        ['snap0', 'copy', false],
        ['snap1', 'copy', false],
      ],
    );
    assert.ok((list('ov')[0]?.bytes ?? 0) > 0, 'the size of a copy is known');
    const r = t.ok(['snapshot', 'create', 'rf', 'first']);
    assert.match(r.stdout, /a reflink copy of its files/);
    assert.equal(list('rf')[0]?.kind, 'reflink');
    assert.equal(fs.existsSync(join(snapTree('rf', 'first', 'rootfs'), 'bin/busybox')), true);
    const d = t.ok(['snapshot', 'create', 'dr']);
    assert.match(d.stdout, /a full copy/);
    assert.equal(fs.existsSync(join(snapTree('dr', 'snap0', 'rootfs'), 'bin/busybox')), true);
  });

  it('freezes a running guest only for the snapshot, thaws it, and restores it, restarting it', () => {
    t.ok(['start', 'ov']);
    t.sh('ov', 'echo before > /data');
    const c = t.ok(['snapshot', 'create', 'ov', 'running1']);
    assert.match(c.stdout, /the guest was frozen for [\d.]+ ms/);
    const cg = t.state('ov')['cgroupsPath'] as string;
    const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
    const state = v2
      ? fs.readFileSync(`/sys/fs/cgroup${cg}/cgroup.freeze`, 'utf8').trim()
      : fs.readFileSync(`/sys/fs/cgroup/freezer${cg}/freezer.state`, 'utf8').trim();
    assert.equal(state, v2 ? '0' : 'THAWED', 'thawed after the snapshot');
    assert.equal(t.sh('ov', 'echo alive').stdout, 'alive\n');
    const s = list('ov').find((x) => x.name === 'running1');
    assert.equal(s?.running, true);
    assert.equal(fs.readFileSync(join(snapTree('ov', 'running1'), 'data'), 'utf8'), 'before\n');
    t.sh('ov', 'echo after > /data; touch /new');
    const r = t.ok(['snapshot', 'restore', 'ov', 'running1']);
    assert.match(
      r.stderr,
      /Guest "ov" is running: stopping it to restore "running1", then starting it again/,
    );
    assert.match(r.stdout, /restored to snapshot "running1" .*, and started again/);
    assert.equal(t.assertConsistent('ov').status, 'running');
    assert.equal(t.sh('ov', 'cat /data; test -e /new || echo no-new').stdout, 'before\nno-new\n');
    t.ok(['stop', 'ov']);
  });

  it('keeps owners, modes, xattrs, whiteouts, opaque directories, hard links and holes, and restores them exactly', () => {
    const up = t.guestRoot('ov');
    fs.mkdirSync(join(up, 'srv/opaque'), { recursive: true });
    fs.writeFileSync(join(up, 'srv/owned'), 'x');
    fs.chownSync(join(up, 'srv/owned'), 1234, 5678);
    fs.chmodSync(join(up, 'srv/owned'), 0o4751);
    fs.linkSync(join(up, 'srv/owned'), join(up, 'srv/hardlink'));
    const sparse = join(up, 'srv/sparse');
    fs.writeFileSync(sparse, 'end');
    fs.truncateSync(sparse, 64 * 2 ** 20);
    assert.equal(spawnSync('mknod', [join(up, 'srv/whiteout'), 'c', '0', '0']).status, 0);
    spawnSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(up, 'srv/opaque')]);
    spawnSync('setfattr', ['-n', 'user.note', '-v', 'kept', join(up, 'srv/owned')]);
    const before = manifest(up);
    assert.match(before, /trusted.overlay.opaque="y"/);
    t.ok(['snapshot', 'create', 'ov', 'attrs']);
    assert.equal(manifest(snapTree('ov', 'attrs')), before, 'the snapshot is the same tree');
    assert.ok(
      fs.statSync(join(snapTree('ov', 'attrs'), 'srv/sparse')).blocks < 1024,
      'the hole stays a hole',
    );
    fs.rmSync(join(up, 'srv'), { recursive: true });
    fs.writeFileSync(join(up, 'later'), 'later');
    t.ok(['snapshot', 'restore', 'ov', 'attrs']);
    assert.equal(manifest(t.guestRoot('ov')), before, 'restored exactly');
    assert.deepEqual(leftovers('ov'), []);
  });

  it("keeps a hostile guest's symlinks as links: nothing outside its tree is read or written", () => {
    const outside = t.path('outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(join(outside, 'secret'), 'host secret');
    const up = t.guestRoot('dr');
    fs.symlinkSync(outside, join(up, 'escape'));
    fs.symlinkSync('../../../../../../../../../..', join(up, 'up'));
    fs.symlinkSync(join(outside, 'secret'), join(up, 'secret'));
    t.ok(['snapshot', 'create', 'dr', 'links']);
    const tree = snapTree('dr', 'links', 'rootfs');
    for (const n of ['escape', 'up', 'secret']) assert.ok(fs.lstatSync(join(tree, n)).isSymbolicLink(), n);
    assert.deepEqual(fs.readdirSync(outside), ['secret'], 'nothing was written outside');
    fs.rmSync(join(up, 'escape'));
    fs.mkdirSync(join(up, 'escape'));
    t.ok(['snapshot', 'restore', 'dr', 'links']);
    assert.equal(fs.readlinkSync(join(t.guestRoot('dr'), 'escape')), outside);
    assert.deepEqual(fs.readdirSync(outside), ['secret']);
    assert.equal(fs.readFileSync(join(outside, 'secret'), 'utf8'), 'host secret');
  });

  it('leaves the guest exactly as it was when a restore fails at either swap', () => {
    fs.writeFileSync(join(t.guestRoot('ov'), 'now'), 'now');
    const before = manifest(t.guestRoot('ov'));
    const unified = t.path('var/lib/jaula/guests/ov/unified');
    fs.writeFileSync(join(unified, 'u'), 'u');
    for (const dir of [t.guestRoot('ov'), unified]) {
      const r = pinned(dir, () => t.jaula(['snapshot', 'restore', 'ov', 'snap0']));
      assert.notEqual(r.code, 0, `restore fails while ${dir} cannot be renamed`);
      assert.match(r.stderr, /EBUSY|busy/i);
      assert.equal(manifest(t.guestRoot('ov')), before, 'its files are as before');
      assert.deepEqual(fs.readdirSync(unified), ['u'], 'its unified layer is as before');
      assert.deepEqual(leftovers('ov'), [], 'nothing half-made is left');
    }
    t.ok(['snapshot', 'restore', 'ov', 'snap0']);
    assert.equal(fs.existsSync(join(t.guestRoot('ov'), 'now')), false);
  });

  it('refuses bad input with a clear error and leaves nothing behind', () => {
    const n = list('ov').length;
    const cases: [string[], RegExp][] = [
      [['snapshot', 'create', 'nosuch'], /There is no guest "nosuch"/],
      [['snapshot', 'create', 'ov', 'snap0'], /already has a snapshot "snap0": choose another name/],
      [['snapshot', 'create', 'ov', '../x'], /snapshot name "..\/x" contains/],
      [['snapshot', 'create', 'ov', '.hidden'], /snapshot name ".hidden" is not valid/],
      [
        ['snapshot', 'restore', 'ov', 'nosuch'],
        /Guest "ov" has no snapshot "nosuch" \(see "jaula snapshot list ov"\)/,
      ],
      [['snapshot', 'delete', 'ov', 'nosuch'], /Guest "ov" has no snapshot "nosuch"/],
      [['snapshot', 'list', 'nosuch'], /There is no guest "nosuch"/],
      [['snapshot', 'restore', 'ov'], /jaula snapshot restore GUEST NAME/],
      [['snapshot', 'frobnicate', 'ov'], /Unknown snapshot command "frobnicate"/],
    ];
    for (const [args, re] of cases) {
      const r = t.jaula(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
    assert.equal(list('ov').length, n);
    assert.deepEqual(leftovers('ov'), []);
  });

  it('deletes one snapshot; a rename keeps them; deleting the guest deletes them all', () => {
    t.ok(['snapshot', 'delete', 'ov', 'snap1']);
    assert.equal(fs.existsSync(t.path('var/lib/jaula/guests/ov/snapshots/snap1')), false);
    t.ok(['rename', 'ov', 'ov2']);
    assert.ok(list('ov2').some((s) => s.name === 'attrs'));
    t.ok(['snapshot', 'restore', 'ov2', 'running1']);
    assert.equal(fs.readFileSync(join(t.guestRoot('ov2'), 'data'), 'utf8'), 'before\n');
    const du = JSON.parse(t.ok(['du', 'ov2', '--format', 'json']).stdout) as {
      guests: { snapshots?: { count: number; bytes?: number } }[];
    };
    assert.equal(du.guests[0]?.snapshots?.count, list('ov2').length);
    t.ok(['delete', 'ov2']);
    t.ok(['delete', 'rf']);
    assert.equal(fs.existsSync(t.path('var/lib/jaula/guests/ov2')), false);
    assert.equal(fs.existsSync(t.path('var/lib/jaula/reflink/guests/rf')), false);
  });
});

describe('snapshots in the storage pool: read-only subvolumes in the guest quota group', () => {
  const t = new TestRoot('jaula-snappool-');
  const lib = t.path('var/lib/jaula');
  after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));
  before(() => {
    t.pool(512, 48);
    t.ok(['build', 'pa', '-m', 'skeleton', '-q', ...CMD]);
    t.ok(['start', 'pa']);
  });
  const list = (g: string): Snap[] =>
    JSON.parse(t.ok(['snapshot', 'list', g, '--format', 'json']).stdout) as Snap[];
  const subvols = (): string[] =>
    spawnSync('btrfs', ['subvolume', 'list', '-o', lib], { encoding: 'utf8' })
      .stdout.split('\n')
      .map((l) => /path (\S+)$/.exec(l)?.[1])
      .filter((p): p is string => !!p)
      .sort();
  const quota = (): { bytes: number; bytesLimit: number } => {
    spawnSync('btrfs', ['filesystem', 'sync', lib]);
    const du = JSON.parse(t.ok(['du', 'pa', '--format', 'json']).stdout) as {
      guests: { quota: { bytes: number; bytesLimit: number } }[];
    };
    return du.guests[0]?.quota as { bytes: number; bytesLimit: number };
  };

  it('snapshots a running guest as a read-only subvolume', () => {
    t.sh('pa', 'echo one > /data');
    const r = t.ok(['snapshot', 'create', 'pa']);
    assert.match(
      r.stdout,
      /a read-only btrfs subvolume snapshot \(no data copied\); the guest was frozen for [\d.]+ ms/,
    );
    assert.deepEqual(subvols(), ['guests/pa/snapshots/snap0/vol', 'guests/pa/vol']);
    const ro = spawnSync(
      'btrfs',
      ['property', 'get', '-ts', join(lib, 'guests/pa/snapshots/snap0/vol'), 'ro'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(ro.stdout.trim(), 'ro=true');
    assert.equal(fs.readFileSync(join(lib, 'guests/pa/snapshots/snap0/vol/upper/data'), 'utf8'), 'one\n');
    assert.equal(list('pa')[0]?.kind, 'subvolume');
  });

  it("counts snapshots against the guest's disk limit, until they are deleted", () => {
    t.sh('pa', 'dd if=/dev/urandom of=/big bs=1M count=20 2>/dev/null; sync');
    t.ok(['snapshot', 'create', 'pa', 'big']);
    t.sh('pa', 'rm /big; sync');
    const q = quota();
    assert.equal(q.bytesLimit, 48 * 2 ** 20);
    assert.ok(q.bytes >= 20 * 2 ** 20, `the snapshot's 20M count: ${JSON.stringify(q)}`);
    assert.ok((list('pa').find((s) => s.name === 'big')?.bytes ?? 0) >= 20 * 2 ** 20, 'its size is shown');
    const full = t.sh(
      'pa',
      'dd if=/dev/zero of=/fill bs=1M count=40 2>&1; echo status $?; rm -f /fill; sync',
    );
    assert.match(full.stdout, /Disk quota exceeded/, 'the snapshot leaves less room');
    t.ok(['snapshot', 'delete', 'pa', 'big']);
    spawnSync('btrfs', ['subvolume', 'sync', lib]);
    const room = t.sh('pa', 'dd if=/dev/zero of=/fill bs=1M count=40 2>&1 && sync && echo ok; rm -f /fill');
    assert.match(room.stdout, /ok/, room.stdout);
  });

  it('restores a running guest, and a failed restore leaves its subvolume as it was', () => {
    t.sh('pa', 'echo two > /data');
    t.ok(['stop', 'pa']);
    const vol = join(lib, 'guests/pa/vol');
    const r = pinned(vol, () => t.jaula(['snapshot', 'restore', 'pa', 'snap0']));
    assert.notEqual(r.code, 0);
    assert.deepEqual(subvols(), ['guests/pa/snapshots/snap0/vol', 'guests/pa/vol'], 'no half-made subvolume');
    assert.equal(fs.readFileSync(join(vol, 'upper/data'), 'utf8'), 'two\n');
    t.ok(['start', 'pa']);
    t.ok(['snapshot', 'restore', 'pa', 'snap0']);
    assert.equal(t.sh('pa', 'cat /data').stdout, 'one\n');
    assert.deepEqual(subvols(), ['guests/pa/snapshots/snap0/vol', 'guests/pa/vol']);
    assert.ok(quota().bytesLimit === 48 * 2 ** 20, 'the restored subvolume is in the same limit');
  });

  it('deletes the snapshots with the guest', () => {
    t.ok(['delete', '--force', 'pa']);
    assert.deepEqual(subvols(), []);
  });
});
