import { JaulaError, messageOf } from '../common/errors.js';
import type { GuestConfig } from './config.js';
import { startGuest, stopGuest } from './lifecycle.js';
import { initAlive, readState } from './state.js';
import { loadAllConfigs } from './store.js';

/**
 * Order guests so that each comes after the guests it depends on (Kahn's algorithm), in
 * waves: the guests of one wave do not depend on each other and may start in parallel.
 * Dependencies outside `selected` are pulled in; a cycle or a missing guest is an error.
 */
export function dependencyWaves(selected: string[], all: Map<string, GuestConfig>): string[][] {
  const need = new Set<string>();
  const visit = (n: string, from?: string): void => {
    if (need.has(n)) return;
    const c = all.get(n);
    if (!c) throw new JaulaError('not_found', `Guest "${from}" depends on "${n}", which does not exist`);
    need.add(n);
    for (const d of c.depends) visit(d, n);
  };
  for (const n of selected) visit(n);
  const waves: string[][] = [];
  const done = new Set<string>();
  while (done.size < need.size) {
    const wave = [...need]
      .filter((n) => !done.has(n) && (all.get(n)?.depends ?? []).every((d) => done.has(d)))
      .sort();
    if (wave.length === 0) {
      const left = [...need].filter((n) => !done.has(n));
      throw new JaulaError(
        'invalid',
        `The dependencies of guests ${left.map((n) => `"${n}"`).join(', ')} form a cycle`,
      );
    }
    for (const n of wave) done.add(n);
    waves.push(wave);
  }
  return waves;
}

export interface BulkResult {
  name: string;
  ok: boolean;
  message: string;
}

async function inParallel<T>(items: T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const x = items[next++] as T;
      await fn(x);
    }
  });
  await Promise.all(workers);
}

/** Start all guests with the mark (and what they depend on), dependencies first. */
export async function autostart(mark = 'default', parallel = 4): Promise<BulkResult[]> {
  const all = new Map(loadAllConfigs().map((c) => [c.name, c]));
  const selected = [...all.values()].filter((c) => c.marks.includes(mark)).map((c) => c.name);
  const results: BulkResult[] = [];
  const failed = new Set<string>();
  for (const wave of dependencyWaves(selected, all)) {
    await inParallel(wave, parallel, async (name) => {
      const deps = all.get(name)?.depends.filter((d) => failed.has(d)) ?? [];
      if (deps.length) {
        failed.add(name);
        results.push({
          name,
          ok: false,
          message: `not started: depends on ${deps.join(', ')}, which failed`,
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
