/**
 * A guest's cgroup on a v1 (or hybrid) host: one directory per controller hierarchy.
 *
 * The v2 knobs map to v1 files as follows:
 *   cpu.weight   -> cpu.shares (weight 100 = 1024 shares, ratios kept)
 *   cpu.max      -> cpu.cfs_quota_us + cpu.cfs_period_us
 *   cpuset       -> cpuset.cpus
 *   memory.max   -> memory.limit_in_bytes
 *   memory.high  -> memory.soft_limit_in_bytes: v1 has no throttling limit; the soft limit is its
 *                   counterpart, the amount the kernel reclaims the guest down to under pressure
 *   memory.swap  -> memory.memsw.limit_in_bytes = memory.max + swap (v1 counts them together)
 *   pids.max     -> pids.max
 *   io.weight    -> blkio.weight (CFQ; kernels since 5.0 have none: then it cannot be honoured)
 *   io.max       -> blkio.throttle.{read,write}_{bps,iops}_device
 */
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { formatLimitBytes } from '../common/size.js';
import { kernelFileExists, readKernelFile, writeKernelFile } from '../os/kernfs.js';
import { knobError, procsBelow, type CgroupStats, type GuestCgroup, type StatsOptions } from './cgroup.js';
import {
  IO_MAX_FIELDS,
  formatCpuMax,
  formatIoMax,
  sharesToWeight,
  weightToShares,
  type DevNum,
  type IoMax,
  type IoMaxField,
  type LimitKey,
  type Limits,
} from './limits.js';
import { parseBlkioRecursive, parseFlatKeyed, parseV1Limit, parseV1Throttle } from './parse.js';

/** Which controller and file each knob needs. */
export const V1_FILES: Record<LimitKey, [string, string][]> = {
  'cpu.weight': [['cpu', 'cpu.shares']],
  'cpu.max': [
    ['cpu', 'cpu.cfs_quota_us'],
    ['cpu', 'cpu.cfs_period_us'],
  ],
  cpuset: [['cpuset', 'cpuset.cpus']],
  'memory.max': [['memory', 'memory.limit_in_bytes']],
  'memory.high': [['memory', 'memory.soft_limit_in_bytes']],
  'memory.swap': [['memory', 'memory.memsw.limit_in_bytes']],
  'pids.max': [['pids', 'pids.max']],
  'io.weight': [['blkio', 'blkio.weight']],
  'io.max': [
    ['blkio', 'blkio.throttle.read_bps_device'],
    ['blkio', 'blkio.throttle.write_bps_device'],
  ],
  nofile: [],
};

const THROTTLE_FILE: Record<IoMaxField, string> = {
  rbps: 'blkio.throttle.read_bps_device',
  wbps: 'blkio.throttle.write_bps_device',
  riops: 'blkio.throttle.read_iops_device',
  wiops: 'blkio.throttle.write_iops_device',
};

/** Why a v1 file may be missing, said in the error. */
export function v1Why(file: string, controllerMounted: boolean, ctrl: string): string {
  if (!controllerMounted) return `the ${ctrl} controller is not mounted on this host`;
  if (file === 'blkio.weight')
    return "no blkio.weight: the CFQ I/O scheduler that honoured it is gone since Linux 5.0 and OCI runtimes do not write BFQ's blkio.bfq.weight; use io.max for hard limits, or a cgroup v2 host";
  if (file === 'memory.memsw.limit_in_bytes')
    return 'swap accounting is off (boot the kernel with swapaccount=1)';
  if (file.startsWith('cpu.cfs_')) return 'the kernel lacks CFS bandwidth control (CONFIG_CFS_BANDWIDTH)';
  if (file.startsWith('blkio.throttle'))
    return 'the kernel lacks block throttling (CONFIG_BLK_DEV_THROTTLING)';
  return `the ${ctrl} controller has no ${file}`;
}

