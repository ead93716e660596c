import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../common/errors.js';
import { copyTree } from '../os/copy.js';
import { removeTree } from '../os/fs.js';
import { isMountPoint } from '../os/image.js';
import { unmountBelow } from '../os/mounts.js';
import { MNT_DETACH, native } from '../os/native.js';
import { paths } from '../os/paths.js';
import type { GuestConfig } from '../core/config.js';
import type { StorageDriver } from './driver.js';
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

function unmountRoot(name: string): void {
  const mp = layout.mountPoint(name);
  if (isMountPoint(mp)) {
    try {
      native().umount2(mp, 0);
    } catch (e) {
      if (errnoOf(e) !== 'EINVAL') native().umount2(mp, MNT_DETACH);
    }
  }
  try {
    fs.rmdirSync(mp);
  } catch {
    /* absent or not empty (never remove files under a mount point) */
  }
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
 * at start on run/jaula/guests/NAME/rootfs, unmounted at stop.
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
  async mount(cfg) {
    await vol.attach(cfg.name);
    await applyPendingUnify(cfg.name, upper(cfg.name));
    const mp = layout.mountPoint(cfg.name);
    unmountRoot(cfg.name); // a stale mount from a crash: mount afresh with today's layers
    fs.mkdirSync(mp, { recursive: true, mode: 0o755 });
    fs.mkdirSync(layout.unifiedLayer(cfg.name), { recursive: true, mode: 0o755 });
    fs.mkdirSync(work(cfg.name), { recursive: true, mode: 0o700 });
    native().mount(
      'overlay',
      mp,
      'overlay',
      0,
      overlayOptions(lowerDirs(cfg), upper(cfg.name), work(cfg.name)),
    );
    return mp;
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
