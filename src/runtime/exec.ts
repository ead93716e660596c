/**
 * Commands in a running guest through jaula-exec (native/jaula-exec.c), whichever runtime made
 * the guest: it joins the init's cgroups and namespaces, its seccomp filter and capabilities, and
 * only then forks the command into the guest's PID namespace (the runtime's own exec showed the
 * guest a foreign process while it set itself up: docs/adr/0004-inside-the-guest.md). Here: its
 * argv, from the guest's running spec, and the status it leaves. It is run on a session of
 * runtime/session.ts.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupMounts } from '../cgroups/cgroup.js';
import { cgroupMode, ownCgroups } from '../cgroups/detect.js';
import { JaulaError, messageOf } from '../common/errors.js';
import { tmpSuffix } from '../os/fs.js';
import { execBin } from '../os/paths.js';
import { ALL_CAPS } from './testweaken.js';

/** The running guest a command joins: its init (pid, start time) and its run directory. */
export interface ExecTarget {
  name: string;
  pid: number;
  pidStart: number;
  runDir: string;
}

/** The command, as the guest is to run it. */
export interface ExecRequest {
  cmd: string[];
  /** VAR=VALUE entries added to the guest's environment, or replacing those of the same name. */
  env: string[];
  cwd: string;
  /** UID[:GID], as the guest counts them. */
  user?: string | undefined;
  /** With a pty made inside the guest, its master sent to this socket (runtime/session.ts). */
  consoleSocket?: string | undefined;
}

/** jaula-exec's argv, and what a caller needs to make sense of its end. */
export interface ExecProcess {
  argv: string[];
  /** Where jaula-exec says whether the command runs ("ok") or why not (execStatus). */
  statusFile: string;
  /** The PATH the command was looked up in, for a message. */
  path: string;
  /** The guest's pids cgroup directory, for the limit's values in an error. */
  pidsDir: string | undefined;
}

/** The parts of the guest's OCI spec (its bundle's config.json) an exec takes over. */
interface BundleSpec {
  process?: { env?: string[]; noNewPrivileges?: boolean; capabilities?: { bounding?: string[] } };
  linux?: { seccomp?: { listenerPath?: string } };
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The capability set as jaula-exec takes it: a hexadecimal mask. */
function capMask(names: string[]): string {
  let m = 0n;
  for (const n of names) {
    const i = ALL_CAPS.indexOf(n);
    if (i >= 0) m |= 1n << BigInt(i);
  }
  return m.toString(16);
}

/** `base` with the VAR=VALUE entries of `extra` added, or replacing those of the same name. */
function mergeEnv(base: string[], extra: string[]): string[] {
  const key = (e: string): string => e.slice(0, Math.max(0, e.indexOf('=')));
  const keys = new Set(extra.map(key));
  return [...base.filter((e) => !keys.has(key(e))), ...extra];
}

/**
 * Per cgroup hierarchy the guest's init is in: its cgroup.procs, and this process's own to go
 * back to (jaula-exec leaves the guest's cgroups once the command runs). Where both are the
 * same cgroup, nothing moves.
 */
function cgroupMoves(initPid: number): { moves: [string, string][]; pidsDir: string | undefined } {
  const mounts = cgroupMounts();
  const mine = ownCgroups();
  const moves: [string, string][] = [];
  const seen = new Set<string>();
  let pidsDir: string | undefined;
  for (const [key, path] of ownCgroups(initPid)) {
    const mount = mounts.get(key);
    if (mount === undefined || seen.has(mount)) continue;
    seen.add(mount);
    if (key === 'pids' || (key === '' && cgroupMode() === 'v2')) pidsDir = join(mount, path);
    const own = mine.get(key);
    if (own === undefined || own === path) continue;
    moves.push([join(mount, path, 'cgroup.procs'), join(mount, own, 'cgroup.procs')]);
  }
  return { moves, pidsDir };
}

/** How to run `r.cmd` in the running guest `t` through jaula-exec. */
export function execProcess(t: ExecTarget, r: ExecRequest): ExecProcess {
  let spec: BundleSpec;
  try {
    spec = JSON.parse(readFileSync(join(t.runDir, 'bundle/config.json'), 'utf8')) as BundleSpec;
  } catch (e) {
    throw new JaulaError('runtime', `Cannot read the running spec of guest "${t.name}": ${messageOf(e)}`);
  }
  const env = mergeEnv(spec.process?.env ?? [], r.env);
  const path = env.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
  const { moves, pidsDir } = cgroupMoves(t.pid);
  const statusFile = join(t.runDir, `exec-${tmpSuffix()}.status`);
  const seccomp = spec.linux?.seccomp;
  const bounding = spec.process?.capabilities?.bounding;
  const argv = [
    execBin,
    '--pid',
    String(t.pid),
    '--pid-start',
    String(t.pidStart),
    '--status',
    statusFile,
    ...moves.flatMap(([guest, own]) => ['--cgroup', guest, own]),
    // The filter the runtime gave the init, read back from it once per run (INSTANCE_FILES).
    ...(seccomp ? ['--seccomp', join(t.runDir, 'seccomp.bpf')] : []),
    ...(seccomp?.listenerPath ? ['--listener', seccomp.listenerPath] : []),
    ...(bounding ? ['--caps', capMask(bounding)] : []),
    ...(spec.process?.noNewPrivileges ? ['--no-new-privs'] : []),
    ...(r.user ? ['--user', r.user] : []),
    '--cwd',
    r.cwd,
    ...env.flatMap((e) => ['--env', e]),
    ...(r.consoleSocket ? ['--tty', '--console-socket', r.consoleSocket] : []),
    '--',
    ...r.cmd,
  ];
  return { argv, statusFile, path, pidsDir };
}

/**
 * What jaula-exec said once it ended ("ok", or "err STAGE ERRNO [DETAIL]"; empty when it did not
 * get that far); the status file is removed.
 */
export function execStatus(p: ExecProcess): string {
  let status = '';
  try {
    status = readFileSync(p.statusFile, 'utf8');
  } catch {
    /* jaula-exec did not get that far */
  }
  rmSync(p.statusFile, { force: true });
  return status;
}
