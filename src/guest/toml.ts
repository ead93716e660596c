/**
 * Reading jaula's TOML files so that every error names the file, the table and the line of the
 * setting at fault: guest configs (config.ts) and the tables other modules own.
 */
import { TomlError, parse as parseToml } from 'smol-toml';
import { JaulaError, messageOf } from '../common/errors.js';

export type Toml = Record<string, unknown>;

/**
 * Where a setting of a config file is: the file, the table ("" for the top level, or the name of
 * a [table] or [[array]]), which of an array's tables (1-based), and the text (for line numbers).
 */
export interface Where {
  file: string;
  text: string;
  table: string;
  nth: number;
  /** How messages name the table: ", [storage]", ", interface 2" ("" for the top level). */
  label: string;
}

/**
 * The line (1-based) of `key` in a table of a TOML text, by a plain scan of the lines: headers
 * "[t]" and "[[t]]" and keys (bare, quoted or dotted: "memory.max = ..." counts for "memory").
 */
export function keyLine(text: string, table: string, nth: number, key: string): number | undefined {
  // A key's parts, bare or quoted ("cpu.turbo" is one part, cpu.turbo two), joined with ".".
  const unquote = (k: string): string =>
    [...k.matchAll(/\s*(?:"([^"]*)"|'([^']*)'|([^."'\s]+))\s*(?:\.|$)/g)]
      .map((m) => m[1] ?? m[2] ?? m[3] ?? '')
      .join('.');
  let cur = '';
  let n = 0;
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = (lines[i] ?? '').trim();
    const h = /^\[\[\s*([^\]]+?)\s*\]\]|^\[\s*([^\]]+?)\s*\]/.exec(l);
    if (h) {
      cur = unquote(h[1] ?? h[2] ?? '');
      n = (seen.get(cur) ?? 0) + 1;
      seen.set(cur, n);
      continue;
    }
    if (cur !== table || (nth > 0 && n !== nth)) continue;
    const m = /^((?:"[^"]*"|'[^']*'|[A-Za-z0-9_.\s-])+?)\s*=/.exec(l);
    const k = m?.[1] === undefined ? undefined : unquote(m[1]);
    if (k === key || k?.startsWith(`${key}.`)) return i + 1;
  }
  return undefined;
}

/** "In FILE, [table], line N" (the line where `key` is, when it can be found). */
export function at(w: Where, key?: string): string {
  const line = key === undefined ? undefined : keyLine(w.text, w.table, w.nth, key);
  return `In "${w.file}"${w.label}${line === undefined ? '' : `, line ${line}`}`;
}

export function inTable(w: Where, table: string, nth = 0): Where {
  return { ...w, table, nth, label: nth ? `, ${table} ${nth}` : `, [${table}]` };
}

export function take<T>(
  obj: Toml,
  key: string,
  kind: 'string' | 'number' | 'boolean' | 'array' | 'table',
  where: Where,
): T | undefined {
  const v = obj[key];
  delete obj[key];
  if (v === undefined) return undefined;
  const ok =
    kind === 'array'
      ? Array.isArray(v)
      : kind === 'table'
        ? typeof v === 'object' && v !== null && !Array.isArray(v)
        : typeof v === kind;
  if (!ok) throw new JaulaError('invalid', `${at(where, key)}: "${key}" must be a ${kind}`);
  return v as T;
}

export function strings(v: unknown[] | undefined, key: string, where: Where): string[] {
  if (!v) return [];
  if (!v.every((x) => typeof x === 'string'))
    throw new JaulaError('invalid', `${at(where, key)}: "${key}" must be a list of strings`);
  return v as string[];
}

export function noneLeft(obj: Toml, where: Where): void {
  const keys = Object.keys(obj);
  if (keys.length)
    throw new JaulaError(
      'invalid',
      `${at(where, keys[0])}: unknown setting${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${k}"`).join(', ')}`,
    );
}

export function parseTomlText(text: string, file: string): Toml {
  try {
    return parseToml(text) as Toml;
  } catch (e) {
    const where =
      e instanceof TomlError ? `In "${file}", line ${e.line}, column ${e.column}` : `In "${file}"`;
    const why =
      messageOf(e)
        .split('\n')[0]
        ?.replace(/^Invalid TOML document: /, '') ?? '';
    throw new JaulaError('invalid', `${where}: not valid TOML (${why})`, {
      cause: e,
      ...(e instanceof TomlError ? { details: { line: e.line } } : {}),
    });
  }
}
