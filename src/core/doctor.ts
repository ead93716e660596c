import type { Check, CheckStatus } from '../api/types.js';
import * as fs from 'node:fs';
import { cgroupMode, ownCgroups } from '../cgroups/detect.js';
import { hostMissing } from '../cgroups/index.js';
import { LIMIT_KEYS } from '../cgroups/limits.js';
import { lxcfsStatus } from './lxcfs.js';
import { formatBytes } from '../common/size.js';
import { poolInfo } from '../storage/pool.js';
import { messageOf } from '../common/errors.js';
import { isExecutable, which } from '../os/fs.js';
import { native, O_DIRECTORY, O_PATH, RESOLVE_IN_ROOT } from '../os/native.js';
import { helperBin, initBin, paths } from '../os/paths.js';
import { unmount } from '../os/mounts.js';
import { run } from '../os/spawn.js';
import { selectRuntime } from '../runtime/driver.js';

export type { Check, CheckStatus } from '../api/types.js';

function readOr(path: string, fallback = ''): string {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

type Add = (area: string, name: string, status: CheckStatus, detail: string) => void;

/** What jaula relies on, and whether this host has it. */
export async function doctor(): Promise<Check[]> {
  const checks: Check[] = [];
  const add: Add = (area, name, status, detail) => {
    checks.push({ area, name, status, detail });
  };
  await addHostChecks(add);
  addKernelChecks(add);
  await addNetworkChecks(add);
  await addJaulaChecks(add);
  await addToolChecks(add);
  const live = await (await import('./migrate/live.js')).liveMoveCheck();
  add('migration', 'live moves', live.status, live.detail);
  return checks;
}

/** The kernel, the cgroups and the OCI runtime. */
async function addHostChecks(add: Add): Promise<void> {
  add('host', 'kernel', 'ok', readOr('/proc/sys/kernel/osrelease', 'unknown'));
  const mode = cgroupMode();
  add(
    'cgroups',
    'mode',
    'ok',
    mode === 'hybrid' ? 'hybrid (v1 controllers + cgroup2 at /sys/fs/cgroup/unified)' : mode,
  );
  const own = ownCgroups();
  add('cgroups', "jaula's own cgroup", 'ok', [...new Set(own.values())].join(', ') || '/');
  try {
    const rt = selectRuntime();
    add(
      'runtime',
      'OCI runtime',
      'ok',
      `${rt.name} (${(await rt.version()).first}) at ${rt.path}${rt.wrapped ? ', in a private mount namespace without the cgroup2 mount' : ''}`,
    );
    add(
      'runtime',
      'guest cgroups',
      'ok',
      `${rt.cgroupsPath('NAME')}${rt.name === 'runc' && mode !== 'v2' ? " (relative to jaula's cgroup in each hierarchy)" : ''}`,
    );
  } catch (e) {
    add('runtime', 'OCI runtime', 'missing', messageOf(e));
  }
  for (const r of ['crun', 'runc']) {
    const p = which(r);
    add('runtime', r, p ? 'ok' : 'warn', p ? p : `not installed (apt-get install ${r})`);
  }
}

/** Namespaces, filesystems, seccomp, openat2. */
function addKernelChecks(add: Add): void {
  for (const ns of ['pid', 'mnt', 'uts', 'ipc', 'net', 'cgroup', 'user']) {
    add(
      'kernel',
      `${ns} namespace`,
      fs.existsSync(`/proc/self/ns/${ns}`) ? 'ok' : 'missing',
      fs.existsSync(`/proc/self/ns/${ns}`) ? 'available' : 'not in this kernel',
    );
  }
  const maxUserns = Number(readOr('/proc/sys/user/max_user_namespaces', '0'));
  add('kernel', 'user namespaces', maxUserns > 0 ? 'ok' : 'warn', `max_user_namespaces=${maxUserns}`);
  const filesystems = readOr('/proc/filesystems');
  for (const f of ['overlay', 'tmpfs', 'devpts', 'mqueue'])
    add(
      'kernel',
      `${f} filesystem`,
      filesystems.includes(`\t${f}`) ? 'ok' : 'missing',
      filesystems.includes(`\t${f}`) ? 'available' : 'not available',
    );
  const seccomp = /Seccomp:\s*(\d)/.exec(readOr('/proc/self/status'));
  add('kernel', 'seccomp', seccomp ? 'ok' : 'missing', seccomp ? 'available' : 'not available');
  try {
    const fd = native().openat2(-100, '/', O_PATH | O_DIRECTORY, 0, RESOLVE_IN_ROOT);
    fs.closeSync(fd);
    add(
      'kernel',
      'openat2 RESOLVE_IN_ROOT',
      'ok',
      'host-side access to guest trees cannot be led out of them',
    );
  } catch (e) {
    add('kernel', 'openat2 RESOLVE_IN_ROOT', 'missing', messageOf(e));
  }
}

/** The network tools, forwarding, the address binding trap. */
async function addNetworkChecks(add: Add): Promise<void> {
  for (const [tool, pkg] of [
    ['nft', 'nftables'],
    ['tc', 'iproute2'],
    ['nsenter', 'util-linux'],
  ] as const) {
    const p = which(tool);
    add(
      'network',
      tool,
      p ? 'ok' : 'missing',
      p ? p : `not installed: apt-get install ${pkg} (guest networking needs it)`,
    );
  }
  add(
    'network',
    'IP forwarding',
    'ok',
    readOr('/proc/sys/net/ipv4/ip_forward') === '1'
      ? 'on'
      : 'off (jaula turns it on when a network has NAT or a guest has port forwards)',
  );
  const { checkBindingTrap } = await import('../network/trap.js');
  const trap = checkBindingTrap((await import('../guest/store.js')).loadAllConfigs());
  if (trap.length)
    for (const t of trap) add('network', 'address binding trap', 'warn', `${t.problem}; fix: ${t.fix}`);
  else
    add('network', 'address binding trap', 'ok', "no host daemon takes guests' addresses or forwarded ports");
}

/** jaula's own binaries, its guests, its storage pool and limits. */
async function addJaulaChecks(add: Add): Promise<void> {
  add(
    'jaula',
    'supervisor (jaula-helper)',
    isExecutable(helperBin) ? 'ok' : 'missing',
    isExecutable(helperBin) ? helperBin : 'not built: run "npm run build"',
  );
  add(
    'jaula',
    'guest init (jaula-init)',
    isExecutable(initBin) ? 'ok' : 'missing',
    isExecutable(initBin) ? initBin : 'not built: run "npm run build"',
  );
  add('jaula', 'JAULA_ROOT', 'ok', paths().root);
  await addGuestChecks(add);
  const pool = poolInfo();
  add(
    'storage',
    'storage pool',
    !pool ? 'warn' : pool.mounted ? 'ok' : 'missing',
    !pool
      ? 'none: guests have no disk limit unless built with --quota ("jaula pool create" before the first guest)'
      : pool.mounted
        ? `${pool.path} on btrfs${pool.image ? ` (${pool.image})` : ''}, ${formatBytes(pool.usedBytes ?? 0)} of ${formatBytes(pool.totalBytes ?? 0)} used; each new guest limited to ${formatBytes(pool.guestQuota)}`
        : `${pool.path} is not mounted (the next jaula command as root mounts ${pool.image ?? 'it'})`,
  );
  addLimitChecks(add);
}

/** The tools that builds, templates and networks run. */
async function addToolChecks(add: Add): Promise<void> {
  for (const [tool, pkg, what] of [
    ['busybox', 'busybox-static', 'skeleton builds'],
    ['debootstrap', 'debootstrap', 'debootstrap builds'],
    ['tar', 'tar', 'templates'],
    ['zstd', 'zstd', '.tar.zst templates'],
    ['ip', 'iproute2', 'networking'],
    ['lxcfs', 'lxcfs', "guests' own /proc/meminfo, cpuinfo, uptime"],
  ] as const) {
    const p = which(tool);
    add(
      'tools',
      tool,
      p ? 'ok' : 'warn',
      p ? `${p} (${what})` : `not installed: apt-get install ${pkg} (needed for ${what})`,
    );
  }
  const bb = which('busybox');
  if (bb) {
    const r = await run(['file', '-L', bb]).catch(() => undefined);
    if (r && r.code === 0 && !/statically linked|static-pie/.test(r.stdout))
      add(
        'tools',
        'busybox is static',
        'warn',
        `${bb} is dynamically linked: skeleton guests need busybox-static`,
      );
  }
}

/** `jaula doctor --security`: what protects guests on this host, and what is missing. */
export async function securityReport(): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (name: string, status: CheckStatus, detail: string): void => {
    checks.push({ area: 'security', name, status, detail });
  };
  const { barrierChecks } = await import('./barrier.js');
  const maxUserns = Number(readOr('/proc/sys/user/max_user_namespaces', '0'));
  add(
    'user namespaces',
    maxUserns > 0 ? 'ok' : 'missing',
    maxUserns > 0
      ? `each unprivileged guest's root is an unprivileged host uid (max_user_namespaces=${maxUserns})`
      : 'disabled: guests can only be privileged (set user.max_user_namespaces)',
  );
  checks.push(...barrierChecks());
  await addIdmapCheck(add);
  await addConfinementChecks(add);
  await addGuestSecurityChecks(add);
  checks.push(...(await (await import('./apiaccess.js')).apiChecks()));
  return checks;
}

