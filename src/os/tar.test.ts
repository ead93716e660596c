import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { scanTar } from './tar.js';

const base = fs.mkdtempSync(join(tmpdir(), 'jaula-tar-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));

describe('scanTar', () => {
  it('reads a .tar.zst whose end marker is followed by much padding (zstd then meets a closed pipe)', async () => {
    // A reader stops at the archive's end marker while zstd still writes what follows. zstd
    // then dies of SIGPIPE, or, where SIGPIPE is ignored, fails with EPIPE: a clean-clone run
    // had the debootstrap cache called invalid so ("Broken pipe"). Here zstd gets SIGPIPE, so
    // this covers the path without forcing the EPIPE case.
    fs.mkdirSync(join(base, 'tree/etc'), { recursive: true });
    fs.writeFileSync(join(base, 'tree/etc/hostname'), 'x\n');
    const tar = join(base, 'padded.tar');
    const t = spawnSync('tar', ['-cf', tar, '-C', join(base, 'tree'), '.'], { encoding: 'utf8' });
    assert.equal(t.status, 0, t.stderr);
    fs.appendFileSync(tar, Buffer.alloc(8 << 20)); // zero blocks after the end marker
    const z = spawnSync('zstd', ['-q', '-f', tar, '-o', `${tar}.zst`], { encoding: 'utf8' });
    assert.equal(z.status, 0, z.stderr);
    for (let i = 0; i < 5; i++) {
      const r = await scanTar(`${tar}.zst`);
      assert.ok(r.entries >= 2, JSON.stringify(r));
    }
  });
});
