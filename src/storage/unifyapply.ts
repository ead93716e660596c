import * as fs from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { errnoOf } from '../common/errors.js';
import { mkdirp, readFileOr, removeTree, writeFileAtomic } from '../os/fs.js';
import { O_DIRECTORY, O_PATH, RESOLVE_STRICT_BENEATH, native } from '../os/native.js';
import { isSameProcess, readProcStat } from '../os/proc.js';
import { trace } from '../os/trace.js';
import { layout } from './layout.js';

/**
 * Moving identical files of an overlay guest's upper into its unified layer, as hard links to
 * one content-addressed object. Every step keeps the guest's view intact, so a kill -9 at any
 * moment loses nothing:
 *
 *   1. the file's inode (adopted) or the existing object is linked to unified/PATH (atomic
 *      rename); the upper still shadows it, so the guest sees no change;
 *   2. (the journal of ext4, XFS and btrfs commits metadata changes in order: after a power
 *      failure the links exist whenever the removal below does; no sync needed);
 *   3. the upper's name is removed (only if the file is still the one that was hashed): the
 *      guest now sees the unified file, same content and metadata;
 *   4. an adopted inode is published as objects/KEY only now, when no upper links to it any
 *      more, so an object can never be written through a guest's upper.
 *
 * A crash leaves at worst a unified file shadowed by the upper (the next hashify completes it)
 * or an inode in a unified layer that is not (yet) an object.
 */
export interface UnifyEntry {
  path: string;
  /** Identity when hashed (times in ns); the file is left alone if it changed since. */
  ino: number;
  size: number;
  mtime: string;
  ctime: string;
  key: string;
}

export interface ApplyResult {
  unified: number;
  bytes: number;
  skipped: number;
  /** The entries carried out. */
  done: UnifyEntry[];
}

/** Directory fds below a root, resolved without ever following a symlink. */
export class Dirs {
  private readonly rootFd: number;
  private readonly cache = new Map<string, number>();
  constructor(readonly root: string) {
    this.rootFd = fs.openSync(root, O_PATH | O_DIRECTORY | fs.constants.O_NOFOLLOW);
  }
  fd(dir: string): number | undefined {
    const key = dir === '.' ? '' : dir;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    let fd: number;
    try {
      fd =
        key === ''
          ? this.rootFd
          : native().openat2(this.rootFd, key, O_PATH | O_DIRECTORY, 0, RESOLVE_STRICT_BENEATH);
    } catch (e) {
      if (['ENOENT', 'ENOTDIR', 'ELOOP', 'EXDEV'].includes(errnoOf(e) ?? '')) return undefined;
      throw e;
    }
    if (this.cache.size > 256) this.flush();
    this.cache.set(key, fd);
    return fd;
  }
  /** "/proc/self/fd/N/base" for a path below the root; its last component is never followed by link/unlink/rename/lstat. */
  at(path: string): string | undefined {
    const fd = this.fd(dirname(path));
    return fd === undefined ? undefined : `/proc/self/fd/${fd}/${basename(path)}`;
  }
  /** mkdir -p below the root, each new directory taking the owner and mode `like` gives it. */
  mkdirs(dir: string, like: (dir: string) => fs.Stats | undefined): boolean {
    if (dir === '.' || dir === '') return true;
    if (this.fd(dir) !== undefined) return true;
    if (!this.mkdirs(dirname(dir), like)) return false;
    const at = this.at(dir);
    if (!at) return false;
    try {
      fs.mkdirSync(at, 0o755);
      const st = like(dir);
      if (st) {
        fs.chownSync(at, st.uid, st.gid);
        fs.chmodSync(at, st.mode & 0o7777);
      }
    } catch (e) {
      if (errnoOf(e) !== 'EEXIST') return false;
    }
    return this.fd(dir) !== undefined;
  }
  /** Is `path` below the root a hard link to inode `ino`? */
  isLink(path: string, ino: number): boolean {
    const at = this.at(path);
    try {
      return !!at && fs.lstatSync(at).ino === ino;
    } catch {
      return false;
    }
  }
  flush(): void {
    for (const [k, fd] of this.cache) if (k !== '') fs.closeSync(fd);
    this.cache.clear();
  }
  close(): void {
    this.flush();
    fs.closeSync(this.rootFd);
  }
}

