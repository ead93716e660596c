import type { OptSpecs, Parsed } from './args.js';

export interface Command {
  /** One line: what the command does. */
  summary: string;
  /** Usage and examples, shown by --help. */
  help: string;
  specs: OptSpecs;
  run(p: Parsed): Promise<number>;
}

export type Format = 'table' | 'json';

export function formatOf(p: Parsed): Format {
  const f = p.opts['format'] ?? 'table';
  if (f !== 'table' && f !== 'json') throw new Error(`--format must be table or json, not "${String(f)}"`);
  return f;
}

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function err(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function json(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}
