import * as fs from 'node:fs';
import { join } from 'node:path';
import { nativeOp } from '../os/native.js';
import { paths } from '../os/paths.js';
import { unmount } from '../os/mounts.js';
import type { IdRange } from './idmap.js';

/** Where an unprivileged guest's user namespace is bound while it runs. */
export function usernsPath(name: string): string {
  return join(paths().run, 'userns', name);
}

/**
 * Make the guest's user namespace (IDs 0.. -> range.hostId..) and bind it to a file: in this
 * process, by a clone(CLONE_VM) child (native/nsops.c), not a helper process.
 */
export async function createUserns(name: string, range: IdRange): Promise<string> {
  const p = usernsPath(name);
  await removeUserns(name);
  fs.mkdirSync(join(paths().run, 'userns'), { recursive: true, mode: 0o711 });
  await nativeOp(`Creating the user namespace of guest "${name}"`, (n) =>
    n.nsCreate(p, range.hostId, range.size, null, null, 0, -1),
  );
  return p;
}

export async function removeUserns(name: string): Promise<void> {
  const p = usernsPath(name);
  if (!fs.existsSync(p)) return;
  unmount(p);
  fs.rmSync(p, { force: true });
}
