/**
 * CPU time and memory of a running guest, read from its cgroup: the cgroup of its init process
 * (/proc/PID/cgroup) under the host's cgroup mounts. cgroup v1: cpuacct.usage (ns) and
 * memory.usage_in_bytes; v2: cpu.stat usage_usec and memory.current. A hybrid host uses its v1
 * controllers (its cgroup2 mount has none of them). Parsers are pure, for unit tests.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { parseProcCgroup } from './parse.js';

export interface UsageFiles {
  /** cpuacct.usage (ns) or cpu.stat (usage_usec). */
  cpu?: { file: string; kind: 'v1' | 'v2' };
  /** memory.usage_in_bytes or memory.current. */
  memory?: string;
}

export interface Usage {
  cpuNs: number;
  memoryBytes: number;
}

export { parseProcCgroup };

/** /proc/self/mounts: controller -> mount point of its v1 hierarchy, "" -> the cgroup2 mount. */
export function parseCgroupMounts(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [, dir, type, opts] = line.split(' ');
    if (!dir || !opts) continue;
    const at = dir.replace(/\\040/g, ' ');
    if (type === 'cgroup2') {
      if (!m.has('')) m.set('', at);
    } else if (type === 'cgroup') for (const o of opts.split(',')) if (!m.has(o)) m.set(o, at);
  }
  return m;
}

/** The CPU time in cgroup v2's cpu.stat, in nanoseconds. */
export function parseCpuStat(text: string): number | undefined {
  const m = /^usage_usec (\d+)$/m.exec(text);
  return m?.[1] ? Number(m[1]) * 1000 : undefined;
}

/** Where a process's CPU and memory counters are, given its cgroups and the host's mounts. */
export function usageFiles(procCgroup: Map<string, string>, mounts: Map<string, string>): UsageFiles {
  const files: UsageFiles = {};
  const v1 = (ctrl: string, file: string): string | undefined => {
    const mount = mounts.get(ctrl);
    const path = procCgroup.get(ctrl);
    return mount !== undefined && path !== undefined ? join(mount, path, file) : undefined;
  };
  const v2mount = mounts.get('');
  const v2path = procCgroup.get('');
  const v2 = (file: string): string | undefined =>
    v2mount !== undefined && v2path !== undefined ? join(v2mount, v2path, file) : undefined;
  const cpu1 = v1('cpuacct', 'cpuacct.usage');
  if (cpu1) files.cpu = { file: cpu1, kind: 'v1' };
  else {
    const cpu2 = v2('cpu.stat');
    if (cpu2) files.cpu = { file: cpu2, kind: 'v2' };
  }
  const mem = v1('memory', 'memory.usage_in_bytes') ?? v2('memory.current');
  if (mem) files.memory = mem;
  return files;
}

let mountCache: Map<string, string> | undefined;
function cgroupMounts(): Map<string, string> {
  mountCache ??= parseCgroupMounts(fs.readFileSync('/proc/self/mounts', 'utf8'));
  return mountCache;
}

/** The counter files of a running process's cgroup (undefined when it is gone). */
export function usageFilesOf(pid: number): UsageFiles | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
  return usageFiles(parseProcCgroup(text), cgroupMounts());
}

function readNumber(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Read the counters (missing ones are 0; undefined when the cgroup is gone). */
export function readUsage(files: UsageFiles): Usage | undefined {
  let cpuNs: number | undefined;
  if (files.cpu?.kind === 'v1') cpuNs = readNumber(files.cpu.file);
  else if (files.cpu?.kind === 'v2') {
    try {
      cpuNs = parseCpuStat(fs.readFileSync(files.cpu.file, 'utf8'));
    } catch {
      cpuNs = undefined;
    }
  }
  const memoryBytes = files.memory ? readNumber(files.memory) : undefined;
  if (cpuNs === undefined && memoryBytes === undefined) return undefined;
  return { cpuNs: cpuNs ?? 0, memoryBytes: memoryBytes ?? 0 };
}
