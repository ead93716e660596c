import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatInterfaceSpec, parseInterfaceSpec } from './ifspec.js';

describe('interface specs [name=][dev:]ip/prefix', () => {
  const cases: [string, object][] = [
    ['vs01=eth1:192.168.39.1/24', { name: 'vs01', dev: 'eth1', address: '192.168.39.1/24' }],
    ['eth1:10.0.0.2/8', { dev: 'eth1', address: '10.0.0.2/8' }],
    ['10.0.0.2/32', { address: '10.0.0.2/32' }],
    ['fd00::5/64', { address: 'fd00::5/64' }],
    ['fd00:1::5/64', { address: 'fd00:1::5/64' }],
    ['br0:fd00::5/64', { dev: 'br0', address: 'fd00::5/64' }],
    ['web=fd00::5/64', { name: 'web', address: 'fd00::5/64' }],
  ];
  for (const [text, want] of cases) {
    it(`parses ${text}`, () => {
      const s = parseInterfaceSpec(text);
      assert.deepEqual(s, want);
      assert.equal(formatInterfaceSpec(s), text);
    });
  }
  it('refuses malformed addresses and prefixes with a clear message', () => {
    const bad: [string, RegExp][] = [
      ['eth0:300.1.1.1/24', /not an IPv4 or IPv6 address/],
      ['10.0.0.1/33', /prefix length/],
      ['10.0.0.1/0', /prefix length/],
      ['10.0.0.1', /no prefix length/],
      ['eth0:', /no address/],
      ['x=', /no address/],
      ['bad name=10.0.0.1/24', /not a valid interface name/],
      ['averyveryverylongname:10.0.0.1/24', /not an IPv4|not a valid/],
    ];
    for (const [text, re] of bad) assert.throws(() => parseInterfaceSpec(text), re, text);
  });
});
