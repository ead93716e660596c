import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { growImage, isMountPoint, makeImage, mountImage, umountImage } from '../os/image.js';
import type { StorageConfig } from '../core/config.js';
import { layout } from './layout.js';

/**
 * A guest's private area: var/lib/jaula/guests/NAME, or, when the guest has a quota, an ext4
 * image of the allowed size mounted on guests/NAME/vol. Drivers keep the guest's own files in
 * base(name) (dir: rootfs, overlay: upper and work), so the quota counts exactly those.
 */
export const vol = {
  hasImage: (name: string): boolean => fs.existsSync(layout.image(name)),
  base: (name: string): string => (vol.hasImage(name) ? layout.vol(name) : layout.guestData(name)),

  async create(name: string, s: StorageConfig): Promise<void> {
    fs.mkdirSync(layout.guestData(name), { recursive: true, mode: 0o700 });
    if (s.quotaBytes === undefined) {
      if (s.quotaInodes !== undefined)
        throw new JaulaError(
          'invalid',
          'An inode limit needs a space limit too: give --quota SIZE with --quota-inodes N',
        );
      return;
    }
    await makeImage(layout.image(name), s.quotaBytes, s.quotaInodes);
    await vol.attach(name);
  },

  /** Make base(name) reachable (mount the image if there is one). */
  async attach(name: string): Promise<void> {
    if (vol.hasImage(name)) await mountImage(layout.image(name), layout.vol(name));
  },

  detach(name: string, lazy = false): void {
    if (vol.hasImage(name)) umountImage(layout.vol(name), lazy);
  },

  attached: (name: string): boolean => !vol.hasImage(name) || isMountPoint(layout.vol(name)),

  async grow(name: string, bytes: number): Promise<void> {
    await growImage(layout.image(name), layout.vol(name), bytes);
  },

  /** Space and inodes used and allowed, from the image's filesystem (attached). */
  usage(
    name: string,
  ): { bytes: number; bytesLimit: number; inodes: number; inodesLimit: number } | undefined {
    if (!vol.hasImage(name) || !isMountPoint(layout.vol(name))) return undefined;
    const s = fs.statfsSync(layout.vol(name));
    return {
      bytes: (s.blocks - s.bfree) * s.bsize,
      bytesLimit: s.blocks * s.bsize,
      inodes: s.files - s.ffree,
      inodesLimit: s.files,
    };
  },
};
