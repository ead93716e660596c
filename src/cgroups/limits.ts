/**
 * A guest's resource limits: the keys `jaula set` and the [limits] table of config.toml take,
 * their human syntax (512M, 1.5G, 50%, max), and their translation into the OCI runtime spec's
 * linux.resources for a cgroup v1 or v2 host. Pure: no host access here.
 */
import { JaulaError } from '../common/errors.js';
import { formatLimitBytes, parseLimitBytes, type Unlimited } from '../common/size.js';

export const LIMIT_KEYS = [
  'cpu.weight',
  'cpu.max',
  'cpuset',
  'memory.max',
  'memory.high',
  'memory.swap',
  'pids.max',
  'io.weight',
  'io.max',
  'nofile',
] as const;
export type LimitKey = (typeof LIMIT_KEYS)[number];

/** CPU bandwidth: `quota` microseconds of CPU time per `period` microseconds. */
export interface CpuMax {
  quota: number | Unlimited;
  period: number;
}
export const IO_MAX_FIELDS = ['rbps', 'wbps', 'riops', 'wiops'] as const;
export type IoMaxField = (typeof IO_MAX_FIELDS)[number];
/** Throttling of one block device, named by its path (/dev/vda) or "MAJOR:MINOR". */
export type IoMax = { device: string } & Partial<Record<IoMaxField, number | Unlimited>>;
export interface Nofile {
  soft: number;
  hard: number;
}

/** Limits set for a guest; a key that is absent has its default. */
export interface Limits {
  /** Relative CPU share, 1..10000 (cgroup v2 cpu.weight; 100 is everyone's default). */
  'cpu.weight'?: number;
  'cpu.max'?: CpuMax;
  /** CPUs the guest may run on, "0-1,3". */
  cpuset?: string;
  'memory.max'?: number | Unlimited;
  'memory.high'?: number | Unlimited;
  /** Swap the guest may use beyond memory.max (v2 memory.swap.max semantics). */
  'memory.swap'?: number | Unlimited;
  'pids.max'?: number | Unlimited;
  'io.weight'?: number;
  'io.max'?: IoMax[];
  nofile?: Nofile;
}

/** Defaults of a guest without limits (the pids limit keeps a fork bomb inside its guest). */
export const DEFAULT_PIDS_LIMIT = 4096;

/** No guest may take the whole host's memory by default: half of it, in whole MiB. */
export function defaultMemoryLimit(hostMemory: number): number {
  return Math.floor(hostMemory / 2 / 2 ** 20) * 2 ** 20;
}
export const DEFAULT_CPU_WEIGHT = 100;
export const DEFAULT_IO_WEIGHT = 100;
export const DEFAULT_CPU_PERIOD = 100_000;

function bad(key: string, value: string, want: string): JaulaError {
  return new JaulaError('invalid', `Invalid ${key} "${value}": ${want}`);
}

function parseInt10(key: string, s: string, min: number, max: number): number {
  const v = s.trim();
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw bad(key, s, `give a whole number from ${min} to ${max}`);
  return Number(v);
}

/** "max", "50%" (of one CPU), "150%", "QUOTA PERIOD" or "QUOTA/PERIOD" in microseconds. */
export function parseCpuMax(s: string): CpuMax {
  const v = s.trim();
  if (v === 'max') return { quota: 'max', period: DEFAULT_CPU_PERIOD };
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(v);
  if (pct) {
    const quota = Math.round((Number(pct[1]) / 100) * DEFAULT_CPU_PERIOD);
    if (quota < 1000) throw bad('cpu.max', s, 'at least 1% of a CPU');
    return { quota, period: DEFAULT_CPU_PERIOD };
  }
  const qp = /^(max|\d+)(?:\s+|\/)(\d+)$/.exec(v);
  if (!qp)
    throw bad(
      'cpu.max',
      s,
      'give a share of one CPU ("50%", "200%" for two CPUs), "QUOTA/PERIOD" in microseconds, or "max"',
    );
  const period = parseInt10('cpu.max period', qp[2] as string, 1000, 1_000_000);
  if (qp[1] === 'max') return { quota: 'max', period };
  return { quota: parseInt10('cpu.max quota', qp[1] as string, 1000, 2 ** 40), period };
}

export function formatCpuMax(c: CpuMax): string {
  if (c.quota === 'max') return c.period === DEFAULT_CPU_PERIOD ? 'max' : `max/${c.period}`;
  if (c.period === DEFAULT_CPU_PERIOD && c.quota % 1000 === 0) return `${c.quota / 1000}%`;
  return `${c.quota}/${c.period}`;
}

/** "0-1,3" -> [0, 1, 3]; throws on bad syntax. */
export function parseCpuList(s: string, key = 'cpuset'): number[] {
  const v = s.trim();
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v))
    throw bad(key, s, 'give CPU numbers and ranges, e.g. "0", "0-1" or "0,2-3"');
  const out = new Set<number>();
  for (const part of v.split(',')) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    const hi = b ?? a;
    if (hi < a) throw bad(key, s, `the range "${part}" runs backwards`);
    if (hi - a > 4096) throw bad(key, s, `the range "${part}" is too large`);
    for (let c = a; c <= hi; c++) out.add(c);
  }
  return [...out].sort((x, y) => x - y);
}

