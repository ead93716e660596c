/**
 * A guest's automatic snapshots: Incus' `snapshots.*` keys, set with `jaula set NAME KEY=VALUE`
 * and kept in the [snapshots] table of its config.toml (docs/config.md). jaulad takes and expires
 * the snapshots (core/snapshot-schedule.ts).
 */
import { parseSchedule, spreadSeed } from '../common/cron.js';
import { JaulaError } from '../common/errors.js';
import { parseExpiry } from '../common/expiry.js';
import { validatePattern } from '../common/snapname.js';
import { noneLeft, take, type Toml, type Where } from './toml.js';

export interface SnapshotPolicy {
  /** snapshots.schedule: cron, aliases, several joined by ", "; absent: none. */
  schedule?: string;
  /** snapshots.schedule.stopped: a stopped guest is snapshotted too (default false, as Incus). */
  stopped?: boolean;
  /** snapshots.expiry: how long an automatic snapshot is kept (absent: for ever). */
  expiry?: string;
  /** snapshots.pattern: the automatic snapshots' names (default snap%d). */
  pattern?: string;
}

export interface SnapshotSettings {
  snapshots?: SnapshotPolicy;
}

/** The keys `jaula set` takes (in the [snapshots] table: schedule, schedule_stopped, expiry, pattern). */
export const SNAPSHOT_KEYS = [
  'snapshots.schedule',
  'snapshots.schedule.stopped',
  'snapshots.expiry',
  'snapshots.pattern',
] as const;
export type SnapshotKey = (typeof SNAPSHOT_KEYS)[number];

export const isSnapshotKey = (k: string): k is SnapshotKey =>
  (SNAPSHOT_KEYS as readonly string[]).includes(k);

export function validateSnapshotPolicy(p: SnapshotPolicy, guest: string): void {
  if (p.schedule !== undefined) parseSchedule(p.schedule, spreadSeed(guest));
  if (p.expiry !== undefined) parseExpiry(p.expiry);
  if (p.pattern !== undefined) validatePattern(p.pattern);
}

function parseBool(key: string, v: string): boolean {
  const s = v.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  if (['false', '0', 'no', 'off'].includes(s)) return false;
  throw new JaulaError('invalid', `Invalid ${key} "${v}": give true or false (e.g. ${key}=true)`);
}

/**
 * A policy with `KEY=VALUE` changes applied (`jaula set`): an empty value removes the key (back to
 * its default). Values are checked; an unknown key is refused with the keys there are.
 */
export function changeSnapshotPolicy(
  p: SnapshotPolicy | undefined,
  changes: Readonly<Record<string, string>>,
  guest: string,
): SnapshotPolicy | undefined {
  const next: SnapshotPolicy = { ...p };
  for (const [key, value] of Object.entries(changes)) {
    if (!isSnapshotKey(key))
      throw new JaulaError(
        'invalid',
        `Unknown key "${key}": the snapshot keys are ${SNAPSHOT_KEYS.join(', ')}`,
      );
    const empty = value.trim() === '';
    if (key === 'snapshots.schedule.stopped') {
      if (empty) delete next.stopped;
      else next.stopped = parseBool(key, value);
      continue;
    }
    const field =
      key === 'snapshots.schedule' ? 'schedule' : key === 'snapshots.expiry' ? 'expiry' : 'pattern';
    if (empty) delete next[field];
    else next[field] = value.trim();
  }
  validateSnapshotPolicy(next, guest);
  return Object.keys(next).length ? next : undefined;
}

/** The [snapshots] table of a config (errors name its file and line). */
export function snapshotPolicyFromToml(t: Toml | undefined, where: Where): SnapshotPolicy | undefined {
  if (!t) return undefined;
  const p: SnapshotPolicy = {};
  const schedule = take<string>(t, 'schedule', 'string', where);
  const stopped = take<boolean>(t, 'schedule_stopped', 'boolean', where);
  const expiry = take<string>(t, 'expiry', 'string', where);
  const pattern = take<string>(t, 'pattern', 'string', where);
  noneLeft(t, where);
  if (schedule !== undefined) p.schedule = schedule;
  if (stopped !== undefined) p.stopped = stopped;
  if (expiry !== undefined) p.expiry = expiry;
  if (pattern !== undefined) p.pattern = pattern;
  return Object.keys(p).length ? p : undefined;
}

export function snapshotPolicyToToml(p: SnapshotPolicy | undefined): Toml | undefined {
  if (!p) return undefined;
  const t: Toml = {};
  if (p.schedule !== undefined) t['schedule'] = p.schedule;
  if (p.stopped !== undefined) t['schedule_stopped'] = p.stopped;
  if (p.expiry !== undefined) t['expiry'] = p.expiry;
  if (p.pattern !== undefined) t['pattern'] = p.pattern;
  return Object.keys(t).length ? t : undefined;
}
