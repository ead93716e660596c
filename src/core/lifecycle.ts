import { refuseIfMoving } from '../guest/moving.js';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError, messageOf } from '../common/errors.js';
import { tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { withGuestLock } from '../guest/locks.js';
import { trace } from '../os/trace.js';
import { paths } from '../os/paths.js';
import { bootId, isSameProcess, readProcStat } from '../os/proc.js';
import { selectRuntime, type Runtime } from '../runtime/driver.js';
import { haltSignal, signalInit } from '../runtime/signals.js';
import {
  clearInstanceFiles,
  STOPPING,
  removeLeftSupervisorCgroups,
  waitRuntimeDone,
  waitSupervisorSettled,
} from '../runtime/supervisor.js';
import { guestBarriers } from '../storage/barrier.js';
import { storageDriver } from '../storage/index.js';
import { guestIdRange } from '../runtime/idmap.js';
import type { StorageDriver } from '../storage/driver.js';
import { removeUserns } from '../runtime/userns.js';
import { detectInit } from './adapt.js';
import type { GuestConfig } from '../guest/config.js';
import { unmountBinds } from './binds.js';
import { runGuestHook, runHostHook } from './hooks.js';
import { guestLog, guestLogFile } from '../guest/log.js';
import { limitSpecInput } from './limits.js';
import { acquireLxcfs, stopLxcfsIfIdle, type LxcfsLease } from './lxcfs.js';
import { requireBindSources, writeBundle } from './prepare.js';
import { Reverter } from './reverter.js';
import {
  clearRunning,
  initAlive,
  liveStatus,
  markRunning,
  recordBootId,
  readExitRecord,
  readState,
  writeState,
  type ExitInfo,
  type GuestState,
} from '../guest/state.js';
import { isReplica, loadConfig, loadConfigForStop, loadFstab, startedConfigFile } from '../guest/store.js';
import { serializeConfig } from '../guest/config.js';
import { requireGuestFiles } from './running.js';
import { mayStartInFleet } from './fleet-guard.js';
import { networkDown } from '../network/apply.js';
import { criuConfigFile, criuDir, prepareFor, writeRestoreBundle } from './migrate/live.js';
import { exitInfoFor } from './exitinfo.js';

export interface StartOptions {
  /** Restart after a reboot inside the guest: counted, to stop a reboot loop. */
  reboot?: boolean;
  /** Restore the guest's processes from CRIU's images (a live move's target: migrate/live.ts). */
  restore?: { images: string; work: string };
}

/** Start a guest. Returns its state once its init runs. */
export async function startGuest(name: string, opts: StartOptions = {}): Promise<GuestState> {
  return withGuestLock(name, () => startLocked(loadConfig(name), opts));
}

async function startLocked(cfg: GuestConfig, opts: StartOptions): Promise<GuestState> {
  const { name } = cfg;
  trace('start: locked');
  refuseIfMoving(name);
  if (isReplica(name))
    throw new JaulaError(
      'state',
      `"${name}" is another host's guest, kept here as its HA replica: it starts here only when the fleet gives it to this host ("jaula fleet ha")`,
    );
  const prev = readState(name);
  const live = initAlive(prev) ? liveStatus(prev) : 'stopped';
  if (live !== 'stopped')
    throw new JaulaError(
      'state',
      `Guest "${name}" is already ${live} (pid ${prev.pid ?? '?'}); use "jaula restart ${name}" to restart it`,
    );
  if (prev.status !== 'stopped') await finalizeLocked(cfg, prev, exitInfoFor(name, prev));
  await mayStartInFleet(name); // only its owner host starts it, while up in the fleet
  const storage = await storageDriver(cfg.storage.driver);
  // Before anything is made: a guest whose files are gone is refused, and nothing is created.
  requireGuestFiles(cfg, storage);
  trace('start: state and files checked');
  guestBarriers(name, guestIdRange(cfg)?.hostId); // behind the barrier (storage/barrier.ts)
  clearInstanceFiles(paths().guestRun(name));
  // The config it runs with: stopping it and cleaning up need it, even if config.toml breaks.
  writeFileAtomic(startedConfigFile(name), serializeConfig(cfg), 0o600, { durable: false });
  // (a restore needs the runtime the guest was checkpointed with)
  const rt = selectRuntime(opts.restore ? 'runc' : cfg.runtime);
  const instance = tmpSuffix();
  const restarts = opts.reboot ? (prev.restarts ?? 0) + 1 : 0;
  const base: GuestState = { status: 'starting', instance, runtime: rt.name, bootId: bootId(), restarts };
  base.context = cfg.context;
  if (prev.lastExit) base.lastExit = prev.lastExit;
  writeState(name, base);
  trace('start: state written');

  const rev = new Reverter();
  const lxcfs: LxcfsHold = {};
  try {
    const st = await launch(cfg, rt, storage, base, rev, lxcfs, opts.restore);
    // It runs in this boot until it is stopped on purpose (a reboot of the host restarts it).
    markRunning(name);
    recordBootId({ ifAbsent: true });
    lxcfs.lease?.release();
    rev.success();
    trace('start: state recorded');
    guestLog(
      name,
      `${opts.restore ? 'restored' : 'started'} (pid ${st.pid}, ${rt.name}${opts.reboot ? `, after a reboot inside, #${restarts}` : ''})`,
    );
    await runGuestHook(cfg, 'start');
    return st;
  } catch (e) {
    (lxcfs.lease ?? (await lxcfs.leasing?.catch(() => undefined)))?.release();
    const failed = await rev.revert();
    await stopLxcfsIfIdle();
    const st = readState(name);
    if (st.instance === instance)
      writeState(name, {
        ...st,
        status: 'stopped',
        lastExit: { reason: 'failed', at: new Date().toISOString(), message: messageOf(e) },
      });
    guestLog(
      name,
      `start failed: ${messageOf(e)}${failed.length ? `; cleanup failed: ${failed.join('; ')}` : ''}`,
    );
    throw e;
  }
}

/** A start's hold on lxcfs: asked for (its daemon may be starting), then held. */
interface LxcfsHold {
  leasing?: Promise<LxcfsLease>;
  lease?: LxcfsLease;
}

/**
 * The start itself, its state (`base`) written: everything made for the guest, its bundle, and
 * the guest created and started under its supervisor; its undo registered on `rev`. Returns
 * the guest's running state, recorded.
 */
async function launch(
  cfg: GuestConfig,
  rt: Runtime,
  storage: StorageDriver,
  base: GuestState,
  rev: Reverter,
  lxcfs: LxcfsHold,
  restore?: StartOptions['restore'],
): Promise<GuestState> {
  const { name } = cfg;
  const runDir = paths().guestRun(name);
  await runHostHook(cfg, 'pre-start', storage.treePath(name));
  const fstab = loadFstab(name);
  requireBindSources(name, fstab);
  const idmap = guestIdRange(cfg);
  // lxcfs (when no guest runs yet, its daemon starts) meanwhile.
  (lxcfs.leasing = acquireLxcfs()).catch(() => {});
  // (ns: its namespaces' files, and its fstab as the spec takes it)
  const { mounted, net, ...ns } = await prepareFor(cfg, storage, idmap, rev, fstab, !!restore);
  const { root: rootfs, hostView, hostShift } = mounted;
  const signal = haltSignal(cfg, () => detectInit(hostView));
  const limits = limitSpecInput(cfg);
  const lease = (lxcfs.lease = await lxcfs.leasing);
  trace('start: lxcfs');
  if (lease.note) guestLog(name, lease.note);
  rt.prepareCgroups();
  const spec = writeBundle(runDir, {
    cfg,
    rootfs,
    cgroupsPath: rt.cgroupsPath(name),
    ...ns,
    ...(idmap ? { idmap } : {}),
    ...limits,
    ...(lease.dir === undefined ? {} : { lxcfs: lease.dir }),
    sysinfoListener: join(runDir, 'seccomp.sock'),
    ...(rt.name === 'runc' ? { criuConfig: criuConfigFile(name) } : {}),
  });
  if (net) writeRestoreBundle(cfg, runDir, spec, net);
  trace('start: bundle written');
  // The supervisor is recorded as soon as it exists: if this process dies during the start,
  // whoever settles the guest next waits for it and rolls the start back (finalizeLocked).
  const shim = await rt.start({
    ...(restore ? { restore } : {}),
    id: name,
    instance: base.instance as string,
    runDir,
    cgroupsPath: spec.linux.cgroupsPath,
    logFile: guestLogFile(name),
    onSpawned: (shimPid) => {
      const shimStart = readProcStat(shimPid)?.starttime;
      writeState(name, { ...base, shimPid, ...(shimStart !== undefined ? { shimStart } : {}) });
      trace('start: supervisor spawned');
      // From here on a container may come to exist, even when the supervisor dies: its runtime
      // goes on creating it alone. A failed start waits for that runtime, then deletes it.
      rev.add('delete the container', async () => {
        await waitRuntimeDone(runDir);
        await rt.delete(name);
      });
    },
  });
  trace('start: guest running');
  await net?.finish();
  const pidStart = readProcStat(shim.initPid)?.starttime;
  const shimStart = readProcStat(shim.shimPid)?.starttime;
  const st: GuestState = {
    ...base,
    pid: shim.initPid,
    shimPid: shim.shimPid,
    haltSignal: signal,
    hostView,
    ...(hostShift !== undefined ? { hostShift } : {}),
    cgroupsPath: spec.linux.cgroupsPath,
  };
  if (pidStart !== undefined) st.pidStart = pidStart;
  if (shimStart !== undefined) st.shimStart = shimStart;
  st.status = 'running';
  st.startedAt = new Date().toISOString();
  writeState(name, st);
  return st;
}

/** Undo everything a start made; idempotent. The caller holds the guest lock. */
async function finalizeLocked(cfg: GuestConfig, st: GuestState, exit: ExitInfo): Promise<void> {
  const { name } = cfg;
  const problems: string[] = [];
  const rt = selectRuntime(st.runtime ?? cfg.runtime);
  if (st.status === 'starting') await waitSupervisorSettled(paths().guestRun(name), st.shimPid, st.shimStart);
  await rt.delete(name).catch((e: unknown) => problems.push(messageOf(e)));
  try {
    unmountBinds(name);
  } catch (e) {
    problems.push(messageOf(e));
  }
  problems.push(...(await removeLeftSupervisorCgroups(name, st.shimPid, st.shimStart)));
  trace('stop: runtime deleted');
  await networkDown(cfg).catch((e: unknown) => problems.push(messageOf(e)));
  trace('stop: network removed');
  await removeUserns(name).catch((e: unknown) => problems.push(messageOf(e)));
  fs.rmSync(criuDir(name), { recursive: true, force: true }); // (a live move's, if any)
  const storage = await storageDriver(cfg.storage.driver);
  await storage.unmount(cfg).catch((e: unknown) => problems.push(messageOf(e)));
  trace('stop: user namespace and root unmounted');
  await runHostHook(cfg, 'post-stop', storage.treePath(name), { JAULA_EXIT_REASON: exit.reason }).catch(
    (e: unknown) => problems.push(messageOf(e)),
  );
  // Stopped on purpose (jaula stop, or a halt inside): a reboot of the host must not start it.
  if (exit.reason === 'stopped' || exit.reason === 'halt') clearRunning(name);
  const next: GuestState = { status: 'stopped', lastExit: exit, restarts: st.restarts ?? 0 };
  if (st.instance) next.instance = st.instance;
  writeState(name, next);
  trace('stop: state written');
  if (exit.reason !== 'reboot') {
    const p = await stopLxcfsIfIdle();
    if (p) problems.push(p);
  }
  trace('stop: lxcfs checked');
  guestLog(
    name,
    `stopped: ${exit.reason}${exit.code !== undefined ? ` (status ${exit.code})` : ''}${exit.signal !== undefined ? ` (signal ${exit.signal})` : ''}${problems.length ? `; cleanup problems: ${problems.join('; ')}` : ''}`,
  );
}

/**
 * Finish what a guest's exit left undone (its exit handler not run yet, or lost in a crash).
 * The caller holds the guest lock.
 */
export async function settleLocked(cfg: GuestConfig): Promise<'settled' | 'rolled-back' | undefined> {
  const st = readState(cfg.name);
  if (st.status === 'stopped' || initAlive(st)) return undefined;
  await finalizeLocked(cfg, st, exitInfoFor(cfg.name, st));
  return st.status === 'starting' ? 'rolled-back' : 'settled';
}

/**
 * A stop interrupted while it waited for the guest to halt (the guest lock is free, the state
 * says stopping, the init still runs): do it again. The caller holds the guest lock.
 */
export async function completeStopLocked(cfg: GuestConfig): Promise<boolean> {
  const st = readState(cfg.name);
  if (st.status !== 'stopping' || !initAlive(st)) return false;
  await stopLocked(cfg, {});
  return true;
}

/** A guest rebooting more often than this within REBOOT_WINDOW_MS is left stopped. */
const MAX_QUICK_REBOOTS = 5;
const REBOOT_WINDOW_MS = 60_000;

/**
 * Run by the supervisor once the guest's init ended (`jaula __exited NAME INSTANCE`): record
 * why, clean up, and start the guest again after a reboot from inside.
 */
export async function onGuestExited(name: string, instance: string): Promise<void> {
  // Deleted meanwhile (delete --force stops and cleans up itself): nothing to do, nothing to create.
  if (!fs.existsSync(paths().guestConf(name))) return;
  await withGuestLock(name, async () => {
    const st = readState(name);
    if (st.instance !== instance || st.status === 'stopped') return; // someone else finalized it
    const cfg = loadConfigForStop(name);
    const exit = exitInfoFor(name, st);
    await finalizeLocked(cfg, st, exit);
    if (exit.reason === 'reboot') {
      const quick = st.startedAt && Date.now() - Date.parse(st.startedAt) < REBOOT_WINDOW_MS;
      if (quick && (st.restarts ?? 0) >= MAX_QUICK_REBOOTS) {
        guestLog(name, `not restarted: ${MAX_QUICK_REBOOTS} reboots within ${REBOOT_WINDOW_MS / 1000} s`);
        return;
      }
      await startLocked(cfg, { reboot: true });
    }
  });
}

export interface StopOptions {
  /** Seconds to wait for a clean halt before killing (default: the guest's stop_timeout). */
  timeout?: number;
  /** Kill at once, without asking init to halt. */
  kill?: boolean;
}

async function waitGone(pid: number, start: number | undefined, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  // (a killed guest's init is gone within a few ms: looked at after 1, 2, 4... ms, a /proc read
  // each, not first after 5)
  let delay = 1;
  while (isSameProcess(pid, start)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 20);
  }
  return true;
}

