import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { O_DIRECTORY, O_NOFOLLOW, WALK_ONEFS, WALK_XATTRS, native } from './native.js';

/**
 * A fast, safe listing of a whole tree: the native addon walks it with fd-relative calls that
 * never follow a symlink (a guest's link to "/" is listed as a link, never entered), and returns
 * every entry's lstat (and optionally its xattrs) in one buffer. Storage code (hashify, du,
 * templates) reads guest trees only through this and GuestFs.
 */
export interface WalkEntry {
  /** Relative to the walked directory, "" for the directory itself. */
  path: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  ino: number;
  size: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  dev: number;
  rdev: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
  /** Sorted by name; only with { xattrs: true }, only for directories and regular files. */
  xattrs?: [string, Buffer][];
  /**
   * Its xattrs could not all be read (E2BIG: names past the 64 KiB listxattr(2) returns, which
   * XFS, btrfs and tmpfs allow; ERANGE; EIO): `xattrs` is not the whole list, and the entry must
   * not be taken for one without them (a guest can pad a file so to hide a security.capability).
   */
  xattrsUnread?: true;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export const isReg = (e: { mode: number }): boolean => (e.mode & S_IFMT) === S_IFREG;
export const isDir = (e: { mode: number }): boolean => (e.mode & S_IFMT) === S_IFDIR;
/** An overlayfs whiteout: a character device 0/0. */
export const isWhiteout = (e: { mode: number; rdev: number }): boolean =>
  (e.mode & S_IFMT) === S_IFCHR && e.rdev === 0;

const HEADER = 10 * 4 + 5 * 8 + 2 * 8;
/** A record's flags (native/addon.c REC_*). */
const REC_XATTRS_UNREAD = 1;

export function parseWalk(b: Buffer, wantXattrs: boolean): WalkEntry[] {
  const out: WalkEntry[] = [];
  let off = 0;
  while (off + HEADER <= b.length) {
    const reclen = b.readUInt32LE(off);
    const pathlen = b.readUInt32LE(off + 4);
    const xattrlen = b.readUInt32LE(off + 24);
    const flags = b.readUInt32LE(off + 36);
    const e: WalkEntry = {
      path: b.toString('utf8', off + HEADER, off + HEADER + pathlen),
      mode: b.readUInt32LE(off + 8),
      uid: b.readUInt32LE(off + 12),
      gid: b.readUInt32LE(off + 16),
      nlink: b.readUInt32LE(off + 20),
      mtimeNsec: b.readUInt32LE(off + 28),
      ctimeNsec: b.readUInt32LE(off + 32),
      ino: Number(b.readBigUInt64LE(off + 40)),
      size: Number(b.readBigUInt64LE(off + 48)),
      blocks: Number(b.readBigUInt64LE(off + 56)),
      dev: Number(b.readBigUInt64LE(off + 64)),
      rdev: Number(b.readBigUInt64LE(off + 72)),
      mtimeSec: Number(b.readBigInt64LE(off + 80)),
      ctimeSec: Number(b.readBigInt64LE(off + 88)),
    };
    if (wantXattrs && (isReg(e) || isDir(e))) {
      const xs: [string, Buffer][] = [];
      let x = off + HEADER + pathlen;
      const end = x + xattrlen;
      while (x < end) {
        const kl = b.readUInt16LE(x);
        const vl = b.readUInt32LE(x + 2);
        xs.push([
          b.toString('latin1', x + 6, x + 6 + kl),
          Buffer.from(b.subarray(x + 6 + kl, x + 6 + kl + vl)),
        ]);
        x += 6 + kl + vl;
      }
      xs.sort((a, c) => (a[0] < c[0] ? -1 : a[0] > c[0] ? 1 : 0));
      e.xattrs = xs;
      if (flags & REC_XATTRS_UNREAD) e.xattrsUnread = true;
    }
    out.push(e);
    off += reclen;
  }
  return out;
}

export interface WalkOptions {
  xattrs?: boolean;
  /** Do not descend into directories of another filesystem (default true). */
  oneFs?: boolean;
}

/** Walk an open directory fd. */
export function walkFd(fd: number, o: WalkOptions = {}): WalkEntry[] {
  const flags = (o.xattrs ? WALK_XATTRS : 0) | (o.oneFs === false ? 0 : WALK_ONEFS);
  return parseWalk(native().walk(fd, flags), !!o.xattrs);
}

/** Walk a directory (which itself must not be a symlink); [] when it does not exist. */
export function walkTree(dir: string, o: WalkOptions = {}): WalkEntry[] {
  let fd: number;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new JaulaError('runtime', `Cannot read the tree "${dir}": ${(e as Error).message}`, { cause: e });
  }
  try {
    return walkFd(fd, o);
  } catch (e) {
    throw new JaulaError('runtime', `Cannot read the tree "${dir}": ${(e as Error).message}`, { cause: e });
  } finally {
    fs.closeSync(fd);
  }
}
