import { join } from 'node:path';
import { removeTree } from '../os/fs.js';
import { unmountBelow } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import type { StorageDriver } from './driver.js';
import { mountIdmapped, unmountIdmapped } from './idmapped.js';

const tree = (name: string): string => join(paths().guestData(name), 'rootfs');

/** "dir": the guest's root is a plain directory tree. */
export const dirDriver: StorageDriver = {
  info: { name: 'dir', cheapClone: false },
  treePath: tree,
  mount: async (cfg, opts = {}) => {
    const t = tree(cfg.name);
    return { root: opts.idmap ? await mountIdmapped(cfg.name, t, opts.idmap) : t, hostView: t };
  },
  unmount: async (cfg) => unmountIdmapped(cfg.name),
  destroy: async (name) => {
    await unmountBelow(paths().guestData(name));
    removeTree(paths().guestData(name));
  },
};
