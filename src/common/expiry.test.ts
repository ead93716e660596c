import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JaulaError } from './errors.js';
import { addExpiry, expiresAt, parseExpiry } from './expiry.js';

const at = (y: number, mo: number, d: number, h = 0, mi = 0): Date => new Date(y, mo - 1, d, h, mi);
const invalid = (re: RegExp) => (e: unknown) =>
  e instanceof JaulaError && e.code === 'invalid' && re.test(e.message);

describe('expiry (Incus units: M minutes, H hours, d days, w weeks, m months, y years)', () => {
  it('reads each unit, several at once, and nothing as kept', () => {
    assert.deepEqual(parseExpiry('1M 2H 3d 4w 5m 6y'), {
      minutes: 1,
      hours: 2,
      days: 3,
      weeks: 4,
      months: 5,
      years: 6,
    });
    assert.equal(parseExpiry(''), undefined);
    assert.equal(parseExpiry('  '), undefined);
    assert.equal(parseExpiry('  2d   6H ')?.hours, 6);
    assert.equal(parseExpiry('0d 1M')?.minutes, 1);
  });

  it('refuses bad input, naming the key and giving the units', () => {
    const cases: [string, RegExp][] = [
      ['2', /"2" has no unit/],
      ['2D', /"D" in "2D" is not a unit/],
      ['2h', /"h" in "2h" is not a unit/],
      ['2 d', /"2" has no unit/],
      ['d2', /"d2" is not a number with a unit/],
      ['-1d', /"-1d" is not a number with a unit/],
      ['1.5d', /is not a number with a unit/],
      ['1d 2d', /days are given twice/],
      ['0d', /adds up to nothing/],
      ['0M 0H', /adds up to nothing/],
    ];
    for (const [text, re] of cases) {
      assert.throws(() => parseExpiry(text), invalid(re), text);
      assert.throws(
        () => parseExpiry(text),
        /^JaulaError|Invalid snapshots\.expiry ".*": .*units: M minutes/,
        text,
      );
    }
    assert.throws(() => parseExpiry('3x', '--expiry'), /Invalid --expiry "3x"/);
  });

  it('adds minutes and hours as elapsed time, days and weeks as calendar days', () => {
    const e = (t: string, from: Date): Date => expiresAt(from, t) as Date;
    assert.deepEqual(e('30M', at(2024, 5, 6, 23, 45)), at(2024, 5, 7, 0, 15));
    assert.deepEqual(e('6H', at(2024, 5, 6, 20)), at(2024, 5, 7, 2));
    assert.deepEqual(e('2d', at(2024, 2, 28, 12)), at(2024, 3, 1, 12), 'leap year');
    assert.deepEqual(e('2d', at(2023, 2, 28, 12)), at(2023, 3, 2, 12));
    assert.deepEqual(e('1w 1d', at(2024, 12, 28)), at(2025, 1, 5));
    assert.equal(expiresAt(at(2024, 1, 1), ''), undefined);
  });

  it('adds calendar months and years, a day past the month end being its last day', () => {
    const e = (t: string, from: Date): Date => expiresAt(from, t) as Date;
    assert.deepEqual(e('1m', at(2024, 1, 31, 10)), at(2024, 2, 29, 10), 'Jan 31 + 1 month in a leap year');
    assert.deepEqual(e('1m', at(2023, 1, 31)), at(2023, 2, 28));
    assert.deepEqual(e('1m', at(2024, 3, 31)), at(2024, 4, 30));
    assert.deepEqual(e('2m', at(2024, 12, 31)), at(2025, 2, 28), 'across a year');
    assert.deepEqual(e('13m', at(2024, 1, 15)), at(2025, 2, 15));
    assert.deepEqual(e('1y', at(2024, 2, 29)), at(2025, 2, 28), 'a leap day + 1 year');
    assert.deepEqual(e('4y', at(2024, 2, 29)), at(2028, 2, 29));
    assert.deepEqual(e('1m 1d', at(2024, 1, 31)), at(2024, 3, 1), 'months first, then days (as Go AddDate)');
    assert.deepEqual(e('1y 1m 1H', at(2024, 11, 30, 23)), at(2025, 12, 31, 0));
  });

  it('is pure: the time given is not changed', () => {
    const from = at(2024, 1, 31);
    const before = from.getTime();
    addExpiry(from, { years: 1, months: 1, weeks: 1, days: 1, hours: 1, minutes: 1 });
    assert.equal(from.getTime(), before);
  });
});
