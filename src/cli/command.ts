import { writeSync } from 'node:fs';
import { JaulaError } from '../common/errors.js';
import type { OptSpecs, Parsed } from './args.js';

export interface Command {
  /** One line: what the command does. */
  summary: string;
  /** Usage and examples, shown by --help. */
  help: string;
  specs: OptSpecs;
  /** Sub-commands taken as the first positional (`jaula network create`), for completion. */
  verbs?: string[];
  run(p: Parsed): Promise<number>;
}

export type Format = 'table' | 'json';

export function formatOf(p: Parsed): Format {
  const f = p.opts['format'] ?? 'table';
  if (f !== 'table' && f !== 'json')
    throw new JaulaError('usage', `--format must be table or json, not "${String(f)}"`);
  return f;
}

/** Write all of `text` to a file descriptor (without loading Node's stream machinery). */
function writeAll(fd: number, text: string): void {
  let buf = Buffer.from(text.endsWith('\n') ? text : `${text}\n`);
  while (buf.length) {
    try {
      buf = buf.subarray(writeSync(fd, buf));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') return; // the reader went away (jaula ps | head): nothing to say
      if (code !== 'EAGAIN') throw e;
    }
  }
}

export function out(text: string): void {
  writeAll(1, text);
}

export function err(text: string): void {
  writeAll(2, text);
}

export function json(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}
