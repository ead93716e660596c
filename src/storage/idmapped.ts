import * as fs from 'node:fs';
import { join } from 'node:path';
import { mountsBelow, unmount } from '../os/mounts.js';
import { helperBin, paths } from '../os/paths.js';
import { runOk } from '../os/spawn.js';
import type { IdRange } from '../runtime/idmap.js';
import type { MountedRoot, MountOptions } from './driver.js';

/** Where a running guest's idmapped root is mounted. */
export function idmappedRootPath(name: string): string {
  return join(paths().guestRun(name), 'root');
}

/** Where the idmapped views of an overlay guest's layers are mounted (private to jaula). */
export function idmappedLayersPath(name: string): string {
  return join(paths().guestRun(name), 'layers');
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

/**
 * Bind each `[src, dst]` idmapped: on-disk ID n is seen as host ID range.hostId + n. One helper
 * process for all of them. A missing dst is made a directory; `recursive` takes the mounts below
 * each src along (an rbind).
 */
export async function idmapMounts(
  pairs: [string, string][],
  range: IdRange,
  what: string,
  opts: { recursive?: boolean } = {},
): Promise<void> {
  for (const [, dst] of pairs) if (!fs.existsSync(dst)) fs.mkdirSync(dst, { recursive: true, mode: 0o711 });
  const argv = [helperBin, 'idmap-mount', ...(opts.recursive ? ['--recursive'] : [])];
  await runOk([...argv, String(range.hostId), String(range.size), ...pairs.flat()], { what });
}

/** Mount an idmapped view of `tree` for the runtime. */
export async function mountIdmapped(name: string, tree: string, range: IdRange): Promise<string> {
  const at = idmappedRootPath(name);
  await unmountIdmapped(name);
  fs.mkdirSync(at, { recursive: true, mode: 0o711 });
  makeTraversable(at);
  await idmapMounts([[tree, at]], range, `Mounting the idmapped root of guest "${name}"`);
  return at;
}

/** A plain tree's root: the tree itself, or (opts.idmap) an idmapped view of it for the runtime. */
export async function mountTree(name: string, tree: string, opts: MountOptions): Promise<MountedRoot> {
  return { root: opts.idmap ? await mountIdmapped(name, tree, opts.idmap) : tree, hostView: tree };
}

/** Run a driver's mount steps; when one fails, undo those done (no stray mount or loop device). */
export async function mountOrUndo<T>(steps: () => Promise<T>, undo: () => Promise<void>): Promise<T> {
  try {
    return await steps();
  } catch (e) {
    await undo().catch(() => {});
    throw e;
  }
}

/**
 * Unmount `dir` and everything below it, deepest first; plainly when possible, so that a
 * filesystem image below is released at once (its loop device freed), lazily when busy.
 */
export function unmountTree(dir: string): void {
  for (const m of mountsBelow(dir)) if (!unmount(m, false)) unmount(m);
}

/** Undo mountIdmapped() and the overlay driver's idmapped layers: the root first, then its layers. */
export async function unmountIdmapped(name: string): Promise<void> {
  unmountTree(idmappedRootPath(name));
  unmountTree(idmappedLayersPath(name));
}
