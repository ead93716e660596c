import * as fs from 'node:fs';
import { join } from 'node:path';
import { copyTree } from '../os/copy.js';
import { removeTree } from '../os/fs.js';
import { unmount, unmountAt, unmountBelow, unmountEntries } from '../os/mounts.js';
import { native, withFsIds } from '../os/native.js';
import { paths } from '../os/paths.js';
import { trace } from '../os/trace.js';
import type { GuestConfig } from '../guest/config.js';
import type { IdRange } from '../runtime/idmap.js';
import type { MountedRoot, StorageDriver } from './driver.js';
import { guestRunDir } from './barrier.js';
import { idmapMounts, idmappedLayersPath, idmappedRootPath, mountOrUndo } from './idmapped.js';
import { layout, overlayPath } from './layout.js';
import { copyDirAttrs, storedTemplateTree } from './tree.js';
import { applyPendingUnify } from './unifyapply.js';
import { vol } from './vol.js';

const upper = (name: string): string => join(vol.base(name), 'upper');
const work = (name: string): string => join(vol.base(name), 'work');

/**
 * Mount options. redirect_dir=nofollow and metacopy=off: overlay never follows redirect or
 * metacopy xattrs a hostile template could carry; index=off: layers may be added, removed and
 * hashified between mounts.
 */
export function overlayOptions(lowers: string[], up: string, wk: string): string {
  return [
    `lowerdir=${lowers.map(overlayPath).join(':')}`,
    `upperdir=${overlayPath(up)}`,
    `workdir=${overlayPath(wk)}`,
    'redirect_dir=nofollow',
    'index=off',
    'metacopy=off',
  ].join(',');
}

/** Unmount the overlay (either kind), then the idmapped views of its layers. */
function unmountRoot(name: string): void {
  unmountAt(layout.mountPoint(name));
  unmountAt(idmappedRootPath(name));
  unmountEntries(idmappedLayersPath(name));
  for (const d of [layout.mountPoint(name), idmappedRootPath(name)])
    try {
      fs.rmdirSync(d);
    } catch {
      /* absent or not empty (never remove files under a mount point) */
    }
  removeEmptyDirs(idmappedLayersPath(name));
}

/** Remove `dir` and the empty directories in it (mount points left by unmountRoot). */
function removeEmptyDirs(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names)
    try {
      fs.rmdirSync(join(dir, n));
    } catch {
      /* not empty or still mounted: left alone */
    }
  try {
    fs.rmdirSync(dir);
  } catch {
    /* not empty */
  }
}

/**
 * An unprivileged guest's root. Overlayfs cannot itself be idmapped, but it can stack idmapped
 * mounts: every lower layer, and the directory holding upper and work, is bound idmapped
 * (on-disk ID n seen as host ID range.hostId + n) under run/jaula/guests/NAME/layers, and the
 * overlay is mounted from those. Overlay does its own work (work dir, copy-up) with its
 * mounter's credentials, which must map through the idmapped upper: it is mounted with the
 * file system IDs of the guest's root (range.hostId). Files stay on disk with plain IDs, so
 * layers remain shared between guests of any ID range.
 */
async function mountIdmappedOverlay(cfg: GuestConfig, range: IdRange): Promise<MountedRoot> {
  const name = cfg.name;
  const at = idmappedLayersPath(name);
  fs.mkdirSync(at, { recursive: true, mode: 0o700 });
  const lowers = lowerDirs(cfg).map((_, i) => join(at, String(i)));
  const rw = join(at, 'rw');
  await idmapMounts(
    [...lowerDirs(cfg).map((dir, i): [string, string] => [dir, lowers[i] as string]), [vol.base(name), rw]],
    range,
    `Mounting the layers of guest "${name}" idmapped`,
  );
  trace('start: layers idmapped');
  const root = idmappedRootPath(name);
  fs.mkdirSync(root, { recursive: true, mode: 0o711 });
  withFsIds(range.hostId, () =>
    native().mount(
      'overlay',
      root,
      'overlay',
      0,
      overlayOptions(lowers, join(rw, 'upper'), join(rw, 'work')),
    ),
  );
  // The overlay holds private clones of its layers' mounts (idmapping included): the views go
  // at once. Every mount in the host's namespace is copied by each runtime that makes a guest's
  // namespace, and read by it in mountinfo: a running guest leaves its root, not its layers.
  for (const l of [...lowers, rw]) unmount(l);
  return { root, hostView: root, hostShift: range.hostId };
}

