import * as fs from 'node:fs';
import { errnoOf } from '../common/errors.js';
import { MNT_DETACH, native } from './native.js';

export interface MountInfo {
  id: number;
  parent: number;
  mountPoint: string;
  fsType: string;
  source: string;
  options: string;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function readMountInfo(pid: number | 'self' = 'self'): MountInfo[] {
  const text = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const dash = f.indexOf('-');
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      mountPoint: unescapeMount(f[4] ?? ''),
      options: f[5] ?? '',
      fsType: f[dash + 1] ?? '',
      source: unescapeMount(f[dash + 2] ?? ''),
    });
  }
  return out;
}

/** Mount points at or below `dir`, deepest first. */
export function mountsBelow(dir: string): string[] {
  const prefix = dir.replace(/\/+$/, '');
  return readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p === prefix || p.startsWith(prefix + '/'))
    .sort((a, b) => b.length - a.length);
}

/**
 * Unmount `path` (lazily: MNT_DETACH) with umount2(2) in this process, not umount(8) (a process
 * and a read of every mount, 10 ms or more). True when it was unmounted, false when nothing was
 * mounted there (EINVAL, ENOENT) or, without `lazy`, the mount is busy (EBUSY).
 */
export function unmount(path: string, lazy = true): boolean {
  try {
    native().umount2(path, lazy ? MNT_DETACH : 0);
    return true;
  } catch (e) {
    if (['EINVAL', 'ENOENT', 'ENOTDIR'].includes(errnoOf(e) ?? '') || (!lazy && errnoOf(e) === 'EBUSY'))
      return false;
    throw e;
  }
}

/**
 * Unmount every mount stacked on `path` (a crash may have left several), each plainly when
 * possible, so that a filesystem image is released at once, else lazily (busy, or with mounts
 * below it, which are detached with it). Reads no mount table: /proc/self/mountinfo grows with
 * every running guest, and reading it made each start and stop cost more the more guests ran.
 * Returns how many mounts were removed (0: nothing was mounted there, or `path` is absent).
 */
export function unmountAt(path: string): number {
  const gone = (e: unknown): boolean => ['EINVAL', 'ENOENT', 'ENOTDIR'].includes(errnoOf(e) ?? '');
  let n = 0;
  for (; n < 16; n++) {
    try {
      native().umount2(path, 0);
    } catch (e) {
      if (gone(e)) return n;
      if (errnoOf(e) !== 'EBUSY') throw e;
      try {
        native().umount2(path, MNT_DETACH);
      } catch (e2) {
        if (gone(e2)) return n;
        throw e2;
      }
    }
  }
  return n;
}

/**
 * Unmount the mounts on the entries of `dir`, a directory of jaula's own holding mount points
 * (the idmapped views of a guest's layers or binds), then on `dir` itself; see unmountAt.
 */
export function unmountEntries(dir: string): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    /* absent: only dir itself, if anything */
  }
  for (const n of names) unmountAt(`${dir}/${n}`);
  unmountAt(dir);
}

/** Lazily unmount everything at or below `dir` (leftovers of a failed debootstrap or crash). */
export async function unmountBelow(dir: string): Promise<void> {
  for (const p of mountsBelow(dir)) unmount(p);
}
