import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JaulaError } from './errors.js';
import {
  formatBytes,
  formatBytesCompact,
  formatLimitBytes,
  formatMiB,
  parseBytes,
  parseLimitBytes,
} from './size.js';

const usage = (e: unknown) => e instanceof JaulaError && e.code === 'usage';
const invalid = (e: unknown) => e instanceof JaulaError && e.code === 'invalid';

describe('sizes: one helper, two meanings', () => {
  it('a size the user gives is a positive number of bytes (pool, quota)', () => {
    assert.equal(parseBytes('2G'), 2 * 2 ** 30);
    assert.equal(parseBytes(' 1.5g '), 1.5 * 2 ** 30);
    assert.equal(parseBytes('512MiB'), 512 * 2 ** 20);
    assert.equal(parseBytes('4096'), 4096);
    for (const bad of ['0', 'max', '-1', '2X', '', '1P'])
      assert.throws(() => parseBytes(bad, 'quota'), usage);
    assert.throws(() => parseBytes('lots', 'quota'), /The quota "lots" is not a size/);
    assert.equal(formatBytes(115), '115B');
    assert.equal(formatBytes(1536), '1.5K');
    assert.equal(formatBytes(2 * 2 ** 30), '2.0G');
    assert.equal(formatBytesCompact(1536), '1.5K');
    assert.equal(formatBytesCompact(2 * 2 ** 30), '2G');
    assert.equal(formatBytesCompact(undefined), '-');
    assert.equal(formatMiB(1.5 * 2 ** 20), '1.5 MiB');
  });
  it('a cgroup limit is bytes (zero too) or "max", written back exactly', () => {
    assert.equal(parseLimitBytes('max'), 'max');
    assert.equal(parseLimitBytes('0'), 0);
    assert.equal(parseLimitBytes('1P'), 2 ** 50);
    assert.throws(() => parseLimitBytes('2X', 'memory.max'), invalid);
    assert.throws(() => parseLimitBytes('2X', 'memory.max'), /Invalid memory.max "2X"/);
    for (const v of ['512M', '1536M', '1000', 'max', '3G'])
      assert.equal(formatLimitBytes(parseLimitBytes(v)), v);
  });
});
