import { JaulaError } from '../common/errors.js';
import { selectRuntime, type Runtime } from '../runtime/oci.js';
import { storageDriver, type StorageDriver } from '../storage/index.js';
import type { GuestConfig } from './config.js';
import { withGuestLock } from './locks.js';
import { initAlive, liveStatus, readState, type GuestState } from './state.js';
import { loadConfig } from './store.js';

/** The guest must be running; returns its state and runtime. */
export function requireRunning(name: string): { cfg: GuestConfig; st: GuestState; rt: Runtime } {
  const cfg = loadConfig(name);
  const st = readState(name);
  if (liveStatus(st) !== 'running')
    throw new JaulaError('state', `Guest "${name}" is not running (start it with "jaula start ${name}")`);
  return { cfg, st, rt: selectRuntime(st.runtime ?? cfg.runtime) };
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
    return fn(cfg, await storageDriver(cfg.storage.driver));
  });
}
