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

import { cidrContains, firstFree, ipToValue, parseCidrText, valueToIp } from './ip.js';

describe('CIDR arithmetic and allocation', () => {
  it('round-trips addresses', () => {
    for (const s of [
      '10.1.2.3',
      '0.0.0.0',
      '255.255.255.255',
      'fd00::5',
      '::',
      '2001:db8::1:0:0:1',
      '1:2:3:4:5:6:7:8',
    ]) {
      const v = ipToValue(s);
      assert.ok(v);
      assert.equal(valueToIp(v), s);
    }
  });
  it('knows what a subnet contains', () => {
    const c = parseCidrText('10.88.0.1/16');
    assert.ok(c);
    assert.ok(cidrContains(c, '10.88.255.254'));
    assert.ok(!cidrContains(c, '10.89.0.1'));
    assert.ok(!cidrContains(c, 'fd00::1'));
    const c6 = parseCidrText('fd88::1/64');
    assert.ok(c6 && cidrContains(c6, 'fd88::ffff') && !cidrContains(c6, 'fd89::1'));
  });
  it('hands out the first free host address', () => {
    const c = parseCidrText('192.168.39.0/30');
    assert.ok(c);
    assert.equal(firstFree(c, new Set()), '192.168.39.1');
    assert.equal(firstFree(c, new Set(['192.168.39.1'])), '192.168.39.2');
    assert.equal(
      firstFree(c, new Set(['192.168.39.1', '192.168.39.2'])),
      undefined,
      'network and broadcast are never handed out',
    );
  });
});
