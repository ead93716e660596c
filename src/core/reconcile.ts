/**
 * Reconcile, don't trust: run when jaulad starts (after a crash, a kill -9 or a host reboot).
 * Guests keep running without jaulad (their supervisors are independent); what may be wrong is
 * the stored state and what interrupted operations left behind. Under each guest's lock:
 *   - a guest whose init ended meanwhile is settled (stopped, with the reason);
 *   - a start that was interrupted (state "starting", the lock free) is rolled back;
 *   - a stop that was interrupted (state "stopping", the init alive) is completed;
 *   - leftovers of a guest that does not run are removed: runtime state, mounts under the run
 *     directory (user namespace, network namespace, idmapped root), cgroup directories, network
 *     devices and firewall elements.
 * And for the whole instance: half-built (or half-cloned) guests are removed, so is what
 * interrupted template saves, imports and exports left (temporary trees and archives) and
 * hashify's scratch; runtime state, run directories and cgroups of guests jaula does not know
 * are removed, network leftovers are collected, and after a host reboot (a boot_id other than
 * the one recorded at jaula's first run or jaulad's last start) the guests marked "default" that
 * ran when the host went down are started, dependencies first: never a guest that was stopped
 * on purpose (see guest/state.ts, runningMarks).
 */
import { stopLxcfsIfIdle } from './lxcfs.js';
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { ReconcileReport } from '../api/types.js';
import { cgroupParents } from '../cgroups/parents.js';
import { messageOf } from '../common/errors.js';
import { inParallel } from '../common/waves.js';
import { networkGc } from './networks.js';
import { netnsPath, networkDown } from '../network/apply.js';
import { readFileOr, removeTree } from '../os/fs.js';
import { withLock } from '../os/lock.js';
import { mountsBelow, unmount } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import { bootId } from '../os/proc.js';
import { runtimeHasContainer, selectRuntime } from '../runtime/driver.js';
import { removeUserns, usernsPath } from '../runtime/userns.js';
import { storageDriver } from '../storage/index.js';
import { cleanScratch } from '../storage/unifyapply.js';
import { cleanTemplateLeftovers } from './template-leftovers.js';
import { autostart } from './autostart.js';
import { removeStaleBuilds } from './build.js';
import { finishRenames } from './rename.js';
import { completeStopLocked, settleLocked } from './lifecycle.js';
import { withGuestLock } from '../guest/locks.js';
import { guestLog } from '../guest/log.js';
import {
  clearRunning,
  liveStatus,
  listRunDirs,
  readState,
  recordBootId,
  recordedBootId,
  runningMarks,
} from '../guest/state.js';
import { hasBuildingMark, listGuestNames, loadConfigForStop } from '../guest/store.js';

export function emptyReport(): ReconcileReport {
  return {
    at: new Date().toISOString(),
    hostRebooted: false,
    settled: [],
    rolledBack: [],
    completedStops: [],
    staleBuilds: [],
    mounts: [],
    runtimeStates: [],
    cgroups: [],
    network: [],
    storage: [],
    autostarted: [],
    problems: [],
  };
}

/** Remove a guest's cgroup directories that no process uses any more. */
function removeCgroups(name: string, parents: string[]): string[] {
  const removed: string[] = [];
  for (const p of parents) {
    const d = join(p, name);
    if (!fs.existsSync(d)) continue;
    const procs = readFileOr(join(d, 'cgroup.procs'), '').trim();
    if (procs) continue;
    try {
      // Sub-cgroups first (a runtime may make some), deepest first.
      const subs = fs
        .readdirSync(d, { withFileTypes: true, recursive: true })
        .filter((e) => e.isDirectory())
        .map((e) => join(e.parentPath ?? e.path, e.name))
        .sort((a, b) => b.length - a.length);
      for (const s of subs) fs.rmdirSync(s);
      fs.rmdirSync(d);
      removed.push(d);
    } catch {
      /* busy: left for the next reconcile */
    }
  }
  return removed;
}

async function unmountAll(points: string[]): Promise<string[]> {
  const done: string[] = [];
  for (const p of points.sort((a, b) => b.length - a.length)) {
    try {
      if (unmount(p)) done.push(p);
    } catch {
      /* left for the next reconcile */
    }
  }
  return done;
}

/** A guest that does not run: remove whatever a crash left of its last run. */
async function removeGuestLeftovers(name: string, report: ReconcileReport, parents: string[]): Promise<void> {
  if (runtimeHasContainer(name)) {
    await selectRuntime().delete(name);
    report.runtimeStates.push(name);
  }
  const mounts = [
    ...mountsBelow(paths().guestRun(name)),
    ...mountsBelow(usernsPath(name)),
    ...mountsBelow(netnsPath(name)),
  ];
  if (mounts.length) report.mounts.push(...(await unmountAll(mounts)));
  if (fs.existsSync(usernsPath(name))) await removeUserns(name);
  report.cgroups.push(...removeCgroups(name, parents));
}

export interface ReconcileOptions {
  /** Start the guests marked "default" after a host reboot (default true). */
  autostart?: boolean;
  parallel?: number;
}

/** Settle each known guest under its lock; returns those whose stop must be completed. */
async function settleGuests(
  names: string[],
  parallel: number,
  report: ReconcileReport,
  parents: string[],
): Promise<string[]> {
  const stopping: string[] = [];
  await inParallel(names, parallel, async (name) => {
    try {
      await withGuestLock(name, async () => {
        const cfg = loadConfigForStop(name);
        const r = await settleLocked(cfg);
        if (r === 'settled') report.settled.push(name);
        if (r === 'rolled-back') {
          report.rolledBack.push(name);
          guestLog(name, 'jaulad: an interrupted start was rolled back');
        }
        const st = readState(name);
        const live = liveStatus(st);
        if (st.status === 'stopping' && live !== 'stopped') stopping.push(name);
        if (live === 'stopped') {
          await removeGuestLeftovers(name, report, parents);
          // Network devices and firewall elements (idempotent; nothing to do in most cases).
          if (cfg.interfaces.length) await networkDown(cfg).catch(() => {});
          await (await storageDriver(cfg.storage.driver)).unmount(cfg).catch(() => {});
        }
      });
    } catch (e) {
      report.problems.push(`${name}: ${messageOf(e)}`);
    }
  });
  return stopping;
}

