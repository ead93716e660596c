import type { GuestConfig } from '../guest/config.js';
import { isBind, type FstabEntry } from '../guest/fstab.js';
import { assertNever } from '../common/errors.js';
import type { IdRange } from './idmap.js';
import type { OciMount, OciSpec } from './ocispec.js';
import { seccompProfile } from './seccomp.js';
import { weakenSpec, type TestWeakening } from './testweaken.js';
import { DEFAULT_PIDS_LIMIT, defaultMemoryLimit, type DevNum, type Limits } from '../cgroups/limits.js';
import { ociResources } from '../cgroups/oci.js';

export type { OciMount, OciSpec };

/** Where jaula-init appears inside a guest (on the guest's /dev tmpfs: the tree is not touched). */
export const GUEST_INIT_PATH = '/dev/.jaula-init';

/**
 * The capabilities a guest keeps. Left out: SYS_ADMIN, SYS_MODULE, SYS_RAWIO, SYS_TIME,
 * SYS_PACCT, SYS_RESOURCE, SYS_PTRACE, SYSLOG, MAC_*, AUDIT_CONTROL/READ, BPF, PERFMON,
 * CHECKPOINT_RESTORE, WAKE_ALARM, BLOCK_SUSPEND, LINUX_IMMUTABLE, DAC_READ_SEARCH (it grants
 * open_by_handle_at, which opens any file of a mounted file system by its handle). NET_RAW
 * stays, for ping (busybox ping opens only raw sockets; iputils' ping carries the file
 * capability cap_net_raw): over the guest's own network namespace, with seccomp refusing every
 * raw socket but ICMP and ICMPv6 (seccomp.ts, docs/adr/0004-inside-the-guest.md). SYS_BOOT
 * stays: in a PID namespace reboot(2) only ends the guest itself, which is how halt and reboot
 * inside work.
 */
export const GUEST_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_CHROOT',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_SETFCAP',
];

const BASE_MOUNTS: OciMount[] = [
  { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
  {
    destination: '/dev',
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
  },
  {
    destination: '/dev/pts',
    type: 'devpts',
    source: 'devpts',
    options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
  },
  {
    destination: '/dev/shm',
    type: 'tmpfs',
    source: 'shm',
    options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
  },
  { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  {
    destination: '/sys/fs/cgroup',
    type: 'cgroup',
    source: 'cgroup',
    options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
  },
];

/** Docker's masked paths, plus /proc/kmsg (the seed's guests must not read the kernel log). */
export const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/kmsg',
  '/proc/latency_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/sys/devices/virtual/powercap',
  '/sys/firmware',
];
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Character devices a guest may use: null, zero, full, random, urandom, tty, console, ptmx, pts. */
const DEVICE_ALLOW: [number, number | undefined][] = [
  [1, 3],
  [1, 5],
  [1, 7],
  [1, 8],
  [1, 9],
  [5, 0],
  [5, 1],
  [5, 2],
  [136, undefined],
];

export { DEFAULT_PIDS_LIMIT, defaultMemoryLimit };

/** The lxcfs files bound over the guest's own, so that it sees its limits and uptime there. */
export const LXCFS_FILES = [
  '/proc/cpuinfo',
  '/proc/diskstats',
  '/proc/loadavg',
  '/proc/meminfo',
  '/proc/stat',
  '/proc/swaps',
  '/proc/uptime',
  '/sys/devices/system/cpu/online',
];

/** The guest's limits with jaula's defaults for those it does not set (memory: half the host's). */
function withDefaults(l: Limits, hostMemory: number | undefined): Limits {
  return l['memory.max'] === undefined && hostMemory
    ? { ...l, 'memory.max': defaultMemoryLimit(hostMemory) }
    : l;
}

const BASE_ENV = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'TERM=linux',
  'container=jaula',
  'HOME=/root',
];

