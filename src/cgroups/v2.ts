/**
 * A guest's cgroup on a v2 (unified) host: one directory, the knobs by their own names
 * (cpu.weight, cpu.max, cpuset.cpus, memory.max, memory.high, memory.swap.max, pids.max,
 * io.weight, io.max) and the counters in cpu.stat, memory.events, pids.events and io.stat.
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
  type DevNum,
  type IoMax,
  type LimitKey,
  type Limits,
} from './limits.js';
import { parseFlatKeyed, parseIoStat, parseV2CpuMax, parseV2IoMax, parseV2Limit } from './parse.js';

export const V2_FILES: Record<LimitKey, [string, string][]> = {
  'cpu.weight': [['cpu', 'cpu.weight']],
  'cpu.max': [['cpu', 'cpu.max']],
  cpuset: [['cpuset', 'cpuset.cpus']],
  'memory.max': [['memory', 'memory.max']],
  'memory.high': [['memory', 'memory.high']],
  'memory.swap': [['memory', 'memory.swap.max']],
  'pids.max': [['pids', 'pids.max']],
  'io.weight': [['io', 'io.weight']],
  'io.max': [['io', 'io.max']],
  nofile: [],
};

export function v2Why(file: string, ctrl: string): string {
  if (file === 'memory.swap.max') return 'swap accounting is off in this kernel';
  if (file === 'io.weight')
    return 'the kernel has no proportional I/O control (io.cost, CONFIG_BLK_CGROUP_IOCOST) for this cgroup';
  return `the ${ctrl} controller is not enabled for the guest's cgroup (see cgroup.subtree_control of its parents)`;
}

/** What stats() reads: counters always, details (costlier) on request. */
const V2_STAT_FILES = [
  'cpu.stat',
  'memory.events',
  'pids.events',
  'memory.current',
  'memory.max',
  'pids.current',
  'pids.max',
  'io.stat',
];
const V2_DETAIL_FILES = ['memory.stat', 'memory.high', 'memory.swap.max'];

export class V2Cgroup implements GuestCgroup {
  readonly version = 2 as const;
  readonly dirs: ReadonlyMap<string, string>;
  constructor(private readonly dir: string) {
    this.dirs = new Map([['', dir]]);
  }

  private read(name: string): string | undefined {
    return readKernelFile(join(this.dir, name));
  }

  get procsDir(): string {
    return this.dir;
  }

  procs(): number[] | undefined {
    return procsBelow(this.dir);
  }

  /** The files stats() reads (for a caller that reads many guests' files at once). */
  statsPaths(opts: StatsOptions = {}): string[] {
    return (opts.detail ? [...V2_STAT_FILES, ...V2_DETAIL_FILES] : V2_STAT_FILES).map((f) =>
      join(this.dir, f),
    );
  }

  stats(opts: StatsOptions = {}): CgroupStats {
    const rd = opts.read ?? readKernelFile;
    const read = (f: string): string | undefined => rd(join(this.dir, f));
    const num = (f: string): number => Number(read(f) ?? 0) || 0;
    const cpu = parseFlatKeyed(read('cpu.stat') ?? '');
    const events = parseFlatKeyed(read('memory.events') ?? '');
    const pidsEvents = parseFlatKeyed(read('pids.events') ?? '');
    const s: CgroupStats = {
      cpu: {
        usageNs: (cpu.get('usage_usec') ?? 0) * 1000,
        userNs: (cpu.get('user_usec') ?? 0) * 1000,
        systemNs: (cpu.get('system_usec') ?? 0) * 1000,
        periods: cpu.get('nr_periods') ?? 0,
        throttled: cpu.get('nr_throttled') ?? 0,
        throttledNs: (cpu.get('throttled_usec') ?? 0) * 1000,
      },
      memory: {
        current: num('memory.current'),
        limit: parseV2Limit(read('memory.max') ?? 'max'),
        high: null,
        swapLimit: null,
        limitHits: events.get('max') ?? 0,
        oomKills: events.get('oom_kill') ?? 0,
      },
      pids: {
        current: num('pids.current'),
        limit: parseV2Limit(read('pids.max') ?? 'max'),
        refusals: pidsEvents.get('max') ?? 0,
      },
      io: parseIoStat(read('io.stat') ?? ''),
    };
    if (opts.detail) {
      const ms = parseFlatKeyed(read('memory.stat') ?? '');
      s.memory.anon = ms.get('anon') ?? 0;
      s.memory.file = ms.get('file') ?? 0;
      s.memory.high = parseV2Limit(read('memory.high') ?? 'max');
      s.memory.swapLimit = parseV2Limit(read('memory.swap.max') ?? 'max');
    }
    return s;
  }

