import { createRequire } from 'node:module';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { projectDir } from './paths.js';

export interface Native {
  flock(fd: number, op: number): boolean;
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
  prlimit(pid: number, resource: number, soft: number, hard: number): void;
  /**
   * Many files into buf: out[3k] offset, out[3k+1] length (-1 unreadable), out[3k+2] 1 when file
   * k had more than maxPerFile bytes. -1 when buf is too small (see os/kernfs.ts readKernelFiles).
   */
  readFiles(paths: string[], buf: Buffer, out: Float64Array, maxPerFile: number): number;
  linkCounts(paths: string[], out: Int32Array): void;
  /** Every entry below a directory fd, as packed records (see os/walk.ts); never follows a symlink. */
  walk(dirfd: number, flags: number): Buffer;
  /** FIDEDUPERANGE of a whole file: bytes shared, or -1 when the contents differ. */
  dedupe(srcFd: number, dstFd: number, length: number): number;
  /** FICLONE srcFd's data into the empty dstFd, with its owner, mode, xattrs and times (ns). */
  cloneFile(srcFd: number, dstFd: number): void;
  syncfs(fd: number): void;
  mount(source: string | null, target: string, type: string | null, flags: number, data: string | null): void;
  umount2(target: string, flags: number): void;
  /** FS_IOC_FIEMAP: [bytes in the file's extents, bytes shared with other files]. */
  fiemap(fd: number): [number, number];
  /** FS_IOC_FSGETXATTR: [xflags, project ID]. */
  fsGetXattr(fd: number): [number, number];
  fsSetXattr(fd: number, xflags: number, projid: number): void;
  /** inotify_init1(IN_NONBLOCK | IN_CLOEXEC): its events are read with fs.readSync (EAGAIN: none). */
  inotifyInit(): number;
  /** inotify_add_watch(2): the watch descriptor. */
  inotifyAddWatch(fd: number, path: string, mask: number): number;
  /** setfsuid/setfsgid of the calling thread (capabilities kept): what it creates gets these owners. */
  setFsIds(uid: number, gid: number): void;
  /** BTRFS_IOC_SNAP_CREATE_V2: src snapshotted as dstDir/name, in quota group `qgroup` (0: none). */
  btrfsSnapshot(src: string, dstDir: string, name: string, readonly: boolean, qgroup: number): void;
  /**
   * A user namespace (map 0 hostId size) bound at userPath, and/or a network namespace (owned by
   * that new one, else by the one bound at `join`, else the host's; loopback up; its
   * ping_group_range pingLo..pingHi unless pingHi < 0) bound at netPath: no helper process
   * (native/nsops.c). Throws with errno's name as code; nothing stays bound on failure.
   */
  nsCreate(
    userPath: string | null,
    hostId: number,
    size: number,
    join: string | null,
    netPath: string | null,
    pingLo: number,
    pingHi: number,
  ): Promise<void>;
  /**
   * A guest's bridged veths in the namespace bound at netPath, nine strings each (network/plan.ts
   * vethFields), over rtnetlink on a pool thread (native/netlink.c).
   */
  netVeths(netPath: string, fields: string[]): Promise<void>;
  /** pipe2(O_CLOEXEC): [read end, write end]. */
  pipe(): [number, number];
  /** The callback of every exit of a program started by spawn (once, before the first spawn). */
  onExit(cb: (pid: number, code: number, signal: number) => void): void;
  /** Whether exits still to come keep the event loop alive. */
  exitsRef(on: boolean): void;
  /**
   * posix_spawn(argv[0] a path; exe, when given, the file executed instead) with env, the
   * child's fd i = fds[i] (-1: /dev/null), on a pool thread: its pid.
   */
  spawn(
    argv: string[],
    env: string[] | null,
    fds: number[],
    setsid: number,
    cwd: string | null,
    exe?: string | null,
  ): Promise<number>;
  /** A sealed, read-only memfd copy of the program at path (close-on-exec): runtime/sealed.ts. */
  sealedCopy(path: string): number;
  /** Binds pairs[2i] on pairs[2i+1], idmapped 0..size-1 -> hostId.. (native/nsops.c). */
  idmapMounts(
    hostId: number,
    size: number,
    recursive: number,
    keepFlags: number,
    pairs: string[],
  ): Promise<void>;
}

export const WALK_XATTRS = 1;
export const WALK_ONEFS = 2;
export const MNT_DETACH = 2;
export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_REMOUNT = 32;
export const MS_BIND = 4096;
export const FS_XFLAG_PROJINHERIT = 0x200;
export const RLIMIT_NOFILE = 7;

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;
/** Below a directory, never through a symlink, a magic link or a mount: how storage code opens a guest's files. */
export const RESOLVE_STRICT_BENEATH =
  RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

export const O_PATH = 0o10000000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_CLOEXEC = 0o2000000;

let loaded: Native | undefined;
export function native(): Native {
  if (!loaded) {
    const require = createRequire(import.meta.url);
    try {
      loaded = require(join(projectDir, 'build/Release/jaula_native.node')) as Native;
    } catch (e) {
      throw new JaulaError(
        'internal',
        'jaula\'s native addon is not built (run "npm run build" in the jaula directory)',
        { cause: e },
      );
    }
  }
  return loaded;
}

/**
 * Run `fn` (synchronous: it stays on this thread) with the file system IDs `id`: what it creates
 * is owned by `id`, capabilities kept. Without `id`, just `fn`.
 */
export function withFsIds<T>(id: number | undefined, fn: () => T): T {
  if (id === undefined) return fn();
  native().setFsIds(id, id);
  try {
    return fn();
  } finally {
    native().setFsIds(0, 0);
  }
}

/**
 * A native call that changes the system (nsCreate, idmapMounts), its failure told as `what`
 * failed, with the kernel's reason (the message names the step and the path).
 */
export async function nativeOp<T>(what: string, fn: (n: Native) => Promise<T>): Promise<T> {
  try {
    return await fn(native());
  } catch (e) {
    if (e instanceof JaulaError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new JaulaError('runtime', `${what} failed: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
      ...(code ? { details: { errno: code } } : {}),
    });
  }
}
