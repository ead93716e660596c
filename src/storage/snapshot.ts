/**
 * A guest's snapshots on disk (docs/adr/0012-snapshots.md), in driver.snapshotsDir(NAME):
 *
 *   SNAP/meta.json     { name, id, created, kind, running, frozenMs, sub, expires, scheduled }
 *   SNAP/conf/         the guest's config directory then (config.toml, fstab, hooks/)
 *   SNAP/vol/          its own files: in the storage pool a read-only btrfs snapshot of its
 *                      subvolume (vol/SUB and the rest of it, overlay's work too); else a
 *                      directory holding SUB, a reflink copy or a plain copy of its tree
 *   SNAP/linked/N      driver.linkedDirs() (overlay: the unified layer) as hard links
 *
 * SUB is the base name of driver.treePath() (rootfs, upper). A snapshot is made in
 * .new-SNAP-XXXX and renamed to SNAP when complete: a crash leaves only a .new-* directory,
 * which the next snapshot operation on the guest removes (leftovers()).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { copyTree } from '../os/copy.js';
import { isBtrfs, mkdirp, readFileOr, removeTree, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import type { GuestConfig } from '../guest/config.js';
import type { StorageDriver } from './driver.js';
import { runOk } from '../os/spawn.js';
import { ensureSubvolGroup, qgroups, subvolDelete, subvolSnapshot } from './qgroup.js';
import { vol } from './vol.js';

export type SnapshotKind = 'subvolume' | 'reflink' | 'copy';

export interface SnapshotMeta {
  name: string;
  /** Unique to this snapshot (an increment names its base by it); none in snapshots of jaula before 0.x: snapshotId(). */
  id?: string;
  created: string;
  kind: SnapshotKind;
  /** The guest was running (and frozen for frozenMs) when it was taken. */
  running: boolean;
  frozenMs?: number;
  /** The base name of the guest's tree in vol/ (rootfs, upper). */
  sub: string;
  /** When jaulad deletes it (ISO 8601): `--expiry`, or the guest's snapshots.expiry for a scheduled one. */
  expires?: string;
  /** Taken by jaulad on the guest's snapshots.schedule. */
  scheduled?: boolean;
}

export const SNAPSHOT_META = 'meta.json';

/** A snapshot's unique ID (older snapshots without one: derived from their name and time). */
export const snapshotId = (m: SnapshotMeta): string =>
  m.id ?? `t${createHash('sha256').update(`${m.name}\0${m.created}`).digest('hex').slice(0, 31)}`;

export function readMeta(dir: string): SnapshotMeta | undefined {
  const t = readFileOr(join(dir, SNAPSHOT_META), undefined);
  if (t === undefined) return undefined;
  try {
    return JSON.parse(t) as SnapshotMeta;
  } catch {
    return undefined;
  }
}

/** The complete snapshots in `dir` (a driver's snapshotsDir), oldest first. */
export function snapshotMetas(dir: string): SnapshotMeta[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith('.'))
    .map((n) => readMeta(join(dir, n)))
    .filter((m): m is SnapshotMeta => m !== undefined)
    .sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name));
}

/** A btrfs subvolume's root directory has inode 256. */
export const isSubvolume = (dir: string): boolean =>
  isBtrfs(dir) && fs.lstatSync(dir, { throwIfNoEntry: false })?.ino === 256;

/** Remove a snapshot directory (its read-only subvolume first). */
export async function removeSnapshotDir(dir: string): Promise<void> {
  const v = join(dir, 'vol');
  if (isSubvolume(v)) await subvolDelete([v]);
  removeTree(dir);
}

/** Can a file be cloned (FICLONE) from the filesystem of `from` to that of `to`? */
export function canReflink(from: string, to: string): boolean {
  const a = join(from, `.reflink-probe-${tmpSuffix()}`);
  const b = join(to, `.reflink-probe-${tmpSuffix()}`);
  try {
    fs.writeFileSync(a, Buffer.alloc(4096, 1));
    fs.copyFileSync(a, b, fs.constants.COPYFILE_FICLONE_FORCE);
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(a, { force: true });
    fs.rmSync(b, { force: true });
  }
}

/**
 * The guest's quota group (storage/qgroup.ts), made at its first snapshot and remembered in
 * SNAPSHOTS/.qgroup: a snapshot then reads no quota group (a process less before the freeze).
 */
