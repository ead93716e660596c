/**
 * Bulk operations with selectors: `--all`, `--mark M` (repeatable) or several GUEST names (with
 * `--fleet` or `--host HOST`: among every host's guests, or that host's), run
 * through the Engine (so through jaulad when it runs) at most --parallel N at a time, with one
 * result row per guest. Starts go in dependency order (a guest after the guests it depends on),
 * stops in reverse order.
 */
import type { GuestSummary } from '../api/types.js';
import { JaulaError, messageOf } from '../common/errors.js';
import { dependencyWaves, inParallel } from '../common/waves.js';
import type { Engine } from '../api/engine.js';
import { bool, list, num, str, type Parsed } from './args.js';
import { formatOf, json, out } from './command.js';
import { table } from './table.js';

export const SELECTOR_SPECS = {
  all: { type: 'bool' as const },
  mark: { type: 'list' as const },
  fleet: { type: 'bool' as const },
  host: { type: 'string' as const },
  parallel: { type: 'number' as const },
  format: { type: 'string' as const },
};

export interface BulkRow {
  name: string;
  ok: boolean;
  message: string;
  /** exec: the command's exit status and output. */
  code?: number;
  stdout?: string;
  stderr?: string;
  /** exec: bytes of output past what was kept (1 MiB each), when any were dropped. */
  dropped?: { stdout: number; stderr: number };
}

/** Whether the command line selects several guests (--all, --mark, or more than one name). */
export function isBulk(p: Parsed): boolean {
  return (
    bool(p, 'all') ||
    list(p, 'mark').length > 0 ||
    p.positionals.length > 1 ||
    bool(p, 'fleet') ||
    str(p, 'host') !== undefined
  );
}

/**
 * Across the fleet (--fleet, or --host HOST: that host's): the guests every host published,
 * chosen by the same selectors; each operation goes to this host's jaulad, which forwards it to
 * the guest's host. Lost guests (their host gone) are left out. Dependencies are not followed
 * across hosts.
 */
async function selectFleet(e: Engine, p: Parsed, command: string): Promise<GuestSummary[]> {
  const host = str(p, 'host');
  const marks = list(p, 'mark');
  if (!bool(p, 'all') && !marks.length && !p.positionals.length)
    throw new JaulaError(
      'usage',
      `Give --all, --mark M or names with --fleet/--host (see "jaula ${command} --help")`,
    );
  const fleet = (await e.fleetGuests()).filter(
    (g) => g.state !== 'lost' && (host === undefined || g.host === host),
  );
  const names = new Set(fleet.map((g) => g.name));
  for (const n of p.positionals)
    if (!names.has(n))
      throw new JaulaError(
        'not_found',
        `The fleet has no guest "${n}"${host ? ` on host ${host}` : ''} (see "jaula list --fleet")`,
      );
  const picked = fleet
    .filter((g) => bool(p, 'all') || marks.some((m) => g.marks.includes(m)) || p.positionals.includes(g.name))
    .sort((a, b) => a.name.localeCompare(b.name));
  // Each as its host sees it now (the published state lags a renewal), through this jaulad.
  return Promise.all(
    picked.map(async (g) => ({
      ...(await e
        .getGuest({ name: g.name })
        .catch(() => ({ name: g.name, status: g.state, marks: g.marks }) as unknown as GuestSummary)),
      depends: [],
    })),
  );
}

/**
 * The guests the selectors name, in name order. Unknown names are an error. A broken guest
 * (its config does not load) is never passed over: it is part of --all, of the marks it shows,
 * and, when no mark of it can be read, of every --mark selection; the operation reports it.
 */
