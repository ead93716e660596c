import * as fs from 'node:fs';
import { JaulaError, errnoOf } from '../common/errors.js';
import { mountsBelow, readMountInfo } from './mounts.js';
import { MNT_DETACH, native } from './native.js';
import { run, runOk } from './spawn.js';

/**
 * Filesystem images on loop devices: a guest with a quota keeps its own files in an ext4 image
 * of exactly the allowed size, with exactly (rounded up by ext4 to a multiple of 16) the allowed
 * number of inodes. A full image gives the guest ENOSPC; the host and other guests never notice.
 * The loop device is allocated by mount(8) with autoclear: unmounting frees it.
 */
export async function makeImage(file: string, bytes: number, inodes?: number): Promise<void> {
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  fs.closeSync(fd);
  const mkfs = (size: number): Promise<unknown> => {
    fs.truncateSync(file, size);
    return runOk(
      [
        'mkfs.ext4',
        '-q',
        '-F',
        '-b',
        '4096',
        '-m',
        '0',
        ...(inodes ? ['-N', String(inodes)] : []),
        '-E',
        'nodiscard,lazy_itable_init=1',
        '-L',
        'jaula-guest',
        file,
      ],
      { what: `Making the filesystem image "${file}"` },
    );
  };
  await mkfs(bytes);
  // The journal and the inode tables take room of their own: make the image that much larger,
  // so that the guest can store `bytes`.
  const overhead = await overheadBytes(file);
  if (overhead > 0) await mkfs(bytes + overhead);
}

/** Bytes of an ext4 image that its own metadata (journal, inode tables) takes. */
async function overheadBytes(file: string): Promise<number> {
  const info = (await runOk(['dumpe2fs', '-h', file], { what: 'Reading the image' })).stdout;
  const clusters = Number(/^Overhead clusters:\s+(\d+)/m.exec(info)?.[1] ?? 0);
  const bs = Number(/^Block size:\s+(\d+)/m.exec(info)?.[1] ?? 4096);
  return clusters * bs;
}

export function isMountPoint(dir: string): boolean {
  return mountsBelow(dir).includes(dir.replace(/\/+$/, ''));
}

/**
 * Let go of loop devices still backed by an image that nothing mounts: the kernel frees an
 * autoclear device a moment after the last unmount, and until then mount(8) would reuse it,
 * with its old size and the old blocks in its cache (a grown image then mounted at its old size).
 */
export async function releaseLoops(file: string, waitMs = 2000): Promise<void> {
  const deadline = Date.now() + waitMs;
  let loops = loopDevicesBelow(file);
  while (loops.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    loops = loopDevicesBelow(file);
  }
  if (!loops.length) return;
  const used = new Set(readMountInfo().map((m) => m.source));
  for (const d of loops) if (!used.has(d)) await run(['losetup', '-d', d]);
}

export async function mountImage(file: string, dir: string): Promise<void> {
  if (isMountPoint(dir)) return;
  await releaseLoops(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // jaula's storage, not the guest's view of it (that is an overlay, idmapped or bind mount
  // that keeps its setuid programs): nosuid,nodev, like the pool.
  await runOk(['mount', '-t', 'ext4', '-o', 'loop,nosuid,nodev', file, dir], {
    what: `Mounting the filesystem image "${file}"`,
  });
}

/** Unmount an image (the loop device goes with it); a busy one is an error unless `lazy`. */
export function umountImage(dir: string, lazy = false): void {
  if (!isMountPoint(dir)) return;
  try {
    native().umount2(dir, lazy ? MNT_DETACH : 0);
  } catch (e) {
    if (errnoOf(e) === 'EINVAL' || errnoOf(e) === 'ENOENT') return;
    throw new JaulaError(
      'busy',
      `Cannot unmount "${dir}": ${(e as Error).message} (something still uses the guest's files)`,
      { cause: e },
    );
  }
}

/** Grow an image so that it holds `bytes` (stopped: checked and resized offline; mounted: online). */
export async function growImage(file: string, dir: string, bytes: number): Promise<void> {
  const size = fs.statSync(file).size;
  if (!isMountPoint(dir)) {
    // Offline, nothing may have it mounted: a loop device still on it is a mount in another
    // mount namespace (one a runtime call copied a moment ago, or a dead guest's that the kernel
    // has not freed yet), which would write its old superblock back over the resize, and which
    // the next mount would reuse at the old size (a guest grown to 48M got ENOSPC at 21M).
    await releaseLoops(file, 15_000);
    const held = loopDevicesBelow(file);
    if (held.length)
      throw new JaulaError(
        'busy',
        `The image "${file}" is still in use (on ${held.join(', ')}, mounted in another mount namespace): try again in a moment`,
      );
  }
  const want = bytes + (await overheadBytes(file));
  if (want < size) throw new JaulaError('invalid', `growImage: ${bytes} is smaller than the image (${size})`);
  fs.truncateSync(file, want);
  if (isMountPoint(dir)) {
    await runOk(['resize2fs', file], { what: 'Growing the mounted image' });
    return;
  }
  const fsck = await run(['e2fsck', '-f', '-p', file]);
  if (fsck.code > 1)
    throw new JaulaError(
      'runtime',
      `Checking "${file}" failed (e2fsck status ${fsck.code}): ${fsck.stderr.trim() || fsck.stdout.trim()}; repair it with e2fsck -f before growing it`,
    );
  await runOk(['resize2fs', file], { what: `Growing "${file}"` });
}

/** Loop devices backed by files under `dir`: /sys/block/loopN/loop/backing_file. */
export function loopDevicesBelow(dir: string): string[] {
  const out: string[] = [];
  let devs: string[] = [];
  try {
    devs = fs.readdirSync('/sys/block').filter((d) => d.startsWith('loop'));
  } catch {
    return out;
  }
  for (const d of devs) {
    try {
      const f = fs.readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim();
      if (f === dir || f.startsWith(dir.replace(/\/+$/, '') + '/')) out.push(`/dev/${d}`);
    } catch {
      /* not set up */
    }
  }
  return out;
}