/** What stats() reads: counters always, details (costlier) on request. */
const V1_STAT_FILES: [string, string][] = [
  ['cpu', 'cpu.stat'],
  ['cpuacct', 'cpuacct.usage'],
  ['memory', 'memory.oom_control'],
  ['memory', 'memory.usage_in_bytes'],
  ['memory', 'memory.limit_in_bytes'],
  ['memory', 'memory.failcnt'],
  ['pids', 'pids.current'],
  ['pids', 'pids.max'],
  ['pids', 'pids.events'],
  ['blkio', 'blkio.throttle.io_service_bytes_recursive'],
];
const V1_DETAIL_FILES: [string, string][] = [
  ['blkio', 'blkio.throttle.io_serviced_recursive'],
  ['cpuacct', 'cpuacct.stat'],
  ['memory', 'memory.stat'],
  ['memory', 'memory.soft_limit_in_bytes'],
  ['memory', 'memory.memsw.limit_in_bytes'],
];

const TICK_NS = 1e7; // USER_HZ = 100

export class V1Cgroup implements GuestCgroup {
  readonly version = 1 as const;
  constructor(
    readonly dirs: ReadonlyMap<string, string>,
    private readonly mounts: ReadonlyMap<string, string>,
  ) {}

  private file(ctrl: string, name: string): string | undefined {
    const d = this.dirs.get(ctrl);
    return d === undefined ? undefined : join(d, name);
  }

  private read(ctrl: string, name: string): string | undefined {
    const f = this.file(ctrl, name);
    return f === undefined ? undefined : readKernelFile(f);
  }

  get procsDir(): string | undefined {
    for (const c of ['pids', 'memory', 'cpu', 'name=systemd']) {
      const d = this.dirs.get(c);
      if (d !== undefined) return d;
    }
    return undefined;
  }

  procs(): number[] | undefined {
    const d = this.procsDir;
    return d === undefined ? undefined : procsBelow(d);
  }

  /** The files stats() reads (for a caller that reads many guests' files at once). */
  statsPaths(opts: StatsOptions = {}): string[] {
    const out: string[] = [];
    for (const [c, f] of opts.detail ? [...V1_STAT_FILES, ...V1_DETAIL_FILES] : V1_STAT_FILES) {
      const p = this.file(c, f);
      if (p !== undefined) out.push(p);
    }
    return out;
  }

  stats(opts: StatsOptions = {}): CgroupStats {
    const rd = opts.read ?? readKernelFile;
    const read = (c: string, f: string): string | undefined => {
      const p = this.file(c, f);
      return p === undefined ? undefined : rd(p);
    };
    const num = (c: string, f: string): number => Number(read(c, f) ?? 0) || 0;
    const cpuStat = parseFlatKeyed(read('cpu', 'cpu.stat') ?? '');
    const oom = parseFlatKeyed(read('memory', 'memory.oom_control') ?? '');
    const pidsEvents = parseFlatKeyed(read('pids', 'pids.events') ?? '');
    const ioBytes = parseBlkioRecursive(read('blkio', 'blkio.throttle.io_service_bytes_recursive') ?? '');

    const limit = parseV1Limit(read('memory', 'memory.limit_in_bytes') ?? '');
    const s: CgroupStats = {
      cpu: {
        usageNs: num('cpuacct', 'cpuacct.usage'),
        userNs: 0,
        systemNs: 0,
        periods: cpuStat.get('nr_periods') ?? 0,
        throttled: cpuStat.get('nr_throttled') ?? 0,
        throttledNs: cpuStat.get('throttled_time') ?? 0,
      },
      memory: {
        current: num('memory', 'memory.usage_in_bytes'),
        limit,
        high: null,
        swapLimit: null,
        limitHits: num('memory', 'memory.failcnt'),
        oomKills: oom.get('oom_kill') ?? 0,
      },
      pids: {
        current: num('pids', 'pids.current'),
        limit: parseV1PidsMax(read('pids', 'pids.max')),
        refusals: pidsEvents.get('max') ?? 0,
      },
      io: { readBytes: ioBytes.read, writeBytes: ioBytes.write, readOps: 0, writeOps: 0 },
    };
    if (opts.detail) {
      const ops = parseBlkioRecursive(read('blkio', 'blkio.throttle.io_serviced_recursive') ?? '');
      s.io.readOps = ops.read;
      s.io.writeOps = ops.write;
      const acct = parseFlatKeyed(read('cpuacct', 'cpuacct.stat') ?? '');
      s.cpu.userNs = (acct.get('user') ?? 0) * TICK_NS;
      s.cpu.systemNs = (acct.get('system') ?? 0) * TICK_NS;
      const ms = parseFlatKeyed(read('memory', 'memory.stat') ?? '');
      s.memory.anon = ms.get('total_rss') ?? ms.get('rss') ?? 0;
      s.memory.file = ms.get('total_cache') ?? ms.get('cache') ?? 0;
      s.memory.high = parseV1Limit(read('memory', 'memory.soft_limit_in_bytes') ?? '');
      const memsw = parseV1Limit(read('memory', 'memory.memsw.limit_in_bytes') ?? '');
      s.memory.swapLimit = memsw === null || limit === null ? null : memsw - limit;
    }
    return s;
  }