/** "/dev/vda:rbps=10M,wbps=5M,riops=100,wiops=max" (or "254:0:rbps=..."). */
export function parseIoMax(s: string): IoMax {
  const m = /^(.+?):((?:rbps|wbps|riops|wiops)=.*)$/.exec(s.trim());
  if (!m)
    throw bad(
      'io.max',
      s,
      'give DEVICE:rbps=N,wbps=N,riops=N,wiops=N (any of them; DEVICE is /dev/NAME or MAJOR:MINOR; N may be "max")',
    );
  const device = m[1] as string;
  if (!device.startsWith('/dev/') && !/^\d+:\d+$/.test(device))
    throw bad('io.max', s, `the device "${device}" must be a path under /dev or MAJOR:MINOR`);
  const io: IoMax = { device };
  for (const kv of (m[2] as string).split(',')) {
    const [k, v] = kv.split('=', 2) as [string, string | undefined];
    if (!(IO_MAX_FIELDS as readonly string[]).includes(k) || v === undefined || v === '')
      throw bad('io.max', s, `"${kv}" is not one of rbps=, wbps=, riops=, wiops=`);
    const f = k as IoMaxField;
    io[f] = f.endsWith('bps')
      ? parseLimitBytes(v, `io.max ${f}`)
      : v === 'max'
        ? 'max'
        : parseInt10(`io.max ${f}`, v, 1, 2 ** 40);
    if (io[f] === 0) throw bad('io.max', s, `${f} must be above 0 (use "max" for no limit)`);
  }
  return io;
}

export function formatIoMax(io: IoMax): string {
  const parts = IO_MAX_FIELDS.filter((f) => io[f] !== undefined).map((f) => {
    const v = io[f] as number | Unlimited;
    return `${f}=${f.endsWith('bps') ? formatLimitBytes(v) : String(v)}`;
  });
  return `${io.device}:${parts.join(',')}`;
}

export function parseNofile(s: string): Nofile {
  const m = /^(\d+)(?::(\d+))?$/.exec(s.trim());
  if (!m) throw bad('nofile', s, 'give a number of open files, or SOFT:HARD');
  const soft = Number(m[1]);
  const hard = m[2] === undefined ? soft : Number(m[2]);
  if (soft < 1 || hard < soft)
    throw bad('nofile', s, 'the soft limit must be at least 1 and at most the hard limit');
  return { soft, hard };
}

export function formatNofile(n: Nofile): string {
  return n.soft === n.hard ? String(n.soft) : `${n.soft}:${n.hard}`;
}

function isLimitKey(k: string): k is LimitKey {
  return (LIMIT_KEYS as readonly string[]).includes(k);
}

/** `where` names the file the key is in (a config's [limits]); the command line needs none. */
export function limitKey(k: string, where?: string): LimitKey {
  if (!isLimitKey(k))
    throw new JaulaError(
      'invalid',
      `${where ? `${where}: unknown` : 'Unknown'} limit "${k}" (known: ${LIMIT_KEYS.join(', ')}; see "jaula set --help")`,
    );
  return k;
}

/** One limit from its text form into `into` (io.max adds or updates one device). */
export function setLimit(into: Limits, key: LimitKey, raw: string): void {
  const s = raw.trim();
  switch (key) {
    case 'cpu.weight':
      into[key] = parseInt10(key, s, 1, 10000);
      return;
    case 'cpu.max':
      into[key] = parseCpuMax(s);
      return;
    case 'cpuset':
      parseCpuList(s);
      into[key] = s;
      return;
    case 'memory.max': {
      const v = parseLimitBytes(s, key);
      if (v !== 'max' && v < 2 ** 20) throw bad(key, s, 'a guest needs at least 1M');
      into[key] = v;
      return;
    }
    case 'memory.high':
    case 'memory.swap':
      into[key] = parseLimitBytes(s, key);
      return;
    case 'pids.max':
      into[key] = s === 'max' ? 'max' : parseInt10(key, s, 1, 4_194_304);
      return;
    case 'io.weight':
      into[key] = parseInt10(key, s, 1, 10000);
      return;
    case 'io.max': {
      const io = parseIoMax(s);
      const list = [...(into['io.max'] ?? [])];
      const at = list.findIndex((x) => x.device === io.device);
      const merged: IoMax = at >= 0 ? { ...(list[at] as IoMax), ...io } : io;
      if (at >= 0) list[at] = merged;
      else list.push(merged);
      into[key] = list;
      return;
    }
    case 'nofile':
      into[key] = parseNofile(s);
      return;
  }
}

