import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { treeDigest } from './archive-digest.js';

const base = fs.mkdtempSync(join(tmpdir(), 'jaula-digest-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));

function tree(name: string): string {
  const d = join(base, name);
  fs.mkdirSync(join(d, 'etc'), { recursive: true });
  fs.writeFileSync(join(d, 'etc/hostname'), 'web1\n');
  fs.writeFileSync(join(d, 'a'), 'one inode\n');
  fs.linkSync(join(d, 'a'), join(d, 'b'));
  fs.symlinkSync('/etc/shadow', join(d, 'link'));
  return d;
}

describe("a layer's content digest", () => {
  it('is the same for the same content, whatever the times', () => {
    const a = tree('a');
    const b = tree('b');
    fs.utimesSync(join(b, 'etc/hostname'), 1000, 1000);
    assert.equal(treeDigest(a), treeDigest(b));
    assert.match(treeDigest(a), /^[0-9a-f]{64}$/);
  });

  it('changes with a file, a mode, an owner, an xattr, a symlink target or a hard link', () => {
    const ref = treeDigest(tree('ref'));
    const changes: [string, (d: string) => void][] = [
      ['content', (d) => fs.writeFileSync(join(d, 'etc/hostname'), 'web2\n')],
      ['mode', (d) => fs.chmodSync(join(d, 'etc/hostname'), 0o600)],
      ['owner', (d) => fs.chownSync(join(d, 'etc/hostname'), 1000, 1000)],
      ['xattr', (d) => spawnSync('setfattr', ['-n', 'user.k', '-v', 'v', join(d, 'etc/hostname')])],
      [
        'symlink',
        (d) => {
          fs.rmSync(join(d, 'link'));
          fs.symlinkSync('/etc/passwd', join(d, 'link'));
        },
      ],
      [
        'hard link',
        (d) => {
          fs.rmSync(join(d, 'b'));
          fs.writeFileSync(join(d, 'b'), 'one inode\n');
        },
      ],
    ];
    for (const [what, change] of changes) {
      const d = tree(`c-${what.replace(' ', '-')}`);
      change(d);
      assert.notEqual(treeDigest(d), ref, what);
    }
  });
});
