import type { DuReport, GuestDiskUsage } from '../api/types.js';
import * as fs from 'node:fs';
import type { GuestConfig } from '../guest/config.js';
import { withGuestLock } from '../guest/locks.js';
import { initAlive, readState } from '../guest/state.js';
import { listGuestNames, loadConfig } from '../guest/store.js';
import { O_NOFOLLOW, RESOLVE_STRICT_BENEATH, native } from '../os/native.js';
import { paths } from '../os/paths.js';
import { isDir, isReg, isWhiteout, walkTree, type WalkEntry } from '../os/walk.js';
import { storageDriver, type StorageDriver } from '../storage/index.js';
import { layout } from '../storage/layout.js';
import { snapshotBytes, snapshotMetas } from '../storage/snapshot.js';
import { vol } from '../storage/vol.js';

/**
 * `jaula du` (the seed's vdu): what each guest really uses on disk.
 *
 *   exclusive  bytes and inodes only this guest holds: deleting it frees them (its own files,
 *              and unified objects no other guest or template links)
 *   shared     bytes of files it sees that others hold too: its layers' files it can see (a
 *              file a whiteout or its own copy hides does not count), objects other guests
 *              link, extents shared by reflinks
 *   total      every inode counted once, over all guests, templates and objects: what is
 *              really used on disk (reflink pool: its filesystem's used space)
 *
 * Hard links are counted once; blocks are the allocated ones (st_blocks), as du(1) counts.
 */

/** One guest's usage and the whole report: the API's types (api/types.ts). */
export type GuestUsage = GuestDiskUsage;
export type { DuReport };

const key = (e: WalkEntry): string => `${e.dev}:${e.ino}`;
const bytesOf = (e: WalkEntry): number => e.blocks * 512;

/** Entries of the lower layers (top first) that the guest can see through the layers above. */
function visibleLower(own: WalkEntry[], lowers: WalkEntry[][]): WalkEntry[] {
  const seen = new Set<string>();
  const blocked = new Set<string>();
  const mark = (es: WalkEntry[]): void => {
    for (const e of es) {
      seen.add(e.path);
      const opaque =
        isDir(e) && e.xattrs?.some(([k, v]) => k === 'trusted.overlay.opaque' && v.toString() === 'y');
      if (!isDir(e) || opaque) blocked.add(e.path);
    }
  };
  const hiddenBelow = (p: string): boolean => {
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1))
      if (blocked.has(p.slice(0, i))) return true;
    return false;
  };
  mark(own);
  const out: WalkEntry[] = [];
  for (const layer of lowers) {
    const visible = layer.filter(
      (e) => e.path !== '' && !seen.has(e.path) && !hiddenBelow(e.path) && !isWhiteout(e),
    );
    out.push(...visible);
    mark(layer.filter((e) => !seen.has(e.path) && !hiddenBelow(e.path)));
  }
  return out;
}

/** Exclusive and shared bytes of a reflink guest, from its files' extents. */
function reflinkUsage(root: string, own: WalkEntry[]): { excl: number; shared: number } {
  let excl = 0;
  let shared = 0;
  const rfd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | O_NOFOLLOW);
  try {
    const done = new Set<number>();
    for (const e of own) {
      if (!isReg(e) || done.has(e.ino)) {
        if (!isReg(e)) excl += bytesOf(e);
        continue;
      }
      done.add(e.ino);
      let fd: number;
      try {
        fd = native().openat2(
          rfd,
          e.path,
          fs.constants.O_RDONLY | O_NOFOLLOW | fs.constants.O_NONBLOCK,
          0,
          RESOLVE_STRICT_BENEATH,
        );
      } catch {
        continue;
      }
      try {
        const [total, sh] = native().fiemap(fd);
        shared += sh;
        excl += Math.max(0, total - sh);
      } catch {
        excl += bytesOf(e);
      } finally {
        fs.closeSync(fd);
      }
    }
  } finally {
    fs.closeSync(rfd);
  }
  return { excl, shared };
}

