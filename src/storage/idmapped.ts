import * as fs from 'node:fs';
import { join } from 'node:path';
import { mountsBelow } from '../os/mounts.js';
import { helperBin, paths } from '../os/paths.js';
import { run, runOk } from '../os/spawn.js';
import type { IdRange } from '../runtime/idmap.js';

/** Where a running guest's idmapped root is mounted. */
export function idmappedRootPath(name: string): string {
  return join(paths().guestRun(name), 'root');
}

/**
 * The runtime sets up an unprivileged guest's mounts as the guest's (unprivileged) root: every
 * directory above its root and its bind sources must be searchable by others (o+x, not o+r).
 */
export function makeTraversable(path: string): void {
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    const st = fs.statSync(p);
    if (st.isDirectory() && !(st.mode & 0o001)) fs.chmodSync(p, (st.mode & 0o7777) | 0o001);
  }
}

/** Mount an idmapped view of `tree` for the runtime. */
export async function mountIdmapped(name: string, tree: string, range: IdRange): Promise<string> {
  const at = idmappedRootPath(name);
  await unmountIdmapped(name);
  fs.mkdirSync(at, { recursive: true, mode: 0o711 });
  makeTraversable(at);
  await runOk([helperBin, 'idmap-mount', tree, at, String(range.hostId), String(range.size)], {
    what: `Mounting the idmapped root of guest "${name}"`,
  });
  return at;
}

export async function unmountIdmapped(name: string): Promise<void> {
  const at = idmappedRootPath(name);
  for (const m of mountsBelow(at)) await run(['umount', '-l', m]);
}
