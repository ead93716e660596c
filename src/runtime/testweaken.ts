/**
 * TEST ONLY: a deliberately weakened guest profile, so that the escape suite (tests/escape) can
 * prove it detects failures. With JAULA_TEST_WEAKEN=1 in the environment of the jaula process
 * that starts a guest, its OCI spec becomes privileged-like: every capability jaula itself holds,
 * no user namespace, no seccomp, no LSM label, no masked or read-only paths, /sys and the cgroup
 * mounts read-write, every device allowed, no pids or memory limit (the other namespaces stay).
 * Never use it for a real guest.
 *
 * It cannot be set from inside a guest: it is read from the environment of the host's jaula
 * process when the spec is built; a guest's processes never run that process nor reach its
 * environment (the runtime gives the guest the spec's env only). It is refused outright for the
 * host's real instance: a JAULA_ROOT that is "/" by device and inode (a symlink to it, a bind
 * mount of it), or whose guests' configs, data or runtime state are the host's own directories
 * (through symlinks or bind mounts below it), so it only ever takes effect in a test's own root.
 */
import { readFileSync, statSync } from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { makePaths, paths } from '../os/paths.js';
import type { OciSpec } from './ocispec.js';

export const TEST_WEAKEN_ENV = 'JAULA_TEST_WEAKEN';
export const WEAKENED_ANNOTATION = 'org.jaula.test-weakened';

/** Every capability up to CAP_CHECKPOINT_RESTORE (40). */
export const ALL_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** The capabilities of ALL_CAPS in jaula's own bounding set: a runtime cannot grant more. */
function hostCaps(): string[] {
  let bnd = (1n << BigInt(ALL_CAPS.length)) - 1n;
  try {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m?.[1]) bnd = BigInt(`0x${m[1]}`);
  } catch {
    /* keep them all */
  }
  return ALL_CAPS.filter((_, i) => (bnd >> BigInt(i)) & 1n);
}

/** Device and inode of a path (following links), or undefined when it does not exist. */
function fileId(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * What of the instance at `root` is the host's real instance (at `hostRoot`) itself, compared by
 * device and inode: the root, or the directories that hold the guests' configs, data and runtime
 * state. Empty when none is.
 */
export function sharedWithHostInstance(root: string, hostRoot = '/'): string[] {
  const mine = makePaths(root);
  const host = makePaths(hostRoot);
  const pairs: [string, string][] = [
    [mine.root, host.root],
    [mine.etc, host.etc],
    [mine.guestsConf, host.guestsConf],
    [mine.lib, host.lib],
    [mine.guestsData, host.guestsData],
    [mine.run, host.run],
    [mine.guestsRun, host.guestsRun],
  ];
  return pairs.filter(([a, b]) => fileId(a) !== undefined && fileId(a) === fileId(b)).map(([a]) => a);
}

/** Whether this environment asks for the weakened profile (and is allowed to). */
export function testWeakeningRequested(env: NodeJS.ProcessEnv, root: string, hostRoot = '/'): boolean {
  const v = env[TEST_WEAKEN_ENV];
  if (v === undefined || v === '' || v === '0') return false;
  if (v !== '1')
    throw new JaulaError(
      'invalid',
      `${TEST_WEAKEN_ENV}="${v}" is not understood: it is 1 (tests only) or unset`,
    );
  const shared = root === hostRoot ? [root] : sharedWithHostInstance(root, hostRoot);
  if (shared.length)
    throw new JaulaError(
      'invalid',
      `${TEST_WEAKEN_ENV}=1 starts privileged, unprotected guests and exists for the escape test suite only; ` +
        `it is refused for the host's real guests (JAULA_ROOT "${root}": ${shared.join(', ')} ` +
        `${shared.length === 1 ? 'is' : 'are'} the host instance's own): unset it`,
    );
  return true;
}

/**
 * What the weakened profile needs of the host, read once by whoever builds the spec (the spec
 * builder itself reads nothing): the capabilities jaula holds, all of which the guest gets.
 */
export interface TestWeakening {
  caps: string[];
}

/** The weakening `env` asks for (and is allowed: see testWeakeningRequested), or undefined. */
export function testWeakening(env: NodeJS.ProcessEnv, root: string): TestWeakening | undefined {
  return testWeakeningRequested(env, root) ? { caps: hostCaps() } : undefined;
}

/** Say on stderr that a guest got the weakened profile (once per spec built with it). */
export function warnWeakened(spec: OciSpec): void {
  process.stderr.write(
    `jaula: WARNING: ${TEST_WEAKEN_ENV}=1: guest "${spec.annotations['org.jaula.guest'] ?? spec.hostname}" gets a deliberately weakened, privileged profile (escape tests only)\n`,
  );
}

/**
 * The spec made privileged-like (see the module comment): a copy, the input untouched. Works on
 * whatever hardening the spec carries (user namespace, seccomp, LSM labels): it removes it.
 * Pure: what it needs of the host comes in `w`.
 */
export function weakenSpec(spec: OciSpec, w: TestWeakening): OciSpec {
  const s = structuredClone(spec);
  const caps = w.caps;
  s.process.capabilities = {
    bounding: [...caps],
    effective: [...caps],
    permitted: [...caps],
    inheritable: [...caps],
    ambient: [...caps],
  };
  s.process.noNewPrivileges = false;
  const proc = s.process as unknown as Record<string, unknown>;
  delete proc['apparmorProfile'];
  delete proc['selinuxLabel'];
  s.root.readonly = false;
  for (const m of s.mounts) {
    if (m.destination === '/sys' || m.destination.startsWith('/sys/'))
      m.options = [...(m.options ?? []).filter((o) => o !== 'ro'), 'rw'];
  }
  const linux = s.linux as unknown as Record<string, unknown>;
  delete linux['seccomp'];
  delete linux['uidMappings'];
  delete linux['gidMappings'];
  delete linux['mountLabel'];
  s.linux.namespaces = s.linux.namespaces.filter((n) => n.type !== 'user');
  s.linux.maskedPaths = [];
  s.linux.readonlyPaths = [];
  s.linux.resources.devices = [{ allow: true, access: 'rwm' }];
  const res = s.linux.resources as unknown as Record<string, unknown>;
  delete res['pids'];
  delete res['memory'];
  s.annotations[WEAKENED_ANNOTATION] = 'true';
  return s;
}

/**
 * The spec, privileged-like when `env` asks for it (see the module comment), with the warning
 * on stderr; otherwise the same object, untouched.
 */
export function applyTestWeakening(
  spec: OciSpec,
  env: NodeJS.ProcessEnv = process.env,
  root: string = paths().root,
): OciSpec {
  const w = testWeakening(env, root);
  if (!w) return spec;
  const s = weakenSpec(spec, w);
  warnWeakened(s);
  return s;
}
