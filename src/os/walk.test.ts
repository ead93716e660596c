import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MNT_DETACH, native } from './native.js';
import { isDir, isReg, isWhiteout, walkTree } from './walk.js';

describe('walk: a whole tree by fd-relative calls, never following a symlink', () => {
  const base = fs.mkdtempSync(join(tmpdir(), 'jaula-walk-'));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  after(() => {
    spawnSync('umount', ['-l', join(base, 'mnt')]);
    fs.rmSync(base, { recursive: true, force: true });
  });
  fs.mkdirSync(join(root, 'etc/deep/er'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(join(outside, 'secret'), 'host secret');
  fs.writeFileSync(join(root, 'etc/file'), 'hello');
  fs.linkSync(join(root, 'etc/file'), join(root, 'etc/hard'));
  fs.symlinkSync(outside, join(root, 'link-out'));
  fs.symlinkSync('../../..' + outside, join(root, 'etc/rel-out'));
  spawnSync('setfattr', ['-n', 'user.jaula', '-v', 'kept', join(root, 'etc/file')]);
  spawnSync('mknod', [join(root, 'etc/wh'), 'c', '0', '0']);

  it('lists every entry with its lstat, and never enters a symlink', () => {
    const es = walkTree(root, { xattrs: true });
    const by = new Map(es.map((e) => [e.path, e]));
    assert.deepEqual([...by.keys()].sort(), [
      '',
      'etc',
      'etc/deep',
      'etc/deep/er',
      'etc/file',
      'etc/hard',
      'etc/rel-out',
      'etc/wh',
      'link-out',
    ]);
    assert.ok(!es.some((e) => e.path.includes('secret')), 'nothing from outside');
    const f = by.get('etc/file');
    assert.ok(f && isReg(f));
    assert.equal(f.size, 5);
    assert.equal(f.nlink, 2);
    assert.equal(f.ino, by.get('etc/hard')?.ino);
    assert.equal(f.ino, fs.statSync(join(root, 'etc/file')).ino);
    assert.equal(f.mtimeSec, Math.floor(fs.statSync(join(root, 'etc/file')).mtimeMs / 1000));
    assert.deepEqual(
      f.xattrs?.map(([k, v]) => [k, v.toString()]),
      [['user.jaula', 'kept']],
    );
    assert.ok(isDir(by.get('etc/deep') as never));
    assert.ok(isWhiteout(by.get('etc/wh') as never), 'a char device 0/0 is a whiteout');
    assert.ok(!isDir(by.get('link-out') as never));
  });

  it('walks nothing for a missing directory, and refuses a symlink as the root', () => {
    assert.deepEqual(walkTree(join(base, 'absent')), []);
    assert.throws(() => walkTree(join(root, 'link-out')), /Cannot read the tree/);
  });

  it('does not descend into another filesystem', () => {
    const mnt = join(root, 'etc/deep/er');
    native().mount('tmpfs', mnt, 'tmpfs', 0, 'size=1m');
    try {
      fs.writeFileSync(join(mnt, 'inside-mount'), 'x');
      const paths = walkTree(root).map((e) => e.path);
      assert.ok(paths.includes('etc/deep/er'));
      assert.ok(!paths.includes('etc/deep/er/inside-mount'));
      assert.ok(walkTree(root, { oneFs: false }).some((e) => e.path === 'etc/deep/er/inside-mount'));
    } finally {
      native().umount2(mnt, MNT_DETACH);
    }
  });

  it('is not misled by an errno a successful allocation leaves behind', () => {
    // glibc's malloc may leave ENOMEM in errno after it succeeds (brk refused, mmap used); a
    // readdir loop that read errno once at its end took that for a failed readdir (seen in CI).
    // An LD_PRELOAD realloc that succeeds and sets errno = ENOMEM reproduces it on every call.
    const so = join(base, 'stale-errno.so');
    const src = join(base, 'stale-errno.c');
    fs.writeFileSync(
      src,
      '#define _GNU_SOURCE\n#include <dlfcn.h>\n#include <errno.h>\n#include <stddef.h>\n' +
        'void *realloc(void *p, size_t n) {\n' +
        '  static void *(*real)(void *, size_t);\n' +
        '  if (!real) real = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");\n' +
        '  void *r = real(p, n);\n  if (r) errno = ENOMEM;\n  return r;\n}\n',
    );
    const cc = spawnSync('cc', ['-shared', '-fPIC', '-o', so, src, '-ldl'], { encoding: 'utf8' });
    assert.equal(cc.status, 0, cc.stderr);
    const many = join(base, 'many');
    fs.mkdirSync(many);
    for (let i = 0; i < 100; i++) fs.writeFileSync(join(many, `f${i}`), '');
    const walkJs = new URL('./walk.js', import.meta.url).href;
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { walkTree } from ${JSON.stringify(walkJs)};` +
          `console.log(walkTree(${JSON.stringify(many)}).length);`,
      ],
      { encoding: 'utf8', env: { ...process.env, LD_PRELOAD: so } },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '101');
  });

  it('marks a file whose xattr names pass what listxattr returns (64 KiB), never listing it as without', () => {
    // tmpfs (like XFS and btrfs) takes more xattr names than listxattr(2) can return: E2BIG. A
    // guest pads a file so; the walk once reported it with no xattrs at all.
    const mnt = join(base, 'big-xattrs');
    fs.mkdirSync(mnt);
    native().mount('tmpfs', mnt, 'tmpfs', 0, 'size=4m');
    try {
      fs.writeFileSync(join(mnt, 'padded'), 'x');
      fs.writeFileSync(join(mnt, 'plain'), 'x');
      fs.mkdirSync(join(mnt, 'dir'));
      // user.* xattrs on tmpfs came with Linux 6.6; before, root pads with trusted.* names.
      fs.writeFileSync(join(mnt, 'probe'), 'x');
      const probe = spawnSync('setfattr', ['-n', 'user.probe', '-v', '1', join(mnt, 'probe')]);
      fs.rmSync(join(mnt, 'probe'));
      const ns = probe.status === 0 ? 'user' : 'trusted';
      const pad = 'p'.repeat(200);
      const names = Array.from({ length: 401 }, (_, i) => `${ns}.${i}.${pad}="1"`).join('\n');
      const dump = join(base, 'xattrs.dump');
      fs.writeFileSync(dump, `# file: padded\n${names}\n\n# file: dir\n${names}\n`);
      const r = spawnSync('setfattr', [`--restore=${dump}`], { cwd: mnt, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const few = spawnSync('setfattr', ['-n', `${ns}.few`, '-v', 'y', join(mnt, 'plain')], {
        encoding: 'utf8',
      });
      assert.equal(few.status, 0, few.stderr);
      const by = new Map(walkTree(mnt, { xattrs: true }).map((e) => [e.path, e]));
      assert.equal(by.get('padded')?.xattrsUnread, true, 'the padded file is marked');
      assert.equal(by.get('dir')?.xattrsUnread, true, 'a padded directory too');
      assert.equal(by.get('plain')?.xattrsUnread, undefined);
      assert.deepEqual(
        by.get('plain')?.xattrs?.map(([k]) => k),
        [`${ns}.few`],
      );
    } finally {
      native().umount2(mnt, MNT_DETACH);
    }
  });

  it('syncfs and FS_IOC_FSGETXATTR work on an fd', () => {
    const fd = fs.openSync(root, 'r');
    try {
      native().syncfs(fd);
      const [flags, projid] = native().fsGetXattr(fd);
      assert.equal(typeof flags, 'number');
      assert.equal(typeof projid, 'number');
    } finally {
      fs.closeSync(fd);
    }
    assert.throws(() => native().syncfs(-1), /EBADF|Bad file/);
  });
});
