import { JaulaError } from './errors.js';

/**
 * Order guests so that each comes after the guests it depends on (Kahn's algorithm), in
 * waves: the guests of one wave do not depend on each other and may start in parallel.
 * Dependencies outside `selected` are pulled in; a cycle or a missing guest is an error.
 */
export function dependencyWaves(selected: string[], all: Map<string, { depends: string[] }>): string[][] {
  const need = new Set<string>();
  const visit = (n: string, from?: string): void => {
    if (need.has(n)) return;
    const c = all.get(n);
    if (!c)
      throw new JaulaError(
        'not_found',
        from ? `Guest "${from}" depends on "${n}", which does not exist` : `There is no guest "${n}"`,
      );
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

/** Run fn over items, at most `limit` at a time, in order of the items. */
export async function inParallel<T>(items: T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const x = items[next++] as T;
      await fn(x);
    }
  });
  await Promise.all(workers);
}
