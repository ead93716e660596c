import * as fs from 'node:fs';
import { join } from 'node:path';
import { copyTree } from '../os/copy.js';
import { removeTree } from '../os/fs.js';
import { unmountBelow } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import type { StorageDriver } from './driver.js';
import { mountOrUndo, mountTree, unmountView } from './idmapped.js';
import { layout } from './layout.js';
import { copyDirAttrs, storedTemplateTree } from './tree.js';
import { vol } from './vol.js';

const rootfs = (name: string): string => join(vol.base(name), 'rootfs');

/** "dir": the guest's root is a plain directory tree (a template is copied into it). */
export const dirDriver: StorageDriver = {
  info: {
    name: 'dir',
    cheapClone: false,
    layers: false,
    unify: 'none',
    unifyRunning: 'never',
    quota: 'image',
  },
  unavailable: () => undefined,
  treePath: rootfs,
  async create(cfg) {
    await vol.create(cfg.name, cfg.storage);
    fs.mkdirSync(rootfs(cfg.name), { recursive: true, mode: 0o755 });
    if (cfg.storage.template) {
      const tree = storedTemplateTree(cfg.storage.template);
      copyDirAttrs(tree, rootfs(cfg.name));
      await copyTree(tree, rootfs(cfg.name), { reflink: 'auto' });
    }
  },
  async clone(src, dst, progress) {
    await vol.create(dst.name, dst.storage);
    fs.mkdirSync(rootfs(dst.name), { recursive: true, mode: 0o755 });
    copyDirAttrs(rootfs(src.name), rootfs(dst.name));
    await copyTree(rootfs(src.name), rootfs(dst.name), {
      reflink: 'auto',
      ...(progress ? { progress } : {}),
    });
  },
  async mount(cfg, opts = {}) {
    return mountOrUndo(
      async () => {
        await vol.attach(cfg.name);
        return mountTree(cfg.name, rootfs(cfg.name), opts);
      },
      () => dirDriver.unmount(cfg),
    );
  },
  async unmount(cfg) {
    await unmountView(cfg.name);
    vol.detach(cfg.name);
  },
  async destroy(name) {
    await unmountBelow(paths().guestData(name));
    removeTree(paths().guestData(name));
  },
  lowerDirs: () => [],
  snapshotsDir: layout.snapshots,
  linkedDirs: () => [],
};