async function guestGroup(snapshots: string, volDir: string): Promise<string> {
  const file = join(snapshots, '.qgroup');
  const known = readFileOr(file, '').trim();
  if (/^1\/\d+$/.test(known)) return known;
  const group = await ensureSubvolGroup(volDir);
  writeFileAtomic(file, `${group}\n`, 0o600);
  return group;
}

/** How a snapshot of this guest is made now (the pool's subvolume, else what its filesystem can). */
export function snapshotKind(name: string, driver: StorageDriver): SnapshotKind {
  if (vol.hasSubvol(name)) return 'subvolume';
  mkdirp(driver.snapshotsDir(name), 0o700);
  return canReflink(dirname(driver.treePath(name)), driver.snapshotsDir(name)) ? 'reflink' : 'copy';
}

/**
 * What can be made of a snapshot before the guest is held still: its quota group in the pool,
 * and the hard links of driver.linkedDirs() (immutable files, changed only by hashify under the
 * guest's lock, which the caller holds). Returns the rest, to run while the guest is still
 * (stopped, or frozen): the snapshot of its own files. The caller removes `at` on failure.
 */
export async function prepareSnapshot(
  cfg: GuestConfig,
  driver: StorageDriver,
  at: string,
  kind: SnapshotKind,
): Promise<() => Promise<void>> {
  const name = cfg.name;
  for (const [i, d] of driver.linkedDirs(name).entries()) {
    const to = join(at, 'linked', String(i));
    mkdirp(to);
    if (fs.existsSync(d) && fs.readdirSync(d).length) await copyTree(d, to, { link: true });
  }
  if (kind === 'subvolume') {
    const group = await guestGroup(driver.snapshotsDir(name), vol.base(name));
    return () => subvolSnapshot(vol.base(name), join(at, 'vol'), { readonly: true, group });
  }
  const tree = driver.treePath(name);
  const to = join(at, 'vol', basename(tree));
  mkdirp(to);
  const st = fs.lstatSync(tree);
  fs.chownSync(to, st.uid, st.gid);
  fs.chmodSync(to, st.mode & 0o7777);
  return () => copyTree(tree, to, { reflink: kind === 'reflink' ? 'always' : 'never' });
}

/** One directory to put in place of another (`from` is moved aside to `old`, then removed). */
interface Swap {
  from: string;
  next: string;
  old: string;
}

/** Make, beside the guest's files, what restoring `snap` puts in their place. */
async function prepareRestore(cfg: GuestConfig, driver: StorageDriver, snap: string, kind: SnapshotKind) {
  const name = cfg.name;
  const sfx = tmpSuffix();
  const swaps: Swap[] = [];
  const add = (from: string): Swap => {
    const s = { from, next: `${from}.new-${sfx}`, old: `${from}.old-${sfx}` };
    swaps.push(s);
    return s;
  };
  try {
    if (kind === 'subvolume') {
      const s = add(vol.base(name));
      const group = await ensureSubvolGroup(s.from);
      await subvolSnapshot(join(snap, 'vol'), s.next, { readonly: false, group });
      // overlay's work directory (and anything but the tree) starts afresh
      const sub = basename(driver.treePath(name));
      for (const e of fs.readdirSync(s.next)) if (e !== sub) removeTree(join(s.next, e));
    } else {
      const s = add(driver.treePath(name));
      const src = join(snap, 'vol', basename(s.from));
      mkdirp(s.next);
      const st = fs.lstatSync(src);
      fs.chownSync(s.next, st.uid, st.gid);
      fs.chmodSync(s.next, st.mode & 0o7777);
      await copyTree(src, s.next, { reflink: kind === 'reflink' ? 'always' : 'never' });
    }
    for (const [i, d] of driver.linkedDirs(name).entries()) {
      const src = join(snap, 'linked', String(i));
      const s = add(d);
      mkdirp(s.next);
      if (fs.existsSync(src) && fs.readdirSync(src).length) await copyTree(src, s.next, { link: true });
    }
  } catch (e) {
    await dropAll(swaps.map((s) => s.next));
    throw e;
  }
  return swaps;
}

async function dropAll(dirs: string[]): Promise<void> {
  for (const d of dirs)
    if (fs.existsSync(d)) {
      if (isSubvolume(d)) await subvolDelete([d]);
      else removeTree(d);
    }
}

