import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { recoverSwaps } from './snapshot.js';

/** A guest's data directory with `upper` and `unified` (each holding a file saying what it is). */
function guestDir(entries: Record<string, string>): string {
  const dir = fs.mkdtempSync(join(tmpdir(), 'jaula-swaps-'));
  for (const [name, what] of Object.entries(entries)) {
    fs.mkdirSync(join(dir, name));
    fs.writeFileSync(join(dir, name, 'what'), what);
  }
  return dir;
}
const state = (dir: string): Record<string, string> =>
  Object.fromEntries(fs.readdirSync(dir).map((n) => [n, fs.readFileSync(join(dir, n, 'what'), 'utf8')]));

describe('recoverSwaps: a restore interrupted at any step', () => {
  const cases: [string, Record<string, string>, Record<string, string>][] = [
    [
      'before any swap: what was made goes',
      { upper: 'old', 'upper.new-x1': 'new', unified: 'old', 'unified.new-x1': 'new' },
      { upper: 'old', unified: 'old' },
    ],
    [
      'between the two renames of the first swap: put back',
      { 'upper.old-x1': 'old', 'upper.new-x1': 'new', unified: 'old', 'unified.new-x1': 'new' },
      { upper: 'old', unified: 'old' },
    ],
    [
      'after the first swap, before the second: rolled back',
      { 'upper.old-x1': 'old', upper: 'new', unified: 'old', 'unified.new-x1': 'new' },
      { upper: 'old', unified: 'old' },
    ],
    [
      'after every swap, before the old files were removed: completed',
      { 'upper.old-x1': 'old', upper: 'new', 'unified.old-x1': 'old', unified: 'new' },
      { upper: 'new', unified: 'new' },
    ],
    [
      'nothing interrupted: nothing done',
      { upper: 'old', unified: 'old', 'upper.new': 'other' },
      {
        upper: 'old',
        unified: 'old',
        'upper.new': 'other',
      },
    ],
  ];
  for (const [what, before, after] of cases)
    it(what, async () => {
      const dir = guestDir(before);
      try {
        await recoverSwaps([join(dir, 'upper'), join(dir, 'unified')]);
        assert.deepEqual(state(dir), after);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
});
