/**
 * Automatic snapshots (docs/adr/0012-snapshots.md, "Schedules and expiry"): jaulad calls
 * runSnapshotTick once a minute. Each guest is taken in turn: its snapshots whose expiry has
 * passed are deleted, then, if its snapshots.schedule matched a minute since the previous tick
 * (and it runs, or snapshots.schedule.stopped is true), a snapshot is taken through the same
 * createSnapshot as `jaula snapshot create` (the guest's lock, freezer, quota group). One
 * guest's failure is reported and the others go on. `now` is given, so tests drive it.
 */
import * as fs from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { dueBetween, parseSchedule, spreadSeed } from '../common/cron.js';
import { messageOf } from '../common/errors.js';
import type { GuestConfig } from '../guest/config.js';
import { initAlive, readState } from '../guest/state.js';
import { guestExists, readGuest } from '../guest/store.js';
import { paths } from '../os/paths.js';
import { createSnapshot, deleteSnapshot, expiredSnapshots } from './snapshots.js';

export interface TickContext {
  /**
   * The previous tick's time: the minutes after its minute up to `now`'s are looked at (at most
   * the last hour's), so that a late tick misses none and takes one snapshot for all it missed.
   * Absent: `now`'s minute alone.
   */
  since?: Date;
  /** Take no snapshot, only delete expired ones (jaulad's start). */
  expireOnly?: boolean;
  /** Stop between guests (jaulad is stopping). */
  signal?: AbortSignal;
}

export interface TickReport {
  taken: { guest: string; snapshot: string }[];
  expired: { guest: string; snapshot: string; expires: string }[];
  failed: { guest: string; error: string }[];
}

const MINUTE = 60_000;
const CATCH_UP = 60 * MINUTE;

/** The names in the guests' config directory, read without blocking the event loop. */
async function guestNames(): Promise<string[]> {
  try {
    return (await fs.promises.readdir(paths().guestsConf)).filter((n) => !n.startsWith('.')).sort();
  } catch {
    return [];
  }
}

/** A guest's config, or undefined for one being built, broken or gone (it has no schedule to keep). */
function configOf(name: string): GuestConfig | undefined {
  try {
    const g = readGuest(name);
    return 'cfg' in g ? g.cfg : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Run one step for a guest: a failure is reported and the tick goes on; none is when what the
 * step was for is gone meanwhile (`gone`: by default the guest, deleted or renamed).
 */
async function attempt(
  guest: string,
  r: TickReport,
  fn: () => Promise<void>,
  gone: () => Promise<boolean> = async () => !guestExists(guest),
): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (await gone().catch(() => true)) return;
    r.failed.push({ guest, error: messageOf(e) });
  }
}

async function expire(name: string, now: Date, r: TickReport): Promise<void> {
  for (const m of await expiredSnapshots(name, now)) {
    const expires = m.expires as string;
    const deletedMeanwhile = async (): Promise<boolean> =>
      !(await expiredSnapshots(name, now)).some((x) => x.name === m.name);
    await attempt(
      name,
      r,
      async () => {
        await deleteSnapshot(name, m.name, `expired at ${expires}`);
        r.expired.push({ guest: name, snapshot: m.name, expires });
      },
      deletedMeanwhile,
    );
  }
}

/** Is a scheduled snapshot of this guest due, given the minutes the tick covers? */
function due(cfg: GuestConfig, since: Date, now: Date): boolean {
  const text = cfg.snapshots?.schedule;
  if (!text || !dueBetween(parseSchedule(text, spreadSeed(cfg.name)), since, now)) return false;
  return cfg.snapshots?.stopped === true || initAlive(readState(cfg.name));
}

/** One tick at `now`: expire, then take what is due, guest by guest. Never throws for a guest. */
export async function runSnapshotTick(ctx: TickContext, now: Date): Promise<TickReport> {
  const r: TickReport = { taken: [], expired: [], failed: [] };
  const minute = Math.floor(now.getTime() / MINUTE) * MINUTE;
  const since = new Date(Math.max(ctx.since?.getTime() ?? minute - MINUTE, minute - CATCH_UP));
  for (const name of await guestNames()) {
    if (ctx.signal?.aborted) break;
    // one guest at a time, yielding between them: requests are served meanwhile
    await yieldToLoop();
    const cfg = configOf(name);
    if (!cfg) continue;
    await attempt(name, r, () => expire(name, now, r));
    if (ctx.expireOnly) continue;
    await attempt(name, r, async () => {
      if (!due(cfg, since, now)) return;
      // (named and expiring from the minute: the tick that minute's expiry falls in deletes it)
      const s = await createSnapshot(name, undefined, { scheduled: true, at: new Date(minute) });
      r.taken.push({ guest: name, snapshot: s.name });
    });
  }
  return r;
}