function lowerDirs(cfg: GuestConfig): string[] {
  return [
    layout.unifiedLayer(cfg.name),
    ...[...(cfg.storage.layers ?? [])].reverse().map(storedTemplateTree),
  ];
}

/**
 * "overlay": the guest's root is overlayfs: its own changes (upper) over hashify's unified
 * layer over read-only layers (stored templates, bottom first in cfg.storage.layers). Mounted
 * at start (unprivileged guests: over idmapped views of those, see mountIdmappedOverlay),
 * unmounted at stop.
 */
export const overlayDriver: StorageDriver = {
  info: {
    name: 'overlay',
    cheapClone: true,
    layers: true,
    unify: 'layer',
    unifyRunning: 'next-start',
    quota: 'image',
  },
  unavailable() {
    try {
      if (/\boverlay$/m.test(fs.readFileSync('/proc/filesystems', 'utf8'))) return undefined;
    } catch {
      /* no /proc */
    }
    return 'this kernel has no overlayfs (CONFIG_OVERLAY_FS): use --storage dir';
  },
  treePath: upper,
  lowerDirs,
  snapshotsDir: layout.snapshots,
  linkedDirs: (name) => [layout.unifiedLayer(name)],
  async create(cfg) {
    const layers = (cfg.storage.layers ?? []).map(storedTemplateTree);
    await vol.create(cfg.name, cfg.storage);
    fs.mkdirSync(upper(cfg.name), { recursive: true, mode: 0o755 });
    fs.mkdirSync(work(cfg.name), { recursive: true, mode: 0o700 });
    fs.mkdirSync(layout.unifiedLayer(cfg.name), { recursive: true, mode: 0o755 });
    const top = layers[layers.length - 1];
    if (top) copyDirAttrs(top, upper(cfg.name));
  },
  async clone(src, dst, progress) {
    await vol.create(dst.name, dst.storage);
    fs.mkdirSync(upper(dst.name), { recursive: true, mode: 0o755 });
    fs.mkdirSync(work(dst.name), { recursive: true, mode: 0o700 });
    fs.mkdirSync(layout.unifiedLayer(dst.name), { recursive: true, mode: 0o755 });
    copyDirAttrs(upper(src.name), upper(dst.name));
    // The layers are shared as they are; the unified layer's files are immutable objects, so
    // the copy links them; only the source's own changes are copied (cloned where possible).
    await copyTree(layout.unifiedLayer(src.name), layout.unifiedLayer(dst.name), { link: true });
    await copyTree(upper(src.name), upper(dst.name), { reflink: 'auto', ...(progress ? { progress } : {}) });
  },
  async mount(cfg, opts = {}) {
    return mountOrUndo(
      async () => {
        await vol.attach(cfg.name);
        await applyPendingUnify(cfg.name, upper(cfg.name));
        unmountRoot(cfg.name); // a stale mount from a crash: mount afresh with today's layers
        // Its mounts appear behind the guest's barrier (which its root's runtime may pass).
        guestRunDir(cfg.name, opts.idmap?.hostId);
        fs.mkdirSync(layout.unifiedLayer(cfg.name), { recursive: true, mode: 0o755 });
        fs.mkdirSync(work(cfg.name), { recursive: true, mode: 0o700 });
        if (opts.idmap) return mountIdmappedOverlay(cfg, opts.idmap);
        const mp = layout.mountPoint(cfg.name);
        fs.mkdirSync(mp, { recursive: true, mode: 0o700 });
        const o = overlayOptions(lowerDirs(cfg), upper(cfg.name), work(cfg.name));
        native().mount('overlay', mp, 'overlay', 0, o);
        return { root: mp, hostView: mp };
      },
      () => overlayDriver.unmount(cfg),
    );
  },
  async unmount(cfg) {
    unmountRoot(cfg.name);
    vol.detach(cfg.name);
  },
  async destroy(name) {
    unmountRoot(name);
    await unmountBelow(paths().guestData(name));
    removeTree(paths().guestData(name));
    removeTree(layout.index(name));
  },
};
