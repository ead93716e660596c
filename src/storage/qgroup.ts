/**
 * A guest's quota group in the storage pool, holding its subvolume and its snapshots: the limit
 * is on the level-1 group 1/N, so snapshots count against the guest's disk limit (what the
 * group references, each extent once: the guest's files plus what its snapshots keep that the
 * guest no longer has). A guest gets its group at its first snapshot (N: its subvolume's ID
 * then); until then its limit is on its subvolume's own group 0/ID, as storage/pool.ts makes it.
 * Snapshots and a restored subvolume join the group as they are made (btrfs subvolume snapshot
 * -i), which needs no rescan; adding the first, existing subvolume may (its extents shared with
 * hashify's store): btrfs schedules it, and the numbers are right again when it is done.
 */
import { basename, dirname } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { native } from '../os/native.js';
import { paths } from '../os/paths.js';
import { run, runOk } from '../os/spawn.js';

export interface QgroupRow {
  id: string;
  /** Bytes referenced and exclusive. */
  rfer: number;
  excl: number;
  /** The limit of referenced bytes (0: none). */
  maxRfer: number;
  parents: string[];
  children: string[];
  /** The subvolume's path from the filesystem's top ("<stale>" while btrfs drops it). */
  path: string;
}

/** Rows of `btrfs qgroup show -pcre --raw` (pure). */
export function parseQgroups(text: string): QgroupRow[] {
  const rows: QgroupRow[] = [];
  const list = (s: string | undefined): string[] => (!s || s === '-' ? [] : s.split(','));
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (!/^\d+\/\d+$/.test(f[0] ?? '')) continue;
    rows.push({
      id: f[0] as string,
      rfer: Number(f[1]),
      excl: Number(f[2]),
      maxRfer: f[3] === 'none' ? 0 : Number(f[3]),
      parents: list(f[5]),
      children: list(f[6]),
      path: f.slice(7).join(' '),
    });
  }
  return rows;
}

/** The quota groups that count `dir` (its own and its ancestors), or every group of the pool. */
export async function qgroups(dir: string | undefined): Promise<QgroupRow[]> {
  const r = await runOk(
    ['btrfs', 'qgroup', 'show', '-pcre', '--raw', ...(dir ? ['-F', dir] : [paths().lib])],
    { what: `Reading the quota groups of ${dir ?? paths().lib}` },
  );
  return parseQgroups(r.stdout);
}

/**
 * The subvolume `dir`'s own quota group, and the level-1 group holding it and its snapshots if it
 * has one, with their usage (one process).
 */
export async function subvolGroups(dir: string): Promise<{ own?: QgroupRow; group?: QgroupRow }> {
  const rows = await qgroups(dir);
  const own = rows.find((q) => q.id.startsWith('0/'));
  const group = rows.find((q) => q.id.startsWith('1/'));
  return { ...(own ? { own } : {}), ...(group ? { group } : {}) };
}

/** The group of the subvolume `dir`: made (and its limit moved onto it) when it has none yet. */
export async function ensureSubvolGroup(dir: string): Promise<string> {
  const rows = await qgroups(dir);
  const has = rows.find((q) => q.id.startsWith('1/'));
  if (has) return has.id;
  const own = rows.find((q) => q.id.startsWith('0/'));
  if (!own) throw new Error(`${dir} has no quota group`);
  const group = `1/${own.id.slice(2)}`;
  const lib = paths().lib;
  await runOk(['btrfs', 'qgroup', 'create', group, lib], { what: `Making the quota group ${group}` });
  await runOk(['btrfs', 'qgroup', 'assign', own.id, group, lib], {
    what: `Adding ${dir} to the quota group ${group}`,
  });
  if (own.maxRfer) {
    await runOk(['btrfs', 'qgroup', 'limit', String(own.maxRfer), group, lib], {
      what: `Setting the space limit of ${group}`,
    });
    await runOk(['btrfs', 'qgroup', 'limit', 'none', dir], { what: `Moving the limit of ${dir}` });
  }
  return group;
}

/** Set (null: remove) the limit of a group. */
export async function groupLimit(group: string, limit: number | null): Promise<void> {
  await runOk(['btrfs', 'qgroup', 'limit', limit === null ? 'none' : String(limit), group, paths().lib], {
    what: `Setting the space limit of the quota group ${group}`,
  });
}

/** A qgroup's "LEVEL/ID" as the kernel's number (level << 48 | id). */
export function qgroupNumber(id: string): number {
  const m = /^(\d+)\/(\d+)$/.exec(id);
  if (!m) throw new Error(`not a quota group: "${id}"`);
  return Number(m[1]) * 2 ** 48 + Number(m[2]);
}

/**
 * A snapshot of the subvolume `src` at `dst` (read-only or not), made a member of `group`: one
 * ioctl (BTRFS_IOC_SNAP_CREATE_V2), no process, since a guest is frozen meanwhile.
 */
export async function subvolSnapshot(
  src: string,
  dst: string,
  o: { readonly: boolean; group?: string },
): Promise<void> {
  try {
    native().btrfsSnapshot(src, dirname(dst), basename(dst), o.readonly, o.group ? qgroupNumber(o.group) : 0);
  } catch (e) {
    throw new JaulaError('runtime', `Making a snapshot of ${src} at ${dst} failed: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Delete subvolumes (read-only ones too); their own groups go when btrfs has dropped them. */
export async function subvolDelete(dirs: string[]): Promise<void> {
  if (dirs.length)
    await runOk(['btrfs', 'subvolume', 'delete', ...dirs], { what: `Deleting ${dirs.join(', ')}` });
}

/**
 * Destroy the level-1 groups left with no member (those of deleted guests: a group can only be
 * destroyed once btrfs has dropped its subvolumes, in the background, after the delete).
 */
export async function dropEmptyGroups(): Promise<void> {
  for (const q of await qgroups(undefined))
    if (q.id.startsWith('1/') && q.children.length === 0)
      await run(['btrfs', 'qgroup', 'destroy', q.id, paths().lib]); // (busy: at the next one)
}
