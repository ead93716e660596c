import { join } from 'node:path';
import { kernelFileExists, readKernelFile } from '../os/kernfs.js';
import { cgroupMounts, guestCgroupPaths, type GuestCgroup } from './cgroup.js';
import { ownCgroups } from './detect.js';
import type { LimitKey } from './limits.js';
import { V1_FILES, V1Cgroup, v1Why } from './v1.js';
import { V2_FILES, V2Cgroup } from './v2.js';
import { v2Base } from './v2parent.js';

export type { CgroupStats, GuestCgroup } from './cgroup.js';

/** 2 on a unified host; 1 on v1 and hybrid hosts (their controllers are all v1). */
export function cgroupVersion(): 1 | 2 {
  return kernelFileExists('/sys/fs/cgroup/cgroup.controllers') ? 2 : 1; // (cgroupMode's first test)
}

const V1_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'name=systemd'];

/**
 * The cgroup of a running guest whose init is `pid` (cgroupsPath: the runtime's, from the
 * guest's state, when absolute). undefined when the process is gone.
 */
export function openGuestCgroup(
  pid: number,
  cgroupsPath?: string,
  version = cgroupVersion(),
): GuestCgroup | undefined {
  const mounts = cgroupMounts();
  if (version === 1 && cgroupsPath?.startsWith('/')) {
    // The runtime's absolute path, the same in every hierarchy (crun): no /proc read needed.
    const dirs = new Map<string, string>();
    for (const c of V1_CONTROLLERS) {
      const m = mounts.get(c);
      if (m !== undefined) dirs.set(c, m + cgroupsPath);
    }
    return new V1Cgroup(dirs, mounts);
  }
  const paths = guestCgroupPaths(pid, cgroupsPath);
  if (!paths) return undefined;
  if (version === 2) {
    const root = mounts.get('') ?? '/sys/fs/cgroup';
    return new V2Cgroup(join(root, paths.get('') ?? '/'));
  }
  const dirs = new Map<string, string>();
  for (const c of V1_CONTROLLERS) {
    const m = mounts.get(c);
    const p = paths.get(c);
    // Plain concatenation: both are clean absolute paths from the kernel (hot in jaula ps).
    if (m !== undefined && p !== undefined) dirs.set(c, p === '/' ? m : m + p);
  }
  return new V1Cgroup(dirs, mounts);
}

/** v1 files whose absence at a hierarchy's root means the kernel lacks the feature. */
const V1_FEATURE_FILES = new Set([
  'blkio.weight',
  'memory.memsw.limit_in_bytes',
  'cpu.cfs_quota_us',
  'blkio.throttle.read_bps_device',
]);

/**
 * What the host cannot honour of `keys`, before any guest cgroup exists (at start, or when a
 * limit is saved for a stopped guest): missing controllers and kernel features.
 */
export function hostMissing(
  keys: readonly LimitKey[],
  version = cgroupVersion(),
): { key: LimitKey; file: string; why: string }[] {
  const mounts = cgroupMounts();
  const out: { key: LimitKey; file: string; why: string }[] = [];
  if (version === 2) {
    const root = mounts.get('') ?? '/sys/fs/cgroup';
    // (the cgroup beneath which guests go: jaula's own, or the one it moved out of, v2parent.ts)
    const base = join(root, v2Base(ownCgroups().get('') ?? '/'));
    const available = new Set((readKernelFile(join(base, 'cgroup.controllers')) ?? '').trim().split(/\s+/));
    for (const key of keys)
      for (const [ctrl, file] of V2_FILES[key])
        if (!available.has(ctrl))
          out.push({ key, file, why: `the ${ctrl} controller is not available to jaula's cgroup (${base})` });
    return out;
  }
  for (const key of keys)
    for (const [ctrl, file] of V1_FILES[key]) {
      const m = mounts.get(ctrl);
      if (m === undefined || (V1_FEATURE_FILES.has(file) && !kernelFileExists(join(m, file))))
        out.push({ key, file, why: v1Why(file, m !== undefined, ctrl) });
    }
  return out;
}