  readLimits(): Partial<Record<LimitKey, string>> {
    const out: Partial<Record<LimitKey, string>> = {};
    const text = (n: string): string | undefined => this.read(n)?.trim();
    const size = (n: string): string | undefined => {
      const t = text(n);
      return t === undefined ? undefined : formatLimitBytes(parseV2Limit(t) ?? 'max');
    };
    const set = (k: LimitKey, v: string | undefined): void => {
      if (v !== undefined) out[k] = v;
    };
    set('cpu.weight', text('cpu.weight'));
    const cm = text('cpu.max');
    if (cm !== undefined) {
      const c = parseV2CpuMax(cm);
      out['cpu.max'] = formatCpuMax({ quota: c.quota ?? 'max', period: c.period });
    }
    set('cpuset', text('cpuset.cpus'));
    set('memory.max', size('memory.max'));
    set('memory.high', size('memory.high'));
    set('memory.swap', size('memory.swap.max'));
    set('pids.max', text('pids.max'));
    const w = text('io.weight');
    if (w !== undefined) out['io.weight'] = /default (\d+)/.exec(w)?.[1] ?? w;
    const iomax = text('io.max');
    if (iomax !== undefined)
      out['io.max'] = [...parseV2IoMax(iomax)]
        .map(([device, rec]) => {
          const io: IoMax = { device };
          for (const f of IO_MAX_FIELDS) if (rec[f] !== undefined && rec[f] !== null) io[f] = rec[f];
          return formatIoMax(io);
        })
        .join(' ');
    return out;
  }

  missing(keys: readonly LimitKey[]): { key: LimitKey; file: string; why: string }[] {
    const out: { key: LimitKey; file: string; why: string }[] = [];
    for (const key of keys)
      for (const [ctrl, name] of V2_FILES[key])
        if (!kernelFileExists(join(this.dir, name))) out.push({ key, file: name, why: v2Why(name, ctrl) });
    return out;
  }

  private write(key: string, name: string, value: string): void {
    const f = join(this.dir, name);
    try {
      writeKernelFile(f, value);
    } catch (e) {
      throw knobError(e, key, f, value);
    }
  }

  apply(l: Limits, devices: Record<string, DevNum>): void {
    if (l['cpu.weight'] !== undefined) this.write('cpu.weight', 'cpu.weight', String(l['cpu.weight']));
    const cm = l['cpu.max'];
    if (cm) this.write('cpu.max', 'cpu.max', `${cm.quota} ${cm.period}`);
    if (l.cpuset !== undefined) this.write('cpuset', 'cpuset.cpus', l.cpuset);
    if (l['memory.max'] !== undefined) this.write('memory.max', 'memory.max', String(l['memory.max']));
    if (l['memory.high'] !== undefined) this.write('memory.high', 'memory.high', String(l['memory.high']));
    if (l['memory.swap'] !== undefined)
      this.write('memory.swap', 'memory.swap.max', String(l['memory.swap']));
    if (l['pids.max'] !== undefined) this.write('pids.max', 'pids.max', String(l['pids.max']));
    if (l['io.weight'] !== undefined) this.write('io.weight', 'io.weight', `default ${l['io.weight']}`);
    for (const io of l['io.max'] ?? []) {
      const dev = devices[io.device];
      if (!dev) throw new JaulaError('not_found', `io.max: the device "${io.device}" was not resolved`);
      const kv = IO_MAX_FIELDS.filter((f) => io[f] !== undefined).map((f) => `${f}=${String(io[f])}`);
      this.write('io.max', 'io.max', `${dev.major}:${dev.minor} ${kv.join(' ')}`);
    }
  }
}
