import * as fs from 'node:fs';
import { join } from 'node:path';
import { mkdirp } from '../os/fs.js';
import { paths } from '../os/paths.js';

export function guestLogFile(name: string): string {
  return join(paths().log, `${name}.log`);
}

/** Append one line to the guest's jaula log (lifecycle events, hook output). Never throws. */
export function guestLog(name: string, message: string): void {
  try {
    mkdirp(paths().log, 0o700);
    fs.appendFileSync(guestLogFile(name), `${new Date().toISOString()} ${message.replace(/\n+$/, '')}\n`, {
      mode: 0o600,
    });
  } catch {
    /* logging must not break an operation */
  }
}
