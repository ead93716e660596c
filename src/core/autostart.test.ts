import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dependencyWaves } from './autostart.js';
import type { GuestConfig } from '../guest/config.js';

const g = (name: string, depends: string[] = []): [string, GuestConfig] => [
  name,
  { name, depends } as unknown as GuestConfig,
];

describe('dependency order', () => {
  it('puts dependencies first, in waves that can start in parallel', () => {
    const all = new Map([g('web', ['app']), g('app', ['db', 'cache']), g('db'), g('cache'), g('lone')]);
    assert.deepEqual(dependencyWaves(['web', 'lone'], all), [['cache', 'db', 'lone'], ['app'], ['web']]);
  });
  it('pulls in dependencies that are not selected', () => {
    const all = new Map([g('a', ['b']), g('b')]);
    assert.deepEqual(dependencyWaves(['a'], all), [['b'], ['a']]);
  });
  it('refuses cycles and missing guests', () => {
    assert.throws(() => dependencyWaves(['a'], new Map([g('a', ['b']), g('b', ['a'])])), /form a cycle/);
    assert.throws(
      () => dependencyWaves(['a'], new Map([g('a', ['zz'])])),
      /depends on "zz", which does not exist/,
    );
  });
});
