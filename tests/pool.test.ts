/**
 * The storage pool (jaula pool create): var/lib/jaula on a btrfs image on a loop device, each
 * guest's own files in a subvolume whose quota group is its disk limit. Every guest gets the
 * pool's default limit; a guest at its limit gets EDQUOT while a neighbour keeps writing; the
 * limit changes at once, even while the guest runs; hashify still shares files across the
 * guests' subvolumes (cloned into the store, since hard links cannot cross them).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestRoot, buildSkeleton } from './helpers.js';

const CMD = ['--initstyle', 'cmd', '--cmd', '/bin/sleep 100000'];

interface Du {
  guests: { name: string; quota?: { bytes: number; bytesLimit: number; inodes?: number } }[];
}

const MiB = 2 ** 20;

describe('the storage pool: a disk limit for every guest', () => {
  const t = new TestRoot('jaula-pool-');
  const lib = t.path('var/lib/jaula');
  after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));
  before(() => {
    t.pool(512, 48);
    buildSkeleton(t, 'pa', CMD);
    buildSkeleton(t, 'pb', CMD);
    t.ok(['start', 'pa']);
    t.ok(['start', 'pb']);
  });
  const du = (...names: string[]): Du => JSON.parse(t.ok(['du', ...names, '--format', 'json']).stdout) as Du;
  const subvols = (): string[] =>
    spawnSync('btrfs', ['subvolume', 'list', '-o', lib], { encoding: 'utf8' })
      .stdout.split('\n')
      .map((l) => /path (\S+)$/.exec(l)?.[1])
      .filter((p): p is string => !!p);

  it('is a btrfs filesystem mounted on var/lib/jaula, and each guest has a subvolume', () => {
    assert.equal(fs.statfsSync(lib).type, 0x9123683e);
    const show = JSON.parse(t.ok(['pool', 'show', '--format', 'json']).stdout) as {
      mounted: boolean;
      guestQuota: number;
    };
    assert.equal(show.mounted, true);
    assert.equal(show.guestQuota, 48 * MiB);
    assert.deepEqual(subvols().sort(), ['guests/pa/vol', 'guests/pb/vol']);
    assert.match(
      fs.readFileSync(t.path('etc/jaula/guests/pa/config.toml'), 'utf8'),
      /quota_bytes = 50331648/,
    );
    assert.match(
      t.jaula(['doctor']).stdout,
      /storage pool\s+ok\s+.*on btrfs.*each new guest limited to 48\.0M/,
    );
    assert.match(t.jaula(['doctor', '--security']).stdout, /disk limits\s+ok/);
  });

  it('stops a guest at its default limit with EDQUOT while a neighbour keeps writing', () => {
    const r = t.sh('pa', 'dd if=/dev/zero of=/fill bs=1M count=200 2>&1; echo status $?');
    assert.match(r.stdout, /Disk quota exceeded/);
    assert.match(r.stdout, /status 1/);
    const n = t.sh('pb', 'dd if=/dev/zero of=/fill bs=1M count=40 2>&1 && sync && echo ok');
    assert.match(n.stdout, /ok/, n.stdout);
    spawnSync('btrfs', ['filesystem', 'sync', lib]);
    const q = du('pa').guests[0]?.quota;
    assert.ok(q, 'du shows the limit');
    assert.equal(q.bytesLimit, 48 * MiB);
    assert.ok(q.bytes > 0.9 * q.bytesLimit, `full: ${JSON.stringify(q)}`);
    t.sh('pa', 'rm /fill');
    t.sh('pb', 'rm /fill');
  });

  it("changes a running guest's limit at once, removes it, and refuses an inode limit", () => {
    t.ok(['set', 'pa', '--quota', '128M']);
    const more = t.sh('pa', 'dd if=/dev/zero of=/fill bs=1M count=90 2>&1 && echo ok; rm -f /fill');
    assert.match(more.stdout, /ok/, more.stdout);
    t.ok(['set', 'pa', '--quota', 'none']);
    assert.equal(du('pa').guests[0]?.quota, undefined);
    assert.doesNotMatch(fs.readFileSync(t.path('etc/jaula/guests/pa/config.toml'), 'utf8'), /quota_bytes/);
    const bad = t.jaula(['set', 'pa', '--quota', '64M', '--quota-inodes', '1000']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /limits space only/);
    t.ok(['set', 'pa', '--quota', '48M']);
    const again = t.sh('pa', 'dd if=/dev/zero of=/fill bs=1M count=200 2>&1; rm -f /fill');
    assert.match(again.stdout, /Disk quota exceeded/);
  });

  it("shares identical files across the guests' subvolumes (hashify), copy-on-write kept", () => {
    const make =
      'mkdir -p /opt/u && seq 1 5000 > /opt/u/data && chmod 4711 /opt/u/data && touch -d "2024-01-02 03:04:05" /opt/u/data';
    t.sh('pa', make);
    t.sh('pb', make);
    t.ok(['stop', 'pa', 'pb']);
    t.ok(['hashify', 'pa', 'pb']);
    const ua = fs.statSync(t.path('var/lib/jaula/guests/pa/unified/opt/u/data'));
    const ub = fs.statSync(t.path('var/lib/jaula/guests/pb/unified/opt/u/data'));
    assert.equal(ua.ino, ub.ino, 'one inode for both guests');
    assert.equal(ua.mode & 0o7777, 0o4711, 'the mode is kept');
    assert.equal(ua.mtime.toISOString(), '2024-01-02T03:04:05.000Z', 'the time is kept');
    assert.ok(!fs.existsSync(`${t.guestRoot('pa')}/opt/u/data`), "gone from pa's own files");
    t.ok(['start', 'pa']);
    t.ok(['start', 'pb']);
    assert.equal(t.sh('pa', 'seq 1 5000 | cmp - /opt/u/data && echo same').stdout, 'same\n');
    t.sh('pa', 'echo changed > /opt/u/data');
    assert.equal(t.sh('pb', 'seq 1 5000 | cmp - /opt/u/data && echo same').stdout, 'same\n');
    assert.equal(t.sh('pa', 'cat /opt/u/data').stdout, 'changed\n');
  });

  it('is mounted again at the next command after a reboot', () => {
    t.ok(['stop', 'pa', 'pb']);
    assert.equal(spawnSync('umount', [lib]).status, 0, 'unmounting the pool (as a reboot would)');
    assert.notEqual(fs.statfsSync(lib).type, 0x9123683e);
    const names = (JSON.parse(t.ok(['list', '--format', 'json']).stdout) as { name: string }[]).map(
      (g) => g.name,
    );
    assert.deepEqual(names.sort(), ['pa', 'pb']);
    assert.equal(fs.statfsSync(lib).type, 0x9123683e);
    t.ok(['start', 'pa']);
    assert.equal(t.sh('pa', 'cat /opt/u/data').stdout, 'changed\n');
  });

  it('refuses a second pool and deleting one that holds guests; deleting a guest removes its subvolume', () => {
    const again = t.jaula(['pool', 'create', '--size', '512M']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /storage pool already/);
    t.ok(['pool', 'create', '--if-absent']);
    const del = t.jaula(['pool', 'delete']);
    assert.notEqual(del.code, 0);
    assert.match(del.stderr, /still holds 2 guests/);
    t.ok(['delete', '--force', 'pb']);
    assert.deepEqual(subvols(), ['guests/pa/vol']);
  });
});

describe('making a pool', () => {
  const t = new TestRoot('jaula-pool-');
  after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

  it('is refused over existing guests (they would be hidden), and skipped with --if-absent', () => {
    buildSkeleton(t, 'old');
    const r = t.jaula(['pool', 'create', '--size', '512M']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /already holds data \(1 guest in .*\): make the pool before the first guest/);
    const skip = t.ok(['pool', 'create', '--if-absent']);
    assert.match(skip.stderr, /No storage pool made/);
    assert.equal(t.ok(['pool', 'show', '--format', 'json']).stdout.trim(), 'null');
    assert.ok(!fs.existsSync(t.path('var/lib/jaula.img')));
    assert.deepEqual(t.loops(), []);
  });

  it('refuses a size too small for btrfs, leaving nothing', () => {
    t.ok(['delete', 'old']);
    const r = t.jaula(['pool', 'create', '--size', '64M']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /too small for btrfs: give --size 256M or more/);
    assert.ok(!fs.existsSync(t.path('var/lib/jaula.img')));
    assert.ok(!fs.existsSync(t.path('etc/jaula/pool.json')));
  });
});
