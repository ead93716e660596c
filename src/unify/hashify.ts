import type { HashifyReport as WireReport } from '../api/types.js';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError, errnoOf, messageOf } from '../common/errors.js';
import type { GuestConfig } from '../guest/config.js';
import { withGuestLock } from '../guest/locks.js';
import { initAlive, readState } from '../guest/state.js';
import { loadConfig, listGuestNames } from '../guest/store.js';
import { readFileOr } from '../os/fs.js';
import { withLock } from '../os/lock.js';
import { O_NOFOLLOW, RESOLVE_STRICT_BENEATH, native } from '../os/native.js';
import { paths } from '../os/paths.js';
import { trace } from '../os/trace.js';
import { isDir, isReg, walkTree, type WalkEntry } from '../os/walk.js';
import { storageDriver, type StorageDriver } from '../storage/index.js';
import { layout } from '../storage/layout.js';
import {
  applyUnify,
  cleanScratch,
  Dirs,
  objectPath,
  savePendingUnify,
  type UnifyEntry,
} from '../storage/unifyapply.js';
import { vol } from '../storage/vol.js';
import { DEFAULT_EXCLUDES, excluded, parseExcludes, type ExcludeRule } from './exclude.js';
import { loadIndex, saveIndex, type GuestIndex, type IndexedFile } from './index.js';

/**
 * hashify: identical files of several guests end up sharing their storage, copy-on-write.
 *
 * Overlay guests ("layer"): files of the guests' own trees (their uppers) with the same content
 * and metadata (mode, owner, mtime, xattrs) become hard links to one content-addressed object,
 * in a per-guest "unified" layer right under the guest's upper (storage/unifyapply.ts). One
 * inode: disk space and page cache are shared; a write in a guest copies the file up into its
 * own upper, so no other guest ever sees it. Running guests are unified at their next start.
 *
 * Reflink guests ("dedupe"): identical files share their data extents (FIDEDUPERANGE; the kernel
 * compares the contents itself and shares them atomically), running guests included; each file
 * keeps its inode, so page cache is not shared.
 *
 * Files smaller than minSize, excluded paths (exclude.ts) and, on overlay, files with several
 * hard links or below opaque directories are left alone. The index (index.ts) keeps the hash of
 * every file read, so a rescan reads only files that changed.
 */
export interface HashifyOptions {
  guests?: string[];
  all?: boolean;
  dryRun?: boolean;
  /** Files smaller than this are left alone (default 1 KiB). */
  minSize?: number;
  /** Extra exclude rules, before the guest's and the host's lists. */
  excludes?: string[];
  progress?: (line: string, fraction?: number) => void;
}

export type GuestResult =
  | 'unified'
  | 'deduplicated'
  | 'at next start'
  | 'would unify'
  | 'would deduplicate'
  | 'nothing to do'
  | 'skipped';

/** The API's report (api/types.ts), with this module's results. */
export interface HashifyReport extends Omit<WireReport, 'guests'> {
  guests: (WireReport['guests'][number] & { result: GuestResult })[];
}

export const DEFAULT_MIN_SIZE = 1024;

interface Cand {
  g: Scan;
  e: WalkEntry;
  meta: string;
  mtime: string;
  ctime: string;
  sha?: string;
  done: boolean;
}

