/**
 * hashify: identical files of overlay guests end up as one inode in each guest's unified layer,
 * and of reflink guests (XFS on a loop device) share their extents; every file's content and
 * metadata stay as they were, also after a hashify killed (SIGKILL) at random moments; a write
 * in one guest is never seen by another; running guests are unified at their next start and
 * what they write meanwhile is kept; the index makes a rescan read only changed files.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isDir, isReg, walkTree } from '../src/os/walk.js';
import { waitStopped } from './crashkit.js';
import { TestRoot, jaulaBin } from './helpers.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

const GUESTS = ['h1', 'h2', 'h3'];
const N_FILES = 150;
const guestDir = (g: string, sub: string): string => t.path('var/lib/jaula/guests', g, sub);

/** Every entry of a stopped guest's root as the guest sees it: a read-only overlay of its layers. */
function manifest(g: string): Map<string, string> {
  const mnt = t.path(`view-${g}`);
  fs.mkdirSync(mnt, { recursive: true });
  const lower = [guestDir(g, 'upper'), guestDir(g, 'unified')].join(':');
  const m = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lower}`, mnt], {
    encoding: 'utf8',
  });
  assert.equal(m.status, 0, m.stderr);
  try {
    const out = new Map<string, string>();
    for (const e of walkTree(mnt, { xattrs: true })) {
      const xs = (e.xattrs ?? []).map(([k, v]) => `${k}=${v.toString('hex')}`).join(',');
      const base = `${e.mode.toString(8)} ${e.uid}:${e.gid} ${xs}`;
      if (isDir(e)) out.set(e.path, base);
      else {
        const what = isReg(e)
          ? createHash('sha256')
              .update(fs.readFileSync(join(mnt, e.path)))
              .digest('hex')
          : fs.lstatSync(join(mnt, e.path)).isSymbolicLink()
            ? fs.readlinkSync(join(mnt, e.path))
            : `rdev ${e.rdev}`;
        out.set(e.path, `${base} ${e.size} ${e.mtimeSec}.${e.mtimeNsec} ${what}`);
      }
    }
    return out;
  } finally {
    spawnSync('umount', [mnt]);
  }
}

function sameManifests(before: Map<string, Map<string, string>>, when: string): void {
  for (const g of GUESTS) {
    const now = manifest(g);
    const diff = [...new Set([...before.get(g)!.keys(), ...now.keys()])].filter(
      (p) => before.get(g)!.get(p) !== now.get(p),
    );
    assert.deepEqual(diff, [], `${when}: guest ${g} sees every file as before`);
  }
}

interface Report {
  guests: { name: string; result: string; files: number }[];
  scanned: { hashedFiles: number };
  unified: { files: number; bytes: number };
  ms: { scan: number; apply: number; total: number };
}
const hashify = (...args: string[]): Report =>
  JSON.parse(t.ok(['hashify', ...args, '--format', 'json']).stdout) as Report;

/** A template archive: a busybox skeleton plus files worth sharing, tiny ones, and some in /etc. */
function makeArchive(): string {
  t.ok(['build', 'seed', '-m', 'skeleton', '-q', '--storage', 'dir']);
  const root = t.path('var/lib/jaula/guests/seed/rootfs');
  const lib = join(root, 'usr/lib/jt');
  fs.mkdirSync(lib, { recursive: true });
  let x = 1;
  for (let i = 0; i < N_FILES; i++) {
    const size = 2048 + ((i * 7919) % 8192);
    const b = Buffer.alloc(size);
    for (let k = 0; k < size; k += 4)
      b.writeUInt32LE((x = (x * 1103515245 + 12345) >>> 0), Math.min(k, size - 4));
    fs.writeFileSync(join(lib, `f${i}`), b);
  }
  fs.writeFileSync(join(lib, 'tiny'), 'small\n');
  fs.writeFileSync(join(root, 'etc/big.conf'), 'x'.repeat(8192));
  fs.linkSync(join(lib, 'f0'), join(lib, 'f0-hardlink'));
  spawnSync('setfattr', ['-n', 'user.kept', '-v', 'yes', join(lib, 'f1')]);
  fs.chmodSync(join(lib, 'f2'), 0o4755);
  t.ok(['template', 'save', 'seed', 'seedtpl', '-q']);
  const file = t.path('seed.tar');
  t.ok(['template', 'export', 'seedtpl', file, '-q']);
  return file;
}

/** (Re)build a guest from the archive: its upper holds all the files. */
function rebuild(g: string, file: string): void {
  t.jaula(['delete', '--force', g]);
  t.ok([
    'build',
    g,
    '-m',
    'template',
    '-q',
    '--initstyle',
    'cmd',
    '--cmd',
    '/bin/sleep 100000',
    '--',
    '-t',
    file,
  ]);
}

function buildGuests(file: string): void {
  for (const g of GUESTS) rebuild(g, file);
  // Make them differ a little: content, mode, xattr.
  fs.appendFileSync(guestDir('h2', 'upper/usr/lib/jt/f10'), 'changed in h2');
  fs.chmodSync(guestDir('h3', 'upper/usr/lib/jt/f11'), 0o600);
  spawnSync('setfattr', ['-n', 'user.only', '-v', 'h1', guestDir('h1', 'upper/usr/lib/jt/f12')]);
}

describe('hashify on overlay guests', () => {
  let archive = '';
  let original = new Map<string, Map<string, string>>();
  before(() => {
    archive = makeArchive();
    buildGuests(archive);
    original = new Map(GUESTS.map((g) => [g, manifest(g)]));
  });

  it('--dry-run reads and plans but changes nothing', () => {
    const r = hashify('--all', '--dry-run');
    const h1 = r.guests.find((g) => g.name === 'h1');
    assert.equal(h1?.result, 'would unify');
    assert.ok((h1?.files ?? 0) >= N_FILES - 5, JSON.stringify(r.guests));
    assert.equal(fs.readdirSync(guestDir('h1', 'unified')).length, 0);
    sameManifests(original, 'after --dry-run');
  });

  it('unifies identical files into one inode per content, keeping every file as each guest sees it', () => {
    const r = hashify(...GUESTS);
    assert.equal(r.scanned.hashedFiles, 0, 'the dry run indexed every file: nothing is read again');
    assert.ok(r.unified.files >= 3 * (N_FILES - 5), JSON.stringify(r.unified));
    sameManifests(original, 'after hashify');
    const ino = (g: string, p: string): number => fs.statSync(guestDir(g, join('unified/usr/lib/jt', p))).ino;
    assert.equal(ino('h1', 'f5'), ino('h2', 'f5'));
    assert.equal(ino('h2', 'f5'), ino('h3', 'f5'));
    assert.equal(fs.existsSync(guestDir('h1', 'upper/usr/lib/jt/f5')), false, 'gone from the upper');
    // Left alone: different content (h2 f10), mode (h3 f11), xattrs (h1 f12); tiny, excluded, hard-linked.
    assert.ok(fs.existsSync(guestDir('h2', 'upper/usr/lib/jt/f10')));
    assert.equal(ino('h1', 'f10'), ino('h3', 'f10'), 'the two others still share it');
    assert.ok(fs.existsSync(guestDir('h3', 'upper/usr/lib/jt/f11')));
    assert.ok(fs.existsSync(guestDir('h1', 'upper/usr/lib/jt/f12')));
    assert.notEqual(ino('h1', 'f1'), 0, 'same xattrs everywhere: shared');
    for (const p of ['usr/lib/jt/tiny', 'etc/big.conf', 'usr/lib/jt/f0', 'usr/lib/jt/f0-hardlink'])
      assert.ok(fs.existsSync(guestDir('h1', `upper/${p}`)), `${p} stays in the upper`);
    const du = JSON.parse(t.ok(['du', 'h1', 'h2', 'h3', '--format', 'json']).stdout) as {
      guests: { sharedBytes: number }[];
    };
    for (const g of du.guests) assert.ok(g.sharedBytes > N_FILES * 2048, JSON.stringify(g));
  });

  it('never lets a write in one guest reach another', () => {
    t.ok(['start', 'h1']);
    t.ok(['start', 'h2']);
    const before = t.ok(['exec', 'h2', '--', 'md5sum', '/usr/lib/jt/f20']).stdout;
    t.ok(['exec', 'h1', '--', '/bin/sh', '-c', 'echo evil >> /usr/lib/jt/f20']);
    assert.notEqual(t.ok(['exec', 'h1', '--', 'md5sum', '/usr/lib/jt/f20']).stdout, before);
    assert.equal(t.ok(['exec', 'h2', '--', 'md5sum', '/usr/lib/jt/f20']).stdout, before);
    t.ok(['stop', 'h1']);
    t.ok(['stop', 'h2']);
    original.set('h1', manifest('h1'));
  });

  it('unifies a running guest at its next start, keeping what it wrote meanwhile', () => {
    rebuild('h3', archive);
    t.ok(['start', 'h3']);
    const r = hashify('h1', 'h2', 'h3');
    assert.equal(r.guests.find((g) => g.name === 'h3')?.result, 'at next start');
    assert.ok(fs.existsSync(guestDir('h3', 'upper/usr/lib/jt/f30')), 'nothing moved under a running guest');
    t.ok(['exec', 'h3', '--', '/bin/sh', '-c', 'echo mine >> /usr/lib/jt/f31']);
    const mine = t.ok(['exec', 'h3', '--', 'md5sum', '/usr/lib/jt/f31']).stdout;
    t.ok(['restart', 'h3']);
    assert.equal(fs.existsSync(guestDir('h3', 'upper/usr/lib/jt/f30')), false, 'unified at the start');
    assert.ok(fs.existsSync(guestDir('h3', 'unified/usr/lib/jt/f30')));
    assert.equal(t.ok(['exec', 'h3', '--', 'md5sum', '/usr/lib/jt/f31']).stdout, mine, 'its write is kept');
    assert.ok(fs.existsSync(guestDir('h3', 'upper/usr/lib/jt/f31')), 'the written file stays its own');
    t.ok(['stop', 'h3']);
  });

  it('rescans reading only the files that changed', () => {
    // Two guests change one file each the same way (content and mtime): only those are read.
    for (const g of ['h1', 'h2']) {
      const p = guestDir(g, 'upper/usr/lib/jt/new-same');
      fs.writeFileSync(p, 'y'.repeat(5000));
      fs.utimesSync(p, 1_700_000_000, 1_700_000_000);
    }
    const r = hashify('--all');
    assert.equal(r.scanned.hashedFiles, 2, JSON.stringify(r.scanned));
    assert.equal(r.unified.files, 2);
    assert.equal(hashify('--all').scanned.hashedFiles, 0, 'nothing changed: nothing read');
  });

  it('never follows a symlink a guest planted in its tree out of it', () => {
    const host = t.path('host-files');
    fs.mkdirSync(host);
    spawnSync('cp', ['-a', guestDir('h2', 'upper/usr/lib/jt/f10'), join(host, 'f10')]);
    const before = fs.statSync(join(host, 'f10'));
    fs.symlinkSync(host, guestDir('h1', 'upper/usr/lib/jt/planted'));
    fs.symlinkSync(join(host, 'f10'), guestDir('h1', 'upper/usr/share-link'));
    hashify('--all', '--exclude', '-/etc');
    const now = fs.statSync(join(host, 'f10'));
    assert.equal(now.ino, before.ino);
    assert.equal(now.nlink, 1, 'the host file was not linked anywhere');
    assert.ok(fs.lstatSync(guestDir('h1', 'upper/usr/lib/jt/planted')).isSymbolicLink());
  });

  it('leaves every file intact when killed (SIGKILL) at random moments, and finishes on the next run', async () => {
    const moved = (): number =>
      GUESTS.reduce(
        (a, g) => a + fs.readdirSync(guestDir(g, 'upper/usr/lib/jt')).filter((f) => /^f\d+$/.test(f)).length,
        0,
      );
    // How long a run takes to move the files (the kills land at fractions of that, once moving
    // has begun), and one kill early, while it scans.
    buildGuests(archive);
    const all = moved();
    const applyMs = hashify(...GUESTS).ms.apply;
    let partial = 0;
    // Rounds held at a mark (JAULA_TRACE_STOP: the run stops itself there and is killed) land
    // where they must whatever the host's load: after a guest's files were linked into its
    // unified layer but before its upper lost them, and twice after a guest's files were moved
    // (the next guests' not yet). Timed rounds land anywhere: while it scans, and at fractions
    // of the moving.
    const rounds: ({ frac: number } | { hold: string })[] = [
      { frac: -1 },
      { hold: 'unify: batch linked' },
      { hold: 'unify: batch moved' },
      { frac: 0.5 },
      { hold: 'unify: batch moved' },
      { frac: 0.2 },
    ];
    const stopFile = t.path('hashify-stop');
    for (const round of rounds) {
      buildGuests(archive);
      const orig = new Map(GUESTS.map((g) => [g, manifest(g)]));
      const held = 'hold' in round;
      if (held) fs.writeFileSync(stopFile, round.hold);
      const child = spawn(process.execPath, [jaulaBin, 'hashify', ...GUESTS, '-q'], {
        env: { ...t.env, ...(held ? { JAULA_TRACE: '1', JAULA_TRACE_STOP: stopFile } : {}) },
        stdio: 'ignore',
      });
      let exited = false;
      child.on('close', () => (exited = true));
      const t0 = Date.now();
      if (held) {
        assert.ok(await waitStopped(child.pid as number, 60_000), `hashify held at "${round.hold}"`);
      } else if (round.frac < 0) await new Promise((r) => setTimeout(r, 120 + Math.random() * 100));
      else {
        while (!exited && moved() === all && Date.now() - t0 < 20_000)
          await new Promise((r) => setTimeout(r, 2));
        await new Promise((r) => setTimeout(r, applyMs * round.frac * (0.8 + Math.random() * 0.4)));
      }
      const at = held ? `at "${round.hold}"` : `after ${Date.now() - t0} ms`;
      child.kill('SIGKILL');
      if (!exited) await new Promise((r) => child.on('close', r));
      const left = moved();
      if (left > 6 && left < all) partial++;
      if (held && round.hold === 'unify: batch moved')
        assert.ok(
          left > 6 && left < all,
          `killed ${at}: some guests' files moved, not all (${left} of ${all} left)`,
        );
      sameManifests(orig, `killed ${at} (${left} of ${all} files left to move)`);
      const done = hashify(...GUESTS);
      sameManifests(orig, `completed after a kill ${at}`);
      assert.ok(moved() <= 6, `all but the differing files are unified after ${JSON.stringify(done)}`);
    }
    assert.ok(partial >= 2, `at least two kills landed while files were being moved (${partial})`);
  });

  it('publishes a file a killed run moved into a unified layer but not yet into the store (after a dry run too), so its twins still join it', () => {
    buildGuests(archive);
    const rel = 'usr/lib/jt/orphan';
    const data = randomBytes(64 << 10);
    for (const g of GUESTS) {
      fs.writeFileSync(guestDir(g, `upper/${rel}`), data);
      fs.utimesSync(guestDir(g, `upper/${rel}`), 1_700_000_000, 1_700_000_000);
    }
    // h1's copy as such a kill leaves it: in its unified layer, no object yet, the layer's stamp gone.
    fs.mkdirSync(guestDir('h1', 'unified/usr/lib/jt'), { recursive: true });
    fs.renameSync(guestDir('h1', `upper/${rel}`), guestDir('h1', `unified/${rel}`));
    fs.rmSync(guestDir('h1', 'unified.stamp'), { force: true });
    const before = new Map(GUESTS.map((g) => [g, manifest(g)]));
    // A dry run first (it publishes nothing) must not leave an index that hides the file.
    t.ok(['hashify', ...GUESTS, '--dry-run', '-q']);
    hashify(...GUESTS);
    sameManifests(before, 'after the hashify that found the unpublished file');
    const st = (g: string): fs.Stats => fs.statSync(guestDir(g, `unified/${rel}`));
    assert.equal(st('h2').ino, st('h1').ino, "h2's twin joined h1's file");
    assert.equal(st('h3').ino, st('h1').ino, "h3's twin joined h1's file");
    assert.equal(st('h1').nlink, 4, 'three guests and the object in the store link it');
    for (const g of GUESTS) assert.ok(!fs.existsSync(guestDir(g, `upper/${rel}`)), `${g}'s own copy is gone`);
  });
});