type AddSecurity = (name: string, status: CheckStatus, detail: string) => void;

/** Whether an idmapped mount works on jaula's own filesystem: tried, not guessed. */
async function addIdmapCheck(add: AddSecurity): Promise<void> {
  const { paths: p } = await import('../os/paths.js');
  const { mkdtempSync, rmSync, mkdirSync } = await import('node:fs');
  const { libDir } = await import('../storage/barrier.js');
  if (!fs.existsSync(p().lib)) libDir();
  const dir = mkdtempSync(`${p().lib}/.doctor-`);
  try {
    mkdirSync(`${dir}/src`);
    mkdirSync(`${dir}/dst`);
    let failed = '';
    try {
      await native().idmapMounts(1000000, 65536, 0, 0, [`${dir}/src`, `${dir}/dst`]);
      unmount(`${dir}/dst`, false);
    } catch (e) {
      failed = messageOf(e);
    }
    add(
      'idmapped mounts',
      failed ? 'missing' : 'ok',
      failed
        ? `not on ${p().lib}: ${failed}`
        : `guests' files keep plain owners on disk (${p().lib}), shared templates stay shareable`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What confines a guest's processes: seccomp, devices, capabilities, masked paths, sysctls. */
async function addConfinementChecks(add: AddSecurity): Promise<void> {
  const seccomp = /Seccomp:\s*(\d)/.exec(readOr('/proc/self/status'));
  add(
    'seccomp',
    seccomp ? 'ok' : 'missing',
    seccomp
      ? "guests run under jaula's profile: modules, kexec, keyring, bpf, perf, userfaultfd, io_uring, handle opens, clock, kernel log, AF_PACKET/ALG/VSOCK/KEY sockets and new user namespaces refused"
      : 'the kernel has no seccomp: system call filtering is off',
  );
  try {
    const rt = selectRuntime();
    const { first: v, full } = await rt.version();
    add('runtime seccomp support', /\+SECCOMP|libseccomp/i.test(full) ? 'ok' : 'warn', `${rt.name}: ${v}`);
  } catch (e) {
    add('runtime', 'missing', messageOf(e));
  }
  const mode = cgroupMode();
  add(
    'device control',
    mode === 'v2' || fs.existsSync('/sys/fs/cgroup/devices') ? 'ok' : 'missing',
    mode === 'v2'
      ? 'cgroup v2 device filter (BPF): only null, zero, full, random, urandom, tty, console, ptmx and ptys'
      : 'cgroup v1 devices controller: only null, zero, full, random, urandom, tty, console, ptmx and ptys',
  );
  add(
    'capabilities',
    'ok',
    'guests keep no SYS_ADMIN, SYS_MODULE, SYS_RAWIO, SYS_TIME, SYSLOG, DAC_READ_SEARCH, BPF, PERFMON; NET_RAW only for ICMP (ping): seccomp refuses other raw and packet sockets',
  );
  add(
    'masked /proc and /sys',
    'ok',
    'kcore, keys, kmsg, timer_list, sched_debug, firmware, ... masked; /proc/sys, sysrq-trigger, irq, bus read-only',
  );
  for (const [k, good, what] of [
    ['/proc/sys/kernel/kptr_restrict', (v: string) => Number(v) >= 1, 'kernel addresses hidden from guests'],
    ['/proc/sys/kernel/dmesg_restrict', (v: string) => v === '1', 'the kernel log needs CAP_SYSLOG'],
    [
      '/proc/sys/kernel/perf_event_paranoid',
      (v: string) => Number(v) >= 2,
      'perf needs privileges (seccomp refuses it anyway)',
    ],
    [
      '/proc/sys/kernel/unprivileged_bpf_disabled',
      (v: string) => Number(v) >= 1,
      'unprivileged bpf off (seccomp refuses it anyway)',
    ],
  ] as const) {
    const v = readOr(k, '');
    if (v)
      add(
        k.replace('/proc/sys/', '').replace(/\//g, '.'),
        good(v) ? 'ok' : 'warn',
        `${v}: ${good(v) ? what : `set it (${what})`}`,
      );
  }
}

/** The guests that run with less protection: privileged, without a disk limit, full-os. */
async function addGuestSecurityChecks(add: AddSecurity): Promise<void> {
  const { loadAllConfigs } = await import('../guest/store.js');
  const { paths: p } = await import('../os/paths.js');
  const privileged = loadAllConfigs().filter((c) => c.privileged);
  add(
    'privileged guests',
    privileged.length ? 'warn' : 'ok',
    privileged.length
      ? `${privileged.map((c) => c.name).join(', ')}: their root is the host's root (built with --privileged)`
      : 'none: every guest runs in a user namespace of its own',
  );
  const unlimited = loadAllConfigs().filter((c) => c.storage.quotaBytes === undefined);
  add(
    'disk limits',
    unlimited.length ? 'warn' : 'ok',
    unlimited.length
      ? `${unlimited.map((c) => c.name).join(', ')}: no disk limit, can fill the filesystem of ${p().lib} (set one with "jaula set NAME --quota SIZE"; a storage pool gives every new guest one: "jaula pool create", docs/adr/0003-storage-and-unification.md)`
      : 'every guest has a disk quota',
  );
  const fullos = loadAllConfigs().filter((c) => c.profile === 'full-os');
  if (fullos.length)
    add(
      'full-os profile',
      'ok',
      `${fullos.map((c) => c.name).join(', ')}: may mount and make non-user namespaces (inside their user namespace)`,
    );
}

/** Guests jaula cannot use as they are: a config that does not load, files that are gone. */
async function addGuestChecks(add: Add): Promise<void> {
  const { loadGuests } = await import('../guest/store.js');
  const { requireGuestFiles } = await import('./running.js');
  const { storageDriver } = await import('../storage/index.js');
  const { configs, broken } = loadGuests();
  for (const b of broken) add('guests', b.name, 'warn', b.error.message);
  let missing = 0;
  for (const c of configs)
    try {
      requireGuestFiles(c, await storageDriver(c.storage.driver));
    } catch (e) {
      missing++;
      add('guests', c.name, 'warn', messageOf(e));
    }
  if (!broken.length && !missing)
    add(
      'guests',
      'configs and files',
      'ok',
      `${configs.length} guest${configs.length === 1 ? '' : 's'}, each config loads and its files are there`,
    );
}

/** What of jaula set / [limits] this host honours, and the lxcfs serving this instance. */
function addLimitChecks(add: Add): void {
  for (const key of LIMIT_KEYS.filter((k) => k !== 'nofile')) {
    const missing = hostMissing([key]);
    add(
      'limits',
      key,
      missing.length ? 'warn' : 'ok',
      missing.length ? (missing[0]?.why ?? '') : 'can be set',
    );
  }
  const lx = lxcfsStatus();
  add(
    'limits',
    'lxcfs',
    lx.state === 'dead' ? 'warn' : 'ok',
    lx.state === 'ok'
      ? `mounted at ${lx.dir}${lx.ownedByJaula ? ' (started by jaula)' : ''}`
      : lx.state === 'dead'
        ? `${lx.dir} is mounted but its daemon is gone: jaula remounts it at the next start`
        : `not running now: jaula starts it at ${lx.dir} with the first guest`,
  );
}