export async function selectGuests(e: Engine, p: Parsed, command: string): Promise<GuestSummary[]> {
  if (bool(p, 'fleet') || str(p, 'host') !== undefined) return selectFleet(e, p, command);
  const all = await e.listGuests({});
  const marks = list(p, 'mark');
  if (bool(p, 'all') && (marks.length || p.positionals.length))
    throw new JaulaError(
      'usage',
      `Give --all, or --mark and names, not both (see "jaula ${command} --help")`,
    );
  if (bool(p, 'all')) return all;
  const byName = new Map(all.map((g) => [g.name, g]));
  const chosen = new Map<string, GuestSummary>();
  for (const n of p.positionals) {
    const g = byName.get(n);
    if (!g) throw new JaulaError('not_found', `There is no guest "${n}" (see "jaula list")`);
    chosen.set(n, g);
  }
  for (const g of all)
    if (marks.some((m) => g.marks.includes(m)) || (marks.length && g.status === 'broken' && !g.marks.length))
      chosen.set(g.name, g);
  return [...chosen.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function parallelOf(p: Parsed): number {
  const n = num(p, 'parallel') ?? 8;
  if (!Number.isInteger(n) || n < 1)
    throw new JaulaError('usage', `--parallel takes a whole number >= 1, not ${n}`);
  return n;
}

/** Start guests (and what they depend on), dependencies first, wave by wave. */
export async function startMany(e: Engine, chosen: GuestSummary[], parallel: number): Promise<BulkRow[]> {
  const all = new Map((await e.listGuests({})).map((g) => [g.name, g]));
  // (another host's guests, chosen across the fleet: their dependencies are not followed)
  for (const g of chosen) if (!all.has(g.name)) all.set(g.name, g);
  const rows: BulkRow[] = [];
  const failed = new Set<string>();
  for (const wave of dependencyWaves(
    chosen.map((g) => g.name),
    all,
  )) {
    await inWave(rows, wave, parallel, async (name, rows) => {
      const deps = all.get(name)?.depends.filter((d) => failed.has(d)) ?? [];
      if (deps.length) {
        failed.add(name);
        rows.push({ name, ok: false, message: `not started: depends on ${deps.join(', ')}, which failed` });
        return;
      }
      if (all.get(name)?.status === 'running') {
        rows.push({ name, ok: true, message: 'already running' });
        return;
      }
      try {
        const g = await e.startGuest({ name });
        rows.push({ name, ok: true, message: `started (pid ${g.pid ?? '?'})` });
      } catch (err) {
        if (/already (running|starting)/.test(messageOf(err)))
          rows.push({ name, ok: true, message: 'already running' });
        else {
          failed.add(name);
          rows.push({ name, ok: false, message: messageOf(err) });
        }
      }
    });
  }
  return rows;
}

/** Stop the running ones of the guests, dependents first (a broken one is tried: it fails or stops). */
export async function stopMany(
  e: Engine,
  chosen: GuestSummary[],
  parallel: number,
  opts: { timeout?: number; kill?: boolean },
): Promise<BulkRow[]> {
  const running = new Map(chosen.filter((g) => g.status !== 'stopped').map((g) => [g.name, g]));
  const sub = new Map(
    [...running.values()].map((g) => [g.name, { depends: g.depends.filter((d) => running.has(d)) }]),
  );
  const rows: BulkRow[] = [];
  for (const wave of dependencyWaves([...running.keys()], sub).reverse())
    await inWave(rows, wave, parallel, async (name, rows) => {
      try {
        const x = await e.stopGuest({ name, ...opts });
        rows.push({ name, ok: true, message: `stopped${x.message ? ` (${x.message})` : ''}` });
      } catch (err) {
        rows.push({ name, ok: false, message: messageOf(err) });
      }
    });
  return rows;
}

/** Run one wave in parallel; its rows are added to `rows` in name order, whatever ends first. */
async function inWave(
  rows: BulkRow[],
  wave: string[],
  parallel: number,
  fn: (name: string, rows: BulkRow[]) => Promise<void>,
): Promise<void> {
  const got: BulkRow[] = [];
  await inParallel(wave, parallel, (name) => fn(name, got));
  rows.push(...got.sort((a, b) => a.name.localeCompare(b.name)));
}

/** Run fn for each guest, at most `parallel` at a time; the rows come in name order. */
export async function eachGuest(
  chosen: GuestSummary[],
  parallel: number,
  fn: (g: GuestSummary) => Promise<BulkRow>,
): Promise<BulkRow[]> {
  const rows: BulkRow[] = [];
  await inWave(
    rows,
    chosen.map((g) => g.name),
    parallel,
    async (name, got) => {
      try {
        got.push(await fn(chosen.find((g) => g.name === name) as GuestSummary));
      } catch (err) {
        got.push({ name, ok: false, message: messageOf(err) });
      }
    },
  );
  return rows;
}

function firstLine(s: string | undefined): string {
  const t = (s ?? '').trim().split('\n').pop() ?? '';
  return t.length > 60 ? `${t.slice(0, 57)}...` : t;
}

/** Print the per-guest results (a table, or JSON); exit status 0 when all went well. */
export function printBulk(p: Parsed, rows: BulkRow[], empty: string): number {
  if (formatOf(p) === 'json') json(rows);
  else if (!rows.length) out(empty);
  else if (rows.some((r) => r.code !== undefined))
    out(
      table(
        ['GUEST', 'RESULT', 'EXIT', 'OUTPUT'],
        rows.map((r) => [
          r.name,
          r.ok ? 'ok' : 'FAILED',
          r.code,
          r.code === undefined
            ? r.message
            : `${r.dropped ? '[cut at 1 MiB] ' : ''}${firstLine(r.stdout) || firstLine(r.stderr)}`,
        ]),
      ),
    );
  else
    out(
      table(
        ['GUEST', 'RESULT', 'MESSAGE'],
        rows.map((r) => [r.name, r.ok ? 'ok' : 'FAILED', r.message]),
      ),
    );
  return rows.every((r) => r.ok) ? 0 : 1;
}
