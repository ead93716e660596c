import { join } from 'node:path';
import { removeTree } from '../os/fs.js';
import { unmountBelow } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import type { StorageDriver } from './driver.js';

/** "dir": the guest's root is a plain directory tree. */
export const dirDriver: StorageDriver = {
  info: { name: 'dir', cheapClone: false },
  treePath: (name) => join(paths().guestData(name), 'rootfs'),
  mount: async (cfg) => join(paths().guestData(cfg.name), 'rootfs'),
  unmount: async () => {},
  destroy: async (name) => {
    await unmountBelow(paths().guestData(name));
    removeTree(paths().guestData(name));
  },
};
