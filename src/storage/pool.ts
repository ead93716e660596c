import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { formatBytes } from '../common/size.js';
import { isBtrfs, readFileOr, removeTree, writeFileAtomic } from '../os/fs.js';
import { isMountPoint, loopDevicesBelow, releaseLoops } from '../os/image.js';
import { unmount } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import { runOk } from '../os/spawn.js';
import { ensureBarrier, libBarrier, libDir } from './barrier.js';

/**
 * The storage pool: where var/lib/jaula sits on btrfs (the host's own btrfs, or a btrfs image
 * on a loop device that `jaula pool create` makes, as Incus makes its default pool), every
 * guest keeps its own files in a btrfs subvolume with a qgroup limit: a default disk limit for
 * every guest at the cost of one ioctl, not a loop device per guest. Without it a guest's only
 * disk limit is an opt-in `--quota` (an ext4 image per guest), since project quotas need a
 * kernel built with quota support for ext4 or XFS.
 *
 *   $ROOT/var/lib/jaula.img            the pool's image (outside what it is mounted on)
 *   $ROOT/etc/jaula/pool.json          { image, bytes, guestQuota }: mounted again at the next
 *                                      command after a reboot
 */
export interface PoolConfig {
  /** The image file, or undefined when var/lib/jaula is on the host's own btrfs. */
  image?: string;
  bytes?: number;
  /** The space limit of a new guest (bytes). */
  guestQuota: number;
}

export interface PoolInfo extends PoolConfig {
  path: string;
  /** Mounted (and so with quota groups: guests get subvolumes with limits). */
  mounted: boolean;
  usedBytes?: number;
  totalBytes?: number;
}

const confFile = (): string => join(paths().etc, 'pool.json');
const imageFile = (): string => join(paths().root, 'var/lib/jaula.img');

export function poolConfig(): PoolConfig | undefined {
  const t = readFileOr(confFile(), undefined);
  if (t === undefined) return undefined;
  try {
    return JSON.parse(t) as PoolConfig;
  } catch (e) {
    throw new JaulaError(
      'runtime',
      `The pool's description ${confFile()} is not JSON: ${(e as Error).message}`,
    );
  }
}

function savePoolConfig(cfg: PoolConfig): void {
  writeFileAtomic(confFile(), JSON.stringify(cfg, null, 2) + '\n');
}

/** The default limit of a new guest: half the pool, in whole 4 KiB blocks. */
const halfOf = (bytes: number): number => Math.floor(bytes / 2 / 4096) * 4096;

/**
 * Mount the pool's image again when it is not (after a reboot). jaulad calls this at its start,
 * the CLI when it works in its own process (LocalEngine.open): one stat when there is no pool,
 * one statfs when it is mounted.
 */
export async function ensurePool(): Promise<void> {
  if (!fs.existsSync(confFile())) return;
  const cfg = poolConfig();
  if (!cfg?.image || isBtrfs(paths().lib)) return;
  if (!fs.existsSync(cfg.image))
    throw new JaulaError(
      'runtime',
      `The storage pool's image ${cfg.image} is missing: restore it, or remove ${confFile()} to use ${paths().lib} without a pool`,
    );
  await mountPool(cfg.image);
}

/**
 * The pool is jaula's storage, never a guest's view of it: mounted nosuid,nodev (guests' roots
 * are overlay, idmapped or bind views that keep their setuid programs), on the barrier
 * directory, with its own root 0700 too (see storage/barrier.ts).
 */
export const POOL_MOUNT_OPTIONS = 'loop,nosuid,nodev';

async function mountPool(image: string): Promise<void> {
  const lib = libDir();
  await runOk(['mount', '-t', 'btrfs', '-o', POOL_MOUNT_OPTIONS, image, lib], {
    what: `Mounting the storage pool ${image} on ${lib}`,
  });
  ensureBarrier(libBarrier());
}

