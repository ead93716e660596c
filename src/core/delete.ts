import { JaulaError } from '../common/errors.js';
import { removeTree } from '../os/fs.js';
import { mountsBelow } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import { trace } from '../os/trace.js';
import { storageDriver, storageNames } from '../storage/index.js';
import { qgroupPool } from '../storage/pool.js';
import { dropEmptyGroups } from '../storage/qgroup.js';
import type { GuestConfig } from '../guest/config.js';
import { settleLocked, stopWithConfig } from './lifecycle.js';
import { withGuestLock } from '../guest/locks.js';
import { guestLog, guestLogFile } from '../guest/log.js';
import { clearRunning, initAlive, readState } from '../guest/state.js';
import { releaseInFleet } from './fleet-guard.js';
import { removeHaState } from './ha/replicate.js';
import { removeCriuFiles } from './migrate/live.js';
import { loadConfigForStop, readGuest, type BrokenGuest } from '../guest/store.js';

export interface DeleteOptions {
  force?: boolean;
  /** In a fleet: leave its reservations (a moved guest whose owner record could not be given back). */
  keepFleet?: boolean;
}

/**
 * What a broken guest (its config does not load) is deleted with: the config it was started
 * with if it has one, else what could be read of it; its storage driver, if known, else every
 * driver's removal (each is idempotent and removes only what that driver makes for the name).
 */
function brokenConfig(b: BrokenGuest): { cfg: GuestConfig; drivers: string[] } {
  try {
    const cfg = loadConfigForStop(b.name);
    return { cfg, drivers: [cfg.storage.driver] };
  } catch {
    /* no copy of a started config: what could be read */
  }
  const known = b.partial.driver !== undefined && storageNames().includes(b.partial.driver);
  const cfg: GuestConfig = {
    name: b.name,
    context: b.partial.context ?? 0,
    hostname: b.partial.hostname ?? b.name,
    initstyle: 'plain',
    cmd: [],
    marks: [],
    depends: [],
    runtime: 'auto',
    privileged: b.partial.privileged ?? false,
    profile: 'default',
    stopTimeout: 0,
    storage: { driver: known ? (b.partial.driver as string) : 'dir' },
    interfaces: [],
    forwards: [],
    build: { method: 'unknown', args: [], created: '' },
  };
  return { cfg, drivers: known ? [cfg.storage.driver] : storageNames() };
}

/**
 * Delete a guest: config, data, runtime state and log. A running guest needs --force, and so
 * does a broken one (its config does not load: what it is made of is partly guessed).
 */
export async function deleteGuest(name: string, opts: DeleteOptions = {}): Promise<void> {
  const g = readGuest(name);
  if ('broken' in g && !opts.force)
    throw new JaulaError(
      'state',
      `Cannot delete guest "${name}": its config is broken (${g.broken.reason}). Fix it, or delete the guest anyway, with all its files: "jaula delete --force ${name}"`,
      { details: { broken: true } },
    );
  const { cfg, drivers } =
    'cfg' in g ? { cfg: g.cfg, drivers: [g.cfg.storage.driver] } : brokenConfig(g.broken);
  if (initAlive(readState(name))) {
    if (!opts.force)
      throw new JaulaError(
        'state',
        `Cannot delete guest "${name}": it is running (stop it first, or use --force)`,
      );
    await stopWithConfig(cfg, { kill: true });
  }
  await withGuestLock(name, async () => {
    trace('delete: locked');
    await settleLocked(cfg);
    if (initAlive(readState(name)))
      throw new JaulaError('state', `Cannot delete guest "${name}": it was started again meanwhile`);
    for (const d of drivers)
      await (await storageDriver(d)).unmount({ ...cfg, storage: { ...cfg.storage, driver: d } });
    trace('delete: settled, unmounted');
    const left = mountsBelow(paths().guestData(name));
    if (left.length && !opts.force)
      throw new JaulaError(
        'state',
        `Cannot delete guest "${name}": something is still mounted in its tree (${left.join(', ')}); unmount it or use --force`,
      );
    const { removeAllSnapshots } = await import('./snapshots.js');
    for (const d of drivers) {
      const driver = await storageDriver(d);
      await removeAllSnapshots(name, driver); // (read-only subvolumes: rm cannot remove them)
      await driver.destroy(name);
    }
    if (qgroupPool()) await dropEmptyGroups();
    trace('delete: data removed');
    removeTree(paths().guestConf(name));
    removeTree(paths().guestRun(name));
    removeCriuFiles(name); // (a live move's leftovers, if any: its memory image)
    removeHaState(name);
    clearRunning(name);
    guestLog(name, 'deleted');
    removeTree(guestLogFile(name));
    if (!opts.keepFleet)
      await releaseInFleet(cfg).catch((e: unknown) => {
        throw new JaulaError(
          'runtime',
          `Guest "${name}" is deleted, but the fleet keeps its name and addresses reserved: ${(e as Error).message}`,
        );
      });
    trace('delete: done');
  });
}