/** The environment: jaula's defaults, each replaced by the guest's own of the same name (an image's Env). */
function withEnv(base: string[], own: string[]): string[] {
  const named = (e: string): string => e.slice(0, e.indexOf('='));
  const mine = new Set(own.map(named));
  return [...base.filter((e) => !mine.has(named(e))), ...own];
}

export function initArgs(cfg: GuestConfig): string[] {
  switch (cfg.initstyle) {
    case 'plain':
      return ['/sbin/init'];
    case 'sysv':
      return [GUEST_INIT_PATH, '-k', '-s', '/etc/init.d/rc', '--', '/etc/init.d/rc', '3'];
    case 'cmd':
      return [GUEST_INIT_PATH, ...(cfg.user ? ['-u', cfg.user] : []), '--', ...cfg.cmd];
    default:
      return assertNever(cfg.initstyle, 'init style');
  }
}

export interface SpecInput {
  cfg: GuestConfig;
  rootfs: string;
  cgroupsPath: string;
  /** Host path of jaula-init; mounted when the init style needs it. */
  initBin: string;
  fstab: FstabEntry[];
  /** Overrides the init command (one-shot `jaula run`). */
  args?: string[];
  terminal?: boolean;
  /** The host's hard RLIMIT_NOFILE: a guest cannot be given more. */
  nofileHard?: number;
  /** A network namespace prepared by jaula (bound to this file) for the guest to join. */
  netns?: string;
  /** An unprivileged guest: a user namespace mapping its IDs 0.. to this host range. */
  idmap?: IdRange;
  /** That user namespace, made by jaula (bound to this file): the guest joins it. */
  userns?: string;
  /** The host's memory in bytes: a guest's default memory limit is half of it. */
  hostMemory?: number;
  /** The host's cgroup version: limits are written in its terms (default 1, the classic fields). */
  cgroupVersion?: 1 | 2;
  /** The block devices that io.max names, resolved on the host (the builder stays pure). */
  blockDevices?: Record<string, DevNum>;
  /** Where lxcfs is mounted on the host: its files are bound over the guest's (LXCFS_FILES). */
  lxcfs?: string;
  /**
   * The supervisor's socket for seccomp notifications: the guest's sysinfo(2) calls (busybox
   * free, uptime) are answered there with the guest's limits and uptime.
   */
  sysinfoListener?: string;
  /** CRIU's config file for this guest (written before a checkpoint or a restore). */
  criuConfig?: string;
  /**
   * TEST ONLY: the escape suite's weakened profile (testweaken.ts), when the caller's
   * environment asks for it and may (testWeakening); undefined for every real guest.
   */
  weaken?: TestWeakening;
}

function fstabMount(e: FstabEntry): OciMount {
  if (isBind(e)) {
    // (idmap, noidmap: jaula's own, done before the runtime runs: core/binds.ts)
    const opts = e.options.filter((o) => !['bind', 'rbind', 'idmap', 'noidmap'].includes(o));
    return {
      destination: e.target,
      type: 'bind',
      source: e.source,
      options: [e.options.includes('rbind') ? 'rbind' : 'bind', ...opts],
    };
  }
  const m: OciMount = {
    destination: e.target,
    type: e.type,
    source: e.source === 'none' ? e.type : e.source,
  };
  if (e.options.length) m.options = [...e.options];
  return m;
}

/** The guest's mounts: the base ones, its fstab's (replacing those of the same place), jaula-init, lxcfs. */
function specMounts(input: SpecInput, args: string[]): OciMount[] {
  const mounts: OciMount[] = BASE_MOUNTS.map((m) => ({ ...m, options: [...(m.options ?? [])] }));
  for (const e of input.fstab) {
    const m = fstabMount(e);
    const at = mounts.findIndex((x) => x.destination === m.destination);
    if (m.destination === '/sys' && !(m.options ?? []).includes('ro'))
      m.options = [...(m.options ?? []), 'ro'];
    if (at >= 0) mounts[at] = m;
    else mounts.push(m);
  }
  if (args[0] === GUEST_INIT_PATH)
    mounts.push({
      destination: GUEST_INIT_PATH,
      type: 'bind',
      source: input.initBin,
      options: ['bind', 'ro', 'nosuid', 'nodev'],
    });
  if (input.lxcfs !== undefined)
    for (const f of LXCFS_FILES)
      // (nosuid,nodev: lxcfs is mounted so, and a user namespace may not drop those flags on
      // the read-only remount; crun keeps them by itself, runc needs them said)
      mounts.push({
        destination: f,
        type: 'bind',
        source: `${input.lxcfs}${f}`,
        options: ['bind', 'ro', 'nosuid', 'nodev'],
      });
  return mounts;
}