async function guestUsage(
  cfg: GuestConfig,
  d: StorageDriver,
  objects: Set<string>,
  layerCache: Map<string, WalkEntry[]>,
): Promise<{ u: GuestUsage; seen: number }> {
  const name = cfg.name;
  const u: GuestUsage = { name, driver: d.info.name, exclusiveBytes: 0, exclusiveInodes: 0, sharedBytes: 0 };
  let q: Awaited<ReturnType<typeof vol.usage>>;
  const read = async (): Promise<WalkEntry[]> => {
    const own = walkTree(d.treePath(name), { xattrs: d.info.layers });
    q = await vol.usage(name);
    return own;
  };
  // A stopped guest's quota image is mounted just to read it.
  let own: WalkEntry[];
  if (vol.hasImage(name) && !vol.attached(name))
    own = await withGuestLock(name, async () => {
      if (initAlive(readState(name))) return read();
      await vol.attach(name);
      try {
        return read();
      } finally {
        vol.detach(name);
      }
    });
  else own = await read();
  if (q) u.quota = q;
  const snaps = snapshotMetas(d.snapshotsDir(name));
  if (snaps.length) {
    const sizes = [...(await snapshotBytes(d.snapshotsDir(name), snaps)).values()];
    u.snapshots = { count: snaps.length };
    if (sizes.length) u.snapshots.bytes = sizes.reduce((a, b) => a + b, 0);
  }

  let seen = 0;
  if (d.info.unify === 'dedupe') {
    const r = reflinkUsage(d.treePath(name), own);
    u.exclusiveBytes = r.excl;
    u.sharedBytes = r.shared;
    u.exclusiveInodes = own.length;
    return { u, seen: r.excl + r.shared };
  }
  // Own files (and the unified layer's): exclusive unless linked from elsewhere too.
  const lowers = d.lowerDirs(cfg);
  const unified = d.info.unify === 'layer' && lowers[0] ? walkTree(lowers[0]) : [];
  const links = new Map<string, { e: WalkEntry; n: number }>();
  for (const e of [...own, ...unified]) {
    const x = links.get(key(e));
    if (x) x.n++;
    else links.set(key(e), { e, n: 1 });
  }
  for (const { e, n } of links.values()) {
    const others = e.nlink - n - (objects.has(key(e)) ? 1 : 0);
    if (isDir(e) || others <= 0) {
      u.exclusiveBytes += bytesOf(e);
      u.exclusiveInodes++;
    } else u.sharedBytes += bytesOf(e);
    seen += bytesOf(e);
  }
  // Layers: what the guest can see of them is shared (the template store holds it).
  const layerDirs = d.info.unify === 'layer' ? lowers.slice(1) : lowers;
  if (layerDirs.length) {
    const trees = layerDirs.map((dir) => {
      let t = layerCache.get(dir);
      if (!t) layerCache.set(dir, (t = walkTree(dir, { xattrs: true })));
      return t;
    });
    const counted = new Set<string>();
    for (const e of visibleLower([...own, ...unified], trees)) {
      if (counted.has(key(e)) || links.has(key(e))) continue;
      counted.add(key(e));
      u.sharedBytes += bytesOf(e);
      seen += bytesOf(e);
    }
  }
  return { u, seen };
}

export async function diskUsage(names: string[]): Promise<DuReport> {
  const selected = names.length ? names : listGuestNames();
  const objects = new Set(walkTree(layout.objects()).filter(isReg).map(key));
  const layerCache = new Map<string, WalkEntry[]>();
  const report: DuReport = { guests: [], totalBytes: 0, seenBytes: 0 };
  let pool = false;
  for (const n of selected) {
    const cfg = loadConfig(n);
    const d = await storageDriver(cfg.storage.driver);
    if (d.info.unify === 'dedupe') pool = true;
    const { u, seen } = await guestUsage(cfg, d, objects, layerCache);
    report.guests.push(u);
    // (a pool's snapshots are subvolumes the walk below does not enter: their own bytes here)
    if (vol.hasSubvol(n)) report.totalBytes += u.snapshots?.bytes ?? 0;
    report.seenBytes += seen;
  }
  // Everything once: the guests' data (quota images as the files they are), templates, objects.
  const distinct = new Map<string, number>();
  // (a pool's subvolumes are filesystems of their own to the walk: walked each)
  const subvols = listGuestNames()
    .filter((n) => vol.hasSubvol(n))
    .map((n) => layout.vol(n));
  for (const dir of [paths().guestsData, layout.templates(), layout.layers(), layout.store(), ...subvols])
    for (const e of walkTree(dir)) distinct.set(key(e), bytesOf(e));
  report.totalBytes += [...distinct.values()].reduce((a, b) => a + b, 0);
  if (pool && fs.existsSync(layout.pool())) {
    const s = fs.statfsSync(layout.pool());
    if (fs.statSync(layout.pool()).dev !== fs.statSync(paths().lib).dev)
      report.totalBytes += (s.blocks - s.bfree) * s.bsize;
  }
  return report;
}
