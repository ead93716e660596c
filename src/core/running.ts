import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { paths } from '../os/paths.js';
import { vol } from '../storage/vol.js';
import { selectRuntime, type Runtime } from '../runtime/driver.js';
import { storageDriver, type StorageDriver } from '../storage/index.js';
import type { GuestConfig } from '../guest/config.js';
import { withGuestLock } from '../guest/locks.js';
import { initAlive, liveStatus, readState, type GuestState } from '../guest/state.js';
import { loadConfig } from '../guest/store.js';

/** The guest must be running; returns its state and runtime. */
export function requireRunning(name: string): { cfg: GuestConfig; st: GuestState; rt: Runtime } {
  const cfg = loadConfig(name);
  const st = readState(name);
  if (liveStatus(st) !== 'running')
    throw new JaulaError('state', `Guest "${name}" is not running (start it with "jaula start ${name}")`);
  return { cfg, st, rt: selectRuntime(st.runtime ?? cfg.runtime) };
}

/**
 * A guest's own files must be where its config says (they may have been moved or deleted by
 * hand): refused with what is missing and what to do, before anything is made for it.
 */
export function requireGuestFiles(cfg: GuestConfig, driver: StorageDriver): void {
  if (vol.hasImage(cfg.name)) return; // its files are in its image (mounted when used)
  const tree = driver.treePath(cfg.name);
  if (fs.existsSync(tree)) return;
  const data = paths().guestData(cfg.name);
  throw new JaulaError(
    'not_found',
    `Guest "${cfg.name}" has no files: ${fs.existsSync(data) ? `"${tree}" is missing` : `its directory "${data}" is missing`} (moved or deleted?). Put them back, or remove the guest with "jaula delete ${cfg.name}"`,
  );
}

/**
 * Run `fn` on a stopped guest, holding its lock (it cannot start meanwhile). `why` ends the
 * refusal for a running guest: "so that its files do not change while they are copied".
 */
export async function withStoppedGuest<T>(
  name: string,
  why: string,
  fn: (cfg: GuestConfig, driver: StorageDriver) => Promise<T>,
): Promise<T> {
  return withGuestLock(name, async () => {
    const cfg = loadConfig(name);
    if (initAlive(readState(name)))
      throw new JaulaError('state', `Guest "${name}" is running: stop it first, ${why}`);
    const driver = await storageDriver(cfg.storage.driver);
    requireGuestFiles(cfg, driver);
    return fn(cfg, driver);
  });
}
