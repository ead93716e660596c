import * as fs from 'node:fs';
import { basename, join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { formatBytes } from '../common/size.js';
import { copyTree } from '../os/copy.js';
import { removeTree } from '../os/fs.js';
import { makeImage, mountImage, umountImage } from '../os/image.js';
import { layout } from '../storage/layout.js';
import { vol } from '../storage/vol.js';
import type { GuestConfig } from '../guest/config.js';
import { validateConfig } from '../guest/config.js';
import { guestLog } from '../guest/log.js';
import { withGuestLock } from '../guest/locks.js';
import { withStoppedGuest } from './running.js';
import { loadConfig, saveConfig } from '../guest/store.js';

export interface QuotaChange {
  /** New space limit; null removes the quota. */
  bytes?: number | null;
  inodes?: number;
}

/**
 * Change a stopped guest's quota. Growing the space only grows its image in place; anything
 * else (a first quota, another inode count, a smaller image, no quota) copies its own files
 * into a new image (or out of it) and swaps it in when the copy is complete.
 */
export async function setQuota(
  name: string,
  ch: QuotaChange,
  progress?: (l: string) => void,
): Promise<GuestConfig> {
  if (vol.hasSubvol(name)) return setPoolQuota(name, ch);
  return withStoppedGuest(name, 'to change its quota, then start it again', async (cfg, d) => {
    const next: GuestConfig = { ...cfg, storage: { ...cfg.storage } };
    if (ch.bytes === null) {
      delete next.storage.quotaBytes;
      delete next.storage.quotaInodes;
    } else {
      if (ch.bytes !== undefined) next.storage.quotaBytes = ch.bytes;
      if (ch.inodes !== undefined) next.storage.quotaInodes = ch.inodes;
    }
    validateConfig(next);
    const want = next.storage.quotaBytes !== undefined;
    if (want && d.info.quota === 'none')
      throw new JaulaError(
        'unsupported',
        `Guest "${name}" uses ${d.info.name} storage, which cannot have a quota here`,
      );
    const had = vol.hasImage(name);
    const sub = basename(d.treePath(name));
    if (
      had &&
      want &&
      next.storage.quotaInodes === cfg.storage.quotaInodes &&
      (next.storage.quotaBytes as number) >= (cfg.storage.quotaBytes ?? Infinity)
    ) {
      await vol.grow(name, next.storage.quotaBytes as number);
    } else if (had || want) {
      await vol.attach(name);
      const from = d.treePath(name);
      try {
        if (want) await copyIntoImage(name, from, sub, next.storage, had, progress);
        else await copyOutOfImage(name, from, sub, progress);
      } catch (e) {
        vol.detach(name, true);
        throw e;
      }
    }
    saveConfig(next);
    guestLog(
      name,
      want
        ? `quota: ${next.storage.quotaBytes} bytes${next.storage.quotaInodes ? `, ${next.storage.quotaInodes} inodes` : ''}`
        : 'quota removed',
    );
    return next;
  });
}

/** Copy the guest's own files (at `from`, its subtree `sub`) into a new image of the quota, and swap it in. */
async function copyIntoImage(
  name: string,
  from: string,
  sub: string,
  storage: GuestConfig['storage'],
  had: boolean,
  progress: ((l: string) => void) | undefined,
): Promise<void> {
  const img = `${layout.image(name)}.new`;
  const mnt = `${layout.vol(name)}.new`;
  removeTree(img);
  await makeImage(img, storage.quotaBytes as number, storage.quotaInodes);
  try {
    await mountImage(img, mnt);
    fs.mkdirSync(join(mnt, sub), { mode: 0o755 });
    progress?.(`Copying the guest's own files into a ${formatBytes(storage.quotaBytes as number)} image`);
    await copyTree(from, join(mnt, sub), { ...(progress ? { progress } : {}) });
    const st = fs.lstatSync(from);
    fs.chownSync(join(mnt, sub), st.uid, st.gid);
    fs.chmodSync(join(mnt, sub), st.mode & 0o7777);
  } finally {
    umountImage(mnt);
    removeTree(mnt);
  }
  vol.detach(name);
  fs.renameSync(img, layout.image(name)); // from now on the guest's files are the new image's
  if (!had) removeTree(from);
}

/** Copy the guest's own files out of its image (no quota any more), and remove the image. */
async function copyOutOfImage(
  name: string,
  from: string,
  sub: string,
  progress: ((l: string) => void) | undefined,
): Promise<void> {
  const to = join(layout.guestData(name), `${sub}.new`);
  removeTree(to);
  fs.mkdirSync(to, { mode: 0o755 });
  await copyTree(from, to, { ...(progress ? { progress } : {}) });
  vol.detach(name);
  fs.renameSync(to, join(layout.guestData(name), sub));
  fs.rmSync(layout.image(name));
  removeTree(layout.vol(name));
}

/**
 * A guest in the storage pool: its limit is its subvolume's quota group, changed at once, even
 * while it runs (below what it uses already, it can only delete until it is under again).
 */
function setPoolQuota(name: string, ch: QuotaChange): Promise<GuestConfig> {
  return withGuestLock(name, async () => {
    const cfg = loadConfig(name);
    if (ch.inodes !== undefined)
      throw new JaulaError(
        'unsupported',
        `Guest "${name}" keeps its files in the storage pool, whose btrfs limits space only (its inodes take space, counted in that limit): give --quota SIZE alone`,
      );
    const next: GuestConfig = { ...cfg, storage: { ...cfg.storage } };
    if (ch.bytes === null) delete next.storage.quotaBytes;
    else if (ch.bytes !== undefined) next.storage.quotaBytes = ch.bytes;
    validateConfig(next);
    await vol.limit(name, next.storage.quotaBytes ?? null);
    saveConfig(next);
    guestLog(
      name,
      next.storage.quotaBytes !== undefined ? `quota: ${next.storage.quotaBytes} bytes` : 'quota removed',
    );
    return next;
  });
}
