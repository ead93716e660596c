/**
 * A guest being moved to another host (core/migrate) carries a mark in its config directory:
 * `.moving`, holding the move's ID and the remote. While it is there nothing may start the
 * guest here: the target may already run it (the handover's outcome is not known yet), and two
 * copies must never run. The move's end (done, taken back, or resolved by jaulad's reconcile)
 * removes it.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { readFileOr, writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';

export const MOVING_MARK = '.moving';

const markFile = (name: string): string => join(paths().guestConf(name), MOVING_MARK);

export function setMoving(name: string, id: string, remote: string): void {
  writeFileAtomic(markFile(name), `${id} ${remote}\n`, 0o600);
}

export function clearMoving(name: string): void {
  fs.rmSync(markFile(name), { force: true });
}

/** The move under way for the guest: its ID and remote, or undefined. */
export function movingOf(name: string): { id: string; remote: string } | undefined {
  const text = readFileOr(markFile(name), '').trim();
  if (!text) return undefined;
  const [id = '', remote = ''] = text.split(' ');
  return { id, remote };
}

/** Refuse to start a guest that is being moved away. */
export function refuseIfMoving(name: string): void {
  const m = movingOf(name);
  if (m)
    throw new JaulaError(
      'state',
      `Guest "${name}" is being moved to the remote "${m.remote}" (move ${m.id}): it cannot start here until the move ends or is resolved ("jaula migrate --status"; jaulad resolves it at its start)`,
    );
}
