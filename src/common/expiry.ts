/**
 * `snapshots.expiry` and `snapshot create --expiry`: how long a snapshot is kept, in Incus' words:
 * numbers with a unit, separated by spaces, each unit at most once: M minutes, H hours, d days,
 * w weeks, m months, y years ("1M 2H 3d 4w 5m 6y"; M is minutes, m months). Pure.
 */
import { JaulaError } from './errors.js';

export interface Expiry {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
  minutes: number;
}

const UNITS: Readonly<Record<string, keyof Expiry>> = {
  y: 'years',
  m: 'months',
  w: 'weeks',
  d: 'days',
  H: 'hours',
  M: 'minutes',
};

export const EXPIRY_EXAMPLE =
  'e.g. "2d", "6H", "1w 3d", "1m"; units: M minutes, H hours, d days, w weeks, m months, y years';

/** Parse an expiry; `what` names it in errors ("snapshots.expiry", "--expiry"). Empty: undefined (kept). */
export function parseExpiry(text: string, what = 'snapshots.expiry'): Expiry | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  const bad = (why: string): JaulaError =>
    new JaulaError('invalid', `Invalid ${what} "${text}": ${why} (${EXPIRY_EXAMPLE})`);
  const e: Expiry = { years: 0, months: 0, weeks: 0, days: 0, hours: 0, minutes: 0 };
  const seen = new Set<string>();
  for (const part of trimmed.split(/\s+/)) {
    const m = /^(\d{1,6})([A-Za-z])$/.exec(part);
    const unit = m ? UNITS[m[2] as string] : undefined;
    if (!m || !unit)
      throw bad(
        /^\d+$/.test(part)
          ? `"${part}" has no unit`
          : m
            ? `"${m[2]}" in "${part}" is not a unit`
            : `"${part}" is not a number with a unit`,
      );
    if (seen.has(unit)) throw bad(`${unit} are given twice`);
    seen.add(unit);
    e[unit] = Number(m[1]);
  }
  if (Object.values(e).every((v) => v === 0))
    throw bad('it adds up to nothing (a snapshot would be deleted at once)');
  return e;
}

/** The last day of a month (0-11) of a year. */
const lastDay = (year: number, month: number): number => new Date(year, month + 1, 0).getDate();

/**
 * When a snapshot taken at `from` expires. Years and months are calendar ones, days and weeks
 * calendar days (local time, as Incus' Go AddDate), then hours and minutes are added as elapsed
 * time. Unlike Go's AddDate a day past the target month's end is its last day: Jan 31 + 1m is
 * Feb 28 (29), not Mar 3; Feb 29 + 1y is Feb 28.
 */
export function addExpiry(from: Date, e: Expiry): Date {
  const months = from.getMonth() + e.months + 12 * e.years;
  const year = from.getFullYear() + Math.floor(months / 12);
  const month = ((months % 12) + 12) % 12;
  const day = Math.min(from.getDate(), lastDay(year, month));
  const t = new Date(from);
  t.setFullYear(year, month, day);
  t.setDate(t.getDate() + e.days + 7 * e.weeks);
  return new Date(t.getTime() + (e.hours * 60 + e.minutes) * 60_000);
}

/** The moment a snapshot taken at `from` expires, by an expiry's text (undefined: kept). */
export function expiresAt(from: Date, text: string, what?: string): Date | undefined {
  const e = parseExpiry(text, what);
  return e && addExpiry(from, e);
}
