import * as fs from 'node:fs';
import { join } from 'node:path';
import { helperBin, paths } from '../os/paths.js';
import { runOk } from '../os/spawn.js';
import { unmount } from '../os/mounts.js';
import type { IdRange } from './idmap.js';

/** Where an unprivileged guest's user namespace is bound while it runs. */
export function usernsPath(name: string): string {
  return join(paths().run, 'userns', name);
}

/** Make the guest's user namespace (IDs 0.. -> range.hostId..) and bind it to a file. */
export async function createUserns(name: string, range: IdRange): Promise<string> {
  const p = usernsPath(name);
  await removeUserns(name);
  fs.mkdirSync(join(paths().run, 'userns'), { recursive: true, mode: 0o711 });
  await runOk([helperBin, 'userns-create', p, String(range.hostId), String(range.size)], {
    what: `Creating the user namespace of guest "${name}"`,
  });
  return p;
}

export async function removeUserns(name: string): Promise<void> {
  const p = usernsPath(name);
  if (!fs.existsSync(p)) return;
  unmount(p);
  fs.rmSync(p, { force: true });
}
