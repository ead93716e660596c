/**
 * `snapshots.schedule`: when jaulad takes a guest's automatic snapshots, as Incus reads it. A
 * schedule is empty (off), a 5-field cron expression (minute hour day-of-month month day-of-week,
 * as crontab(5): `*`, lists `1,5`, ranges `1-5`, steps `*\/15` `1-30/5` `5/15`, names `jan`
 * `mon`, 0 or 7 for Sunday), an alias (@hourly @daily @midnight @weekly @monthly @yearly
 * @annually; @never is off), or several of those joined by ", " (Incus' list). Pure: the caller
 * gives the time; fields are matched against its local time, as cron does.
 */
import { JaulaError } from './errors.js';

export interface CronSpec {
  /** The expression as written (an alias already spread: "17 3 * * *"). */
  text: string;
  minute: readonly boolean[];
  hour: readonly boolean[];
  dom: readonly boolean[];
  month: readonly boolean[];
  dow: readonly boolean[];
  /** The day-of-month or day-of-week field begins with "*" (crontab(5): it does not restrict). */
  domStar: boolean;
  dowStar: boolean;
}

/** A guest's schedule: any of its expressions matching a minute takes a snapshot. */
export interface Schedule {
  text: string;
  specs: CronSpec[];
}

interface Field {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const FIELDS: readonly Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  // 7 is Sunday too (folded onto 0 after parsing)
  { name: 'day-of-week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

/** Aliases, with M and H for the minute and hour that spread guests apart (as Incus does). */
const ALIASES: Readonly<Record<string, string>> = {
  '@hourly': 'M * * * *',
  '@daily': 'M H * * *',
  '@midnight': 'M 0 * * *',
  '@weekly': 'M H * * 0',
  '@monthly': 'M H 1 * *',
  '@yearly': 'M H 1 1 *',
  '@annually': 'M H 1 1 *',
};

export const SCHEDULE_EXAMPLE =
  'e.g. "0 3 * * *" (03:00 every day), "*/15 * * * *", "0 0 * * 1-5", or @hourly, @daily, @weekly, @monthly, @yearly';

function invalid(schedule: string, why: string): JaulaError {
  return new JaulaError('invalid', `Invalid snapshots.schedule "${schedule}": ${why} (${SCHEDULE_EXAMPLE})`);
}

/** One number or name of a field. */
function value(f: Field, s: string, schedule: string): number {
  const named = f.names?.indexOf(s.toLowerCase()) ?? -1;
  if (named >= 0) return named + f.min;
  if (!/^\d{1,3}$/.test(s))
    throw invalid(
      schedule,
      `the ${f.name} field has "${s}", which is not a number${f.names ? ` or a name (${f.names[0]}, ${f.names[1]}, ...)` : ''}`,
    );
  const n = Number(s);
  if (n < f.min || n > f.max)
    throw invalid(schedule, `the ${f.name} field has ${n}, out of its range ${f.min}-${f.max}`);
  return n;
}

/** One item of a field's list: `*`, `N`, `N-M`, each with an optional `/STEP`. */
function item(f: Field, s: string, schedule: string, into: boolean[]): void {
  const m = /^([^/]+)(?:\/(.*))?$/.exec(s);
  if (!m) throw invalid(schedule, `the ${f.name} field has an empty item in "${s}"`);
  const [, range = '', stepText] = m;
  let step = 1;
  if (stepText !== undefined) {
    if (!/^\d{1,3}$/.test(stepText) || Number(stepText) === 0)
      throw invalid(schedule, `the ${f.name} field's step "/${stepText}" is not a whole number above 0`);
    step = Number(stepText);
  }
  let lo: number;
  let hi: number;
  if (range === '*') [lo, hi] = [f.min, f.max];
  else {
    const dash = range.split('-');
    if (dash.length > 2 || dash.some((d) => d === ''))
      throw invalid(schedule, `the ${f.name} field has "${range}", not a number or a range N-M`);
    lo = value(f, dash[0] as string, schedule);
    // "N/STEP": from N to the field's end (as Incus' cron reads it)
    hi = dash.length === 2 ? value(f, dash[1] as string, schedule) : stepText !== undefined ? f.max : lo;
    if (hi < lo) throw invalid(schedule, `the ${f.name} field's range "${range}" runs backwards`);
  }
  for (let v = lo; v <= hi; v += step) into[v] = true;
}

function field(f: Field, text: string, schedule: string): boolean[] {
  const into = new Array<boolean>(f.max + 1).fill(false);
  for (const part of text.split(',')) item(f, part, schedule, into);
  return into;
}

/** Parse one 5-field expression (no alias). */
export function parseCron(expr: string, schedule = expr): CronSpec {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5)
    throw invalid(
      schedule,
      `"${expr}" has ${parts.length} field${parts.length === 1 ? '' : 's'}; a cron expression has 5: minute hour day-of-month month day-of-week`,
    );
  const [minute, hour, dom, month, dow] = FIELDS.map((f, i) => field(f, parts[i] as string, schedule)) as [
    boolean[],
    boolean[],
    boolean[],
    boolean[],
    boolean[],
  ];
  if (dow[7]) dow[0] = true;
  const spec: CronSpec = {
    text: parts.join(' '),
    minute,
    hour,
    dom,
    month,
    dow: dow.slice(0, 7),
    domStar: (parts[2] as string).startsWith('*'),
    dowStar: (parts[4] as string).startsWith('*'),
  };
  if (!possible(spec))
    throw invalid(schedule, `"${expr}" matches no date (none of its months has one of its days)`);
  return spec;
}

/** The number of days in a month (1-12) at most (February: 29). */
const MONTH_DAYS = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Some date matches: a day-of-week always comes; a day-of-month alone must exist in a month. */
function possible(s: CronSpec): boolean {
  if (!s.dowStar && !s.domStar) return true; // either matches (crontab(5))
  if (!s.dowStar) return s.dow.some(Boolean);
  return s.month.some((on, m) => on && s.dom.some((d, day) => d && day <= (MONTH_DAYS[m] ?? 0)));
}

/**
 * A stable number for a guest (FNV-1a of its name) that spreads aliases: @daily is one minute and
 * hour of the day per guest, not midnight for all (Incus spreads them by instance, the same way).
 */
export function spreadSeed(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Parse a schedule; `seed` (spreadSeed of the guest's name) picks the minute and hour of its
 * aliases. Throws JaulaError "invalid" naming the field at fault, with an example.
 */
export function parseSchedule(text: string, seed = 0): Schedule {
  const specs: CronSpec[] = [];
  const trimmed = text.trim();
  if (trimmed === '') return { text, specs };
  for (const one of trimmed.split(/\s*,\s+/)) {
    if (!one.startsWith('@')) {
      specs.push(parseCron(one, text));
      continue;
    }
    const alias = one.toLowerCase();
    if (alias === '@never') continue;
    const form = ALIASES[alias];
    if (!form)
      throw invalid(
        text,
        `unknown alias "${one}"${alias === '@startup' || alias === '@reboot' ? ' (jaula has no snapshot at start)' : ''}`,
      );
    specs.push(
      parseCron(form.replace('M', String(seed % 60)).replace('H', String(Math.floor(seed / 60) % 24))),
    );
  }
  return { text, specs };
}

/** Does `spec` match the minute of `at` (local time)? */
export function cronMatches(spec: CronSpec, at: Date): boolean {
  return (
    !!spec.minute[at.getMinutes()] &&
    !!spec.hour[at.getHours()] &&
    !!spec.month[at.getMonth() + 1] &&
    dayMatches(spec, at)
  );
}

/** crontab(5): when both day fields restrict (neither begins with "*"), either one matching will do. */
function dayMatches(spec: CronSpec, at: Date): boolean {
  const dom = !!spec.dom[at.getDate()];
  const dow = !!spec.dow[at.getDay()];
  if (!spec.domStar && !spec.dowStar) return dom || dow;
  return dom && dow;
}

export const scheduleMatches = (s: Schedule, at: Date): boolean => s.specs.some((c) => cronMatches(c, at));

/** How far nextRun looks: long enough for "0 0 29 2 *" across 2100 (not a leap year). */
const HORIZON_YEARS = 9;

/** The first minute strictly after `after` that `spec` matches (local time), if any within 9 years. */
export function nextCronRun(spec: CronSpec, after: Date): Date | undefined {
  const end = new Date(after);
  end.setFullYear(end.getFullYear() + HORIZON_YEARS);
  let t = new Date(after);
  t.setSeconds(0, 0);
  t = new Date(t.getTime() + 60_000);
  while (t <= end) {
    let next: Date;
    const [y, mo, d, h] = [t.getFullYear(), t.getMonth(), t.getDate(), t.getHours()];
    if (!spec.month[mo + 1]) next = new Date(y, mo + 1, 1);
    else if (!dayMatches(spec, t)) next = new Date(y, mo, d + 1);
    else if (!spec.hour[h]) next = new Date(y, mo, d, h + 1);
    else if (!spec.minute[t.getMinutes()]) next = new Date(t.getTime() + 60_000);
    else return t;
    // (a local time a DST change skips or repeats never leaves us standing still)
    t = next > t ? next : new Date(t.getTime() + 60_000);
  }
  return undefined;
}

/** The first minute strictly after `after` that the schedule matches (undefined: off). */
export function nextRun(s: Schedule, after: Date): Date | undefined {
  let best: Date | undefined;
  for (const c of s.specs) {
    const n = nextCronRun(c, after);
    if (n && (!best || n < best)) best = n;
  }
  return best;
}

/**
 * Is a snapshot due in the minutes after `since` up to and including `now`'s minute? jaulad asks
 * this once a tick, with the minute of its previous tick, so that a tick that ran late misses no
 * matching minute and a burst of missed minutes takes one snapshot, not one each.
 */
export function dueBetween(s: Schedule, since: Date, now: Date): boolean {
  const n = nextRun(s, since);
  const end = new Date(now);
  end.setSeconds(0, 0);
  return n !== undefined && n <= end;
}

/** A minute in local time with its UTC offset, as schedules are read: "2024-05-07 03:00 +02:00". */
export function formatLocalMinute(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())} ${sign}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`;
}