export async function stopGuest(name: string, opts: StopOptions = {}): Promise<ExitInfo> {
  return withGuestLock(name, () => stopLocked(loadConfigForStop(name), opts));
}

/** Stop a guest with this config (delete --force of a broken guest: see core/delete.ts). */
export async function stopWithConfig(cfg: GuestConfig, opts: StopOptions = {}): Promise<ExitInfo> {
  return withGuestLock(cfg.name, () => stopLocked(cfg, opts));
}

async function stopLocked(cfg: GuestConfig, opts: StopOptions): Promise<ExitInfo> {
  const { name } = cfg;
  trace('stop: locked');
  const st = readState(name);
  if (!initAlive(st)) {
    if (st.status !== 'stopped') await finalizeLocked(cfg, st, exitInfoFor(name, st));
    clearRunning(name); // (it ended by itself before: now the administrator wants it stopped)
    throw new JaulaError('state', `Guest "${name}" is not running`);
  }
  const pid = st.pid as number;
  if (!opts.kill) await runGuestHook(cfg, 'stop');
  writeState(name, { ...st, status: 'stopping', stopRequested: true });
  fs.writeFileSync(join(paths().guestRun(name), STOPPING), '');
  const timeoutMs = (opts.timeout ?? cfg.stopTimeout) * 1000;
  let killed = !!opts.kill;
  if (!opts.kill) signalInit(pid, st.haltSignal ?? 15);
  if (opts.kill || !(await waitGone(pid, st.pidStart, timeoutMs))) {
    killed = true;
    signalInit(pid, 'SIGKILL'); // ends every process of the guest's PID namespace
    if (!(await waitGone(pid, st.pidStart, 10_000))) {
      fs.rmSync(join(paths().guestRun(name), STOPPING), { force: true }); // (its end, whenever: recorded as ever)
      throw new JaulaError('timeout', `Guest "${name}" (pid ${pid}) did not end even after SIGKILL`);
    }
  }
  trace('stop: init gone');
  // The supervisor writes the exit record right after it reaps the init and leaves its cgroups
  // (on v1 that waits for a grace period of RCU: 9 ms here); looked for every millisecond for the
  // first 20, then every 5.
  const since = Date.now();
  while (
    readExitRecord(name)?.pid !== pid &&
    isSameProcess(st.shimPid, st.shimStart) &&
    Date.now() < since + 2000
  )
    await new Promise((r) => setTimeout(r, Date.now() - since < 20 ? 1 : 5));
  const exit = exitInfoFor(name, { ...st, stopRequested: true });
  if (killed)
    exit.message = opts.kill ? 'killed on request' : `killed after ${timeoutMs / 1000} s without halting`;
  trace('stop: exit recorded');
  await finalizeLocked(cfg, { ...st, stopRequested: true }, exit);
  trace('stop: cleaned up');
  return exit;
}

export async function restartGuest(name: string, opts: StopOptions = {}): Promise<GuestState> {
  return withGuestLock(name, async () => {
    const cfg = loadConfig(name);
    if (initAlive(readState(name))) await stopLocked(cfg, opts);
    return startLocked(cfg, {});
  });
}
