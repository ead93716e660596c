/**
 * hashify's scan: walk each guest's own tree and pick the files that may be shared (the
 * candidates), learn what its unified layer links already, and read only the candidates that may
 * have a twin and changed since the index (index.ts) last saw them.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf, messageOf } from '../common/errors.js';
import { formatMiB } from '../common/size.js';
import type { GuestConfig } from '../guest/config.js';
import { initAlive, readState } from '../guest/state.js';
import { loadConfig } from '../guest/store.js';
import { readFileOr } from '../os/fs.js';
import { O_NOFOLLOW, RESOLVE_STRICT_BENEATH, native } from '../os/native.js';
import { paths } from '../os/paths.js';
import { isDir, isReg, walkTree, type WalkEntry } from '../os/walk.js';
import { storageDriver, type StorageDriver } from '../storage/index.js';
import { layout } from '../storage/layout.js';
import { Dirs, objectPath } from '../storage/unifyapply.js';
import { vol } from '../storage/vol.js';
import { DEFAULT_EXCLUDES, excluded, parseExcludes, type ExcludeRule } from './exclude.js';
import { loadIndex, saveIndex, type GuestIndex, type IndexedFile } from './index.js';

/** A file that may be shared. */
export interface Cand {
  g: Scan;
  e: WalkEntry;
  meta: string;
  mtime: string;
  ctime: string;
  sha?: string;
  done: boolean;
}

/** One guest as scanned. */
export interface Scan {
  cfg: GuestConfig;
  driver: StorageDriver;
  mode: 'layer' | 'dedupe';
  root: string;
  rootFd: number;
  idx: GuestIndex;
  /** Objects the guest's unified layer links already, and where (layer mode). */
  unified: Map<string, string>;
  /** The layer holds inodes this run left unpublished: its map must not be saved as whole. */
  orphansLeft: boolean;
  cands: Cand[];
  files: number;
}

/** The objects store: key -> inode. */
export type Objects = Map<string, { ino: number; nlink: number; size: number }>;

export interface ScanOptions {
  dryRun: boolean;
  minSize: number;
  excludes: string[];
  progress: (line: string, fraction?: number) => void;
  /** A guest left alone, and why. */
  skip: (guest: { name: string; driver: string }, reason: string) => void;
}

const ns = (sec: number, nsec: number): string => (BigInt(sec) * 1_000_000_000n + BigInt(nsec)).toString();

function metaKey(e: WalkEntry): string {
  const h = createHash('sha256').update(`${e.mode & 0o7777}:${e.uid}:${e.gid}:${e.mtimeSec}.${e.mtimeNsec}`);
  for (const [k, v] of e.xattrs ?? []) h.update(`\0${k}\0${v.length}\0`).update(v);
  return h.digest('hex').slice(0, 32);
}

function rulesFor(name: string, extra: string[]): ExcludeRule[] {
  const host = readFileOr(join(paths().etc, 'hashify-exclude'), undefined);
  const own = readFileOr(join(paths().guestConf(name), 'hashify-exclude'), '');
  return parseExcludes([
    ...extra,
    ...own.split('\n'),
    ...(host === undefined ? DEFAULT_EXCLUDES : host.split('\n')),
  ]);
}

/** Open a file below a guest tree for reading; undefined when it is not the file the walk saw. */
export function openCand(c: Cand): number | undefined {
  let fd: number;
  try {
    fd = native().openat2(
      c.g.rootFd,
      c.e.path,
      fs.constants.O_RDONLY | O_NOFOLLOW | fs.constants.O_NONBLOCK,
      0,
      RESOLVE_STRICT_BENEATH,
    );
  } catch {
    return undefined;
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.ino !== c.e.ino || st.size !== c.e.size) {
    fs.closeSync(fd);
    return undefined;
  }
  return fd;
}

const buf = Buffer.allocUnsafe(1 << 20);
function hashFd(fd: number, size: number): string | undefined {
  const h = createHash('sha256');
  let off = 0;
  while (off < size) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - off), off);
    if (n === 0) return undefined; // shrank meanwhile
    h.update(n === buf.length ? buf : buf.subarray(0, n));
    off += n;
  }
  return h.digest('hex');
}

/**
 * Publish an inode of a stopped guest's unified layer that is no object (a run was killed
 * between moving it there and publishing it) as the object of its content and metadata; where
 * that object exists already, link the layer's path to it instead. Returns its key.
 */