export function objectPath(key: string): string {
  return join(layout.objects(), key.slice(0, 2), key);
}

/** This process's scratch directory in the store (same filesystem as the objects). */
function scratch(): string {
  const me = readProcStat(process.pid);
  const dir = join(layout.storeTmp(), `${process.pid}-${me?.starttime ?? 0}`);
  mkdirp(dir, 0o700);
  return dir;
}

/** Remove scratch directories of processes that are gone. */
export function cleanScratch(): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(layout.storeTmp());
  } catch {
    return;
  }
  for (const n of names) {
    const [pid, start] = n.split('-').map(Number);
    if (!isSameProcess(pid, start)) removeTree(join(layout.storeTmp(), n));
  }
}

const BATCH = 1024;

/** One applyUnify run: the guest's upper and unified layers, the result, scratch names. */
interface ApplyRun {
  upper: Dirs;
  unified: Dirs;
  res: ApplyResult;
  /** A fresh name in the scratch directory. */
  scratchName: () => string;
}

/**
 * Unify `entries` of a stopped overlay guest (the caller holds its lock): see above. Returns
 * what was done. Files that changed since they were hashed are skipped.
 */
export function applyUnify(name: string, upperDir: string, entries: UnifyEntry[]): ApplyResult {
  const res: ApplyResult = { unified: 0, bytes: 0, skipped: 0, done: [] };
  if (!entries.length) return res;
  mkdirp(layout.objects(), 0o700);
  mkdirp(layout.unifiedLayer(name), 0o755);
  fs.rmSync(layout.unifiedStamp(name), { force: true });
  const tmp = scratch();
  let n = 0;
  const run: ApplyRun = {
    upper: new Dirs(upperDir),
    unified: new Dirs(layout.unifiedLayer(name)),
    res,
    scratchName: () => join(tmp, `l${n++}`),
  };
  try {
    for (let i = 0; i < entries.length; i += BATCH) {
      const linked = linkBatch(run, entries.slice(i, i + BATCH));
      if (!linked) return { ...res, skipped: res.skipped + entries.length - i };
      trace('unify: batch linked');
      moveBatch(run, linked);
      trace('unify: batch moved');
    }
  } finally {
    run.upper.close();
    run.unified.close();
    removeTree(tmp);
  }
  return res;
}

/** 1. link a batch into the unified layer; undefined when the store is on another filesystem (EXDEV). */
function linkBatch(
  { upper, unified, res, scratchName }: ApplyRun,
  batch: UnifyEntry[],
): { e: UnifyEntry; adopted: boolean }[] | undefined {
  const linked: { e: UnifyEntry; adopted: boolean }[] = [];
  const likeUpper = (dir: string): fs.Stats | undefined => {
    const at = upper.at(dir);
    try {
      return at ? fs.lstatSync(at) : undefined;
    } catch {
      return undefined;
    }
  };
  for (const e of batch) {
    const up = upper.at(e.path);
    const st = up ? lstatNs(up) : undefined;
    // (nlink 2: the other link is unified/PATH itself, left by an interrupted run)
    const alone = st?.nlink === 1n || (st?.nlink === 2n && unified.isLink(e.path, e.ino));
    if (!up || !st || !same(st, e) || st.ctimeNs.toString() !== e.ctime || !alone) {
      res.skipped++;
      continue;
    }
    if (!unified.mkdirs(dirname(e.path), likeUpper)) {
      res.skipped++;
      continue;
    }
    const dst = unified.at(e.path) as string;
    const t = scratchName();
    let adopted = false;
    try {
      try {
        fs.linkSync(objectPath(e.key), t);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err;
        adopt(up, t, st.ino); // no object yet: this file's inode (or clone) becomes it (published in 4.)
        adopted = true;
      }
      fs.renameSync(t, dst);
      linked.push({ e, adopted });
    } catch (err) {
      fs.rmSync(t, { force: true });
      if (errnoOf(err) === 'EXDEV') return undefined;
      res.skipped++;
    }
  }
  return linked;
}

