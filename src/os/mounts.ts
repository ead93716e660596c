import * as fs from 'node:fs';
import { run } from './spawn.js';

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

/** Lazily unmount everything at or below `dir` (leftovers of a failed debootstrap or crash). */
export async function unmountBelow(dir: string): Promise<void> {
  for (const p of mountsBelow(dir)) await run(['umount', '-l', p]);
}
