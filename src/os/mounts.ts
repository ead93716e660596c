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

/** Lazily unmount everything at or below `dir` (leftovers of a failed debootstrap or crash). */
export async function unmountBelow(dir: string): Promise<void> {
  for (const p of mountsBelow(dir)) unmount(p);
}
