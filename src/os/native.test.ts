import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readKernelFiles, READ_FILE_MIN, READ_TOTAL_MAX } from './kernfs.js';
import { native, O_CLOEXEC, RESOLVE_BENEATH } from './native.js';

describe('the native addon takes strings whole or not at all', () => {
  const base = fs.mkdtempSync(join(tmpdir(), 'jaula-native-'));
  after(() => fs.rmSync(base, { recursive: true, force: true }));
  fs.writeFileSync(join(base, 'x'), 'the file x');
  const dir = fs.openSync(base, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  after(() => fs.closeSync(dir));
  const open = (p: string): number =>
    native().openat2(dir, p, fs.constants.O_RDONLY | O_CLOEXEC, 0, RESOLVE_BENEATH);

  it('refuses a path with a NUL byte (the kernel would see a shorter one)', () => {
    fs.closeSync(open('x'));
    assert.throws(() => open('x\0/../../etc/shadow'), { code: 'EINVAL' });
    assert.throws(() => native().umount2('/nonexistent\0', 0), TypeError);
    assert.throws(() => native().linkCounts(['x\0y'], new Int32Array(1)), TypeError);
    assert.throws(
      () => native().readFiles(['/proc/self/stat\0'], Buffer.alloc(64), new Float64Array(3), 64),
      TypeError,
    );
  });

  it('refuses a path whose multi-byte end does not fit, instead of cutting it to a shorter one', () => {
    // 4093 bytes of "./" and "x", then a 3-byte character: the copy into a 4096-byte buffer
    // stopped before that character, and the shorter path "././.../x" opened the file x.
    const cut = `${'./'.repeat(2046)}x€`;
    assert.equal(Buffer.byteLength(cut), 4096);
    assert.throws(() => open(cut), { code: 'ENAMETOOLONG' });
    const fits = `${'./'.repeat(2045)}x`;
    fs.closeSync(open(fits)); // (4091 bytes: taken)
  });
});

describe('readKernelFiles caps what one file and all of them cost', () => {
  const base = fs.mkdtempSync(join(tmpdir(), 'jaula-readfiles-'));
  after(() => fs.rmSync(base, { recursive: true, force: true }));

  it('reads at most fileMax bytes of a file, says so, and cuts at its last whole line', () => {
    fs.writeFileSync(join(base, 'big'), 'line\n'.repeat(100_000)); // 500 kB, like a guest's cmdline
    fs.writeFileSync(join(base, 'small'), 'small\n');
    const f = readKernelFiles([join(base, 'big'), join(base, 'small'), join(base, 'absent')], {
      fileMax: 64 << 10,
    });
    const big = f.text(0) as string;
    assert.ok(big.length <= 64 << 10 && big.length > 60_000, `${big.length} bytes`);
    assert.ok(big.endsWith('line\n'));
    assert.equal(f.truncated(0), true);
    assert.equal(f.text(1), 'small\n');
    assert.equal(f.truncated(1), false);
    assert.equal(f.text(2), undefined);
  });

  it('shares the total among many files (never less than a stat or status needs each)', () => {
    const paths: string[] = [];
    for (let i = 0; i < 200; i++) {
      const p = join(base, `f${i}`);
      fs.writeFileSync(p, `${i}:`.padEnd(200_000, 'y'));
      paths.push(p);
    }
    const total = 2 << 20; // 2 MiB for 200 files of 200 kB: about 10 kB each
    const f = readKernelFiles(paths, { fileMax: 1 << 20, totalMax: total });
    let sum = 0;
    for (let i = 0; i < paths.length; i++) {
      const t = f.text(i) as string;
      assert.ok(t.startsWith(`${i}:`), `file ${i} is read`);
      assert.equal(f.truncated(i), true);
      assert.ok(t.length >= READ_FILE_MIN, `file ${i}: ${t.length} bytes`);
      sum += t.length;
    }
    assert.ok(sum <= total, `${sum} bytes read in all`);
    assert.ok(READ_TOTAL_MAX >= 64 << 20);
  });

  it('reads a process table of the host as before', () => {
    const f = readKernelFiles(['/proc/self/stat', '/proc/self/status', '/proc/self/cmdline']);
    assert.match(f.text(0) as string, /^\d+ \(/);
    assert.match(f.text(1) as string, /^Name:/);
    assert.ok((f.text(2) as string).includes('node'));
  });
});
