/**
 * jaula backup / restore, for every storage driver here (dir, overlay, overlay and dir in a btrfs
 * pool on a loop device, reflink on XFS): a privileged guest's own files (overlay whiteouts and
 * opaque directories, xattrs, owners, a device node, a sparse file, hard links, hostile
 * symlinks) come back the same under a new name, with its config; a truncated file and a
 * flipped byte are refused with nothing made; a layer the host has is stored once; a crafted
 * archive never writes outside its target; a running guest is backed up (said so); a chain of
 * a snapshot's archive and increments (--from) gives the guest back, and is refused out of order.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ArchiveWriter } from '../src/core/archive-format.js';
import { assertSameTree, TestRoot } from './helpers.js';
import { makeTar } from './tarwriter.js';

interface Variant {
  label: string;
  storage: 'dir' | 'overlay' | 'reflink';
  pool?: boolean;
  fs?: 'xfs';
}

const VARIANTS: Variant[] = [
  { label: 'dir', storage: 'dir' },
  { label: 'overlay', storage: 'overlay' },
  { label: 'overlay in a btrfs pool', storage: 'overlay', pool: true },
  { label: 'dir in a btrfs pool', storage: 'dir', pool: true },
  { label: 'reflink on XFS', storage: 'reflink', fs: 'xfs' },
];

const CMD = ['--initstyle', 'cmd', '--cmd', '/bin/sleep 100000'];

const sh = (...argv: string[]): void => {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
};

for (const v of VARIANTS) {
  describe(`backup and restore: ${v.label}`, () => {
    const t = new TestRoot('jaula-backup-');
    after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));
    const lib = t.path('var/lib/jaula');
    /** The directory holding a guest's own files (dir, reflink: its tree; overlay: its upper). */
    const own = (g: string): string => {
      const sub = v.storage === 'overlay' ? 'upper' : 'rootfs';
      if (v.storage === 'reflink') return join(lib, 'reflink/guests', g, 'rootfs');
      const inVol = join(lib, 'guests', g, 'vol', sub);
      return fs.existsSync(inVol) ? inVol : join(lib, 'guests', g, sub);
    };
    const archive = t.path('src.jaula');
    const outside = t.path('outside');
    /** What restore may leave in jaula's storage besides guests and templates: nothing. */
    const storageNames = (): string[] =>
      [...fs.readdirSync(join(lib, 'templates')), ...fs.readdirSync(join(lib, 'guests'))].sort();

    before(() => {
      if (v.pool) t.pool(512, 200);
      // Before the pool goes (cleanups run newest first): it is refused while it holds templates.
      t.onCleanup(() => {
        for (const n of fs.readdirSync(join(lib, 'templates')).filter((x) => !x.startsWith('.')))
          t.jaula(['template', 'delete', n]);
      });
      if (v.fs) t.loopFs(v.fs, join(lib, 'reflink'));
      // The template: a file and a directory the guest then removes (whiteout, opaque dir).
      t.ok(['build', 'tsrc', '-m', 'skeleton', '-q', '--storage', 'dir']);
      t.ok([
        'run',
        'tsrc',
        '--',
        '/bin/sh',
        '-c',
        'mkdir -p /data/opq && echo a > /data/gone && echo o > /data/opq/old',
      ]);
      t.ok(['template', 'save', 'tsrc', 'base', '-q']);
      t.ok(['delete', 'tsrc']);
      t.ok([
        'build',
        'src',
        '-m',
        'template',
        '-q',
        '--storage',
        v.storage,
        '--privileged',
        '--mark',
        'bk',
        ...CMD,
        '--',
        '-t',
        'base',
      ]);
      t.ok(['set', 'src', 'memory.max=96M', '--save']);
      t.ok([
        'run',
        'src',
        '--',
        '/bin/sh',
        '-c',
        'rm /data/gone && rm -rf /data/opq && mkdir /data/opq && echo n > /data/opq/new',
      ]);
      const d = join(own('src'), 'more');
      fs.mkdirSync(d);
      fs.writeFileSync(join(d, 'owned'), 'owned by 1234:5678\n');
      fs.chownSync(join(d, 'owned'), 1234, 5678);
      fs.chmodSync(join(d, 'owned'), 0o640);
      fs.writeFileSync(join(d, 'x'), 'with xattrs\n');
      sh('setfattr', '-n', 'user.k', '-v', 'v', join(d, 'x'));
      sh('setfattr', '-n', 'trusted.t', '-v', '1', join(d, 'x'));
      fs.writeFileSync(join(d, 'hl1'), 'one inode, two names\n');
      fs.linkSync(join(d, 'hl1'), join(d, 'hl2'));
      sh('mknod', join(d, 'null'), 'c', '1', '3');
      sh('mknod', join(d, 'wh'), 'c', '0', '0'); // a whiteout on every driver
      fs.mkdirSync(join(d, 'opq'));
      sh('setfattr', '-n', 'trusted.overlay.opaque', '-v', 'y', join(d, 'opq'));
      sh('truncate', '-s', '64M', join(d, 'sparse'));
      fs.appendFileSync(join(d, 'sparse'), 'end\n');
      // Hostile symlinks: backup must store them as links, never read what they point at.
      fs.symlinkSync('/', join(d, 'root'));
      fs.symlinkSync('../../../../../../../../..', join(d, 'up'));
      fs.symlinkSync('/etc/shadow', join(d, 'shadow'));
      fs.mkdirSync(outside);
    });

    it('round-trips the guest under a new name: every file, owner, xattr, device, whiteout, hole and link', () => {
      t.ok(['backup', 'src', '--to', archive, '-q']);
      assert.equal(fs.statSync(archive).mode & 0o777, 0o600);
      // The 64 MiB sparse file and the links to the host's root add (almost) nothing.
      assert.ok(fs.statSync(archive).size < 8 << 20, `archive of ${fs.statSync(archive).size} bytes`);
      const r = t.ok(['restore', archive, '--name', 'copy']);
      assert.match(r.stdout, /Restored guest "copy" \(context \d+/);
      assertSameTree(own('src'), own('copy'), "the copy's own files are the source's");
      const m = join(own('copy'), 'more');
      assert.equal(
        fs.statSync(join(m, 'hl1')).ino,
        fs.statSync(join(m, 'hl2')).ino,
        'hard links stay one inode',
      );
      assert.ok(fs.statSync(join(m, 'sparse')).blocks * 512 < 1 << 20, 'the sparse file stays sparse');
      assert.equal(fs.statSync(join(m, 'null')).rdev, fs.statSync('/dev/null').rdev);
      if (v.storage === 'overlay') {
        const up = own('copy');
        assert.equal(fs.statSync(join(up, 'data/gone')).rdev, 0, 'the whiteout of a removed file');
        assert.ok(fs.statSync(join(up, 'data/gone')).isCharacterDevice());
        sh('getfattr', '--absolute-names', '-n', 'trusted.overlay.opaque', join(up, 'data/opq'));
      }
      // The guest sees what the source saw: removed files stay removed, the opaque dir hides the old.
      const seen = t.ok(['run', 'copy', '--', '/bin/sh', '-c', 'ls /data; ls /data/opq; cat /more/x']).stdout;
      assert.equal(seen, 'opq\nnew\nwith xattrs\n');
      const cfg = (g: string): string =>
        fs
          .readFileSync(t.path('etc/jaula/guests', g, 'config.toml'), 'utf8')
          .replace(/^(name|context) = .*$|^# jaula guest .*$/gm, '');
      assert.equal(cfg('copy'), cfg('src'), 'the config (marks, limits, storage) is kept');
      assert.match(cfg('copy'), /marks = \[ "bk" \]/);
      assert.match(cfg('copy'), /memory.*96M|100663296/);
      assert.deepEqual(fs.readdirSync(outside), []);
    });

    it('refuses a truncated file and a flipped byte, naming what is wrong, and makes nothing', () => {
      const before = storageNames();
      const mounts = t.mounts();
      const whole = fs.readFileSync(archive);
      fs.writeFileSync(t.path('cut.jaula'), whole.subarray(0, Math.floor(whole.length / 2)));
      const cut = t.jaula(['restore', t.path('cut.jaula'), '--name', 'bad']);
      assert.notEqual(cut.code, 0);
      assert.match(cut.stderr, /is refused: it is truncated: it ends inside the member "[^"]+"/);
      const flipped = Buffer.from(whole);
      const at = whole.length - 4096 * 4; // inside the last tree's data (own files or hooks)
      flipped[at] = (flipped[at] ?? 0) ^ 0x01;
      fs.writeFileSync(t.path('flip.jaula'), flipped);
      const flip = t.jaula(['restore', t.path('flip.jaula'), '--name', 'bad']);
      assert.notEqual(flip.code, 0);
      assert.match(flip.stderr, /is refused: (the member "[^"]+" does not match its digest|it is damaged)/);
      assert.deepEqual(storageNames(), before, 'no guest, no layer, no staging directory');
      assert.deepEqual(t.mounts(), mounts, 'no mount');
      assert.notEqual(t.jaula(['status', 'bad']).code, 0);
      const again = t.jaula(['restore', archive]);
      assert.match(
        again.stderr,
        /A guest named "src" already exists here: restore under another name with --name NEW/,
      );
    });

    it('never writes outside the target for a crafted archive with a write through a symlink', async () => {
      const header = spawnSync('tar', ['-xOf', archive, 'jaula/header.json']).stdout;
      const h = JSON.parse(header.toString()) as { trees: string[]; layers: { sent: boolean }[] };
      h.trees = ['own'];
      h.layers = h.layers.map((l) => ({ ...l, sent: false })); // the host has them
      const evil = makeTar([
        { name: './', type: 'dir' },
        { name: './esc', type: 'symlink', linkname: outside },
        { name: './esc/pwned', data: 'written outside\n' },
      ]);
      const z = spawnSync('zstd', ['-q', '-c'], { input: evil });
      const sink = new PassThrough();
      const parts: Buffer[] = [];
      sink.on('data', (b: Buffer) => parts.push(b));
      const w = new ArchiveWriter(sink);
      await w.header(h);
      await w.member('own.000000', z.stdout);
      await w.finish();
      fs.writeFileSync(t.path('evil.jaula'), Buffer.concat(parts));
      const before = storageNames();
      const r = t.jaula(['restore', t.path('evil.jaula'), '--name', 'evil']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /would be written through the symlink "esc"/);
      assert.deepEqual(fs.readdirSync(outside), []);
      assert.deepEqual(storageNames(), before);
    });

    it('restores a chain of increments: new, changed and removed files, a type change, links, owners, xattrs', () => {
      const d = join(own('src'), 'inc');
      const f = (n: string): string => join(d, n);
      fs.mkdirSync(f('td'), { recursive: true });
      fs.writeFileSync(f('td/in'), 'in a directory that becomes a link\n');
      fs.writeFileSync(f('big'), spawnSync('head', ['-c', '1048576', '/dev/urandom']).stdout);
      fs.writeFileSync(f('keep'), 'unchanged\n');
      fs.writeFileSync(f('same'), 'aaaa\n');
      fs.writeFileSync(f('x'), 'x1\n');
      sh('setfattr', '-n', 'user.k', '-v', 'v1', f('x'));
      fs.writeFileSync(f('gone'), 'removed after s1\n');
      fs.writeFileSync(f('l1'), 'linked\n');
      t.ok(['snapshot', 'create', 'src', 's1']);
      const full = t.ok(['backup', 'src', '--snapshot', 's1', '--to', t.path('s1.jaula')]);
      assert.match(full.stdout, /Backed up snapshot "s1" of guest "src"/);
      // s1 -> s2: content, owner and xattr changes, a new file and directory, a removal, a
      // directory replaced by a (hostile) symlink, a new hard link to an old file.
      fs.writeFileSync(f('x'), 'x2, longer\n');
      sh('setfattr', '-n', 'user.k', '-v', 'v2', f('x'));
      fs.chownSync(f('keep'), 4321, 4321);
      fs.mkdirSync(f('nd'));
      fs.writeFileSync(f('nd/new'), 'new\n');
      fs.rmSync(f('gone'));
      fs.rmSync(f('td'), { recursive: true });
      fs.symlinkSync('/', f('td'));
      fs.linkSync(f('l1'), f('l2'));
      t.ok(['snapshot', 'create', 'src', 's2']);
      const inc = t.ok(['backup', 'src', '--snapshot', 's2', '--from', 's1', '--to', t.path('s2.jaula')]);
      assert.match(inc.stdout, /as an increment from snapshot "s1".* paths new or changed, \d+ removed\)/);
      const size = (n: string): number => fs.statSync(t.path(n)).size;
      assert.ok(
        size('s1.jaula') > 1 << 20,
        `the full archive holds the 1 MiB file (${size('s1.jaula')} bytes)`,
      );
      assert.ok(size('s2.jaula') < 256 << 10, `the increment does not (${size('s2.jaula')} bytes)`);
      // s2 -> now (the guest's present state): a write that puts the size and mtime back.
      const st = fs.statSync(f('same'));
      fs.writeFileSync(f('same'), 'bbbb\n');
      fs.utimesSync(f('same'), st.atime, st.mtime);
      fs.rmSync(f('nd'), { recursive: true });
      t.ok(['backup', 'src', '--from', 's2', '--to', t.path('now.jaula'), '-q']);
      const before = storageNames();

      // Out of order, or an increment alone: refused, nothing made.
      const bad = t.jaula(['restore', t.path('s1.jaula'), t.path('now.jaula'), '--name', 'bad']);
      assert.notEqual(bad.code, 0);
      assert.match(
        bad.stderr,
        /is an increment from snapshot "s2" .* holds snapshot "s1" .*: give the archives in the order/,
      );
      const alone = t.jaula(['restore', t.path('s2.jaula'), '--name', 'bad']);
      assert.match(
        alone.stderr,
        /is an increment from snapshot "s1" of guest "src": restore the full archive of that snapshot first/,
      );
      assert.deepEqual(storageNames(), before, 'no guest, no layer, no staging directory');

      const mid = t.ok(['restore', t.path('s1.jaula'), t.path('s2.jaula'), '--name', 'mid', '-q']);
      assert.match(mid.stdout, /Restored guest "mid"/);
      const m = (n: string): string => join(own('mid'), 'inc', n);
      assert.equal(fs.readFileSync(m('x'), 'utf8'), 'x2, longer\n');
      assert.equal(fs.readlinkSync(m('td')), '/', 'the directory became the link it was');
      assert.ok(!fs.existsSync(m('gone')));
      assert.equal(fs.statSync(m('keep')).uid, 4321);
      assert.equal(fs.statSync(m('l1')).ino, fs.statSync(m('l2')).ino, 'the new hard link is one inode');
      assert.equal(fs.readFileSync(m('nd/new'), 'utf8'), 'new\n');
      assert.equal(fs.readFileSync(m('same'), 'utf8'), 'aaaa\n');

      t.ok(['restore', t.path('s1.jaula'), t.path('s2.jaula'), t.path('now.jaula'), '--name', 'chain', '-q']);
      assertSameTree(own('src'), own('chain'), 'the chain gives the guest as it is now');
      assert.equal(
        fs.readFileSync(join(own('chain'), 'inc/same'), 'utf8'),
        'bbbb\n',
        'a write that kept size and mtime',
      );
      assert.deepEqual(fs.readdirSync(outside), []);
      for (const g of ['mid', 'chain']) t.ok(['delete', g]);
      for (const s of ['s1', 's2']) t.ok(['snapshot', 'delete', 'src', s]);
      fs.rmSync(d, { recursive: true });
      assert.deepEqual(storageNames(), before);
    });

    // Only overlay guests stack layers (dir and reflink guests hold a copy of their template).
    if (v.storage === 'overlay')
      it('stores a layer the host lacks once, and never twice', () => {
        const r = t.ok(['restore', archive, '--name', 'copy2']);
        assert.match(r.stderr, /Layer "base" is here already as template "base": not stored twice/);
        assert.match(r.stdout, /1 layer, 0 stored now/);
        for (const g of ['src', 'copy', 'copy2']) t.ok(['delete', g]);
        t.ok(['template', 'delete', 'base']);
        assert.match(t.ok(['restore', archive]).stdout, /1 layer, 1 stored now/);
        assert.match(t.ok(['restore', archive, '--name', 'copy3']).stdout, /1 layer, 0 stored now/);
        const names = fs.readdirSync(join(lib, 'templates')).filter((n) => !n.startsWith('.'));
        assert.deepEqual(names, ['base']);
        assert.equal(t.ok(['run', 'copy3', '--', '/bin/cat', '/data/opq/new']).stdout, 'n\n');
      });

    if (v.label === 'overlay')
      it("keeps an unprivileged overlay guest's whiteouts (no device node: refused there)", () => {
        t.ok(['build', 'plain', '-m', 'template', '-q', '--storage', 'overlay', ...CMD, '--', '-t', 'base']);
        t.ok(['run', 'plain', '--', '/bin/sh', '-c', 'rm /data/gone && rm -rf /data/opq && mkdir /data/opq']);
        t.ok(['backup', 'plain', '--to', t.path('plain.jaula'), '-q']);
        t.ok(['restore', t.path('plain.jaula'), '--name', 'plain2', '-q']);
        assertSameTree(own('plain'), own('plain2'), "the copy's upper is the source's");
        assert.ok(fs.statSync(join(own('plain2'), 'data/gone')).isCharacterDevice());
        assert.equal(
          t.ok(['run', 'plain2', '--', '/bin/sh', '-c', 'ls /data; ls /data/opq']).stdout,
          'opq\n',
        );
      });

    if (v.pool)
      it('backs up a running guest from a snapshot of one moment, and leaves no snapshot', () => {
        t.ok(['start', 'src']);
        t.ok(['exec', 'src', '--', '/bin/sh', '-c', 'echo running > /more/state']);
        const r = t.ok(['backup', 'src', '--to', t.path('live.jaula')]);
        assert.match(r.stderr, /Guest "src" is running: its files are read from a snapshot of this moment/);
        t.ok(['stop', 'src', '--kill']);
        const subvols = spawnSync('btrfs', ['subvolume', 'list', '-o', lib], { encoding: 'utf8' }).stdout;
        assert.doesNotMatch(subvols, /backup/, 'the snapshot is gone');
        assert.deepEqual(
          fs.readdirSync(join(lib, 'templates')).filter((n) => n.includes('backup')),
          [],
        );
        t.ok(['restore', t.path('live.jaula'), '--name', 'live', '-q']);
        assert.equal(t.ok(['run', 'live', '--', '/bin/cat', '/more/state']).stdout, 'running\n');
      });

    if (v.fs === 'xfs')
      it('backs up a running guest from a reflink copy made while it was frozen, and leaves no copy', () => {
        t.ok(['start', 'src']);
        // A writer inside counts in two files, one after the other, each replaced whole (rename):
        // in a copy of one moment the second is the first or one behind it; a copy made while it
        // runs sees them apart.
        const pair =
          'i=0; while :; do echo $i > /more/.a; mv /more/.a /more/a; echo $i > /more/.b; mv /more/.b /more/b; i=$((i + 1)); done';
        // (the skeleton's busybox has no nohup: a plain background job outlives the exec)
        t.ok(['exec', 'src', '--', '/bin/sh', '-c', `/bin/sh -c '${pair}' </dev/null >/dev/null 2>&1 &`]);
        t.ok(['exec', 'src', '--', '/bin/sh', '-c', 'until [ -s /more/b ]; do sleep 0.01; done']);
        const r = t.ok(['backup', 'src', '--to', t.path('live.jaula')]);
        assert.match(
          r.stderr,
          /Guest "src" is running: its files are read from a reflink copy of this moment/,
        );
        assert.equal(t.ok(['status', 'src', '--format', 'json']).stdout.includes('"running"'), true);
        t.ok(['stop', 'src', '--kill']);
        assert.deepEqual(fs.readdirSync(join(lib, 'reflink/guests/src/snapshots')), [], 'the copy is gone');
        t.ok(['restore', t.path('live.jaula'), '--name', 'live', '-q']);
        const [a, b] = ['a', 'b'].map((f) => Number(fs.readFileSync(join(own('live'), 'more', f), 'utf8')));
        assert.ok(a !== undefined && b !== undefined && (b === a || b === a - 1), `a=${a} b=${b}`);
        assert.equal(t.ok(['run', 'live', '--', '/bin/cat', '/more/x']).stdout, 'with xattrs\n');
      });

    if (v.label === 'dir')
      it('backs up a running guest (saying its files are copied as they change) and restores it', () => {
        t.ok(['start', 'src']);
        // A writer inside makes and removes files while tar reads the tree (tar's "file
        // changed" or "removed before we read it" is no failure of a live backup).
        const churn =
          'i=0; while [ $i -lt 20000 ]; do echo $i > /more/c$((i % 64)); rm -f /more/c$(((i + 32) % 64)); i=$((i + 1)); done';
        t.ok(['exec', 'src', '--', '/bin/sh', '-c', `/bin/sh -c '${churn}' </dev/null >/dev/null 2>&1 &`]);
        t.ok(['exec', 'src', '--', '/bin/sh', '-c', 'until [ -e /more/c1 ]; do sleep 0.01; done']);
        const r = t.ok(['backup', 'src', '--to', t.path('live.jaula')]);
        assert.match(r.stderr, /Guest "src" is running: its files are copied as they are/);
        assert.match(
          t.ok(['restore', t.path('live.jaula'), '--name', 'live']).stdout,
          /Restored guest "live"/,
        );
        assert.equal(t.ok(['run', 'live', '--', '/bin/cat', '/more/x']).stdout, 'with xattrs\n');
        t.ok(['stop', 'src', '--kill']);
      });
  });
}
