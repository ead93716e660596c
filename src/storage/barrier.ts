import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { JaulaError, errnoOf } from '../common/errors.js';
import { readMountInfo, type MountInfo } from '../os/mounts.js';
import { paths } from '../os/paths.js';

/**
 * The barrier (Linux-VServer's /vservers, mode 000 with its barrier attribute): guests' and
 * templates' trees hold setuid-root programs and device nodes, so no path to them may be open
 * to host users other than root. One directory level on every such path lets only root pass:
 *
 *   var/lib/jaula               0700 root    templates, guests' trees, volumes and uppers, the
 *                                            unified layers and store, the reflink pool, the
 *                                            pool's mount (the mounted root is 0700 too)
 *   var/cache/jaula             0700 root    build caches (debootstrap trees)
 *   run/jaula/guests            0711 root    (searchable, not listable)
 *   run/jaula/guests/NAME       0700 root    a privileged guest's runtime mounts and bundle;
 *                               0710 root:H  an unprivileged guest's, where H is the host ID of
 *                                            the guest's root: its runtime sets up the guest's
 *                                            mounts as that ID and must reach root/ (as Incus
 *                                            gives a container's directory to its root's ID)
 *
 * Each is made with its mode in mkdir(2) itself (the umask can only narrow it), so there is no
 * moment at which a looser mode shows; an existing one with a looser mode or another owner is
 * repaired where jaula makes trees (build, import, start, jaulad's start) and reported by
 * `jaula doctor --security`.
 */
export interface Barrier {
  path: string;
  /** The mode it must have (no more bits than these). */
  mode: number;
  /** Its group (0 unless an unprivileged guest's runtime needs to pass). */
  gid: number;
  what: string;
}

export const LIB_MODE = 0o700;
export const CACHE_MODE = 0o700;
export const GUESTS_RUN_MODE = 0o711;

export function libBarrier(): Barrier {
  return {
    path: paths().lib,
    mode: LIB_MODE,
    gid: 0,
    what: "guests' and templates' trees, the unified store, the pool",
  };
}

export function cacheBarrier(): Barrier {
  return { path: paths().cache, mode: CACHE_MODE, gid: 0, what: 'build caches (debootstrap trees)' };
}

/** A guest's run directory: its runtime mounts (root, layers, rootfs) and bundle. */
export function guestRunBarrier(name: string, hostGid?: number): Barrier {
  return {
    path: paths().guestRun(name),
    mode: hostGid === undefined ? 0o700 : 0o710,
    gid: hostGid ?? 0,
    what: `guest "${name}"'s mounted root and bundle`,
  };
}

/** Bits of `mode` beyond `allowed` (what a weakened barrier lets others do). */
const extra = (mode: number, allowed: number): number => mode & 0o7777 & ~allowed;

/**
 * Make `b.path` (its missing parents 0755, as a host's /var and /run are), or repair it: a mode
 * looser than b.mode, or an owner other than root:b.gid. Returns what was repaired.
 */
export function ensureBarrier(b: Barrier): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(b.path);
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
    fs.mkdirSync(dirname(b.path), { recursive: true, mode: 0o755 });
    try {
      fs.mkdirSync(b.path, b.mode & ~0o077); // the group's bit comes with the group, below
    } catch (e2) {
      if (errnoOf(e2) !== 'EEXIST') throw e2;
    }
    st = fs.statSync(b.path);
    if (st.uid !== 0 || st.gid !== b.gid) fs.chownSync(b.path, 0, b.gid);
    if ((st.mode & 0o7777) !== b.mode) fs.chmodSync(b.path, b.mode);
    return undefined;
  }
  if (!st.isDirectory())
    throw new JaulaError(
      'runtime',
      `${b.path} is not a directory: jaula keeps ${b.what} there (move it away)`,
    );
  const loose = extra(st.mode, b.mode);
  const wrongOwner = st.uid !== 0 || st.gid !== b.gid;
  if (!loose && !wrongOwner && (st.mode & 0o7777) === b.mode) return undefined;
  // Narrow first, then give the group: no one ever passes who should not, not even meanwhile.
  if (loose) fs.chmodSync(b.path, st.mode & b.mode & ~0o077);
  if (wrongOwner) fs.chownSync(b.path, 0, b.gid);
  fs.chmodSync(b.path, b.mode);
  return loose || st.uid !== 0
    ? `${b.path} was mode ${octal(st.mode)} owned by ${st.uid}:${st.gid} (host users could reach ${b.what}): set to ${octal(b.mode)}, owned by 0:${b.gid}`
    : undefined;
}