/** The pool where var/lib/jaula is btrfs with quota groups, else undefined. */
let qgroupCache: { lib: string; on: boolean } | undefined;
export function qgroupPool(): boolean {
  const lib = paths().lib;
  if (qgroupCache?.lib === lib) return qgroupCache.on;
  const on = isBtrfs(lib) && fs.existsSync(confFile());
  qgroupCache = { lib, on };
  return on;
}

/** Forget what qgroupPool() found (after the pool was made or removed). */
export function forgetPool(): void {
  qgroupCache = undefined;
}

export function guestQuotaDefault(): number | undefined {
  return qgroupPool() ? poolConfig()?.guestQuota : undefined;
}

function holdsData(lib: string): string | undefined {
  for (const d of ['guests', 'templates']) {
    try {
      // (Dot entries are jaula's own bookkeeping: the records of exports, say.)
      const n = fs.readdirSync(join(lib, d)).filter((x) => !x.startsWith('.')).length;
      if (n) return `${n} ${d === 'guests' ? 'guest' : 'template'}${n === 1 ? '' : 's'} in ${join(lib, d)}`;
    } catch {
      /* none */
    }
  }
  return undefined;
}

/** Incus' rule for a loop-backed default pool: 20% of the free space, at least 5 GiB, at most 30 GiB. */
export function defaultPoolSize(dir: string): number {
  const s = fs.statfsSync(dir);
  const free = s.bavail * s.bsize;
  return Math.min(30 * 2 ** 30, Math.max(5 * 2 ** 30, Math.floor((free * 0.2) / 2 ** 20) * 2 ** 20));
}

export interface PoolCreateOptions {
  bytes?: number;
  guestQuota?: number;
  /** Do nothing (and say why) when a pool exists or jaula's storage already holds data. */
  ifAbsent?: boolean;
}

/**
 * Make the pool: a sparse btrfs image (or, when var/lib/jaula is on btrfs already, just its
 * quota groups), mounted on var/lib/jaula. Refused once guests or templates exist there: they
 * would be hidden under the mount.
 */
export async function createPool(
  o: PoolCreateOptions,
  say: (l: string) => void = () => {},
): Promise<PoolInfo> {
  const lib = paths().lib;
  if (fs.existsSync(confFile())) {
    if (o.ifAbsent) {
      await ensurePool();
      return poolInfo() as PoolInfo;
    }
    throw new JaulaError('exists', `There is a storage pool already (${confFile()}): see "jaula pool show"`);
  }
  const data = holdsData(lib);
  if (data) {
    if (o.ifAbsent) {
      say(
        `No storage pool made: jaula's storage already holds data (${data}); guests keep opt-in --quota only`,
      );
      return poolInfo() as PoolInfo;
    }
    throw new JaulaError(
      'busy',
      `jaula's storage already holds data (${data}): make the pool before the first guest, or move them away first (jaula template export, jaula delete)`,
    );
  }
  libDir();
  fs.mkdirSync(paths().etc, { recursive: true, mode: 0o755 });
  if (isBtrfs(lib)) {
    await runOk(['btrfs', 'quota', 'enable', lib], { what: `Enabling quota groups on ${lib}` });
    const st = fs.statfsSync(lib);
    const bytes = st.blocks * st.bsize;
    const cfg: PoolConfig = { guestQuota: o.guestQuota ?? halfOf(bytes) };
    savePoolConfig(cfg);
    forgetPool();
    say(`${lib} is on btrfs: quota groups enabled, each new guest limited to ${formatBytes(cfg.guestQuota)}`);
    return poolInfo() as PoolInfo;
  }
  const bytes = o.bytes ?? defaultPoolSize(join(lib, '..'));
  if (bytes < 256 * 2 ** 20)
    throw new JaulaError(
      'invalid',
      `A pool of ${formatBytes(bytes)} is too small for btrfs: give --size 256M or more`,
    );
  const guestQuota = o.guestQuota ?? halfOf(bytes);
  if (guestQuota > bytes)
    throw new JaulaError(
      'invalid',
      `A guest limit of ${formatBytes(guestQuota)} is more than the pool (${formatBytes(bytes)})`,
    );
  const image = imageFile();
  if (fs.existsSync(image))
    throw new JaulaError('exists', `${image} exists already: remove it (or move it away) to make a new pool`);
  say(`Making a ${formatBytes(bytes)} btrfs pool (a sparse file: it takes only what is used) in ${image}`);
  try {
    fs.writeFileSync(image, '', { mode: 0o600, flag: 'wx' });
    fs.truncateSync(image, bytes);
    await runOk(['mkfs.btrfs', '-q', '-L', 'jaula-pool', '-m', 'single', image], {
      what: `Making the pool ${image}`,
    });
    await mountPool(image);
    await runOk(['btrfs', 'quota', 'enable', lib], { what: `Enabling quota groups on ${lib}` });
    savePoolConfig({ image, bytes, guestQuota });
  } catch (e) {
    unmount(lib);
    fs.rmSync(image, { force: true });
    throw e;
  }
  forgetPool();
  say(
    `Pool mounted on ${lib}; each new guest limited to ${formatBytes(guestQuota)} (jaula set GUEST --quota SIZE|none)`,
  );
  return poolInfo() as PoolInfo;
}