/** Run directories, runtime state and cgroups of guests jaula does not know (deleted halfway). */
async function removeUnknownLeftovers(
  known: Set<string>,
  report: ReconcileReport,
  parents: string[],
): Promise<void> {
  const building = (n: string): boolean => hasBuildingMark(n);
  for (const n of listRunDirs()) {
    if (known.has(n) || building(n)) continue;
    await removeGuestLeftovers(n, report, parents);
    removeTree(paths().guestRun(n));
    report.runtimeStates.push(`run dir ${n}`);
  }
  try {
    for (const id of fs.readdirSync(paths().runtimeRoot))
      if (!known.has(id) && !building(id) && runtimeHasContainer(id)) {
        await selectRuntime()
          .delete(id)
          .catch((e: unknown) => report.problems.push(messageOf(e)));
        report.runtimeStates.push(id);
      }
  } catch {
    /* no runtime state at all */
  }
  for (const p of parents) {
    // A parent found under another program's passing mount of a hierarchy (CRIU's cgroup
    // yard, for one) may be gone by now: it is no reason to fail.
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(p, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries)
      if (e.isDirectory() && !known.has(e.name) && !building(e.name))
        report.cgroups.push(...removeCgroups(e.name, [p]));
  }
}

/**
 * Phase one, before jaulad serves requests: settle every guest and remove leftovers. Returns
 * the report and the guests whose stop must be completed (phase two).
 */
export async function reconcileState(opts: ReconcileOptions = {}): Promise<{
  report: ReconcileReport;
  stopping: string[];
  /** After a host reboot: the guests that ran when it went down (for reconcileFinish). */
  ranBefore: string[];
}> {
  const report = emptyReport();
  const now = bootId();
  // No boot recorded yet: jaula's first run here, not a reboot (nothing is started).
  const before = recordedBootId();
  report.hostRebooted = before !== undefined && before !== now;
  // Guests marked as running in an earlier boot: after this reboot, candidates for a start;
  // without a reboot, left over from one already handled (or skipped): cleared.
  const ranBefore = [...runningMarks()].filter(([, b]) => b !== now).map(([n]) => n);
  if (!report.hostRebooted) for (const n of ranBefore.splice(0)) clearRunning(n);
  report.staleBuilds = await withLock(paths().locks, 'build', 'Building guests', async () => {
    // A rename interrupted halfway is finished first: its run directory must not look unknown.
    report.problems.push(...finishRenames().map((r) => `finished an interrupted rename: ${r}`));
    return removeStaleBuilds();
  });
  // Interrupted template saves, imports, exports and deletes; hashify's scratch of a dead run.
  try {
    report.storage = await withLock(paths().locks, 'templates', 'The template store', async () =>
      cleanTemplateLeftovers(),
    );
    await withLock(paths().locks, 'hashify', 'hashify', async () => cleanScratch());
  } catch (e) {
    report.problems.push(`storage: ${messageOf(e)}`);
  }
  const parents = cgroupParents();
  const names = listGuestNames();
  const stopping = await settleGuests(names, opts.parallel ?? 8, report, parents);
  await removeUnknownLeftovers(new Set(names), report, parents);
  try {
    report.network = await networkGc();
  } catch (e) {
    report.problems.push(`network: ${messageOf(e)}`);
  }
  // An lxcfs the instance started for a start that was rolled back, with no guest left to use it.
  const lx = await stopLxcfsIfIdle();
  if (lx) report.problems.push(lx);
  recordBootId();
  return { report, stopping, ranBefore };
}

/**
 * Phase two, while jaulad already serves: complete interrupted stops; after a reboot, start the
 * guests marked "default" of those that ran when the host went down (`ranBefore`).
 */
export async function reconcileFinish(
  report: ReconcileReport,
  stopping: string[],
  opts: ReconcileOptions & { ranBefore?: string[] } = {},
): Promise<ReconcileReport> {
  await inParallel(stopping, opts.parallel ?? 8, async (name) => {
    try {
      const done = await withGuestLock(name, () => completeStopLocked(loadConfigForStop(name)));
      if (done) report.completedStops.push(name);
    } catch (e) {
      report.problems.push(`${name}: ${messageOf(e)}`);
    }
  });
  const ranBefore = new Set(opts.ranBefore ?? []);
  if (report.hostRebooted && opts.autostart !== false && ranBefore.size) {
    try {
      for (const r of await autostart('default', opts.parallel ?? 4, (n) => ranBefore.has(n))) {
        if (r.ok && r.message === 'started') report.autostarted.push(r.name);
        if (!r.ok) report.problems.push(`${r.name}: ${r.message}`);
      }
    } catch (e) {
      report.problems.push(`autostart: ${messageOf(e)}`);
    }
  }
  // The marks of the boot that ended are spent (a guest started now has a new one).
  const now = bootId();
  for (const [n, b] of runningMarks()) if (ranBefore.has(n) && b !== now) clearRunning(n);
  // Stops completed here may have ended the instance's last guest.
  const lx = await stopLxcfsIfIdle();
  if (lx) report.problems.push(lx);
  report.at = new Date().toISOString();
  return report;
}