/**
 * Finish what a restore interrupted by a crash left, for the directories it swaps (`targets`):
 * while any D.new-X is left, restore X did not complete: each D already swapped (D.old-X there,
 * D.new-X gone) gets its D.old-X back, the rest are removed; when only D.old-X are left, it
 * completed and they are removed. Returns what it did, for the guest's log.
 */
export async function recoverSwaps(targets: string[]): Promise<string[]> {
  const found: { d: string; kind: string; sfx: string; path: string }[] = [];
  for (const d of new Set(targets)) {
    let names: string[];
    try {
      names = fs.readdirSync(dirname(d));
    } catch {
      continue;
    }
    for (const n of names) {
      const m = /^(.+)\.(new|old)-([a-z0-9]+)$/.exec(n);
      if (m && m[1] === basename(d))
        found.push({ d, kind: m[2] as string, sfx: m[3] as string, path: join(dirname(d), n) });
    }
  }
  const incomplete = new Set(found.filter((f) => f.kind === 'new').map((f) => f.sfx));
  const done: string[] = [];
  for (const f of found.filter((x) => x.kind === 'old')) {
    if (!incomplete.has(f.sfx)) {
      await dropAll([f.path]);
      continue;
    }
    if (!fs.existsSync(`${f.d}.new-${f.sfx}`)) await dropAll([f.d]); // swapped already
    fs.renameSync(f.path, f.d);
    done.push(`${f.d} put back as it was before an interrupted restore`);
  }
  await dropAll(found.filter((f) => f.kind === 'new').map((f) => f.path));
  return done;
}

/**
 * Put the snapshot's files in place of the stopped guest's: everything is made beside them
 * first, then each directory is swapped by two renames; a failure at any rename puts back what
 * was swapped already, so the guest is exactly as before. Only then are the old files removed.
 */
export async function restoreSnapshot(
  cfg: GuestConfig,
  driver: StorageDriver,
  snap: string,
  kind: SnapshotKind,
): Promise<void> {
  const swaps = await prepareRestore(cfg, driver, snap, kind);
  const done: Swap[] = [];
  try {
    for (const s of swaps) {
      const existed = fs.existsSync(s.from);
      if (existed) fs.renameSync(s.from, s.old);
      try {
        fs.renameSync(s.next, s.from);
      } catch (e) {
        if (existed) fs.renameSync(s.old, s.from);
        throw e;
      }
      done.push(s);
    }
  } catch (e) {
    for (const s of done.reverse()) {
      fs.renameSync(s.from, s.next);
      if (fs.existsSync(s.old)) fs.renameSync(s.old, s.from);
    }
    await dropAll(swaps.map((s) => s.next));
    throw e;
  }
  await dropAll(swaps.map((s) => s.old));
}

/**
 * The space each snapshot alone holds, where it is known: a pool snapshot's exclusive bytes
 * (its quota group), a plain copy's blocks (du); not a reflink copy's (its blocks are shared
 * with the guest until either writes them, which no cheap count tells).
 */
export async function snapshotBytes(
  dir: string,
  snaps: readonly { name: string; kind: SnapshotKind }[],
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const copies = snaps.filter((s) => s.kind === 'copy');
  if (copies.length) {
    const r = await runOk(['du', '-s', '-B1', ...copies.map((s) => join(dir, s.name, 'vol'))], {
      what: `Measuring the snapshots in ${dir}`,
    });
    for (const line of r.stdout.split('\n')) {
      const m = /^(\d+)\s+(.*)\/([^/]+)\/vol$/.exec(line);
      if (m) out.set(m[3] as string, Number(m[1]));
    }
  }
  if (snaps.some((s) => s.kind === 'subvolume')) {
    // (paths are from the filesystem's top: end them with guests/NAME/snapshots/SNAP/vol)
    const tail = `/${dir.split('/').slice(-3).join('/')}/`;
    for (const q of await qgroups(undefined)) {
      const p = `/${q.path}`;
      const at = p.lastIndexOf(tail);
      const rest = at < 0 ? [] : p.slice(at + tail.length).split('/');
      if (q.id.startsWith('0/') && rest.length === 2 && rest[1] === 'vol') out.set(rest[0] as string, q.excl);
    }
  }
  return out;
}
