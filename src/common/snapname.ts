/**
 * `snapshots.pattern`: the names of a guest's automatic snapshots. As Incus: "snap%d" by default,
 * "%d" the next number (one more than the highest of the names the pattern gives), and a name
 * without "%d" that is taken already gets "-0", "-1", ... Incus' patterns are Pongo2 templates;
 * jaula's are plain text with the snapshot's local time in braces: {YYYY} {MM} {DD} {hh} {mm}
 * ("auto-{YYYY}{MM}{DD}-{hh}{mm}"). Pure.
 */
import { JaulaError } from './errors.js';
import { validateName } from './names.js';

export const DEFAULT_PATTERN = 'snap%d';

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

const TOKENS: Readonly<Record<string, (t: Date) => string>> = {
  YYYY: (t) => pad(t.getFullYear(), 4),
  MM: (t) => pad(t.getMonth() + 1),
  DD: (t) => pad(t.getDate()),
  hh: (t) => pad(t.getHours()),
  mm: (t) => pad(t.getMinutes()),
};

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');

/** The pattern with its time tokens filled in. */
function withTime(pattern: string, at: Date): string {
  return pattern.replace(/\{([A-Za-z]*)\}/g, (all, tok: string) => TOKENS[tok]?.(at) ?? all);
}

/** Refuse a pattern that cannot make a snapshot name (JaulaError "invalid", naming the key). */
export function validatePattern(pattern: string): string {
  const bad = (why: string): JaulaError =>
    new JaulaError(
      'invalid',
      `Invalid snapshots.pattern "${pattern}": ${why} (e.g. "snap%d", "auto-{YYYY}{MM}{DD}-{hh}{mm}")`,
    );
  const unknown = /\{([^}]*)\}/.exec(pattern.replace(/\{(YYYY|MM|DD|hh|mm)\}/g, ''));
  if (unknown) throw bad(`"{${unknown[1]}}" is not one of {YYYY} {MM} {DD} {hh} {mm}`);
  if (pattern.split('%d').length > 2) throw bad('"%d" may stand once');
  if (pattern.replace('%d', '').includes('%')) throw bad('"%" stands only in "%d" (the number)');
  try {
    validateName(withTime(pattern, new Date(2000, 0, 1)).replace('%d', '0'), 'snapshot');
  } catch (e) {
    throw bad(e instanceof JaulaError ? e.message.replace(/^The snapshot name /, 'the name ') : String(e));
  }
  return pattern;
}

/** The next number of `pattern` (with one "%d") among `existing`: one more than the highest, else 0. */
function nextNumber(pattern: string, existing: readonly string[]): number {
  const [head = '', tail = ''] = pattern.split('%d');
  const re = new RegExp(`^${escapeRe(head)}(\\d+)${escapeRe(tail)}$`);
  let n = 0;
  for (const e of existing) {
    const m = re.exec(e);
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

/** The name a snapshot taken at `at` gets from `pattern`, given the names the guest has. */
export function snapshotName(pattern: string, existing: readonly string[], at: Date): string {
  let p = withTime(pattern, at);
  if (!p.includes('%d')) {
    if (!existing.includes(p)) return p;
    p = `${p}-%d`;
  }
  return p.replace('%d', String(nextNumber(p, existing)));
}