describe('hashify on reflink guests (XFS): shared extents', () => {
  const pool = t.path('var/lib/jaula/reflink');
  const rootfs = (g: string): string => t.path('var/lib/jaula/reflink/guests', g, 'rootfs');
  before(() => {
    t.loopFs('xfs', pool);
    for (const g of ['r1', 'r2'])
      t.ok([
        'build',
        g,
        '-m',
        'skeleton',
        '-q',
        '--storage',
        'reflink',
        '--initstyle',
        'cmd',
        '--cmd',
        '/bin/sleep 100000',
      ]);
    const data = Buffer.alloc(4 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    for (const g of ['r1', 'r2']) {
      fs.mkdirSync(join(rootfs(g), 'opt'), { recursive: true });
      fs.writeFileSync(join(rootfs(g), 'opt/blob'), data);
      fs.utimesSync(join(rootfs(g), 'opt/blob'), 1_700_000_000, 1_700_000_000);
    }
  });

  it('shares the data of identical files, running guests too, and a write stays in its guest', () => {
    t.ok(['start', 'r1']);
    spawnSync('sync');
    const used0 = fs.statfsSync(pool);
    const r = hashify('r1', 'r2');
    assert.equal(r.guests.find((g) => g.name === 'r2')?.result, 'deduplicated');
    spawnSync('sync');
    const used1 = fs.statfsSync(pool);
    const freed = (used1.bfree - used0.bfree) * used1.bsize;
    assert.ok(freed >= 3 << 20, `${freed} bytes freed`);
    const du = JSON.parse(t.ok(['du', 'r1', 'r2', '--format', 'json']).stdout) as {
      guests: { sharedBytes: number }[];
    };
    for (const g of du.guests) assert.ok(g.sharedBytes >= 4 << 20, JSON.stringify(g));
    const sum = t.ok(['exec', 'r1', '--', 'md5sum', '/opt/blob']).stdout;
    t.ok(['exec', 'r1', '--', '/bin/sh', '-c', 'echo x >> /opt/blob']);
    assert.notEqual(t.ok(['exec', 'r1', '--', 'md5sum', '/opt/blob']).stdout, sum);
    const other = spawnSync('md5sum', [join(rootfs('r2'), 'opt/blob')], { encoding: 'utf8' }).stdout;
    assert.equal(other.split(' ')[0], sum.split(' ')[0]);
    t.ok(['stop', 'r1']);
  });
});