function publishOrphan(name: string, e: WalkEntry, objects: Objects): string | undefined {
  const dirs = new Dirs(layout.unifiedLayer(name));
  try {
    const at = dirs.at(e.path);
    if (!at) return undefined;
    const fd = fs.openSync(at, fs.constants.O_RDONLY | O_NOFOLLOW | fs.constants.O_NONBLOCK);
    let sha: string | undefined;
    try {
      const st = fs.fstatSync(fd);
      if (st.isFile() && st.ino === e.ino && st.size === e.size) sha = hashFd(fd, e.size);
    } finally {
      fs.closeSync(fd);
    }
    if (sha === undefined) return undefined;
    const key = `${sha}-${metaKey(e)}`;
    const obj = objectPath(key);
    fs.mkdirSync(join(obj, '..'), { recursive: true, mode: 0o700 });
    try {
      fs.linkSync(at, obj);
      objects.set(key, { ino: e.ino, nlink: 2, size: e.size });
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
      fs.mkdirSync(layout.storeTmp(), { recursive: true, mode: 0o700 });
      const tmp = join(layout.storeTmp(), `orphan-${process.pid}-${e.ino}`);
      fs.rmSync(tmp, { force: true });
      fs.linkSync(obj, tmp);
      fs.renameSync(tmp, at);
    }
    return key;
  } catch {
    return undefined; // left for the next run
  } finally {
    dirs.close();
  }
}

/** Walk the objects store: key -> inode. */
function loadObjects(): Objects {
  const m: Objects = new Map();
  for (const e of walkTree(layout.objects()))
    if (isReg(e)) m.set(e.path.slice(3), { ino: e.ino, nlink: e.nlink, size: e.size });
  return m;
}

/** A guest whose files may be shared, with its tree open; undefined when it is skipped. */
async function openScan(name: string, o: ScanOptions): Promise<Scan | undefined> {
  const cfg = loadConfig(name);
  const driver = await storageDriver(cfg.storage.driver);
  const mode = driver.info.unify;
  const id = { name, driver: driver.info.name };
  if (mode === 'none') {
    o.skip(id, `${driver.info.name} storage cannot share files (use overlay or reflink storage)`);
    return undefined;
  }
  if (mode === 'layer' && vol.hasImage(name)) {
    o.skip(id, 'its own files are in its quota image, another filesystem than the shared objects');
    return undefined;
  }
  const root = driver.treePath(name);
  let rootFd: number;
  try {
    rootFd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    o.skip(id, `its tree cannot be read (${messageOf(e)})`);
    return undefined;
  }
  const idx = loadIndex(name);
  return {
    cfg,
    driver,
    mode,
    root,
    rootFd,
    idx,
    unified: new Map(),
    orphansLeft: false,
    cands: [],
    files: 0,
  };
}

/** A file below a directory the guest made opaque (what is below stays the guest's own). */
function underOpaque(opaque: Set<string>, path: string): boolean {
  let d = path;
  let under = false;
  while ((d = d.slice(0, Math.max(0, d.lastIndexOf('/')))) && !under) under = opaque.has(d);
  return under || opaque.has('');
}

/** Pick the candidates among a guest's walked entries, with what the index knows of them. */
function pickCandidates(s: Scan, entries: WalkEntry[], rules: ExcludeRule[], minSize: number): void {
  const name = s.cfg.name;
  const mode = s.mode;
  // A file with a second link in the unified layer, at its own path: left by an interrupted run.
  let twins: Dirs | undefined;
  const leftover = (e: WalkEntry): boolean => {
    if (mode !== 'layer' || e.nlink !== 2) return false;
    if (!fs.existsSync(layout.unifiedLayer(name))) return false;
    twins ??= new Dirs(layout.unifiedLayer(name));
    return twins.isLink(e.path, e.ino);
  };
  const opaque = new Set<string>();
  for (const e of entries) {
    if (isDir(e)) {
      // (a directory whose xattrs could not all be read may be opaque: what is below stays)
      if (
        mode === 'layer' &&
        (e.xattrsUnread || e.xattrs?.some(([k, v]) => k === 'trusted.overlay.opaque' && v.toString() === 'y'))
      )
        opaque.add(e.path);
      continue;
    }
    s.files++;
    // A file whose xattrs could not all be read (a guest padded them past what listxattr
    // returns) would be taken for one without them: its security.capability would reach
    // the guests it is shared with. It is never shared.
    if (!isReg(e) || e.size < minSize || e.xattrsUnread) continue;
    if (mode === 'layer' && e.nlink !== 1 && !leftover(e)) continue;
    if (excluded(rules, `/${e.path}`)) continue;
    if (opaque.size && underOpaque(opaque, e.path)) continue;
    const mtime = ns(e.mtimeSec, e.mtimeNsec);
    const ctime = ns(e.ctimeSec, e.ctimeNsec);
    const c: Cand = { g: s, e, meta: metaKey(e), mtime, ctime, done: false };
    const known = s.idx.files.get(e.ino);
    if (known && known.size === e.size && known.mtime === mtime && known.ctime === ctime) {
      c.sha = known.sha;
      c.done = known.done;
    }
    s.cands.push(c);
  }
  (twins as Dirs | undefined)?.close();
}