  readLimits(): Partial<Record<LimitKey, string>> {
    const out: Partial<Record<LimitKey, string>> = {};
    const shares = this.read('cpu', 'cpu.shares');
    if (shares !== undefined) out['cpu.weight'] = String(sharesToWeight(Number(shares)));
    const quota = this.read('cpu', 'cpu.cfs_quota_us');
    const period = this.read('cpu', 'cpu.cfs_period_us');
    if (quota !== undefined && period !== undefined) {
      const q = Number(quota);
      out['cpu.max'] = formatCpuMax({ quota: q < 0 ? 'max' : q, period: Number(period) });
    }
    const cpus = this.read('cpuset', 'cpuset.cpus');
    if (cpus !== undefined) out.cpuset = cpus.trim();
    const limit = parseV1Limit(this.read('memory', 'memory.limit_in_bytes') ?? '');
    if (this.read('memory', 'memory.limit_in_bytes') !== undefined)
      out['memory.max'] = formatLimitBytes(limit ?? 'max');
    const soft = this.read('memory', 'memory.soft_limit_in_bytes');
    if (soft !== undefined) out['memory.high'] = formatLimitBytes(parseV1Limit(soft) ?? 'max');
    const memswText = this.read('memory', 'memory.memsw.limit_in_bytes');
    if (memswText !== undefined) {
      const memsw = parseV1Limit(memswText);
      out['memory.swap'] = memsw === null || limit === null ? 'max' : formatLimitBytes(memsw - limit);
    }
    const pids = this.read('pids', 'pids.max');
    if (pids !== undefined) out['pids.max'] = pids.trim();
    const weight = this.read('blkio', 'blkio.weight');
    if (weight !== undefined) out['io.weight'] = weight.trim();
    const io = new Map<string, IoMax>();
    for (const f of IO_MAX_FIELDS) {
      for (const [dev, v] of parseV1Throttle(this.read('blkio', THROTTLE_FILE[f]) ?? '')) {
        const e = io.get(dev) ?? { device: dev };
        e[f] = v;
        io.set(dev, e);
      }
    }
    if (this.dirs.has('blkio')) out['io.max'] = [...io.values()].map(formatIoMax).join(' ');
    return out;
  }

  missing(keys: readonly LimitKey[]): { key: LimitKey; file: string; why: string }[] {
    const out: { key: LimitKey; file: string; why: string }[] = [];
    for (const key of keys)
      for (const [ctrl, name] of V1_FILES[key]) {
        const f = this.file(ctrl, name);
        if (f === undefined || !kernelFileExists(f))
          out.push({ key, file: name, why: v1Why(name, this.mounts.has(ctrl), ctrl) });
      }
    return out;
  }

  private write(key: string, ctrl: string, name: string, value: string): void {
    const f = this.file(ctrl, name);
    if (f === undefined)
      throw new JaulaError(
        'unsupported',
        `${key} cannot be set: the ${ctrl} controller is not mounted on this host`,
      );
    try {
      writeKernelFile(f, value);
    } catch (e) {
      throw knobError(e, key, f, value);
    }
  }