export function poolInfo(): PoolInfo | undefined {
  const cfg = poolConfig();
  if (!cfg) return undefined;
  const lib = paths().lib;
  const mounted = isBtrfs(lib);
  const info: PoolInfo = { ...cfg, path: lib, mounted };
  if (mounted) {
    const s = fs.statfsSync(lib);
    info.totalBytes = s.blocks * s.bsize;
    info.usedBytes = (s.blocks - s.bfree) * s.bsize;
  }
  return info;
}

export async function setPoolGuestQuota(bytes: number): Promise<PoolInfo> {
  const cfg = poolConfig();
  if (!cfg) throw new JaulaError('not_found', 'There is no storage pool: make one with "jaula pool create"');
  savePoolConfig({ ...cfg, guestQuota: bytes });
  return poolInfo() as PoolInfo;
}

/** Unmount the pool and remove its image; refused while it holds guests or templates. */
export async function deletePool(): Promise<void> {
  const cfg = poolConfig();
  if (!cfg) throw new JaulaError('not_found', 'There is no storage pool to delete');
  const lib = paths().lib;
  const data = isBtrfs(lib) ? holdsData(lib) : undefined;
  if (data) throw new JaulaError('busy', `The pool still holds ${data}: delete them first`);
  if (cfg.image) {
    if (isMountPoint(lib) && !unmount(lib, false))
      throw new JaulaError(
        'busy',
        `Cannot unmount the pool on ${lib}: it is busy (a guest or a shell still uses it)`,
      );
    // A runtime call still under way (crun's private mount namespace copies every mount, the
    // pool's too) keeps the filesystem, and so its loop device, a while after the unmount.
    await releaseLoops(cfg.image, 15_000);
    const loops = loopDevicesBelow(cfg.image);
    if (loops.length) throw new JaulaError('busy', `The pool's image is still on ${loops.join(', ')}`);
    fs.rmSync(cfg.image, { force: true });
  }
  fs.rmSync(confFile(), { force: true });
  forgetPool();
}

/* ---- subvolumes with a qgroup limit ----------------------------------------------------- */

export async function subvolCreate(dir: string, limit?: number): Promise<void> {
  await runOk(['btrfs', 'subvolume', 'create', dir], { what: `Making the subvolume ${dir}` });
  try {
    if (limit !== undefined) await subvolLimit(dir, limit);
  } catch (e) {
    removeTree(dir);
    throw e;
  }
}

export async function subvolLimit(dir: string, limit: number | null): Promise<void> {
  await runOk(['btrfs', 'qgroup', 'limit', limit === null ? 'none' : String(limit), dir], {
    what: `Setting the space limit of ${dir}`,
  });
}
