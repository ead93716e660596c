/**
 * The barrier (issue 11 §1): no host user but root reaches a guest's or a template's tree, so
 * no one can run their setuid-root programs or open their device nodes from the host. A test
 * root is a mkdtemp directory (0700); each test here opens it up (0755, as / is on a real host),
 * so that only jaula's own barrier stands between the host user `nobody` (setpriv) and the
 * trees. Every setuid/setgid file and device node under the root (mounts included: the pool,
 * quota images, running guests' views under run/) is found as root and tried as nobody.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestRoot, buildSkeleton } from './helpers.js';

const NOBODY = 65534;
const CMD = ['--initstyle', 'cmd', '--cmd', '/bin/sleep 100000'];

/** The test root as a host's / is: every directory on the way searchable by all. */
function openUp(t: TestRoot): void {
  fs.chmodSync(t.root, 0o755);
  for (let d = dirname(t.root); d !== '/'; d = dirname(d)) {
    const m = fs.statSync(d).mode;
    if (!(m & 0o001)) fs.chmodSync(d, (m & 0o7777) | 0o005);
  }
}

/**
 * The archive: a setuid-root copy of /usr/bin/id, the disk's block node (8,0), and a char
 * node anyone could read (1,5); with busybox, so that a privileged guest can be built from it.
 */
