/**
 * Incremental archives (`jaula backup --from SNAP`, core/archive.ts): what changed in one of a
 * guest's trees since a snapshot, and how an increment is put onto a tree restored from the
 * archive of that snapshot (core/archive-restore.ts).
 *
 * The delta is file by file, on every storage kind (a pool's backup restores on overlay, and the
 * other way round): both trees are walked (the native walk: lstat and xattrs, never following a
 * link), and a path is sent again when its type, mode, owner, size, modification time, link
 * count, device or xattrs differ (rsync's quick check, with owners and xattrs), or when its
 * status change time is after the snapshot was taken where that time is the file's own (the
 * guest's tree, or a btrfs snapshot of it; not a copy, whose ctime is the copy's): a write that
 * put the modification time back is caught there. A path of the snapshot that is gone now (or
 * changed type) is listed as removed.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { join } from 'node:path';
import { mkdirp, removeTree } from '../os/fs.js';
import { runOk } from '../os/spawn.js';
import {
  DEFAULT_TAR_LIMITS,
  detectCompression,
  memberPath,
  scanTar,
  TAR_PRESERVE,
  tarCompressionFlag,
} from '../os/tar.js';
import { isDir, walkTree, type WalkEntry } from '../os/walk.js';
import type { ArchiveHeader } from './archive.js';
import { extractTemplate } from './methods/template.js';
import { parsePathList, removeBelow } from './migrate/transfer.js';

export interface TreeDelta {
  /** New or changed paths, sorted (a directory before its entries); "." is the tree's root. */
  changed: string[];
  /** Paths to remove before the changed ones are unpacked, sorted. */
  removed: string[];
}

/**
 * Slack before the snapshot's time for the ctime rule: the kernel stamps ctime from its coarse
 * clock, up to a tick (1-10 ms) behind the time the snapshot read. A file too many is sent, never
 * one too few.
 */
const CTIME_SLACK_MS = 20;

function key(e: WalkEntry): string {
  const x = e.xattrs?.length
    ? createHash('sha1')
        .update(e.xattrs.map(([n, v]) => `${n}=${v.toString('base64')}`).join('\0'))
        .digest('base64')
    : '';
  // A directory's size and link count differ between a tree and its copy (and say nothing its
  // entries do not): its mode, owner, mtime and xattrs are its own.
  const dir = isDir(e);
  return `${e.mode} ${e.uid}:${e.gid} ${dir ? '' : e.size} ${e.mtimeSec}.${e.mtimeNsec} ${dir ? '' : e.nlink} ${e.rdev} ${x}${e.xattrsUnread ? ' ?' : ''}`;
}

/**
 * What changed in `now` since `base` (a snapshot's copy of the same tree). `ctimeSince`: the
 * snapshot's time in ms, when `now`'s status change times are its files' own.
 */
export function treeDelta(base: string, now: string, ctimeSince?: number): TreeDelta {
  const before = new Map<string, WalkEntry>();
  for (const e of walkTree(base, { xattrs: true })) before.set(e.path, e);
  if (!before.has(''))
    throw new JaulaError(
      'not_found',
      `The snapshot's tree "${base}" is missing: it cannot be the base of an increment`,
    );
  const since = ctimeSince === undefined ? undefined : ctimeSince - CTIME_SLACK_MS;
  const changed: string[] = [];
  const removed: string[] = [];
  const seen = new Set<string>();
  for (const e of walkTree(now, { xattrs: true })) {
    seen.add(e.path);
    const old = before.get(e.path);
    const p = e.path === '' ? '.' : e.path;
    if (
      !old ||
      key(old) !== key(e) ||
      e.xattrsUnread ||
      (since !== undefined && e.ctimeSec * 1000 + e.ctimeNsec / 1e6 >= since)
    )
      changed.push(p);
    if (old && (old.mode & 0o170000) !== (e.mode & 0o170000)) removed.push(p);
  }
  for (const p of before.keys()) if (!seen.has(p)) removed.push(p);
  // Unpacking or removing an entry changes its directory's times on the target: every directory
  // above a change is sent too (after its entries, tar sets its times as they are here).
  const all = new Set(changed);
  for (const p of [...changed, ...removed]) {
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
      const up = p.slice(0, i);
      if (all.has(up) || !seen.has(up)) break;
      all.add(up);
    }
  }
  all.add('.');
  return { changed: [...all].sort(), removed: removed.sort() };
}

/**
 * Before an increment's tar is unpacked onto `tree`: every member's parent directories must be
 * real directories in the tree (the increment made them, or they were there), never a symlink a
 * guest left where the increment's source had a directory: tar would write through it. Such a
 * link is removed (the increment's source had a directory there; tar then makes it). A member
 * whose parent is another kind of file is refused.
 */
