import { messageOf } from '../common/errors.js';
import { dependencyWaves, inParallel } from '../common/waves.js';
import type { GuestConfig } from '../guest/config.js';
import { startGuest, stopGuest } from './lifecycle.js';
import { initAlive, readState } from '../guest/state.js';
import { loadAllConfigs, loadGuests } from '../guest/store.js';

export { dependencyWaves } from '../common/waves.js';

export interface BulkResult {
  name: string;
  ok: boolean;
  message: string;
}

/**
 * Start all guests with the mark (and what they depend on), dependencies first; `only`, if
 * given, narrows the marked guests (the reboot's: those that ran when the host went down). A
 * broken guest (its config does not load) with the mark, or whose marks cannot be read, is
 * reported as failed, and so are the guests that depend on it.
 */
export async function autostart(
  mark = 'default',
  parallel = 4,
  only: (name: string) => boolean = () => true,
): Promise<BulkResult[]> {
  const { configs, broken } = loadGuests();
  const all = new Map<string, { depends: string[] }>(configs.map((c) => [c.name, c]));
  const brokenByName = new Map(broken.map((b) => [b.name, b]));
  for (const b of broken) all.set(b.name, { depends: b.partial.depends ?? [] });
  const selected = [
    ...configs.filter((c) => c.marks.includes(mark)).map((c) => c.name),
    ...broken.filter((b) => b.partial.marks?.includes(mark) ?? true).map((b) => b.name),
  ].filter(only);
  const results: BulkResult[] = [];
  const failed = new Set<string>();
  for (const wave of dependencyWaves(selected, all)) {
    await inParallel(wave, parallel, async (name) => {
      const deps = all.get(name)?.depends.filter((d) => failed.has(d)) ?? [];
      const b = brokenByName.get(name);
      if (deps.length || b) {
        failed.add(name);
        results.push({
          name,
          ok: false,
          message: b ? b.error.message : `not started: depends on ${deps.join(', ')}, which failed`,
        });
        return;
      }
      if (initAlive(readState(name))) {
        results.push({ name, ok: true, message: 'already running' });
        return;
      }
      try {
        await startGuest(name);
        results.push({ name, ok: true, message: 'started' });
      } catch (e) {
        failed.add(name);
        results.push({ name, ok: false, message: messageOf(e) });
      }
    });
  }
  return results;
}

/** Stop guests in reverse dependency order (a guest stops before the guests it depends on). */
export async function stopMany(
  names: string[] | 'all',
  opts: { timeout?: number; kill?: boolean } = {},
  parallel = 4,
): Promise<BulkResult[]> {
  const all = new Map(loadAllConfigs().map((c) => [c.name, c]));
  const chosen = names === 'all' ? [...all.keys()] : names;
  const running = new Set(chosen.filter((n) => initAlive(readState(n))));
  // Waves over the running set only, dependents first.
  const sub = new Map(
    [...running].map((n) => [
      n,
      { ...(all.get(n) as GuestConfig), depends: (all.get(n)?.depends ?? []).filter((d) => running.has(d)) },
    ]),
  );
  const waves = dependencyWaves([...running], sub).reverse();
  const results: BulkResult[] = [];
  for (const wave of waves) {
    await inParallel(wave, parallel, async (name) => {
      try {
        await stopGuest(name, opts);
        results.push({ name, ok: true, message: 'stopped' });
      } catch (e) {
        results.push({ name, ok: false, message: messageOf(e) });
      }
    });
  }
  return results;
}