  apply(l: Limits, devices: Record<string, DevNum>): void {
    const w = l['cpu.weight'];
    if (w !== undefined) this.write('cpu.weight', 'cpu', 'cpu.shares', String(weightToShares(w)));
    const cm = l['cpu.max'];
    if (cm) {
      this.write('cpu.max', 'cpu', 'cpu.cfs_period_us', String(cm.period));
      this.write('cpu.max', 'cpu', 'cpu.cfs_quota_us', String(cm.quota === 'max' ? -1 : cm.quota));
    }
    if (l.cpuset !== undefined) this.write('cpuset', 'cpuset', 'cpuset.cpus', l.cpuset);
    if (l['memory.max'] !== undefined || l['memory.swap'] !== undefined) this.applyMemory(l);
    const high = l['memory.high'];
    if (high !== undefined)
      this.write('memory.high', 'memory', 'memory.soft_limit_in_bytes', String(high === 'max' ? -1 : high));
    const pids = l['pids.max'];
    if (pids !== undefined) this.write('pids.max', 'pids', 'pids.max', String(pids));
    const iow = l['io.weight'];
    if (iow !== undefined) this.write('io.weight', 'blkio', 'blkio.weight', String(iow));
    for (const io of l['io.max'] ?? []) {
      const dev = devices[io.device];
      if (!dev) throw new JaulaError('not_found', `io.max: the device "${io.device}" was not resolved`);
      for (const f of IO_MAX_FIELDS) {
        const v = io[f];
        if (v === undefined) continue;
        // 0 removes the rule on v1.
        this.write('io.max', 'blkio', THROTTLE_FILE[f], `${dev.major}:${dev.minor} ${v === 'max' ? 0 : v}`);
      }
    }
  }

  /**
   * memory.max and memory.swap together: v1 keeps limit <= memsw at every moment, so the two
   * files are written in the order that never breaks that. A swap limit set earlier is kept
   * (as an amount of swap) when only memory.max changes.
   */
  private applyMemory(l: Limits): void {
    const limFile = 'memory.limit_in_bytes';
    const swFile = 'memory.memsw.limit_in_bytes';
    const cur = parseV1Limit(this.read('memory', limFile) ?? '');
    const memswText = this.read('memory', swFile);
    const curSw = memswText === undefined ? undefined : parseV1Limit(memswText);
    const max = l['memory.max'];
    const limit = max === undefined ? cur : max === 'max' ? null : max;
    let memsw: number | null | undefined; // undefined: leave memsw alone
    const swap = l['memory.swap'];
    if (swap !== undefined) {
      if (memswText === undefined)
        throw new JaulaError(
          'unsupported',
          `memory.swap cannot be set on this host: ${v1Why(swFile, true, 'memory')}`,
        );
      if (swap === 'max') memsw = null;
      else if (limit === null)
        throw new JaulaError(
          'unsupported',
          `memory.swap=${formatLimitBytes(swap)} needs a memory.max on this cgroup v1 host: v1 limits memory and swap together (memory.memsw.limit_in_bytes = memory.max + swap); set memory.max too`,
        );
      else memsw = limit + swap;
    } else if (curSw !== undefined && curSw !== null) {
      memsw = limit === null ? null : limit + (curSw - (cur ?? curSw));
    } else if (curSw === null && memswText !== undefined) memsw = undefined;
    const v = (n: number | null): string => String(n === null ? -1 : n);
    const curLimitAbove = (m: number | null): boolean => m !== null && (cur === null || cur > m);
    if (memsw !== undefined && !curLimitAbove(memsw)) {
      this.write('memory.swap', 'memory', swFile, v(memsw));
      if (max !== undefined) this.write('memory.max', 'memory', limFile, v(limit));
    } else {
      if (max !== undefined) this.write('memory.max', 'memory', limFile, v(limit));
      if (memsw !== undefined) this.write('memory.swap', 'memory', swFile, v(memsw));
    }
  }
}

function parseV1PidsMax(text: string | undefined): number | null {
  if (text === undefined) return null;
  const t = text.trim();
  return t === 'max' || t === '' ? null : Number(t);
}
