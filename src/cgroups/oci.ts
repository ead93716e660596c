/**
 * A guest's limits as the OCI spec's linux.resources, in the terms of the host's cgroup version.
 * Pure, like limits.ts.
 */
import {
  DEFAULT_PIDS_LIMIT,
  IO_MAX_FIELDS,
  weightToShares,
  type DevNum,
  type IoMaxField,
  type Limits,
} from './limits.js';

interface OciThrottle {
  major: number;
  minor: number;
  rate: number;
}
/** The part of the OCI spec's linux.resources that limits set. */
export interface OciLimitResources {
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string };
  memory?: { limit?: number; reservation?: number; swap?: number };
  pids: { limit: number };
  blockIO?: {
    weight?: number;
    throttleReadBpsDevice?: OciThrottle[];
    throttleWriteBpsDevice?: OciThrottle[];
    throttleReadIOPSDevice?: OciThrottle[];
    throttleWriteIOPSDevice?: OciThrottle[];
  };
  unified?: Record<string, string>;
}

type ThrottleKey = Exclude<keyof NonNullable<OciLimitResources['blockIO']>, 'weight'>;
const THROTTLE: Record<IoMaxField, ThrottleKey> = {
  rbps: 'throttleReadBpsDevice',
  wbps: 'throttleWriteBpsDevice',
  riops: 'throttleReadIOPSDevice',
  wiops: 'throttleWriteIOPSDevice',
};

/**
 * Limits as OCI linux.resources. On v1 the spec's classic fields say it all (cpu.weight becomes
 * shares, memory.high the soft limit, memory.swap the memory+swap total). On v2 the knobs whose
 * classic fields the runtimes convert inexactly (shares to weight, reservation to memory.low)
 * go through `unified`, written verbatim as the v2 files.
 */
export function ociResources(
  l: Limits,
  version: 1 | 2,
  devices: Record<string, DevNum> = {},
): OciLimitResources {
  const r: OciLimitResources = {
    pids: { limit: l['pids.max'] === 'max' ? -1 : (l['pids.max'] ?? DEFAULT_PIDS_LIMIT) },
  };
  const unified: Record<string, string> = {};
  const cpu: NonNullable<OciLimitResources['cpu']> = {};
  const mem: NonNullable<OciLimitResources['memory']> = {};
  const blk: NonNullable<OciLimitResources['blockIO']> = {};
  const cm = l['cpu.max'];
  if (version === 2) {
    if (l['cpu.weight'] !== undefined) unified['cpu.weight'] = String(l['cpu.weight']);
    if (cm) unified['cpu.max'] = `${cm.quota} ${cm.period}`;
    if (l['memory.max'] !== undefined) unified['memory.max'] = String(l['memory.max']);
    if (l['memory.high'] !== undefined) unified['memory.high'] = String(l['memory.high']);
    if (l['memory.swap'] !== undefined) unified['memory.swap.max'] = String(l['memory.swap']);
    if (l['io.weight'] !== undefined) unified['io.weight'] = `default ${l['io.weight']}`;
  } else {
    if (l['cpu.weight'] !== undefined) cpu.shares = weightToShares(l['cpu.weight']);
    if (cm) {
      cpu.quota = cm.quota === 'max' ? -1 : cm.quota;
      cpu.period = cm.period;
    }
    const max = l['memory.max'];
    if (max !== undefined) mem.limit = max === 'max' ? -1 : max;
    const high = l['memory.high'];
    if (high !== undefined) mem.reservation = high === 'max' ? -1 : high;
    const swap = l['memory.swap'];
    if (swap !== undefined) mem.swap = swap === 'max' || max === undefined || max === 'max' ? -1 : max + swap;
    if (l['io.weight'] !== undefined) blk.weight = l['io.weight'];
  }
  if (l.cpuset !== undefined) cpu.cpus = l.cpuset;
  for (const io of l['io.max'] ?? []) {
    const dev = devices[io.device];
    if (!dev) continue;
    for (const f of IO_MAX_FIELDS) {
      const v = io[f];
      if (v === undefined || v === 'max') continue;
      (blk[THROTTLE[f]] ??= []).push({ major: dev.major, minor: dev.minor, rate: v });
    }
  }
  if (Object.keys(cpu).length) r.cpu = cpu;
  if (Object.keys(mem).length) r.memory = mem;
  if (Object.keys(blk).length) r.blockIO = blk;
  if (Object.keys(unified).length) r.unified = unified;
  return r;
}
