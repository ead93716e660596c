/**
 * One interface over a guest's cgroup on a v1 (or hybrid) host and on a v2 host: its processes,
 * its counters, and its limits read back and written live. The readers and writers of each
 * version are in v1.ts and v2.ts; the file formats are parsed in parse.ts.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError, errnoOf } from '../common/errors.js';
import { readKernelFile } from '../os/kernfs.js';
import type { DevNum, LimitKey, Limits } from './limits.js';
import { parseCgroupMounts, parsePidList, parseProcCgroup, type IoCounters } from './parse.js';

export interface CgroupStats {
  cpu: {
    /** CPU time used, user + system. */
    usageNs: number;
    userNs: number;
    systemNs: number;
    /** Bandwidth periods, and how many of them the guest was throttled in (cpu.max). */
    periods: number;
    throttled: number;
    throttledNs: number;
  };
  memory: {
    current: number;
    /** null: no limit. */
    limit: number | null;
    high: number | null;
    swapLimit: number | null;
    anon?: number;
    file?: number;
    /** Times the limit was hit (v1 memory.failcnt, v2 memory.events "max"). */
    limitHits: number;
    /** Processes the OOM killer ended inside the guest. */
    oomKills: number;
  };
  pids: {
    current: number;
    limit: number | null;
    /** Forks refused at the limit (pids.events "max"). */
    refusals: number;
  };
  io: IoCounters;
}

export interface StatsOptions {
  /** Also read the costlier details (memory.stat split, user/system CPU, high and swap limits). */
  detail?: boolean;
  /** How to read a file (default: one read each); for files the caller read in bulk. */
  read?: (path: string) => string | undefined;
}

export interface GuestCgroup {
  readonly version: 1 | 2;
  /** The guest's cgroup directory per controller ("" on v2: one directory). */
  readonly dirs: ReadonlyMap<string, string>;
  /** The directory whose cgroup.procs lists the guest's processes. */
  readonly procsDir: string | undefined;
  /** PIDs of the guest's processes (its cgroup and any below it); undefined when it is gone. */
  procs(): number[] | undefined;
  stats(opts?: StatsOptions): CgroupStats;
  /** The files stats() reads with these options. */
  statsPaths(opts?: StatsOptions): string[];
  /** The limits in force, read back from the cgroup files, as text ("" where not readable). */
  readLimits(): Partial<Record<LimitKey, string>>;
  /** The cgroup files that `keys` need and this guest's cgroup lacks. */
  missing(keys: readonly LimitKey[]): { key: LimitKey; file: string; why: string }[];
  /** Write limits live (nofile is not a cgroup knob: the caller sets it on the processes). */
  apply(limits: Limits, devices: Record<string, DevNum>): void;
}

/** Mount points of the host's cgroup hierarchies (read once per process). */
let mountsCache: Map<string, string> | undefined;
export function cgroupMounts(): Map<string, string> {
  mountsCache ??= parseCgroupMounts(readKernelFile('/proc/self/mountinfo', 'utf8') ?? '');
  return mountsCache;
}

/** Turn a failed write of a cgroup knob into an error that says what to do. */
export function knobError(e: unknown, key: string, file: string, value: string): JaulaError {
  const code = errnoOf(e);
  if (code === 'ENOENT')
    return new JaulaError(
      'unsupported',
      `${key} cannot be set on this host: the guest's cgroup has no ${file.split('/').pop()} (the kernel lacks that feature)`,
    );
  if (code === 'EBUSY' && key.startsWith('memory'))
    return new JaulaError(
      'state',
      `${key} could not be lowered to ${value}: the guest uses more memory than that and the kernel could not reclaim it; free memory in the guest first, or choose a larger value`,
    );
  return new JaulaError(
    'invalid',
    `The kernel refused ${key} (writing "${value.trim()}" to ${file}: ${(e as Error).message}); check the value`,
    { cause: e },
  );
}

/**
 * PIDs of a cgroup directory and its descendants (guests do not normally make sub-cgroups).
 * `text` and `nlink`: its cgroup.procs and link count when the caller read them already.
 */
export function procsBelow(
  dir: string,
  text = readKernelFile(`${dir}/cgroup.procs`),
  nlink = fs.statSync(dir, { throwIfNoEntry: false })?.nlink ?? 2,
): number[] | undefined {
  if (text === undefined) return undefined;
  const pids = parsePidList(text);
  // A directory's link count is 2 + its subdirectories (on cgroupfs too): most guests have none.
  if (nlink <= 2) return pids;
  let subdirs: fs.Dirent[] = [];
  try {
    subdirs = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    /* gone meanwhile */
  }
  for (const d of subdirs) if (d.isDirectory()) pids.push(...(procsBelow(join(dir, d.name)) ?? []));
  return pids;
}

/**
 * The guest's cgroup path per hierarchy: from its runtime's absolute cgroupsPath when it has one
 * (crun, and v2), else from /proc/PID/cgroup of its init.
 */
export function guestCgroupPaths(pid: number, cgroupsPath?: string): Map<string, string> | undefined {
  if (cgroupsPath?.startsWith('/')) {
    const m = new Map<string, string>();
    for (const k of cgroupMounts().keys()) m.set(k, cgroupsPath);
    return m;
  }
  const text = readKernelFile(`/proc/${pid}/cgroup`);
  return text === undefined ? undefined : parseProcCgroup(text);
}