interface Scan {
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
function openCand(c: Cand): number | undefined {
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
function publishOrphan(
  name: string,
  e: WalkEntry,
  objects: Map<string, { ino: number; nlink: number; size: number }>,
): string | undefined {
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

function selectGuests(o: HashifyOptions): string[] {
  const names = o.all ? listGuestNames() : (o.guests ?? []);
  if (!names.length)
    throw new JaulaError(
      'usage',
      'Name the guests to unify, or give --all: jaula hashify [GUEST...|--all] [--dry-run]',
    );
  if (o.all && o.guests?.length) throw new JaulaError('usage', 'Give guest names or --all, not both');
  return names;
}

/** Walk the objects store: key -> inode. */
function loadObjects(): Map<string, { ino: number; nlink: number; size: number }> {
  const m = new Map<string, { ino: number; nlink: number; size: number }>();
  for (const e of walkTree(layout.objects()))
    if (isReg(e)) m.set(e.path.slice(3), { ino: e.ino, nlink: e.nlink, size: e.size });
  return m;
}

export async function hashify(o: HashifyOptions): Promise<HashifyReport> {
  const t0 = Date.now();
  const names = selectGuests(o);
  const progress = o.progress ?? (() => {});
  const minSize = o.minSize ?? DEFAULT_MIN_SIZE;
  const report: HashifyReport = {
    dryRun: !!o.dryRun,
    guests: [],
    scanned: { files: 0, candidates: 0, hashedFiles: 0, hashedBytes: 0 },
    unified: { files: 0, bytes: 0 },
    objectsRemoved: 0,
    ms: { scan: 0, apply: 0, total: 0 },
  };
  const skip = (cfg: { name: string; driver: string }, reason: string): void => {
    report.guests.push({ name: cfg.name, driver: cfg.driver, result: 'skipped', reason, files: 0, bytes: 0 });
  };
  return withLock(paths().locks, 'hashify', 'hashify', async () => {
    cleanScratch();
    const scans: Scan[] = [];
    try {
      // 1. Walk each guest's own tree (its upper, on overlay) and pick the candidates.
      let objects: ReturnType<typeof loadObjects> | undefined;
      for (const name of names) {
        const cfg = loadConfig(name);
        const driver = await storageDriver(cfg.storage.driver);
        const mode = driver.info.unify;
        const id = { name, driver: driver.info.name };
        if (mode === 'none') {
          skip(id, `${driver.info.name} storage cannot share files (use overlay or reflink storage)`);
          continue;
        }
        if (mode === 'layer' && vol.hasImage(name)) {
          skip(id, 'its own files are in its quota image, another filesystem than the shared objects');
          continue;
        }
        const root = driver.treePath(name);
        let rootFd: number;
        try {
          rootFd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | O_NOFOLLOW);
        } catch (e) {
          skip(id, `its tree cannot be read (${messageOf(e)})`);
          continue;
        }
        const s: Scan = {
          cfg,
          driver,
          mode,
          root,
          rootFd,
          idx: loadIndex(name),
          unified: new Map(),
          orphansLeft: false,
          cands: [],
          files: 0,
        };
        scans.push(s);
        let entries: WalkEntry[];
        try {
          entries = walkTree(root, { xattrs: true });
        } catch (e) {
          skip(id, messageOf(e));
          s.cands = [];
          continue;
        }
        const rules = rulesFor(name, o.excludes ?? []);
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
              (e.xattrsUnread ||
                e.xattrs?.some(([k, v]) => k === 'trusted.overlay.opaque' && v.toString() === 'y'))
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
          if (opaque.size) {
            let d = e.path;
            let under = false;
            while ((d = d.slice(0, Math.max(0, d.lastIndexOf('/')))) && !under) under = opaque.has(d);
            if (under || opaque.has('')) continue;
          }
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
        if (mode === 'layer') {
          objects ??= loadObjects();
          if (s.idx.unified) s.unified = s.idx.unified;
          else {
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
            const publish = !o.dryRun && !initAlive(readState(name));
            for (const e of orphans) {
              const k = publish ? publishOrphan(name, e, objects) : undefined;
              if (k === undefined) s.orphansLeft = true;
              else if (!s.unified.has(k)) s.unified.set(k, e.path);
            }
          }
        }
        report.scanned.files += s.files;
        report.scanned.candidates += s.cands.length;
        progress(`Scanned "${name}": ${s.files} files, ${s.cands.length} candidates`);
      }
      trace('hashify: walked');
      // 2. Read only what may have a twin: same size and metadata elsewhere (or an object).
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
      const total = toHash.reduce((a, c) => a + c.e.size, 0);
      if (toHash.length) progress(`Reading ${toHash.length} files (${(total / 2 ** 20).toFixed(1)} MiB)`);
      // Reading is most of the work: its fraction, every 5 % or so.
      let read = 0;
      let shown = 0;
      for (const c of toHash) {
        read += c.e.size;
        if (total && read - shown >= total / 20) {
          shown = read;
          progress(
            `read ${(read / 2 ** 20).toFixed(1)} of ${(total / 2 ** 20).toFixed(1)} MiB`,
            read / total,
          );
        }
        const fd = openCand(c);
        if (fd === undefined) continue;
        try {
          const sha = hashFd(fd, c.e.size);
          if (sha) c.sha = sha;
        } finally {
          fs.closeSync(fd);
        }
        report.scanned.hashedFiles++;
        report.scanned.hashedBytes += c.e.size;
      }
      report.ms.scan = Date.now() - t0;
      trace('hashify: read');
      const t1 = Date.now();

      // 3. Group by content and metadata; plan per guest.
      const groups = new Map<string, Cand[]>();
      for (const s of scans)
        for (const c of s.cands) {
          if (!c.sha) continue;
          const k = `${s.mode}|${c.sha}-${c.meta}`;
          const g = groups.get(k);
          if (g) g.push(c);
          else groups.set(k, [c]);
        }
      const plans = new Map<Scan, UnifyEntry[]>();
      const dedupes: { src: Cand; dst: Cand }[] = [];
      for (const [k, members] of groups) {
        const key = k.slice(k.indexOf('|') + 1);
        if (k.startsWith('layer|')) {
          const byGuest = new Map<Scan, Cand>();
          // One path per object in a guest (two would look like hard links to it); the same path
          // again is what an interrupted run left half done.
          for (const c of members) {
            const at = c.g.unified.get(key);
            if (!byGuest.has(c.g) && (at === undefined || at === c.e.path)) byGuest.set(c.g, c);
          }
          const using = scans.filter(
            (s) => s.mode === 'layer' && s.unified.has(key) && !byGuest.has(s),
          ).length;
          if (byGuest.size === 0 || byGuest.size + using < 2) continue;
          for (const [s, c] of byGuest) {
            const list = plans.get(s) ?? [];
            list.push({ path: c.e.path, ino: c.e.ino, size: c.e.size, mtime: c.mtime, ctime: c.ctime, key });
            plans.set(s, list);
          }
        } else {
          const seen = new Set<string>();
          const distinct = members.filter((c) => {
            const id = `${c.e.dev}:${c.e.ino}`;
            if (seen.has(id)) return false;
            seen.add(id);
            return true;
          });
          if (distinct.length < 2) continue;
          const src = distinct.find((c) => c.done) ?? (distinct[0] as Cand);
          for (const c of distinct) if (c !== src && !c.done) dedupes.push({ src, dst: c });
        }
      }

      // 4. Carry it out (or say what would be done).
      const result = new Map<Scan, { result: GuestResult; files: number; bytes: number }>();
      const add = (s: Scan, r: GuestResult, files: number, bytes: number): void => {
        const x = result.get(s) ?? { result: r, files: 0, bytes: 0 };
        x.result = r;
        x.files += files;
        x.bytes += bytes;
        result.set(s, x);
      };
      for (const [s, entries] of plans) {
        const bytes = entries.reduce((a, e) => a + e.size, 0);
        if (o.dryRun) {
          add(s, 'would unify', entries.length, bytes);
          continue;
        }
        await withGuestLock(s.cfg.name, async () => {
          if (initAlive(readState(s.cfg.name))) {
            savePendingUnify(s.cfg.name, entries);
            add(s, 'at next start', entries.length, bytes);
            return;
          }
          const r = applyUnify(s.cfg.name, s.root, entries);
          for (const e of r.done) s.unified.set(e.key, e.path);
          const doneIno = new Set(r.done.map((e) => e.ino));
          s.cands = s.cands.filter((c) => !doneIno.has(c.e.ino));
          add(s, 'unified', r.unified, r.bytes);
        });
      }
      for (const { src, dst } of dedupes) {
        if (o.dryRun) {
          add(dst.g, 'would deduplicate', 1, dst.e.size);
          continue;
        }
        const a = openCand(src);
        const b = a === undefined ? undefined : openCand(dst);
        try {
          if (a === undefined || b === undefined) continue;
          const n = native().dedupe(a, b, dst.e.size);
          if (n === dst.e.size) {
            src.done = dst.done = true;
            add(dst.g, 'deduplicated', 1, n);
          }
        } catch (e) {
          if (errnoOf(e) !== 'EINVAL' && errnoOf(e) !== 'EXDEV') throw e;
        } finally {
          if (a !== undefined) fs.closeSync(a);
          if (b !== undefined) fs.closeSync(b);
        }
      }
      trace('hashify: applied');
      // 5. Objects no guest links any more go.
      if (!o.dryRun && objects)
        for (const [key] of objects) {
          try {
            if (fs.lstatSync(objectPath(key)).nlink === 1) {
              fs.unlinkSync(objectPath(key));
              report.objectsRemoved++;
            }
          } catch {
            /* gone meanwhile */
          }
        }
      trace('hashify: objects collected');
      // 6. Remember what was read.
      for (const s of scans) {
        const files = new Map<number, IndexedFile>();
        for (const c of s.cands)
          if (c.sha)
            files.set(c.e.ino, { size: c.e.size, mtime: c.mtime, ctime: c.ctime, sha: c.sha, done: c.done });
        const r = result.get(s);
        const whole = r?.result !== 'at next start' && !s.orphansLeft;
        saveIndex(s.cfg.name, { files, unified: whole ? s.unified : undefined });
      }
      for (const s of scans) {
        if (report.guests.some((g) => g.name === s.cfg.name)) continue;
        const r = result.get(s) ?? { result: 'nothing to do' as const, files: 0, bytes: 0 };
        report.guests.push({ name: s.cfg.name, driver: s.driver.info.name, ...r });
        if (r.result !== 'nothing to do') {
          report.unified.files += r.files;
          report.unified.bytes += r.bytes;
        }
      }
      trace('hashify: index saved');
      report.ms.apply = Date.now() - t1;
      report.ms.total = Date.now() - t0;
      return report;
    } finally {
      for (const s of scans) fs.closeSync(s.rootFd);
    }
  });
}
