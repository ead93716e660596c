import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { growImage, isMountPoint, makeImage, mountImage, umountImage } from '../os/image.js';
import type { StorageConfig } from '../guest/config.js';
import { libDir } from './barrier.js';
import { layout } from './layout.js';
import { qgroupPool, subvolCreate, subvolLimit } from './pool.js';
import { groupLimit, subvolGroups } from './qgroup.js';

/**
 * A guest's private area: var/lib/jaula/guests/NAME; or, on a storage pool (storage/pool.ts),
 * a btrfs subvolume guests/NAME/vol whose quota group holds the guest's space limit; or, when
 * the guest has a quota elsewhere (or an inode limit), an ext4 image of the allowed size
 * mounted on guests/NAME/vol. Drivers keep the guest's own files in base(name) (dir: rootfs,
 * overlay: upper and work), so the limit counts exactly those.
 */
export const vol = {
  hasImage: (name: string): boolean => fs.existsSync(layout.image(name)),
  /** Its own files are in a subvolume of the pool (with or without a limit). */
  hasSubvol: (name: string): boolean => !vol.hasImage(name) && fs.existsSync(layout.vol(name)),
  base: (name: string): string =>
    vol.hasImage(name) || fs.existsSync(layout.vol(name)) ? layout.vol(name) : layout.guestData(name),

  async create(name: string, s: StorageConfig): Promise<void> {
    libDir();
    fs.mkdirSync(layout.guestData(name), { recursive: true, mode: 0o700 });
    if (s.quotaBytes === undefined && s.quotaInodes !== undefined)
      throw new JaulaError(
        'invalid',
        'An inode limit needs a space limit too: give --quota SIZE with --quota-inodes N',
      );
    if (s.quotaInodes === undefined && qgroupPool()) {
      await subvolCreate(layout.vol(name), s.quotaBytes);
      return;
    }
    if (s.quotaBytes === undefined) return;
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

  /**
   * Set (null: remove) the space limit of a guest whose files are in a pool's subvolume: on the
   * quota group that holds it and its snapshots once it has one (storage/qgroup.ts).
   */
  async limit(name: string, bytes: number | null): Promise<void> {
    const { group } = await subvolGroups(layout.vol(name));
    await (group ? groupLimit(group.id, bytes) : subvolLimit(layout.vol(name), bytes));
  },

  /**
   * Space and inodes used and allowed: from the image's filesystem (attached), or from the
   * subvolume's quota group (btrfs counts no inodes: they take space, counted in bytes).
   */
  async usage(
    name: string,
  ): Promise<{ bytes: number; bytesLimit: number; inodes?: number; inodesLimit?: number } | undefined> {
    if (vol.hasSubvol(name)) {
      const { own, group } = await subvolGroups(layout.vol(name));
      const u = group ?? own;
      return u && u.maxRfer ? { bytes: u.rfer, bytesLimit: u.maxRfer } : undefined;
    }
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
