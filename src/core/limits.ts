/**
 * Limits of guests: checked against what the host can honour, applied at start through the
 * spec builder, changed live in the guest's cgroup files (`jaula set`), saved in the guest's
 * config with --save (like `vzctl set --save`).
 */
import * as fs from 'node:fs';
import { totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { JaulaError, errnoOf } from '../common/errors.js';
import { formatLimitBytes } from '../common/size.js';
import { cgroupVersion, hostMissing, openGuestCgroup } from '../cgroups/index.js';
import {
  DEFAULT_CPU_PERIOD,
  DEFAULT_CPU_WEIGHT,
  DEFAULT_IO_WEIGHT,
  DEFAULT_PIDS_LIMIT,
  IO_MAX_FIELDS,
  defaultMemoryLimit,
  LIMIT_KEYS,
  checkLimitsForVersion,
  formatIoMax,
  formatLimit,
  ioDevices,
  parseAssignment,
  parseCpuList,
  setLimit,
  validateLimits,
  type DevNum,
  type IoMax,
  type LimitKey,
  type Limits,
} from '../cgroups/limits.js';
import { readKernelFile } from '../os/kernfs.js';
import { RLIMIT_NOFILE, native } from '../os/native.js';
import { nofileHardLimit } from '../os/proc.js';
import type { GuestConfig } from '../guest/config.js';
import { withGuestLock } from '../guest/locks.js';
import { guestLog } from '../guest/log.js';
import { liveStatus, readState } from '../guest/state.js';
import { loadConfig, saveConfig } from '../guest/store.js';

/** glibc's dev_t layout: major in bits 8-19 and 32-43, minor in bits 0-7 and 20-43. */
export function devNum(rdev: number): DevNum {
  return {
    major: ((Math.floor(rdev / 2 ** 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & 0xfffff000)) >>> 0,
    minor: ((rdev & 0xff) | (Math.floor(rdev / 2 ** 12) & 0xffffff00)) >>> 0,
  };
}

/** Resolve the devices io.max names ("/dev/vda" or "254:0") to their numbers on this host. */
export function resolveDevices(l: Limits): Record<string, DevNum> {
  const out: Record<string, DevNum> = {};
  for (const dev of ioDevices(l)) {
    const m = /^(\d+):(\d+)$/.exec(dev);
    if (m) {
      out[dev] = { major: Number(m[1]), minor: Number(m[2]) };
      continue;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(dev);
    } catch (e) {
      throw new JaulaError(
        'not_found',
        `io.max: the device "${dev}" does not exist on this host (${errnoOf(e) ?? 'error'}); see lsblk for disks`,
      );
    }
    if (!st.isBlockDevice())
      throw new JaulaError('invalid', `io.max: "${dev}" is not a block device (see lsblk for disks)`);
    out[dev] = devNum(st.rdev);
  }
  return out;
}

function hostCpus(): number[] {
  const text = readKernelFile('/sys/devices/system/cpu/online');
  return text ? parseCpuList(text.trim(), 'online CPUs') : [];
}

const setKeys = (l: Limits): LimitKey[] => LIMIT_KEYS.filter((k) => l[k] !== undefined);

function unsupported(list: { key: string; file: string; why: string }[]): JaulaError {
  return new JaulaError(
    'unsupported',
    list.map((m) => `${m.key} cannot be honoured on this host: ${m.why}`).join('; '),
    { details: { missing: list } },
  );
}

/** Checks of limit values against this host that hold whether the guest runs or not. */
function checkValues(l: Limits): void {
  const n = l.nofile;
  if (n) {
    const hard = nofileHardLimit();
    if (n.hard > hard)
      throw new JaulaError(
        'unsupported',
        `nofile=${n.hard} cannot be honoured: it is above the host's hard limit on open files (${hard}); choose at most ${hard}, or raise jaula's own limit (ulimit -Hn, LimitNOFILE= in its service)`,
      );
  }
  if (l.cpuset !== undefined) {
    const online = new Set(hostCpus());
    const bad = parseCpuList(l.cpuset).filter((c) => !online.has(c));
    if (bad.length && online.size)
      throw new JaulaError(
        'invalid',
        `cpuset=${l.cpuset}: this host has no CPU ${bad.join(', ')} (online: ${[...online].join(',')})`,
      );
  }
  resolveDevices(l);
}

/**
 * Everything the spec builder needs to apply a guest's saved limits at start, after checking
 * that this host can honour them all (a limit is never silently dropped).
 */
export function limitSpecInput(cfg: GuestConfig): {
  cgroupVersion: 1 | 2;
  blockDevices: Record<string, DevNum>;
} {
  const l = cfg.limits ?? {};
  const version = cgroupVersion();
  checkLimitsForVersion(l, version);
  const missing = hostMissing(
    setKeys(l).filter((k) => k !== 'nofile'),
    version,
  );
  if (missing.length) {
    const e = unsupported(missing);
    throw new JaulaError(
      'unsupported',
      `Guest "${cfg.name}" cannot start with its saved limits: ${e.message}; change them with "jaula set ${cfg.name} KEY=VALUE --save" (an empty VALUE removes one)`,
      { details: e.details ?? {} },
    );
  }
  checkValues(l);
  return { cgroupVersion: version, blockDevices: resolveDevices(l) };
}

/** `base` with `patch` applied and the `resets` removed (io.max merges per device). */
export function mergeLimits(base: Limits, patch: Limits, resets: readonly LimitKey[]): Limits {
  const out: Limits = { ...base };
  for (const k of resets) delete out[k];
  for (const k of setKeys(patch)) {
    if (k === 'io.max') for (const io of patch['io.max'] ?? []) setLimit(out, 'io.max', formatIoMax(io));
    else (out as Record<string, unknown>)[k] = patch[k];
  }
  const io = (out['io.max'] ?? []).filter((x) =>
    IO_MAX_FIELDS.some((f) => x[f] !== undefined && x[f] !== 'max'),
  );
  if (io.length) out['io.max'] = io;
  else delete out['io.max'];
  return validateLimits(out);
}

/** The values that `KEY=` (back to the default) writes into a running guest's cgroup. */
function defaultsFor(
  resets: readonly LimitKey[],
  saved: Limits,
  liveIo: string,
  cgDirs: ReadonlyMap<string, string>,
): Limits {
  const l: Limits = {};
  for (const k of resets) {
    switch (k) {
      case 'cpu.weight':
        l[k] = DEFAULT_CPU_WEIGHT;
        break;
      case 'cpu.max':
        l[k] = { quota: 'max', period: DEFAULT_CPU_PERIOD };
        break;
      case 'cpuset': {
        const dir = cgDirs.get('cpuset') ?? cgDirs.get('');
        const parent = dir === undefined ? undefined : dirname(dir);
        const text =
          (parent &&
            (readKernelFile(join(parent, 'cpuset.cpus.effective')) ??
              readKernelFile(join(parent, 'cpuset.cpus')))) ||
          readKernelFile('/sys/devices/system/cpu/online');
        if (text?.trim()) l.cpuset = text.trim();
        break;
      }
      case 'memory.max':
        l[k] = defaultMemoryLimit(totalmem());
        break;
      case 'memory.high':
      case 'memory.swap':
        l[k] = 'max';
        break;
      case 'pids.max':
        l[k] = DEFAULT_PIDS_LIMIT;
        break;
      case 'io.weight':
        l[k] = DEFAULT_IO_WEIGHT;
        break;
      case 'io.max': {
        const devs = new Set([
          ...ioDevices(saved),
          ...liveIo
            .split(' ')
            .filter(Boolean)
            .map((x) => x.split(':').slice(0, -1).join(':')),
        ]);
        const all: IoMax[] = [];
        for (const device of devs)
          if (device) all.push({ device, rbps: 'max', wbps: 'max', riops: 'max', wiops: 'max' });
        if (all.length) l[k] = all;
        break;
      }
      case 'nofile': {
        const hard = nofileHardLimit();
        l[k] = { soft: Math.min(1024, hard), hard };
        break;
      }
    }
  }
  return l;
}

export interface SetResult {
  name: string;
  running: boolean;
  /** Keys changed in the running guest. */
  live: LimitKey[];
  saved: boolean;
  /** The changed keys, as text ("" = back to the default). */
  changes: Partial<Record<LimitKey, string>>;
}

/**
 * `jaula set NAME KEY=VALUE... [--save]`: without --save the change is live only (gone at the
 * next start) and needs a running guest; with --save it is also stored in config.toml.
 */
export async function setLimits(
  name: string,
  assignments: string[],
  opts: { save: boolean },
): Promise<SetResult> {
  if (assignments.length === 0)
    throw new JaulaError(
      'usage',
      `Give limits to set: jaula set ${name} KEY=VALUE... (see "jaula set --help")`,
    );
  const patch: Limits = {};
  const resets: LimitKey[] = [];
  const changes: Partial<Record<LimitKey, string>> = {};
  for (const a of assignments) {
    const [k, v] = parseAssignment(a);
    if (v.trim() === '') resets.push(k);
    else setLimit(patch, k, v);
    changes[k] = v.trim() === '' ? '' : formatLimit(patch, k);
  }
  return withGuestLock(name, async () => {
    const cfg = loadConfig(name);
    const st = readState(name);
    const running = liveStatus(st) === 'running' && st.pid !== undefined;
    if (!running && !opts.save)
      throw new JaulaError(
        'state',
        `Guest "${name}" is not running, so a change without --save would go nowhere: use "jaula set ${name} ${assignments.join(' ')} --save" to store it for its next start`,
      );
    const version = cgroupVersion();
    const saved = mergeLimits(cfg.limits ?? {}, patch, resets);
    if (opts.save) checkLimitsForVersion(saved, version);
    checkValues(patch);
    const keys = [...new Set([...setKeys(patch), ...resets])];
    const cgKeys = keys.filter((k) => k !== 'nofile');
    const live: LimitKey[] = [];
    if (running) {
      const cg = openGuestCgroup(st.pid as number, st.cgroupsPath, version);
      if (!cg) throw new JaulaError('state', `Guest "${name}" stopped meanwhile`);
      const missing = cg.missing(cgKeys);
      if (missing.length) throw unsupported(missing);
      const values = {
        ...patch,
        ...defaultsFor(resets, cfg.limits ?? {}, cg.readLimits()['io.max'] ?? '', cg.dirs),
      };
      const devices = resolveDevices(values);
      cg.apply(values, devices);
      live.push(...cgKeys);
      if (values.nofile) {
        for (const pid of cg.procs() ?? []) {
          try {
            native().prlimit(pid, RLIMIT_NOFILE, values.nofile.soft, values.nofile.hard);
          } catch (e) {
            if (errnoOf(e) !== 'ESRCH') throw e;
          }
        }
        live.push('nofile');
      }
    } else {
      const missing = hostMissing(cgKeys, version);
      if (missing.length) throw unsupported(missing);
    }
    if (opts.save) {
      if (Object.keys(saved).length) cfg.limits = saved;
      else delete cfg.limits;
      saveConfig(cfg);
    }
    const text = keys.map((k) => `${k}=${changes[k] || '(default)'}`).join(' ');
    guestLog(name, `limits: ${text}${live.length ? ' (live)' : ''}${opts.save ? ' (saved)' : ''}`);
    return { name, running, live, saved: opts.save, changes };
  });
}

export interface LimitView {
  key: LimitKey;
  /** In config.toml ("" = the default). */
  saved: string;
  /** In force in the running guest, read back from its cgroup (undefined when stopped). */
  live?: string;
  default: string;
}

const DEFAULT_TEXT: Record<LimitKey, string> = {
  'cpu.weight': String(DEFAULT_CPU_WEIGHT),
  'cpu.max': 'max',
  cpuset: 'all',
  'memory.max': formatLimitBytes(defaultMemoryLimit(totalmem())),
  'memory.high': 'max',
  'memory.swap': 'max',
  'pids.max': String(DEFAULT_PIDS_LIMIT),
  'io.weight': String(DEFAULT_IO_WEIGHT),
  'io.max': 'none',
  nofile: 'host',
};

function liveNofile(pid: number): string | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readKernelFile(`/proc/${pid}/limits`) ?? '');
  if (!m) return undefined;
  return m[1] === m[2] ? (m[1] as string) : `${m[1]}:${m[2]}`;
}

/** `jaula set NAME` without assignments: saved and live limits side by side. */
export function showLimits(name: string): { name: string; running: boolean; limits: LimitView[] } {
  const cfg = loadConfig(name);
  const st = readState(name);
  const running = liveStatus(st) === 'running' && st.pid !== undefined;
  const cg = running ? openGuestCgroup(st.pid as number, st.cgroupsPath) : undefined;
  const live = cg?.readLimits();
  const saved = cfg.limits ?? {};
  const hard = nofileHardLimit();
  return {
    name,
    running: !!cg,
    limits: LIMIT_KEYS.map((key) => {
      const v: LimitView = {
        key,
        saved: formatLimit(saved, key),
        default: key === 'nofile' ? `${Math.min(1024, hard)}:${hard}` : DEFAULT_TEXT[key],
      };
      if (cg) v.live = key === 'nofile' ? (liveNofile(st.pid as number) ?? '') : (live?.[key] ?? '');
      return v;
    }),
  };
}
