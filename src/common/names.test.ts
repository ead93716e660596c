import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NAME_PATTERN, validateContext, validateHostname, validateName } from './names.js';

describe('guest names', () => {
  it('accepts ordinary names', () => {
    for (const n of ['vs01', 'web-1', 'a', 'db_2.example', 'X'.repeat(64)]) assert.equal(validateName(n), n);
  });
  it('refuses paths, dot-dot, control characters, bad starts and long names', () => {
    for (const n of [
      '',
      'a/b',
      '/abs',
      '..',
      'a..b',
      '.hidden',
      '-x',
      '_x',
      'x'.repeat(65),
      'tab\tx',
      'nl\n',
      'sp ace',
      'ü',
      'a:b',
    ])
      assert.throws(() => validateName(n), { name: 'JaulaError', code: 'invalid' }, JSON.stringify(n));
  });
  it('NAME_PATTERN (what jaulad checks requests with) agrees with validateName', () => {
    const re = new RegExp(NAME_PATTERN, 'u');
    for (const n of ['vs01', 'web-1', 'a', 'db_2.example', 'X'.repeat(64), 'a.b.c', '9'])
      assert.ok(re.test(n), n);
    for (const n of [
      '',
      'a/b',
      '..',
      'a..b',
      '.h',
      '-x',
      'x'.repeat(65),
      'nl\n',
      'a\nb',
      'ü',
      '../../etc',
      'x%0Ay',
    ])
      assert.equal(re.test(n), false, JSON.stringify(n));
  });
});

describe('hostnames and contexts', () => {
  it('checks hostnames', () => {
    assert.equal(validateHostname('vs01.example.org'), 'vs01.example.org');
    for (const h of ['-a', 'a-', 'a..b', 'a_b', '', 'x'.repeat(64)])
      assert.throws(() => validateHostname(h), { code: 'invalid' });
  });
  it('checks context ranges: 0 is the host, 1 the spectator', () => {
    assert.equal(validateContext(2), 2);
    assert.equal(validateContext(65535), 65535);
    for (const c of [0, 1, -5, 65536, 1.5, NaN]) assert.throws(() => validateContext(c), { code: 'invalid' });
  });
});