/**
 * A pure function of its input: same input, same config.json. It reads nothing of the host (no
 * environment, no file): what it needs of the host (limits, paths, namespaces, the test-only
 * weakening) its caller passes in.
 */
export function buildSpec(input: SpecInput): OciSpec {
  const { cfg } = input;
  const args = input.args ?? initArgs(cfg);
  const caps = [...GUEST_CAPS];
  // A full distribution's init mounts file systems: CAP_SYS_ADMIN, but only over the guest's own
  // user namespace (never for a privileged guest), with seccomp still refusing the rest.
  if (cfg.profile === 'full-os' && input.idmap) caps.push('CAP_SYS_ADMIN');
  const maps = input.idmap
    ? [{ containerID: 0, hostID: input.idmap.hostId, size: input.idmap.size }]
    : undefined;
  const mounts = specMounts(input, args);
  const nofile = cfg.limits?.nofile;
  const spec: OciSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal: input.terminal ?? true,
      user: { uid: 0, gid: 0 },
      args,
      env: withEnv(BASE_ENV, cfg.env ?? []),
      cwd: cfg.cwd ?? '/',
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps] },
      rlimits: [
        {
          type: 'RLIMIT_NOFILE',
          soft: nofile?.soft ?? Math.min(1024, input.nofileHard ?? 1024),
          hard: nofile?.hard ?? input.nofileHard ?? 1024,
        },
        { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
      ],
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: cfg.hostname,
    mounts,
    annotations: {
      'org.jaula.guest': cfg.name,
      'org.jaula.context': String(cfg.context),
      // (runc gives CRIU this file's options at a checkpoint or restore: core/migrate/live.ts)
      ...(input.criuConfig ? { 'org.criu.config': input.criuConfig } : {}),
    },
    linux: {
      namespaces: [
        { type: 'pid' },
        input.netns ? { type: 'network', path: input.netns } : { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'cgroup' },
        ...(input.userns ? [{ type: 'user', path: input.userns }] : input.idmap ? [{ type: 'user' }] : []),
      ],
      ...(maps ? { uidMappings: maps, gidMappings: maps } : {}),
      cgroupsPath: input.cgroupsPath,
      seccomp: seccompProfile(cfg.profile),
      resources: {
        devices: [
          { allow: false, access: 'rwm' },
          ...DEVICE_ALLOW.map(([major, minor]) =>
            minor === undefined
              ? { allow: true, type: 'c', major, access: 'rwm' }
              : { allow: true, type: 'c', major, minor, access: 'rwm' },
          ),
        ],
        ...ociResources(
          withDefaults(cfg.limits ?? {}, input.hostMemory),
          input.cgroupVersion ?? 1,
          input.blockDevices,
        ),
      },
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
  if (input.sysinfoListener !== undefined && spec.linux.seccomp) {
    // The guest's sysinfo(2) calls (busybox free, uptime) go to its supervisor, which answers
    // with the guest's limits and uptime; every other rule of the profile stays.
    spec.linux.seccomp.listenerPath = input.sysinfoListener;
    spec.linux.seccomp.syscalls.push({ names: ['sysinfo'], action: 'SCMP_ACT_NOTIFY' });
  }
  return input.weaken ? weakenSpec(spec, input.weaken) : spec;
}
