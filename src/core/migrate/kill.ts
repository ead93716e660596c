/**
 * The end of a sync move's guest on the source: frozen after the last pass, it is killed (its
 * state is on the target already and its processes are about to be replaced there). Once none
 * of its processes runs and its interfaces are down (announce.ts silenceGuest), it can answer
 * no neighbour, and its clean-up here (runtime, mounts, network, lxcfs) is held back behind its
 * lock until the target has answered: it takes no time (nor, on one machine, CPU) from the
 * target's start, and no network change here meets the commit's connection.
 */
import { isJaulaError } from '../../common/errors.js';
import type { GuestConfig } from '../../guest/config.js';
import { withGuestLock } from '../../guest/locks.js';
import { initAlive, readState } from '../../guest/state.js';
import { silenceGuest } from './announce.js';
import type { Freezer } from './freeze.js';

/** The guest's lock, held until the function returned is called (and awaited). */
export async function holdLock(name: string): Promise<() => Promise<void>> {
  let release = (): void => {};
  const held = new Promise<void>((r) => (release = r));
  let acquired = (): void => {};
  const got = new Promise<void>((r) => (acquired = r));
  const done = withGuestLock(name, async () => {
    acquired();
    await held;
  });
  await Promise.race([got, done]);
  return async () => {
    release();
    await done;
  };
}

/** Stop a guest whose processes were killed (its end may already be recorded by its supervisor). */
export async function stopKilled(cfg: GuestConfig): Promise<void> {
  const { stopGuest } = await import('../lifecycle.js');
  await stopGuest(cfg.name, { kill: true }).catch((e: unknown) => {
    if (!isJaulaError(e) || e.code !== 'state' || initAlive(readState(cfg.name))) throw e;
  });
}

/**
 * Kill the frozen guest (`killed` is called once it is), and return its clean-up (which gives
 * its time in ms), or undefined when it could not be silenced and was stopped at once.
 */
export async function killFrozen(
  cfg: GuestConfig,
  f: Freezer,
  killed: () => void,
): Promise<(() => Promise<number>) | undefined> {
  const unlock = await holdLock(cfg.name);
  try {
    f.killAll();
    f.thaw();
    killed();
    if ((await f.emptied(10_000)) && (await silenceGuest(cfg)))
      return async () => {
        await unlock();
        const t = performance.now();
        await stopKilled(cfg);
        return Math.round(performance.now() - t);
      };
  } catch (e) {
    await unlock();
    throw e;
  }
  await unlock();
  await stopKilled(cfg);
  return undefined;
}
