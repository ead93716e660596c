import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { clearSymlinkParents, treeDelta } from './archive-delta.js';

describe('treeDelta', () => {
  const top = fs.mkdtempSync(join(tmpdir(), 'jaula-delta-'));
  after(() => fs.rmSync(top, { recursive: true, force: true }));
  const base = join(top, 'base');
  const now = join(top, 'now');

  /** `now` as a copy of `base` (cp -a: times, owners, xattrs, links kept; ctimes the copy's). */
  const copy = (): void => {
    fs.rmSync(now, { recursive: true, force: true });
    assert.equal(spawnSync('cp', ['-a', base, now]).status, 0);
  };

  it('sends what changed, with every directory above it, and lists what went', () => {
    fs.mkdirSync(join(base, 'a/b'), { recursive: true });
    fs.mkdirSync(join(base, 'gone/deep'), { recursive: true });
    fs.writeFileSync(join(base, 'a/b/f'), 'one\n');
    fs.writeFileSync(join(base, 'keep'), 'keep\n');
    fs.writeFileSync(join(base, 'type'), 'a file, then a directory\n');
    copy();
    assert.deepEqual(treeDelta(base, now), { changed: ['.'], removed: [] }, 'a copy is unchanged');
    const t = fs.statSync(join(now, 'a/b/f'));
    fs.writeFileSync(join(now, 'a/b/f'), 'two\n'); // same size
    fs.utimesSync(join(now, 'a/b/f'), t.atime, new Date(t.mtimeMs + 1000));
    fs.rmSync(join(now, 'gone'), { recursive: true });
    fs.rmSync(join(now, 'type'));
    fs.mkdirSync(join(now, 'type'));
    fs.chmodSync(join(now, 'keep'), 0o600);
    const d = treeDelta(base, now);
    assert.deepEqual(d.changed, ['.', 'a', 'a/b', 'a/b/f', 'keep', 'type']);
    assert.deepEqual(d.removed, ['gone', 'gone/deep', 'type']);
  });

  it("with the ctime rule, catches a write that put size and mtime back; without it, a copy's ctimes say nothing", () => {
    copy();
    // (the rule allows a coarse clock's tick of slack: keep the copy and the change clear of it)
    spawnSync('sleep', ['0.05']);
    const since = Date.now();
    spawnSync('sleep', ['0.05']);
    fs.writeFileSync(join(now, 'keep'), 'KEEP\n');
    assert.equal(spawnSync('touch', ['-r', join(base, 'keep'), join(now, 'keep')]).status, 0); // ns kept
    assert.deepEqual(treeDelta(base, now).changed, ['.'], 'the quick check alone misses it');
    assert.deepEqual(treeDelta(base, now, since).changed, ['.', 'keep']);
  });

  it('xattrs count as a change', () => {
    copy();
    const r = spawnSync('setfattr', ['-n', 'user.k', '-v', 'v', join(now, 'keep')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(treeDelta(base, now).changed, ['.', 'keep']);
  });

  it('clears a symlink where a member needs a directory, and refuses a file there', () => {
    const tree = join(top, 'tree');
    fs.mkdirSync(join(tree, 'd'), { recursive: true });
    fs.symlinkSync('/', join(tree, 'esc'));
    fs.writeFileSync(join(tree, 'file'), 'x');
    clearSymlinkParents(tree, ['esc/etc/passwd', 'd/x'], 'test');
    assert.equal(fs.existsSync(join(tree, 'esc')), false, 'the link is gone, never followed');
    assert.ok(fs.statSync(join(tree, 'd')).isDirectory());
    assert.throws(
      () => clearSymlinkParents(tree, ['file/x'], 'test'),
      /lies beneath "file", which is no directory/,
    );
  });
});
