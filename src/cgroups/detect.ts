import * as fs from 'node:fs';
import { parseProcCgroup } from './parse.js';

/**
 * The host's cgroup layout:
 *  - "v2": one unified hierarchy at /sys/fs/cgroup (current distributions);
 *  - "hybrid": v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified (crun refuses it);
 *  - "v1": v1 controllers only.
 */
export type CgroupMode = 'v1' | 'hybrid' | 'v2';

const CGROUP2_SUPER_MAGIC = 0x63677270;

export function cgroupMode(): CgroupMode {
  if (fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'v2';
  // One statfs, not a read of /proc/self/mounts (long with many guests running): a cgroup2
  // filesystem at /sys/fs/cgroup/unified is the hybrid layout.
  try {
    if (fs.statfsSync('/sys/fs/cgroup/unified').type === CGROUP2_SUPER_MAGIC) return 'hybrid';
  } catch {
    /* no such directory */
  }
  return 'v1';
}

/** This process's cgroup per controller ("" key = the v2 hierarchy), from /proc/self/cgroup. */
export function ownCgroups(pid: number | 'self' = 'self'): Map<string, string> {
  try {
    return parseProcCgroup(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  } catch {
    return new Map();
  }
}

/** The deepest cgroup this process is in, over all hierarchies. */
export function deepestOwnCgroup(): string {
  let best = '/';
  for (const p of ownCgroups().values()) if (p.length > best.length) best = p;
  return best;
}
