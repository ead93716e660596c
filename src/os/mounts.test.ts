import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { mountsBelow, unmountAt, unmountEntries } from './mounts.js';
import { native } from './native.js';

const root = process.getuid?.() === 0;
const dir = fs.mkdtempSync(join(tmpdir(), 'jaula-mounts-unit-'));
const tmpfs = (at: string): void => {
  fs.mkdirSync(at, { recursive: true });
  native().mount('tmpfs', at, 'tmpfs', 0, 'size=64k');
};

describe(
  'unmountAt, unmountEntries (no read of the mount table)',
  { skip: !root && 'mounts need root' },
  () => {
    after(() => {
      for (const m of mountsBelow(dir)) native().umount2(m, 2);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('removes every mount stacked on a path, and those below it (busy: detached with it)', () => {
      const a = join(dir, 'a');
      tmpfs(a);
      tmpfs(a); // (stacked: a crash's leftover under a fresh mount)
      tmpfs(join(a, 'sub')); // (below the top one: that one is busy, and goes lazily with it)
      assert.equal(mountsBelow(a).length, 3);
      assert.equal(unmountAt(a), 2);
      assert.deepEqual(mountsBelow(a), []);
      assert.equal(unmountAt(a), 0, 'nothing mounted there any more');
      assert.equal(unmountAt(join(dir, 'absent')), 0);
    });

    it('unmounts the mounts on the entries of a directory of mount points, and on the directory', () => {
      const views = join(dir, 'layers');
      for (const n of ['0', '1', 'rw']) tmpfs(join(views, n));
      fs.mkdirSync(join(views, 'plain'));
      assert.equal(mountsBelow(views).length, 3);
      unmountEntries(views);
      assert.deepEqual(mountsBelow(views), []);
      assert.deepEqual(fs.readdirSync(views).sort(), ['0', '1', 'plain', 'rw'], 'nothing removed');
      unmountEntries(join(dir, 'absent'));
    });
  },
);
