/**
 * The guest's supervisor (native/jaula-helper.c `shim`): started detached for each guest, it
 * runs the OCI runtime to create and start the guest in its run directory, holds its console,
 * answers its sysinfo(2) calls, reaps its init, writes the exit record and runs the exit command.
 * Only runtime/driver.ts starts it (Runtime.start).
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { JaulaError, messageOf } from '../common/errors.js';
import type { Invocation } from './sealed.js';
import { spawnFast, type Spawned } from '../os/fastspawn.js';
import { mkdirp, readFileOr, removeTree } from '../os/fs.js';
import { cliEntry, helperBin, paths } from '../os/paths.js';
import { isSameProcess, readProcStat } from '../os/proc.js';
import { removeSupervisorCgroups, supervisorCgroupName } from '../cgroups/parents.js';

/** A guest to create and start under its supervisor. */
export interface SupervisorStart {
  /** The guest's name: the runtime's container ID. */
  id: string;
  /** This run of the guest: the exit command names it, so a late exit settles no later run. */
  instance: string;
  /** The guest's run directory, with its bundle (bundle/config.json) written. */
  runDir: string;
  /** The guest's cgroup (the spec's cgroupsPath). */
  cgroupsPath: string;
  /** Where the supervisor's (and the runtime's) output goes: appended. */
  logFile: string;
  /** Called with the supervisor's pid as soon as it exists, before the guest is created. */
  onSpawned: (pid: number) => void;
  /** Restore the guest from CRIU's images (a live move's target) instead of starting it. */
  restore?: { images: string; work: string };
}

/** The pids of the supervisor and of the guest's init once the runtime created and started it. */
export interface Started {
  shimPid: number;
  initPid: number;
}

/**
 * Written by a stop before it signals the init: the stopper records the exit and cleans up
 * itself, so the supervisor's exit command (jaula-helper notify) does nothing then, rather than
 * ask jaulad or start a Node.js process (`jaula __exited`) only to find the work done.
 */
export const STOPPING = 'stopping';

/**
 * What the supervisor and the runtime leave in a guest's run directory for one run of it,
 * removed before the next start.
 */
const INSTANCE_FILES = [
  'bundle',
  'init.pid',
  'exit',
  'exit.tmp',
  'console.sock',
  'seccomp.bpf',
  'attach.sock',
  STOPPING,
];

export function clearInstanceFiles(runDir: string): void {
  for (const f of INSTANCE_FILES) removeTree(join(runDir, f));
}

/** Where the supervisor (and the one-shot run's runtime) writes the init's pid. */
export function initPidFile(runDir: string): string {
  return join(runDir, 'init.pid');
}

/**
 * The supervisor's argv, around the runtime as jaula calls it, without arguments: from its
 * sealed copy (runtime/sealed.ts) on the supervisor's fd 4, executed by the supervisor itself
 * (`exe`) or by the wrapper it runs.
 */
function shimArgv(s: SupervisorStart, runtime: Invocation): string[] {
  const fd = runtime.fds?.length ? [runtime.exe ? '--runtime-fd' : '--pass-fd', '4'] : [];
  return [
    'shim',
    '--dir',
    s.runDir,
    '--id',
    s.id,
    '--sysinfo',
    // The guest's cgroup: the supervisor answers sysinfo(2) from it, and works for the guest
    // from a cgroup of its own beside it (supervisorCgroupName).
    '--cgroups-path',
    s.cgroupsPath,
    ...(s.restore ? ['--restore', s.restore.images, s.restore.work] : []),
    ...fd,
    '--runtime',
    ...runtime.argv,
    // When the init ends: jaulad records it and cleans up, if it runs; else `jaula __exited`.
    '--exit',
    helperBin,
    'notify',
    paths().jauladSocket,
    s.id,
    s.instance,
    '--',
    process.execPath,
    cliEntry,
    '__exited',
    s.id,
    s.instance,
  ];
}