/** 3. and 4.: the upper's copies go, adopted inodes are published as objects. */
function moveBatch(
  { upper, unified, res, scratchName }: ApplyRun,
  linked: { e: UnifyEntry; adopted: boolean }[],
): void {
  // 3. the upper's copy goes (if it is still the file that was hashed); the directories
  // keep their times
  const dirTimes = new Map<string, fs.Stats>();
  for (const { e } of linked) {
    const dir = dirname(e.path);
    const fd = dirTimes.has(dir) ? undefined : upper.fd(dir);
    if (fd !== undefined) dirTimes.set(dir, fs.fstatSync(fd));
  }
  for (const { e, adopted } of linked) {
    const up = upper.at(e.path);
    try {
      const st = up ? lstatNs(up) : undefined;
      if (!up || !st || !same(st, e)) {
        res.skipped++;
        continue;
      }
      fs.unlinkSync(up);
      res.unified++;
      res.bytes += e.size;
      res.done.push(e);
    } catch {
      res.skipped++;
      continue;
    }
    // 4. publish an adopted inode as the object (or use the one published meanwhile)
    if (adopted) {
      const dst = unified.at(e.path) as string;
      fs.mkdirSync(dirname(objectPath(e.key)), { recursive: true, mode: 0o700 });
      try {
        fs.linkSync(dst, objectPath(e.key));
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw err;
        const t = scratchName();
        fs.linkSync(objectPath(e.key), t);
        fs.renameSync(t, dst);
      }
    }
  }
  for (const [dir, st] of dirTimes) {
    const fd = upper.fd(dir);
    if (fd !== undefined) fs.utimesSync(`/proc/self/fd/${fd}`, st.atime, st.mtime);
  }
  upper.flush();
  unified.flush();
}

/**
 * Make `t` (in the store) the upper's file: a hard link to its inode; or, from a guest's
 * subvolume of the storage pool (a hard link cannot cross btrfs subvolumes: EXDEV), a clone
 * sharing its data extents with the same owner, mode, xattrs and times.
 */
function adopt(up: string, t: string, ino: bigint): void {
  try {
    fs.linkSync(up, t);
    return;
  } catch (err) {
    if (errnoOf(err) !== 'EXDEV') throw err;
  }
  const src = fs.openSync(up, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    if (fs.fstatSync(src, { bigint: true }).ino !== ino)
      throw Object.assign(new Error(`${up} changed`), { code: 'ESTALE' });
    const dst = fs.openSync(t, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      native().cloneFile(src, dst);
    } finally {
      fs.closeSync(dst);
    }
  } catch (e) {
    fs.rmSync(t, { force: true });
    throw e;
  } finally {
    fs.closeSync(src);
  }
}

function lstatNs(p: string): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch {
    return undefined;
  }
}

/** Still the file that was hashed: same inode, size and mtime (callers check ctime where it cannot have moved). */
function same(st: fs.BigIntStats, e: UnifyEntry): boolean {
  return (
    st.isFile() && Number(st.ino) === e.ino && Number(st.size) === e.size && st.mtimeNs.toString() === e.mtime
  );
}

/** Plans for running guests wait here until their next start. */
export function savePendingUnify(name: string, entries: UnifyEntry[]): void {
  writeFileAtomic(layout.unifyPending(name), JSON.stringify({ entries }));
}

export function pendingUnify(name: string): UnifyEntry[] {
  const text = readFileOr(layout.unifyPending(name), undefined);
  if (text === undefined) return [];
  try {
    return (JSON.parse(text) as { entries: UnifyEntry[] }).entries;
  } catch {
    return [];
  }
}

/** At start (the guest stopped, its lock held): carry out a plan hashify left for it. */
export async function applyPendingUnify(name: string, upperDir: string): Promise<ApplyResult | undefined> {
  if (!fs.existsSync(layout.unifyPending(name))) return undefined;
  const entries = pendingUnify(name);
  try {
    return applyUnify(name, upperDir, entries);
  } catch {
    return undefined; // the guest starts as it is; the next hashify plans again
  } finally {
    fs.rmSync(layout.unifyPending(name), { force: true });
  }
}