export function clearSymlinkParents(tree: string, members: readonly string[], what: string): void {
  const checked = new Set<string>();
  for (const m of members) {
    const parts = m
      .replace(/^\.\/?/, '')
      .split('/')
      .filter((x) => x !== '' && x !== '.');
    let at = tree;
    let rel = '';
    for (const p of parts.slice(0, -1)) {
      if (p === '..') throw new JaulaError('invalid', `${what}: its member "${m}" leaves its tree: refused`);
      at = `${at}/${p}`;
      rel = rel ? `${rel}/${p}` : p;
      if (checked.has(rel)) continue;
      const st = fs.lstatSync(at, { throwIfNoEntry: false });
      if (!st) break;
      if (st.isSymbolicLink()) fs.rmSync(at, { force: true });
      else if (!st.isDirectory())
        throw new JaulaError(
          'invalid',
          `${what}: its member "${m}" lies beneath "${rel}", which is no directory: refused`,
        );
      else checked.add(rel);
      if (st.isSymbolicLink()) break;
    }
  }
}

/** Empty a directory (its entries removed, never followed). */
function emptyDir(dir: string): void {
  mkdirp(dir);
  for (const e of fs.readdirSync(dir)) removeTree(join(dir, e));
}

/**
 * Put an increment's tree onto `dir`: its removed paths go (never through a symlink), then its
 * tar is unpacked, every member checked first: none beneath a symlink of the tree or the
 * archive, no hard link but to a member of the increment itself. A tree the increment sends
 * whole replaces the old; one it lacks is empty now.
 */
export async function applyTree(
  staged: Map<string, string>,
  t: string,
  dir: string,
  devices: boolean,
  what: string,
): Promise<void> {
  const file = staged.get(t);
  const gone = staged.get(`${t}-gone`);
  if (!file) {
    if (t !== 'own') emptyDir(dir);
    return;
  }
  if (!gone) {
    emptyDir(dir);
    await extractTemplate(file, dir, undefined, undefined, { allowDevices: devices });
    return;
  }
  mkdirp(dir);
  for (const p of parsePathList(fs.readFileSync(gone))) removeBelow(dir, p); // (never through a symlink)
  const members: string[] = [];
  const seen = new Set<string>();
  await scanTar(
    file,
    { ...DEFAULT_TAR_LIMITS, allowDevices: devices },
    {
      onMember(e) {
        const p = e.path.replace(/^\.\//, '');
        if (e.type === 'hardlink' && !seen.has(memberPath(e.linkname, what).replace(/^\.\//, '')))
          throw new JaulaError(
            'invalid',
            `The archive ${what} is refused: its hard link "${p}" points at "${e.linkname}", which it does not hold`,
          );
        seen.add(p);
        members.push(p);
      },
    },
  );
  clearSymlinkParents(dir, members, `The archive ${what}`);
  await runOk(
    ['tar', '-x', ...tarCompressionFlag(detectCompression(file)), ...TAR_PRESERVE, '-f', file, '-C', dir],
    { what: `Unpacking the increment ${what} into "${dir}"`, dieWithParent: true },
  );
}

/** An increment must follow the archive before it: its base is that archive's snapshot, its layers the same. */
export function checkChain(chain: ArchiveHeader[], whats: string[]): void {
  const first = chain[0] as ArchiveHeader;
  if (first.base)
    throw new JaulaError(
      'invalid',
      `The archive ${whats[0]} is an increment from snapshot "${first.base.snapshot}" of guest "${first.base.guest}": restore the full archive of that snapshot first, then it (jaula restore FULL ${whats[0]})`,
    );
  for (let i = 1; i < chain.length; i++) {
    const prev = chain[i - 1] as ArchiveHeader;
    const h = chain[i] as ArchiveHeader;
    if (!h.base)
      throw new JaulaError(
        'invalid',
        `The archive ${whats[i]} is a full archive, not an increment: give only increments after the first archive`,
      );
    if (!prev.point || prev.point.id !== h.base.id)
      throw new JaulaError(
        'invalid',
        `The archive ${whats[i]} is an increment from snapshot "${h.base.snapshot}" (${h.base.created}), but ${whats[i - 1]} ${prev.point ? `holds snapshot "${prev.point.snapshot}" (${prev.point.created})` : 'holds no snapshot (made without --snapshot)'}: give the archives in the order they were made, each increment after the archive of its base snapshot`,
      );
    const digests = (x: typeof h): string => x.layers.map((l) => l.digest).join(' ');
    if (digests(prev) !== digests(h))
      throw new JaulaError(
        'invalid',
        `The archive ${whats[i]} stacks other layers than ${whats[i - 1]}: it is not an increment of it`,
      );
  }
}
