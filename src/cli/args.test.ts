import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseArgs } from './args.js';

describe('argument parser', () => {
  const specs = {
    method: { type: 'string' as const, short: 'm' },
    iface: { type: 'list' as const },
    n: { type: 'number' as const },
    kill: { type: 'bool' as const, short: 'k' },
  };
  it('parses options, lists, numbers, positionals and what follows --', () => {
    const p = parseArgs(
      ['vs01', '-m', 'skeleton', '--iface=a', '--iface', 'b', '--n', '3', '-k', '--', '-d', 'bookworm'],
      specs,
      'build',
    );
    assert.deepEqual(p.positionals, ['vs01']);
    assert.deepEqual(p.opts, { method: 'skeleton', iface: ['a', 'b'], n: 3, kill: true });
    assert.deepEqual(p.rest, ['-d', 'bookworm']);
  });
  it('refuses unknown options, missing values and non-numbers', () => {
    assert.throws(() => parseArgs(['--bogus'], specs, 'x'), /Unknown option "--bogus"/);
    assert.throws(() => parseArgs(['-z'], specs, 'x'), /Unknown option "-z"/);
    assert.throws(() => parseArgs(['--method'], specs, 'x'), /needs a value/);
    assert.throws(() => parseArgs(['--n', 'abc'], specs, 'x'), /needs a number/);
    assert.throws(() => parseArgs(['--kill=yes'], specs, 'x'), /takes no value/);
  });
});