/** Start the supervisor, detached, and wait until the runtime created the guest. */
export async function startSupervisor(s: SupervisorStart, runtime: Invocation): Promise<Started> {
  mkdirp(dirname(s.logFile), 0o700);
  const logFd = fs.openSync(s.logFile, 'a', 0o600);
  let child: Spawned;
  try {
    // (posix_spawn: os/fastspawn.ts; a new session, its sync pipe as fd 3)
    child = await spawnFast(helperBin, shimArgv(s, runtime), {
      detached: true,
      slots: ['ignore', logFd, logFd, 'out', ...(runtime.fds ?? [])],
      env: { ...process.env, JAULA_ROOT: paths().root },
      cwd: '/',
    });
  } catch (e) {
    throw new JaulaError(
      'runtime',
      `Guest "${s.id}" could not be created: cannot run ${helperBin}: ${messageOf(e)} (run "npm run build")`,
    );
  } finally {
    fs.closeSync(logFd);
  }
  s.onSpawned(child.pid);
  const sync = child.stdio[3] as NodeJS.ReadableStream;
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    sync.on('data', (b: Buffer) => (text += b.toString()));
    sync.on('end', () => resolve(text));
    sync.on('error', () => resolve(text));
  });
  child.unref();
  const line = answer.trim().split('\n')[0] ?? '';
  if (line.startsWith('ok ')) return { shimPid: child.pid, initPid: Number(line.slice(3)) };
  throw new JaulaError(
    'runtime',
    `Guest "${s.id}" could not be created: ${line.replace(/^err /, '') || 'the supervisor ended without a word'}`,
  );
}

/**
 * A start interrupted while its supervisor (pid and start time) was creating the guest: wait
 * (bounded) until the runtime is done, so that deleting the container afterwards leaves nothing
 * behind.
 */
export async function waitSupervisorSettled(
  runDir: string,
  shimPid: number | undefined,
  shimStart: number | undefined,
): Promise<void> {
  const pidFile = initPidFile(runDir);
  const deadline = Date.now() + 30_000;
  while (isSameProcess(shimPid, shimStart) && Date.now() < deadline) {
    const pid = Number(fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim() : NaN);
    if (pid > 0 && readProcStat(pid)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  // A supervisor that died leaves its runtime creating the guest alone.
  await waitRuntimeDone(runDir);
}

/**
 * Wait (up to 30 s) until no process works in the guest's bundle directory any more: the
 * runtime creating it (the supervisor runs it there) carries on when the supervisor dies, and
 * deleting the container before it is done would leave what it makes afterwards behind. Reads
 * /proc: only on the paths that undo a start.
 */
export async function waitRuntimeDone(runDir: string): Promise<void> {
  const bundle = join(runDir, 'bundle');
  const busy = (): boolean =>
    fs.readdirSync('/proc').some((p) => {
      if (p.charCodeAt(0) > 57) return false;
      try {
        return fs.readlinkSync(`/proc/${p}/cwd`) === bundle;
      } catch {
        return false;
      }
    });
  const deadline = Date.now() + 30_000;
  while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/**
 * Once the guest is gone: remove the supervisor cgroups its supervisor left, if it was killed.
 * A live supervisor leaves its own cgroups as the guest ends (and removes them) before it runs
 * its exit command; one killed a moment ago may still be exiting, not yet a zombie, and look
 * alive: so wait (up to 2 s, reading only its /proc/PID/cgroup) while it is still in one, until
 * it has left them or is gone. Returns problems to report.
 */
export async function removeLeftSupervisorCgroups(
  guest: string,
  shimPid: number | undefined,
  shimStart: number | undefined,
): Promise<string[]> {
  const mine = `/${supervisorCgroupName(guest)}`;
  const inside = (): boolean =>
    readFileOr(`/proc/${shimPid}/cgroup`, '')
      .split('\n')
      .some((l) => l.endsWith(mine));
  const deadline = Date.now() + 2000;
  while (isSameProcess(shimPid, shimStart) && inside() && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  return isSameProcess(shimPid, shimStart) ? [] : removeSupervisorCgroups(guest);
}