function evilArchive(t: TestRoot): string {
  const src = t.path('evil-src');
  for (const d of ['bin', 'usr/local/bin', 'dev']) fs.mkdirSync(join(src, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', join(src, 'bin/busybox'));
  fs.chmodSync(join(src, 'bin/busybox'), 0o755);
  for (const l of ['sh', 'sleep']) fs.symlinkSync('busybox', join(src, 'bin', l));
  fs.copyFileSync('/usr/bin/id', join(src, 'usr/local/bin/id'));
  fs.chmodSync(join(src, 'usr/local/bin/id'), 0o4755);
  for (const [n, type, maj, min] of [
    ['sda', 'b', '8', '0'],
    ['zero', 'c', '1', '5'],
  ] as const) {
    const r = spawnSync('mknod', ['-m', '0666', join(src, 'dev', n), type, maj, min], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  const file = t.path('evil.tar');
  const r = spawnSync('tar', ['-C', src, '--numeric-owner', '--owner=0', '--group=0', '-cf', file, '.'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  fs.rmSync(src, { recursive: true });
  return file;
}

interface Exposed {
  path: string;
  kind: 'setuid' | 'device';
}

/** Every setuid/setgid file and device node (not overlay whiteouts) below `dir`, mounts included. */
function findExposed(dir: string, skip: string[]): Exposed[] {
  const out: Exposed[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      if (skip.includes(p)) continue;
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.mode & 0o6000) out.push({ path: p, kind: 'setuid' });
      else if (st.isBlockDevice() || (st.isCharacterDevice() && st.rdev !== 0))
        out.push({ path: p, kind: 'device' });
    }
  };
  walk(dir);
  return out;
}

/**
 * As nobody: which of these paths can be reached at all (stat), and what the planted copies of
 * id print when run (their euid, on today's code).
 */
function reachableAsNobody(found: Exposed[]): string[] {
  const script = `for f; do
  if [ -e "$f" ]; then
    if [ -b "$f" ] || [ -c "$f" ]; then
      if (: < "$f") 2>/dev/null; then echo "reachable $f: opened"; else echo "reachable $f"; fi
    else
      case "$f" in */sid|*/bin/id) echo "reachable $f: runs as $("$f" 2>&1)";; *) echo "reachable $f";; esac
    fi
  fi
done`;
  const r = spawnSync(
    'setpriv',
    [
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      '--',
      '/bin/sh',
      '-c',
      script,
      'sh',
      ...found.map((f) => f.path),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

/** `jaula cp` a host file into a guest, then make it setuid root from inside (as its root may). */
function plantSetuid(t: TestRoot, guest: string, at: string, from = '/usr/bin/id'): void {
  t.ok(['cp', from, `${guest}:${at}`]);
  const r = t.sh(guest, `chown 0:0 ${at} && chmod 4755 ${at} && touch -d "2024-01-02 03:04:05" ${at}`);
  assert.equal(r.code, 0, r.stderr);
}

const mode = (p: string): string => (fs.statSync(p).mode & 0o7777).toString(8);

function mountOptions(path: string): string[] {
  const line = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === path);
  return (line?.split(' ')[5] ?? '').split(',');
}

describe('the barrier: no host user reaches a guest or a template', () => {
  const t = new TestRoot('jaula-barrier-');
  after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));
  const lib = t.path('var/lib/jaula');

  before(() => {
    openUp(t);
    // The user's path: the first thing after installing (as after ./setup demo's pool-less host).
    t.ok(['template', 'import', evilArchive(t), 'evil']);
    buildSkeleton(t, 'gov', CMD); // unprivileged overlay
    buildSkeleton(t, 'gov2', CMD);
    buildSkeleton(t, 'gdir', ['--storage', 'dir', ...CMD]); // unprivileged dir
    buildSkeleton(t, 'gq', ['--quota', '64M', ...CMD]); // its own files in an ext4 image
    t.ok([
      'build',
      'gpriv',
      '-m',
      'template',
      '--storage',
      'dir',
      '--privileged',
      '-q',
      ...CMD,
      '--',
      '-t',
      'evil',
    ]);
    t.ok(['start', 'gov', 'gov2', 'gdir', 'gq', 'gpriv']);
    for (const g of ['gov', 'gov2']) plantSetuid(t, g, '/sid'); // identical: hashify shares them
    plantSetuid(t, 'gov', '/etc/sid'); // stays in gov's upper (/etc is not unified)
    plantSetuid(t, 'gdir', '/sid');
    plantSetuid(t, 'gq', '/sid');
    t.ok(['stop', 'gov', 'gov2']);
    t.ok(['hashify', 'gov', 'gov2']);
    t.ok(['start', 'gov']);
  });

  it('lets nobody run no setuid program and open no device node of any guest or template', () => {
    const found = findExposed(t.root, [t.path('run/jaula/lxcfs')]);
    const rel = found.map((f) => f.path.slice(t.root.length + 1));
    for (const want of [
      /^var\/lib\/jaula\/templates\/evil\/tree\/usr\/local\/bin\/id$/,
      /^var\/lib\/jaula\/templates\/evil\/tree\/dev\/sda$/,
      /^var\/lib\/jaula\/templates\/evil\/tree\/dev\/zero$/,
      /^var\/lib\/jaula\/guests\/gov\/upper\/etc\/sid$/, // an overlay guest's upper
      /^var\/lib\/jaula\/unified\/objects\/.+/, // the unify store
      /^var\/lib\/jaula\/guests\/gov\/unified\/sid$/, // a guest's unified layer
      /^var\/lib\/jaula\/guests\/gdir\/rootfs\/sid$/, // a dir guest
      /^var\/lib\/jaula\/guests\/gq\/vol\/upper\/sid$/, // a quota image
      /^var\/lib\/jaula\/guests\/gpriv\/rootfs\/dev\/zero$/, // a privileged guest's device node
      /^run\/jaula\/guests\/gov\/root\/sid$/, // a running unprivileged guest's root
      /^run\/jaula\/guests\/gdir\/root\/sid$/,
    ])
      assert.ok(
        rel.some((p) => want.test(p)),
        `the test plants what it must: ${want} among\n${rel.join('\n')}`,
      );
    assert.deepEqual(reachableAsNobody(found), [], 'nobody reaches none of them');
  });

  it('makes each barrier with its mode and owner, and mounts quota images nosuid,nodev', () => {
    assert.equal(mode(lib), '700');
    assert.equal(mode(t.path('run/jaula/guests')), '711');
    const st = fs.statSync(t.path('run/jaula/guests/gov'));
    assert.equal((st.mode & 0o7777).toString(8), '710', "an unprivileged guest's run directory");
    assert.equal(st.uid, 0);
    assert.equal(st.gid, 1_000_000 + (100 - 2) * 65536, "its group is the guest's root");
    assert.equal(mode(t.path('run/jaula/guests/gpriv')), '700', "a privileged guest's");
    assert.equal(fs.statSync(t.path('run/jaula/guests/gpriv')).gid, 0);
    const q = mountOptions(t.path('var/lib/jaula/guests/gq/vol'));
    assert.ok(q.includes('nosuid') && q.includes('nodev'), `quota image: ${q.join(',')}`);
    // The guests' own views keep setuid: nothing of the storage's flags shows in them.
    for (const v of ['run/jaula/guests/gq/root', 'run/jaula/guests/gpriv/rootfs']) {
      const o = mountOptions(t.path(v));
      assert.ok(o.length > 1 && !o.includes('nosuid'), `${v}: ${o.join(',')}`);
    }
  });

  it('keeps an export root-only from its first byte', () => {
    const file = t.path('evil-export.tar');
    t.ok(['template', 'export', 'evil', file]);
    assert.equal(mode(file), '600');
  });

  it("is reported by doctor --security when weakened, with the fix, and repaired by jaulad's start", async () => {
    const sound = t.jaula(['doctor', '--security']);
    assert.match(sound.stdout, /barrier\s+ok/, sound.stdout);
    fs.chmodSync(lib, 0o755);
    fs.chmodSync(t.path('run/jaula/guests/gov'), 0o755);
    const r = t.jaula(['doctor', '--security', '--format', 'json']);
    assert.equal(r.code, 1, 'doctor fails');
    const checks = JSON.parse(r.stdout) as { name: string; status: string; detail: string }[];
    const bad = checks.filter((c) => c.name === 'barrier');
    assert.equal(bad.length, 2, JSON.stringify(bad));
    assert.ok(bad.every((c) => c.status === 'missing'));
    assert.match(bad[0]?.detail ?? '', new RegExp(`${lib} .* is mode 0755 .*; fix: chmod 0700 ${lib}$`));
    assert.match(bad[1]?.detail ?? '', /guests\/gov .* is mode 0755 .*; fix: chmod 0710 \S+\/guests\/gov$/);
    assert.notDeepEqual(
      reachableAsNobody(findExposed(t.path('run/jaula/guests/gov/root'), [])),
      [],
      "the running guest's root is open (its run directory is the only barrier in front of it)",
    );
    const d = t.daemon();
    await d.ready({ reconciled: true });
    await d.stop();
    assert.match(d.log, /barrier: .*var\/lib\/jaula was mode 0755/);
    assert.equal(mode(lib), '700');
    assert.equal(mode(t.path('run/jaula/guests/gov')), '710');
    assert.match(t.jaula(['doctor', '--security']).stdout, /barrier\s+ok/);
    assert.equal(t.jaula(['exec', 'gov', '--', 'true']).code, 0, 'the running guest never noticed');
  });
});

describe('the barrier with a storage pool: nosuid,nodev storage, setuid guests', () => {
  // A cache of its own, empty: debootstrap itself runs into the pool (nosuid,nodev), which it
  // refuses unless jaula gives it a view with dev and suid (a fresh host's first build failed so).
  const t = new TestRoot('jaula-barrier-');
  after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));
  const lib = t.path('var/lib/jaula');
  const guests = ['deb', 'debd', 'debp', 'debpo'];

  before(() => {
    openUp(t);
    t.pool(3072, 1536);
    t.onCleanup(() => t.jaula(['template', 'delete', 'debt'])); // (before the pool goes)
    t.ok(['build', 'deb', '-m', 'debootstrap', '-q', '--', '-d', 'bookworm', '--include', 'sudo'], {
      timeoutMs: 20 * 60_000,
    });
    t.ok(['template', 'save', 'deb', 'debt', '-q']);
    t.ok(['build', 'debd', '-m', 'template', '--storage', 'dir', '-q', '--', '-t', 'debt']);
    t.ok(['build', 'debp', '-m', 'template', '--storage', 'dir', '--privileged', '-q', '--', '-t', 'debt']);
    t.ok(['build', 'debpo', '-m', 'template', '--privileged', '-q', '--', '-t', 'debt']);
  });

  it('mounts the pool nosuid,nodev, its root behind the barrier', () => {
    const o = mountOptions(lib);
    assert.ok(o.includes('nosuid') && o.includes('nodev'), o.join(','));
    assert.equal(mode(lib), '700');
  });

  for (const g of guests)
    it(`keeps setuid working inside guest "${g}" (sudo as a user of the guest)`, () => {
      t.ok(['start', g]);
      try {
        const r = t.jaula([
          'exec',
          g,
          '--',
          'setpriv',
          `--reuid=${NOBODY}`,
          `--regid=${NOBODY}`,
          '--clear-groups',
          'sudo',
          '-n',
          'true',
        ]);
        assert.doesNotMatch(r.stderr, /effective uid is not 0/, 'sudo runs setuid root');
        assert.match(r.stderr, /a password is required/, r.stderr);
        if (g === 'deb') {
          const s = t.sh(
            g,
            'cp /usr/bin/id /sid && chmod 4755 /sid && setpriv --reuid=65534 --regid=65534 --clear-groups /sid -u',
          );
          assert.equal(
            s.stdout.trim(),
            '0',
            `a setuid program planted by the guest works in it: ${s.stderr}`,
          );
        }
      } finally {
        if (g !== 'deb') t.ok(['stop', g]);
      }
    });

  it("lets nobody reach none of the pool's setuid programs and device nodes, a running guest's included", () => {
    const found = findExposed(t.root, [t.path('run/jaula/lxcfs')]);
    const rel = found.map((f) => f.path.slice(t.root.length + 1));
    for (const want of [
      /^var\/lib\/jaula\/guests\/deb\/vol\/upper\/sid$/,
      /^var\/lib\/jaula\/guests\/debp\/vol\/rootfs\/usr\/bin\/sudo$/,
      /^var\/lib\/jaula\/templates\/debt\/tree\/usr\/bin\/sudo$/,
      /^run\/jaula\/guests\/deb\/root\/usr\/bin\/sudo$/,
    ])
      assert.ok(
        rel.some((p) => want.test(p)),
        `${want} among ${rel.length} found`,
      );
    assert.deepEqual(reachableAsNobody(found), []);
    t.ok(['stop', 'deb']);
  });

  it('is reported by doctor --security when the pool is mounted without nosuid,nodev, and jaulad remounts it', async () => {
    assert.equal(spawnSync('mount', ['-o', 'remount,suid,dev', lib]).status, 0);
    const r = t.jaula(['doctor', '--security']);
    assert.match(
      r.stdout,
      new RegExp(
        `storage mounts\\s+warn\\s+${lib} \\(btrfs\\) is mounted without nosuid and nodev; fix: mount -o remount,nosuid,nodev ${lib}`,
      ),
      r.stdout,
    );
    const d = t.daemon();
    await d.ready({ reconciled: true });
    await d.stop();
    assert.match(d.log, /remounted nosuid,nodev/);
    const o = mountOptions(lib);
    assert.ok(o.includes('nosuid') && o.includes('nodev'), o.join(','));
    assert.match(t.jaula(['doctor', '--security']).stdout, /storage mounts\s+ok/);
  });
});
