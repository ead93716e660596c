import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import { ipFamily, parseIPv6 } from './ip.js';

describe('IP parsing', () => {
  it('agrees with node:net on valid and invalid addresses', () => {
    const samples = [
      '1.2.3.4',
      '255.255.255.255',
      '256.1.1.1',
      '01.2.3.4',
      '1.2.3',
      '::',
      '::1',
      'fd00::5',
      'fd00:1::5',
      '1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      '::ffff:1.2.3.4',
      'gggg::1',
      '',

      '1:2:3:4:5:6:7::',
    ];
    for (const s of samples) assert.equal(ipFamily(s), isIP(s), s);
    assert.equal(ipFamily('fe80::1%eth0'), 0, 'zone IDs are not addresses a guest config may hold');
  });
  it('expands IPv6', () => {
    assert.deepEqual(parseIPv6('fd00::5'), [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
    assert.deepEqual(parseIPv6('::ffff:1.2.3.4')?.slice(10), [0xff, 0xff, 1, 2, 3, 4]);
  });
});