/** What a guest's unified layer links already (layer mode), from its index or by walking it. */
function learnLayer(s: Scan, objects: Objects, dryRun: boolean): void {
  const name = s.cfg.name;
  if (s.idx.unified) {
    s.unified = s.idx.unified;
    return;
  }
  // (no index that knows the layer: the last run was interrupted, or none ran)
  const byIno = new Map([...objects].map(([k, v]) => [v.ino, k]));
  const orphans: WalkEntry[] = [];
  for (const e of walkTree(layout.unifiedLayer(name), { xattrs: true })) {
    if (!isReg(e)) continue;
    const k = byIno.get(e.ino);
    if (k) {
      if (!s.unified.has(k)) s.unified.set(k, e.path);
    } else if (e.nlink === 1 && !e.xattrsUnread) orphans.push(e); // (never shared, as above)
  }
  // An inode a killed run adopted into the layer and had not yet published as an
  // object: publish it now (step 4 of the move), so that the guests' twins join it.
  // A dry run, a running guest, or a failure leaves them for a later run, which must
  // then walk the layer again: the index is not saved as knowing it.
  const publish = !dryRun && !initAlive(readState(name));
  for (const e of orphans) {
    const k = publish ? publishOrphan(name, e, objects) : undefined;
    if (k === undefined) s.orphansLeft = true;
    else if (!s.unified.has(k)) s.unified.set(k, e.path);
  }
}

/**
 * Walk each guest's own tree (its upper, on overlay) and pick the candidates. Each guest opened
 * goes into `scans` at once, so that the caller closes its tree whatever happens. Returns the
 * objects store when a guest shares through it (layer mode).
 */
export async function scanGuests(
  names: string[],
  o: ScanOptions,
  scans: Scan[],
): Promise<Objects | undefined> {
  let objects: Objects | undefined;
  for (const name of names) {
    const s = await openScan(name, o);
    if (!s) continue;
    scans.push(s);
    let entries: WalkEntry[];
    try {
      entries = walkTree(s.root, { xattrs: true });
    } catch (e) {
      o.skip({ name, driver: s.driver.info.name }, messageOf(e));
      s.cands = [];
      continue;
    }
    pickCandidates(s, entries, rulesFor(name, o.excludes), o.minSize);
    if (s.mode === 'layer') learnLayer(s, (objects ??= loadObjects()), o.dryRun);
    o.progress(`Scanned "${name}": ${s.files} files, ${s.cands.length} candidates`);
  }
  return objects;
}

/**
 * Read only what may have a twin: same size and metadata elsewhere (or an object), and not
 * known to the index. Returns how much was read.
 */
export function readTwins(
  scans: Scan[],
  objects: Objects | undefined,
  progress: ScanOptions['progress'],
): { files: number; bytes: number } {
  const twins = new Map<string, number>();
  const sizeMeta = (mode: string, size: number, meta: string): string => `${mode}|${size}|${meta}`;
  for (const s of scans)
    for (const c of s.cands) {
      const k = sizeMeta(s.mode, c.e.size, c.meta);
      twins.set(k, (twins.get(k) ?? 0) + 1);
    }
  for (const [key, ob] of objects ?? []) {
    const k = sizeMeta('layer', ob.size, key.slice(65));
    twins.set(k, (twins.get(k) ?? 0) + 1);
  }
  const toHash = scans.flatMap((s) =>
    s.cands.filter((c) => !c.sha && (twins.get(sizeMeta(s.mode, c.e.size, c.meta)) ?? 0) > 1),
  );
  return hashAll(toHash, progress);
}

/** Read and hash the candidates, telling the fraction read every 5 % or so (most of the work). */
function hashAll(toHash: Cand[], progress: ScanOptions['progress']): { files: number; bytes: number } {
  const done = { files: 0, bytes: 0 };
  const total = toHash.reduce((a, c) => a + c.e.size, 0);
  if (toHash.length) progress(`Reading ${toHash.length} files (${formatMiB(total)})`);
  let read = 0;
  let shown = 0;
  for (const c of toHash) {
    read += c.e.size;
    if (total && read - shown >= total / 20) {
      shown = read;
      progress(`read ${(read / 2 ** 20).toFixed(1)} of ${formatMiB(total)}`, read / total);
    }
    const fd = openCand(c);
    if (fd === undefined) continue;
    try {
      const sha = hashFd(fd, c.e.size);
      if (sha) c.sha = sha;
    } finally {
      fs.closeSync(fd);
    }
    done.files++;
    done.bytes += c.e.size;
  }
  return done;
}

/**
 * Remember what was read. A guest's map of its unified layer is saved as whole unless its plan
 * waits for its next start or its layer holds inodes this run left unpublished.
 */
export function saveIndexes(scans: Scan[], waiting: (s: Scan) => boolean): void {
  for (const s of scans) {
    const files = new Map<number, IndexedFile>();
    for (const c of s.cands)
      if (c.sha)
        files.set(c.e.ino, { size: c.e.size, mtime: c.mtime, ctime: c.ctime, sha: c.sha, done: c.done });
    const whole = !waiting(s) && !s.orphansLeft;
    saveIndex(s.cfg.name, { files, unified: whole ? s.unified : undefined });
  }
}