/** The text form of one limit ("" when unset). */
export function formatLimit(l: Limits, key: LimitKey): string {
  switch (key) {
    case 'cpu.weight':
    case 'io.weight':
      return l[key] === undefined ? '' : String(l[key]);
    case 'pids.max':
      return l[key] === undefined ? '' : String(l[key]);
    case 'cpu.max':
      return l[key] ? formatCpuMax(l[key]) : '';
    case 'cpuset':
      return l[key] ?? '';
    case 'memory.max':
    case 'memory.high':
    case 'memory.swap':
      return l[key] === undefined ? '' : formatLimitBytes(l[key]);
    case 'io.max':
      return (l[key] ?? []).map(formatIoMax).join(' ');
    case 'nofile':
      return l[key] ? formatNofile(l[key]) : '';
  }
}

/** "memory.max=512M" -> ["memory.max", "512M"]; an empty value means "back to the default". */
export function parseAssignment(arg: string): [LimitKey, string] {
  const eq = arg.indexOf('=');
  if (eq <= 0)
    throw new JaulaError(
      'usage',
      `"${arg}" is not KEY=VALUE (e.g. memory.max=512M; known keys: ${LIMIT_KEYS.join(', ')})`,
    );
  return [limitKey(arg.slice(0, eq)), arg.slice(eq + 1)];
}

/** Flatten TOML's dotted keys: { cpu: { weight: 1 } } -> { "cpu.weight": 1 }. */
function flatten(t: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(t)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v))
      Object.assign(out, flatten(v as Record<string, unknown>, key));
    else out[key] = v;
  }
  return out;
}

/** The [limits] table of config.toml; unknown keys and bad values are refused. */
export function limitsFromToml(t: Record<string, unknown>, where: string): Limits {
  const l: Limits = {};
  for (const [k, v] of Object.entries(flatten(t))) {
    const key = limitKey(k, where);
    try {
      if (key === 'io.max') {
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
          throw new JaulaError('invalid', `"io.max" must be a list of strings like "/dev/vda:rbps=10M"`);
        for (const x of v) setLimit(l, key, x);
      } else if (typeof v === 'string' || typeof v === 'number') setLimit(l, key, String(v));
      else throw new JaulaError('invalid', `"${key}" must be a string or a number`);
    } catch (e) {
      throw new JaulaError('invalid', `${where}: ${(e as Error).message}`, { cause: e });
    }
  }
  return l;
}

export function limitsToToml(l: Limits): Record<string, string | number | string[]> {
  const t: Record<string, string | number | string[]> = {};
  for (const key of LIMIT_KEYS) {
    const v = l[key];
    if (v === undefined) continue;
    if (key === 'io.max') {
      // A device without any finite limit needs no entry.
      const io = (v as IoMax[]).filter((x) =>
        IO_MAX_FIELDS.some((f) => x[f] !== undefined && x[f] !== 'max'),
      );
      if (io.length) t[key] = io.map(formatIoMax);
    } else if (key === 'memory.max' || key === 'memory.high' || key === 'memory.swap')
      t[key] = formatLimit(l, key);
    else if (key === 'nofile') {
      const n = v as Nofile;
      t[key] = n.soft === n.hard ? n.soft : formatNofile(n);
    } else if (typeof v === 'number') t[key] = v;
    else t[key] = formatLimit(l, key);
  }
  return t;
}

/** Checks across keys that hold on every host. */
export function validateLimits(l: Limits): Limits {
  const seen = new Set<string>();
  for (const io of l['io.max'] ?? []) {
    if (seen.has(io.device)) throw new JaulaError('invalid', `io.max names the device "${io.device}" twice`);
    seen.add(io.device);
  }
  return l;
}

/**
 * What cgroup v1 cannot express: it limits memory and swap together (memory.memsw), so a swap
 * limit needs a finite memory.max beside it.
 */
export function checkLimitsForVersion(l: Limits, version: 1 | 2): void {
  const swap = l['memory.swap'];
  const max = l['memory.max'];
  if (version === 1 && swap !== undefined && swap !== 'max' && (max === undefined || max === 'max'))
    throw new JaulaError(
      'unsupported',
      `memory.swap=${formatLimitBytes(swap)} needs a memory.max on this cgroup v1 host: v1 limits memory and swap together (memory.memsw.limit_in_bytes = memory.max + swap); set memory.max too`,
    );
}

/** v1 cpu.shares for a v2-style weight: weight 100 is the default 1024 shares; ratios are kept. */
export function weightToShares(w: number): number {
  return Math.min(262144, Math.max(2, Math.round((w * 1024) / DEFAULT_CPU_WEIGHT)));
}
export function sharesToWeight(s: number): number {
  return Math.max(1, Math.round((s * DEFAULT_CPU_WEIGHT) / 1024));
}

export interface DevNum {
  major: number;
  minor: number;
}
/** The devices io.max names, for the caller to resolve to numbers on the host. */
export function ioDevices(l: Limits): string[] {
  return (l['io.max'] ?? []).map((x) => x.device);
}
