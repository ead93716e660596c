import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dependencyWaves, inParallel } from './waves.js';

const graph = (deps: Record<string, string[]>) =>
  new Map(Object.entries(deps).map(([k, v]) => [k, { depends: v }]));

describe('dependencyWaves', () => {
  it('puts each guest after what it depends on, pulling dependencies in', () => {
    const all = graph({ web: ['db', 'cache'], db: ['net'], cache: [], net: [], other: [] });
    assert.deepEqual(dependencyWaves(['web'], all), [['cache', 'net'], ['db'], ['web']]);
    assert.deepEqual(dependencyWaves(['other', 'cache'], all), [['cache', 'other']]);
  });

  it('refuses a cycle and a missing dependency, naming them', () => {
    assert.throws(() => dependencyWaves(['a'], graph({ a: ['b'], b: ['a'] })), /"a", "b" form a cycle/);
    assert.throws(() => dependencyWaves(['a'], graph({ a: ['zz'] })), /"a" depends on "zz", which does not/);
  });
});

describe('inParallel', () => {
  it('runs every item, never more than the limit at once', async () => {
    let now = 0;
    let most = 0;
    const seen: number[] = [];
    const gates: (() => void)[] = [];
    const run = inParallel([1, 2, 3, 4, 5, 6, 7], 3, async (x) => {
      now++;
      most = Math.max(most, now);
      await new Promise<void>((r) => gates.push(r));
      seen.push(x);
      now--;
    });
    // Release the waiting ones one at a time until all have run.
    while (seen.length < 7) {
      await new Promise((r) => setImmediate(r));
      gates.shift()?.();
    }
    await run;
    assert.equal(most, 3);
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7],
    );
  });
});
