import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JaulaError } from '../common/errors.js';
import { formatOf } from './command.js';

describe('--format', () => {
  const parsed = (format?: string) => ({ opts: { format }, positionals: [], rest: [], sawDashDash: false });
  it('takes table (the default) and json', () => {
    assert.equal(formatOf(parsed()), 'table');
    assert.equal(formatOf(parsed('json')), 'json');
  });
  it('refuses anything else as a usage error, recognised by its code (exit status 2)', () => {
    assert.throws(
      () => formatOf(parsed('yaml')),
      (e: unknown) =>
        e instanceof JaulaError &&
        e.code === 'usage' &&
        e.message === '--format must be table or json, not "yaml"',
    );
  });
});
