import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JaulaError } from './errors.js';
import {
  cronMatches,
  dueBetween,
  formatLocalMinute,
  nextCronRun,
  nextRun,
  parseCron,
  parseSchedule,
  scheduleMatches,
  spreadSeed,
  type CronSpec,
} from './cron.js';

/** Local time (the schedule's), so that the tests hold in any time zone away from a DST change. */
const at = (y: number, mo: number, d: number, h = 0, mi = 0): Date => new Date(y, mo - 1, d, h, mi);
const on = (f: readonly boolean[]): number[] => f.flatMap((v, i) => (v ? [i] : []));
const invalid = (re: RegExp) => (e: unknown) =>
  e instanceof JaulaError && e.code === 'invalid' && re.test(e.message);

describe('cron fields (crontab(5))', () => {
  it('reads *, lists, ranges and steps over * and over ranges', () => {
    const c = parseCron('*/15 1,5,9-11 1-31/10 */5 1-5/2');
    assert.deepEqual(on(c.minute), [0, 15, 30, 45]);
    assert.deepEqual(on(c.hour), [1, 5, 9, 10, 11]);
    assert.deepEqual(on(c.dom), [1, 11, 21, 31]);
    assert.deepEqual(on(c.month), [1, 6, 11]);
    assert.deepEqual(on(c.dow), [1, 3, 5]);
    assert.equal(on(parseCron('* * * * *').minute).length, 60);
  });

  it('reads a step larger than its range as the range start, and N/STEP as N to the end', () => {
    assert.deepEqual(on(parseCron('10-20/30 * * * *').minute), [10]);
    assert.deepEqual(on(parseCron('50/5 * * * *').minute), [50, 55]);
    assert.deepEqual(on(parseCron('0 20/2 * * *').hour), [20, 22]);
    assert.deepEqual(on(parseCron('0 0 * * 5/1').dow), [0, 5, 6], '5-7: Friday, Saturday and Sunday (7)');
  });

  it('reads names of months and days in any case, and 7 as Sunday', () => {
    const c = parseCron('0 0 * JAN,jul-Sep sun,Wed-fri');
    assert.deepEqual(on(c.month), [1, 7, 8, 9]);
    assert.deepEqual(on(c.dow), [0, 3, 4, 5]);
    assert.deepEqual(on(parseCron('0 0 * * 7').dow), [0]);
    assert.deepEqual(on(parseCron('0 0 * * 6-7').dow), [0, 6]);
  });

  it('refuses bad input, naming the field and giving an example', () => {
    const cases: [string, RegExp][] = [
      ['0 25 * * *', /the hour field has 25, out of its range 0-23/],
      ['60 * * * *', /the minute field has 60, out of its range 0-59/],
      ['0 0 0 * *', /the day-of-month field has 0, out of its range 1-31/],
      ['0 0 * 13 *', /the month field has 13, out of its range 1-12/],
      ['0 0 * * 8', /the day-of-week field has 8, out of its range 0-7/],
      ['* * * *', /has 4 fields; a cron expression has 5/],
      ['* * * * * *', /has 6 fields/],
      ['*/0 * * * *', /the minute field's step "\/0" is not a whole number above 0/],
      ['*/x * * * *', /the minute field's step "\/x"/],
      ['5-1 * * * *', /the minute field's range "5-1" runs backwards/],
      ['1-2-3 * * * *', /not a number or a range N-M/],
      ['1,,2 * * * *', /the minute field has an empty item/],
      ['-1 * * * *', /not a number or a range/],
      ['a * * * *', /the minute field has "a", which is not a number$|which is not a number \(/],
      ['0 0 * foo *', /the month field has "foo", which is not a number or a name \(jan, feb/],
      ['0 0 30 2 *', /matches no date/],
      ['0 0 31 4,6,9,11 *', /matches no date/],
    ];
    for (const [text, re] of cases) {
      assert.throws(() => parseCron(text), invalid(re), text);
      assert.throws(
        () => parseCron(text),
        /Invalid snapshots\.schedule ".*": .*\(e\.g\. "0 3 \* \* \*"/,
        text,
      );
    }
    assert.doesNotThrow(() => parseCron('0 0 29 2 *'), 'Feb 29 comes in leap years');
    assert.doesNotThrow(() => parseCron('0 0 31 2 mon'), 'both days restrict: Mondays of February match');
  });
});

describe('matching a minute', () => {
  const m = (expr: string, d: Date): boolean => cronMatches(parseCron(expr), d);

  it('matches every field against local time', () => {
    assert.equal(m('30 3 * * *', at(2024, 5, 6, 3, 30)), true);
    assert.equal(m('30 3 * * *', at(2024, 5, 6, 3, 31)), false);
    assert.equal(m('30 3 * * *', at(2024, 5, 6, 4, 30)), false);
    assert.equal(m('*/15 * * * *', at(2024, 5, 6, 13, 45)), true);
    assert.equal(m('*/15 * * * *', at(2024, 5, 6, 13, 46)), false);
    assert.equal(m('0 0 1 jan *', at(2025, 1, 1)), true);
    assert.equal(m('0 0 1 jan *', at(2025, 2, 1)), false);
  });

  it('ORs day-of-month and day-of-week when both restrict (Vixie cron)', () => {
    // 2024-05-06 is a Monday, 2024-05-13 the next; 2024-05-15 a Wednesday
    const e = '0 0 13 * mon';
    assert.equal(m(e, at(2024, 5, 6)), true, 'a Monday that is not the 13th');
    assert.equal(m(e, at(2024, 6, 13)), true, 'the 13th, a Thursday');
    assert.equal(m(e, at(2024, 5, 13)), true, 'both');
    assert.equal(m(e, at(2024, 5, 15)), false, 'neither');
  });

  it('ANDs them when either begins with "*", a stepped "*/2" too (crontab(5))', () => {
    assert.equal(m('0 0 13 * *', at(2024, 5, 6)), false);
    assert.equal(m('0 0 * * mon', at(2024, 5, 13)), true);
    assert.equal(m('0 0 * * mon', at(2024, 6, 13)), false);
    // */2: odd days, and only those that are Mondays
    assert.equal(m('0 0 */2 * mon', at(2024, 5, 13)), true);
    assert.equal(m('0 0 */2 * mon', at(2024, 5, 6)), false, 'a Monday on an even day');
    assert.equal(m('0 0 */2 * mon', at(2024, 5, 15)), false, 'an odd day that is no Monday');
  });
});

describe('schedules: aliases, lists, off', () => {
  it('is off when empty or @never', () => {
    assert.deepEqual(parseSchedule('').specs, []);
    assert.deepEqual(parseSchedule('  ').specs, []);
    assert.deepEqual(parseSchedule('@never').specs, []);
    assert.equal(nextRun(parseSchedule(''), at(2024, 1, 1)), undefined);
  });

  it('spreads aliases by the guest: the same minute and hour for one guest, others for others', () => {
    const s = spreadSeed('web1');
    assert.equal(s, spreadSeed('web1'));
    const texts = (t: string, seed: number): string[] => parseSchedule(t, seed).specs.map((c) => c.text);
    const [mi, h] = [s % 60, Math.floor(s / 60) % 24];
    assert.deepEqual(texts('@hourly', s), [`${mi} * * * *`]);
    assert.deepEqual(texts('@daily', s), [`${mi} ${h} * * *`]);
    assert.deepEqual(texts('@MIDNIGHT', s), [`${mi} 0 * * *`]);
    assert.deepEqual(texts('@weekly', s), [`${mi} ${h} * * 0`]);
    assert.deepEqual(texts('@monthly', s), [`${mi} ${h} 1 * *`]);
    assert.deepEqual(texts('@yearly', s), [`${mi} ${h} 1 1 *`]);
    assert.deepEqual(texts('@annually', s), [`${mi} ${h} 1 1 *`]);
    assert.deepEqual(texts('@daily', 0), ['0 0 * * *']);
    const seen = new Set(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => texts('@daily', spreadSeed(n))[0]));
    assert.ok(seen.size > 1, 'guests are spread');
  });

  it('takes several expressions joined by ", " (Incus), matching when any does', () => {
    const s = parseSchedule('0 6 * * *, 0 18 * * *, @never');
    assert.equal(s.specs.length, 2);
    assert.equal(scheduleMatches(s, at(2024, 5, 6, 6)), true);
    assert.equal(scheduleMatches(s, at(2024, 5, 6, 18)), true);
    assert.equal(scheduleMatches(s, at(2024, 5, 6, 12)), false);
    assert.deepEqual(
      on((parseSchedule('1,2 * * * *').specs[0] as CronSpec).minute),
      [1, 2],
      'a list is no list of schedules',
    );
  });

  it('refuses unknown aliases', () => {
    assert.throws(() => parseSchedule('@fortnightly'), invalid(/unknown alias "@fortnightly"/));
    assert.throws(() => parseSchedule('@startup'), invalid(/jaula has no snapshot at start/));
    assert.throws(() => parseSchedule('@daily, 0 99 * * *'), invalid(/the hour field has 99/));
  });
});

describe('the next run', () => {
  const next = (expr: string, d: Date): Date | undefined => nextCronRun(parseCron(expr), d);

  it('is strictly after the given time, at a whole minute', () => {
    assert.deepEqual(next('* * * * *', at(2024, 5, 6, 3, 30)), at(2024, 5, 6, 3, 31));
    assert.deepEqual(
      next('* * * * *', new Date(at(2024, 5, 6, 3, 30).getTime() + 59_999)),
      at(2024, 5, 6, 3, 31),
    );
    assert.deepEqual(next('30 3 * * *', at(2024, 5, 6, 3, 30)), at(2024, 5, 7, 3, 30));
    assert.deepEqual(next('30 3 * * *', at(2024, 5, 6, 3, 29)), at(2024, 5, 6, 3, 30));
  });

  it('rolls over hours, days, months and years', () => {
    assert.deepEqual(next('*/20 * * * *', at(2024, 12, 31, 23, 59)), at(2025, 1, 1, 0, 0));
    assert.deepEqual(next('0 0 1 * *', at(2024, 1, 31, 12)), at(2024, 2, 1));
    assert.deepEqual(next('0 0 31 * *', at(2024, 4, 1)), at(2024, 5, 31), 'April has no 31st');
    assert.deepEqual(next('0 0 29 2 *', at(2024, 3, 1)), at(2028, 2, 29), 'the next leap day');
    assert.deepEqual(next('0 0 29 2 *', at(2096, 3, 1)), at(2104, 2, 29), '2100 is no leap year');
    assert.deepEqual(next('15 10 * * fri', at(2024, 5, 6)), at(2024, 5, 10, 10, 15));
    assert.deepEqual(next('0 0 13 * fri', at(2024, 5, 6)), at(2024, 5, 10), 'OR: the Friday before the 13th');
  });

  it('skips a local time that a DST change skips, and moves on where one repeats', () => {
    const tz = process.env['TZ'];
    process.env['TZ'] = 'Europe/Berlin'; // 2024-03-31 02:00 -> 03:00; 2024-10-27 03:00 -> 02:00
    try {
      assert.deepEqual(next('30 2 * * *', at(2024, 3, 30, 12)), at(2024, 4, 1, 2, 30), 'no 02:30 on Mar 31');
      const first = next('30 2 * * *', at(2024, 10, 27, 0)) as Date;
      assert.equal(first.toISOString(), '2024-10-27T00:30:00.000Z', '02:30 CEST');
      const again = next('30 2 * * *', first) as Date;
      assert.equal(again.toISOString(), '2024-10-27T01:30:00.000Z', '02:30 CET comes too (as cron runs it)');
    } finally {
      if (tz === undefined) delete process.env['TZ'];
      else process.env['TZ'] = tz;
    }
  });

  it('is the earliest of a list, and none for no schedule', () => {
    const s = parseSchedule('0 18 * * *, 0 6 * * *');
    assert.deepEqual(nextRun(s, at(2024, 5, 6, 7)), at(2024, 5, 6, 18));
    assert.deepEqual(nextRun(s, at(2024, 5, 6, 19)), at(2024, 5, 7, 6));
  });

  it('says whether a minute matched since the last tick, up to this one', () => {
    const s = parseSchedule('0 3 * * *');
    assert.equal(dueBetween(s, at(2024, 5, 6, 2, 59), at(2024, 5, 6, 3, 0)), true);
    assert.equal(dueBetween(s, at(2024, 5, 6, 3, 0), at(2024, 5, 6, 3, 1)), false, 'not twice');
    assert.equal(dueBetween(s, at(2024, 5, 6, 2, 58), at(2024, 5, 6, 3, 2)), true, 'a late tick');
    assert.equal(
      dueBetween(s, at(2024, 5, 6, 2, 59), new Date(at(2024, 5, 6, 3, 0).getTime() + 45_000)),
      true,
      'seconds into the minute',
    );
    assert.equal(dueBetween(s, at(2024, 5, 6, 2, 0), at(2024, 5, 6, 2, 59)), false);
    assert.equal(dueBetween(parseSchedule(''), at(2024, 5, 6), at(2024, 5, 7)), false);
  });
});

describe('showing a run', () => {
  it('gives the local minute with its offset from UTC', () => {
    const tz = process.env['TZ'];
    try {
      for (const [zone, text] of [
        ['UTC', '2024-05-07 03:04 +00:00'],
        ['Asia/Kolkata', '2024-05-07 03:04 +05:30'],
        ['America/New_York', '2024-05-07 03:04 -04:00'],
      ] as const) {
        process.env['TZ'] = zone;
        assert.equal(formatLocalMinute(at(2024, 5, 7, 3, 4)), text);
      }
    } finally {
      if (tz === undefined) delete process.env['TZ'];
      else process.env['TZ'] = tz;
    }
  });
});
