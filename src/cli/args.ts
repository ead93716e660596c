import { JaulaError } from '../common/errors.js';

export type OptType = 'bool' | 'string' | 'number' | 'list';
export interface OptSpec {
  type: OptType;
  short?: string;
}
export type OptSpecs = Record<string, OptSpec>;

export interface Parsed {
  opts: Record<string, string | number | boolean | string[] | undefined>;
  positionals: string[];
  /** Everything after "--". */
  rest: string[];
  sawDashDash: boolean;
}

/** A small argv parser: --long, --long=value, -s value, repeatable lists, "--" ends options. */
export function parseArgs(argv: string[], specs: OptSpecs, command: string): Parsed {
  const out: Parsed = { opts: {}, positionals: [], rest: [], sawDashDash: false };
  const byShort = new Map(
    Object.entries(specs)
      .filter(([, s]) => s.short)
      .map(([k, s]) => [s.short as string, k]),
  );
  for (const [k, s] of Object.entries(specs)) if (s.type === 'list') out.opts[k] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      out.sawDashDash = true;
      out.rest = argv.slice(i + 1);
      break;
    }
    let key: string | undefined;
    let inline: string | undefined;
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      key = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (eq > 0) inline = a.slice(eq + 1);
    } else if (a.startsWith('-') && a.length === 2 && a !== '-') {
      key = byShort.get(a.slice(1));
      if (!key)
        throw new JaulaError(
          'usage',
          `Unknown option "${a}" for "jaula ${command}" (see "jaula ${command} --help")`,
        );
    } else {
      out.positionals.push(a);
      continue;
    }
    const spec = specs[key];
    if (!spec)
      throw new JaulaError(
        'usage',
        `Unknown option "--${key}" for "jaula ${command}" (see "jaula ${command} --help")`,
      );
    if (spec.type === 'bool') {
      if (inline !== undefined) throw new JaulaError('usage', `The option --${key} takes no value`);
      out.opts[key] = true;
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined)
      throw new JaulaError('usage', `The option --${key} needs a value (see "jaula ${command} --help")`);
    if (spec.type === 'number') {
      if (!/^-?\d+(\.\d+)?$/.test(v))
        throw new JaulaError('usage', `The option --${key} needs a number, not "${v}"`);
      out.opts[key] = Number(v);
    } else if (spec.type === 'list') (out.opts[key] as string[]).push(v);
    else out.opts[key] = v;
  }
  return out;
}

export function str(p: Parsed, k: string): string | undefined {
  const v = p.opts[k];
  return typeof v === 'string' ? v : undefined;
}
export function num(p: Parsed, k: string): number | undefined {
  const v = p.opts[k];
  return typeof v === 'number' ? v : undefined;
}
export function bool(p: Parsed, k: string): boolean {
  return p.opts[k] === true;
}
export function list(p: Parsed, k: string): string[] {
  const v = p.opts[k];
  return Array.isArray(v) ? v : [];
}

export function onePositional(p: Parsed, command: string, what = 'NAME'): string {
  if (p.positionals.length !== 1)
    throw new JaulaError(
      'usage',
      `"jaula ${command}" takes one ${what}${p.positionals.length ? `, got ${p.positionals.length}: ${p.positionals.join(' ')}` : ''} (see "jaula ${command} --help")`,
    );
  return p.positionals[0] as string;
}
