import { JaulaError } from '../common/errors.js';

/**
 * hashify's exclude list, in util-vserver's (vunify/vhashify) syntax, one rule per line:
 *
 *   /path     exclude /path and everything below it
 *   ~PATTERN  exclude paths matching a glob ("*" and "?" stay within one path component;
 *             a pattern matching a directory excludes what is below it)
 *   -/path    the same as /path, explicitly (also -~PATTERN)
 *   +/path    include /path (also +~PATTERN): overrides the rules after it
 *
 * The first rule that matches decides; no match means the file may be unified. Empty lines and
 * lines starting with "#" are ignored.
 */
export interface ExcludeRule {
  include: boolean;
  glob: boolean;
  pattern: string;
  re?: RegExp;
}

/** Configuration, logs, devices, home directories, the guest's own state: never unified. */
export const DEFAULT_EXCLUDES = [
  '/boot',
  '/dev',
  '/etc',
  '/home',
  '/lost+found',
  '/media',
  '/mnt',
  '/proc',
  '/root',
  '/run',
  '/srv',
  '/sys',
  '/tmp',
  '/var',
];

function globRe(p: string): RegExp {
  let re = '';
  for (const ch of p) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}(/.*)?$`);
}

export function parseExcludeRule(line: string): ExcludeRule | undefined {
  let s = line.trim();
  if (!s || s.startsWith('#')) return undefined;
  let include = false;
  if (s.startsWith('+') || s.startsWith('-')) {
    include = s[0] === '+';
    s = s.slice(1);
  }
  const glob = s.startsWith('~');
  if (glob) s = s.slice(1);
  if (!s.startsWith('/'))
    throw new JaulaError(
      'usage',
      `The exclude rule "${line}" is not a path inside the guest: write /path, ~/pattern, +/path or -/path`,
    );
  const pattern = s.length > 1 ? s.replace(/\/+$/, '') : s;
  const r: ExcludeRule = { include, glob, pattern };
  if (glob) r.re = globRe(pattern);
  return r;
}

export function parseExcludes(lines: string[]): ExcludeRule[] {
  return lines.map(parseExcludeRule).filter((r): r is ExcludeRule => r !== undefined);
}

/** Is the guest path ("/usr/bin/x") excluded? */
export function excluded(rules: ExcludeRule[], path: string): boolean {
  for (const r of rules) {
    const hit = r.glob
      ? (r.re as RegExp).test(path)
      : r.pattern === '/' || path === r.pattern || path.startsWith(`${r.pattern}/`);
    if (hit) return !r.include;
  }
  return false;
}