export const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

/** var/lib/jaula, made or repaired: call before making anything below it. */
export function libDir(): string {
  ensureBarrier(libBarrier());
  return paths().lib;
}

/** The cache directory, made or repaired. */
export function cacheDir(): string {
  ensureBarrier(cacheBarrier());
  return paths().cache;
}

/**
 * A guest's run directory, made or repaired behind the barrier: 0700 root, or (hostGid: an
 * unprivileged guest's root) 0710 root:hostGid, with run/jaula/guests 0711 and (for that
 * runtime) every directory above searchable.
 */
export function guestRunDir(name: string, hostGid?: number): string {
  const guests = paths().guestsRun;
  ensureBarrier({ path: guests, mode: GUESTS_RUN_MODE, gid: 0, what: "guests' run directories" });
  if (hostGid !== undefined) makeSearchable(dirname(guests));
  ensureBarrier(guestRunBarrier(name, hostGid));
  return paths().guestRun(name);
}

/** Before a guest starts: var/lib/jaula (above its files) and its run directory, made or repaired. */
export function guestBarriers(name: string, hostGid?: number): string {
  libDir();
  return guestRunDir(name, hostGid);
}

/**
 * Every directory of `path` (from /) searchable by others (o+x, never o+r): the runtime of an
 * unprivileged guest sets up its mounts as the guest's root and must pass them.
 */
export function makeSearchable(path: string): void {
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    const st = fs.statSync(p);
    if (st.isDirectory() && !(st.mode & 0o001)) fs.chmodSync(p, (st.mode & 0o7777) | 0o001);
  }
}

/* ---- checks (jaula doctor --security) ---------------------------------------------------- */

export interface BarrierProblem {
  path: string;
  problem: string;
  fix: string;
}

/** What is wrong with one barrier (undefined: sound, or absent: nothing behind it yet). */
export function checkBarrier(b: Barrier): BarrierProblem | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(b.path);
  } catch {
    return undefined;
  }
  const loose = extra(st.mode, b.mode);
  const owner = st.uid !== 0 || (st.gid !== 0 && st.gid !== b.gid);
  if (!loose && !owner) return undefined;
  const fix = [...(owner ? [`chown 0:${b.gid} ${b.path}`] : []), `chmod ${octal(b.mode)} ${b.path}`].join(
    ' && ',
  );
  return {
    path: b.path,
    problem: `${b.path} (${b.what}) is mode ${octal(st.mode)} owned by ${st.uid}:${st.gid}, so host users other than root can reach what is behind it`,
    fix,
  };
}

/** The mounts of jaula's own storage (the pool, quota images, the reflink pool): at or below var/lib/jaula. */
export function storageMounts(mounts: MountInfo[] = readMountInfo()): MountInfo[] {
  const lib = paths().lib;
  return mounts.filter((m) => m.mountPoint === lib || m.mountPoint.startsWith(lib + '/'));
}

/** A storage mount without nosuid or nodev: its setuid programs and device nodes work wherever it is reached. */
export function checkStorageMount(m: MountInfo): BarrierProblem | undefined {
  const opts = m.options.split(',');
  const missing = ['nosuid', 'nodev'].filter((o) => !opts.includes(o));
  if (!missing.length) return undefined;
  return {
    path: m.mountPoint,
    problem: `${m.mountPoint} (${m.fsType}) is mounted without ${missing.join(' and ')}`,
    fix: `mount -o remount,nosuid,nodev ${m.mountPoint}`,
  };
}

/** Where a guest's run directory is, for the checks of every guest's barrier. */
export function guestRunDirs(): string[] {
  try {
    return fs.readdirSync(paths().guestsRun).map((n) => join(paths().guestsRun, n));
  } catch {
    return [];
  }
}
