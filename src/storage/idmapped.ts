import * as fs from 'node:fs';
import { join } from 'node:path';
import { unmount, unmountAt, unmountEntries } from '../os/mounts.js';
import { MS_BIND, MS_REMOUNT, native, nativeOp } from '../os/native.js';
import { paths } from '../os/paths.js';
import type { IdRange } from '../runtime/idmap.js';
import { guestRunDir } from './barrier.js';
import type { MountedRoot, MountOptions } from './driver.js';
import { layout } from './layout.js';

/** Where a running guest's idmapped root is mounted. */
export function idmappedRootPath(name: string): string {
  return join(paths().guestRun(name), 'root');
}

/** Where the idmapped views of an overlay guest's layers are mounted (private to jaula). */
export function idmappedLayersPath(name: string): string {
  return join(paths().guestRun(name), 'layers');
}

/**
 * Bind each `[src, dst]` idmapped: on-disk ID n is seen as host ID range.hostId + n. All with one
 * user namespace, made in this process (native/nsops.c: no helper process). A missing dst is made a directory; `recursive` takes the mounts below
 * each src along (an rbind). The views clear nosuid and nodev (jaula's storage mounts have them;
 * the guest's own view of its files keeps setuid) unless `keepFlags` (a host directory bound in
 * through fstab keeps the host's).
 */
export async function idmapMounts(
  pairs: [string, string][],
  range: IdRange,
  what: string,
  opts: { recursive?: boolean; keepFlags?: boolean } = {},
): Promise<void> {
  for (const [, dst] of pairs) if (!fs.existsSync(dst)) fs.mkdirSync(dst, { recursive: true, mode: 0o711 });
  await nativeOp(what, (n) =>
    n.idmapMounts(range.hostId, range.size, opts.recursive ? 1 : 0, opts.keepFlags ? 1 : 0, pairs.flat()),
  );
}

/**
 * Mount an idmapped view of `tree` for the runtime, behind the guest's barrier (its run
 * directory, which the guest's root may pass: its runtime sets up the guest's mounts as that ID).
 */
export async function mountIdmapped(name: string, tree: string, range: IdRange): Promise<string> {
  guestRunDir(name, range.hostId);
  const at = idmappedRootPath(name);
  await unmountIdmapped(name);
  fs.mkdirSync(at, { recursive: true, mode: 0o711 });
  await idmapMounts([[tree, at]], range, `Mounting the idmapped root of guest "${name}"`);
  return at;
}

/**
 * A privileged guest's view of a plain tree: a bind mount of it behind the guest's barrier, with
 * the nosuid and nodev of jaula's storage mounts (the pool, a quota image) cleared, so that the
 * guest's own setuid programs work while the storage stays nosuid,nodev for the host.
 */
function mountPlainView(name: string, tree: string): string {
  guestRunDir(name);
  const at = layout.mountPoint(name);
  for (let i = 0; i < 8 && unmount(at); i++); // a stale view (a crash): one umount2 each, no mountinfo read
  fs.mkdirSync(at, { recursive: true, mode: 0o700 });
  native().mount(tree, at, null, MS_BIND, null);
  try {
    native().mount(null, at, null, MS_REMOUNT | MS_BIND, null);
  } catch (e) {
    unmount(at);
    throw e;
  }
  return at;
}

/** A plain tree's root: a view of it for the runtime (opts.idmap: idmapped), over the tree itself. */
export async function mountTree(name: string, tree: string, opts: MountOptions): Promise<MountedRoot> {
  const root = opts.idmap ? await mountIdmapped(name, tree, opts.idmap) : mountPlainView(name, tree);
  return { root, hostView: tree };
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

/** Undo mountIdmapped() and the overlay driver's idmapped layers: the root first, then its layers. */
export async function unmountIdmapped(name: string): Promise<void> {
  unmountAt(idmappedRootPath(name));
  unmountEntries(idmappedLayersPath(name));
}

/** Undo mountTree(): either view, and its mount point. */
export async function unmountView(name: string): Promise<void> {
  await unmountIdmapped(name);
  unmountAt(layout.mountPoint(name));
  try {
    fs.rmdirSync(layout.mountPoint(name));
  } catch {
    /* absent, or not empty (never remove files under a mount point) */
  }
}
