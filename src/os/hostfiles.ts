/**
 * Host files named by a caller of the API (copy's host side, template import and export, a build
 * from a template archive): where jaulad may read and write them for that caller.
 *
 * - `any`: root's own requests (the CLI in-process, jaulad's unix socket, mode 0600) may name
 *   any absolute path, as root could in a shell.
 * - `beneath`: a client over TCP holds a token, not root. Its paths must lie beneath the
 *   directory given with `jaulad --host-files DIR`, and every lookup below it is done by
 *   openat2(2) with RESOLVE_BENEATH: neither ".." nor a symlink (absolute, or relative and
 *   climbing out) leads out of it, even while the tree changes. What tools (tar, zstd) open is
 *   the file or directory resolved that way, by its descriptor (/proc/PID/fd/N), never the name
 *   again.
 * - `none`: a client over TCP when jaulad has no --host-files: no host path at all.
 *
 * Relative paths are refused everywhere (jaulad's working directory is not the caller's). A
 * refused path gets the same answer whether it exists or not: no file outside the directory can
 * be probed.
 */
import * as fs from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { JaulaError, errnoOf } from '../common/errors.js';
import { GuestFs, openat2Retrying } from './guestfs.js';
import { O_DIRECTORY, O_NOFOLLOW, O_PATH, RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS } from './native.js';

export type HostFilesPolicy = { kind: 'any' } | { kind: 'beneath'; dir: string } | { kind: 'none' };

/** A host file or directory opened for a tool: `path` names exactly what was resolved. */
export interface Opened {
  /** What to give a tool (the path itself, or /proc/PID/fd/N of the resolved file). */
  path: string;
  close(): void;
}

/** A directory a file is written into, and the file's name in it. */
export interface OpenedParent extends Opened {
  /** The file's name in the directory (one component). */
  base: string;
  /** The directory's real path (for records that must outlive this process). */
  real: string;
}

/** The host side of a copy: what jaula cp does to host files, by host path. */
export interface HostTree {
  lstat(p: string): fs.Stats | undefined;
  stat(p: string): fs.Stats | undefined;
  readlink(p: string): string;
  readdir(p: string): string[];
  /** Open a file to read, never through a symlink as its last component. */
  openRead(p: string): number;
  mkdir(p: string, mode: number): void;
  symlink(p: string, target: string): void;
  /** Write a file (a symlink there is replaced, never followed), filled by `fill`. */
  writeFile(p: string, fill: (fd: number) => void, o: { mode: number; uid?: number; gid?: number }): void;
}

const missing = (e: unknown): boolean => ['ENOENT', 'ENOTDIR'].includes(errnoOf(e) ?? '');

/** Plain host paths, for root. */
const plainTree: HostTree = {
  lstat(p) {
    try {
      return fs.lstatSync(p);
    } catch (e) {
      if (missing(e)) return undefined;
      throw e;
    }
  },
  stat(p) {
    try {
      return fs.statSync(p);
    } catch (e) {
      if (missing(e)) return undefined;
      throw e;
    }
  },
  readlink: (p) => fs.readlinkSync(p),
  readdir: (p) => fs.readdirSync(p),
  openRead: (p) => fs.openSync(p, fs.constants.O_RDONLY | O_NOFOLLOW),
  mkdir: (p, mode) => void fs.mkdirSync(p, { recursive: true, mode }),
  symlink: (p, target) => fs.symlinkSync(target, p),
  writeFile(p, fill, o) {
    const fd = fs.openSync(
      p,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | O_NOFOLLOW,
      o.mode,
    );
    try {
      fill(fd);
      if (o.uid !== undefined) fs.fchownSync(fd, o.uid, o.gid ?? o.uid);
    } finally {
      fs.closeSync(fd);
    }
  },
};

export class HostFiles {
  /** Root's requests: any absolute path. */
  static readonly any = new HostFiles({ kind: 'any' });

  constructor(readonly policy: HostFilesPolicy) {}

  /** Paths beneath `dir` (checked, made canonical): a client over TCP. */
  static beneath(dir: string): HostFiles {
    return new HostFiles({ kind: 'beneath', dir: HostFiles.checkDir(dir) });
  }

  /** The --host-files directory, checked when jaulad starts: absolute, existing; its canonical path. */
  static checkDir(dir: string): string {
    if (!isAbsolute(dir))
      throw new JaulaError('usage', `--host-files takes an absolute directory, not "${dir}"`);
    let real: string;
    try {
      real = fs.realpathSync(dir);
    } catch (e) {
      throw new JaulaError(
        'not_found',
        `The --host-files directory "${dir}" does not exist (make it first)`,
        {
          cause: e,
        },
      );
    }
    if (!fs.statSync(real).isDirectory())
      throw new JaulaError('invalid', `--host-files "${dir}" is not a directory`);
    return real;
  }

  private refused(path: string, what: string): JaulaError {
    const p = this.policy;
    return new JaulaError(
      'denied',
      p.kind === 'beneath'
        ? `The ${what} ${JSON.stringify(path)} is not beneath ${p.dir}: over TCP jaulad reads and writes host files only there (--host-files), by paths without ".." or symlinks that lead out`
        : `jaulad takes no host paths over TCP (${what} ${JSON.stringify(path)}): start it with --host-files DIR to let API clients read and write files beneath DIR, or use the unix socket as root`,
    );
  }

  /**
   * Check a host path before anything touches it: absolute always; beneath the directory (no
   * ".." component) for a client over TCP. Returns it relative to the directory ("." for the
   * directory itself), or the path itself for root.
   */
  check(path: string, what = 'host path'): string {
    if (!isAbsolute(path))
      throw new JaulaError(
        'invalid',
        `The ${what} ${JSON.stringify(path)} is not an absolute path: give its full path on jaulad's host`,
      );
    const p = this.policy;
    if (p.kind === 'any') return path;
    if (p.kind === 'none') throw this.refused(path, what);
    const prefix = p.dir === '/' ? '/' : `${p.dir}/`;
    if (path !== p.dir && !path.startsWith(prefix)) throw this.refused(path, what);
    const rel = path === p.dir ? '.' : path.slice(prefix.length).replace(/\/+$/, '') || '.';
    if (rel.split('/').includes('..')) throw this.refused(path, what);
    return rel;
  }

  /** openat2 beneath the directory; an escape (EXDEV) or a magic link (ELOOP) is a refusal. */
  private openBeneath(path: string, what: string, rel: string, flags: number): number {
    const dir = (this.policy as { dir: string }).dir;
    const dfd = fs.openSync(dir, O_PATH | O_DIRECTORY);
    try {
      return openat2Retrying(dfd, rel, flags, 0, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
    } catch (e) {
      if (errnoOf(e) === 'EXDEV' || errnoOf(e) === 'ELOOP') throw this.refused(path, what);
      if (missing(e))
        throw new JaulaError('not_found', `There is no ${what} ${JSON.stringify(path)} beneath ${dir}`);
      throw e;
    } finally {
      fs.closeSync(dfd);
    }
  }

  private static procPath(fd: number): string {
    return `/proc/${process.pid}/fd/${fd}`;
  }

  /** An existing regular file to read (an archive): opened now, read by tools through its fd. */
  openFile(path: string, what = 'file'): Opened {
    const rel = this.check(path, what);
    if (this.policy.kind === 'any') return { path, close: () => {} };
    const fd = this.openBeneath(path, what, rel, O_PATH);
    try {
      if (!fs.fstatSync(fd).isFile())
        throw new JaulaError('invalid', `The ${what} ${JSON.stringify(path)} is not a regular file`);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return { path: HostFiles.procPath(fd), close: () => fs.closeSync(fd) };
  }

  /** The directory a file is to be written into (it must exist), opened now, and the file's name. */
  openParent(path: string, what = 'file'): OpenedParent {
    const rel = this.check(path, what);
    const base = basename(path);
    if (!base || base === '.' || base === '..' || path.endsWith('/'))
      throw new JaulaError('invalid', `The ${what} ${JSON.stringify(path)} names a directory, not a file`);
    const dir = dirname(path);
    if (this.policy.kind === 'any') {
      if (!fs.existsSync(dir)) throw new JaulaError('not_found', `The directory of "${path}" does not exist`);
      return { path: dir, base, real: resolve(dir), close: () => {} };
    }
    if (rel === '.') throw this.refused(path, what);
    const fd = this.openBeneath(path, what, dirname(rel), O_PATH | O_DIRECTORY);
    let real: string;
    try {
      real = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return { path: HostFiles.procPath(fd), base, real, close: () => fs.closeSync(fd) };
  }

  /** Run `fn` on the host tree as this caller may use it (jaula cp's host side). */
  withTree<T>(fn: (t: HostTree) => T): T {
    const p = this.policy;
    if (p.kind !== 'beneath') return fn(this.policy.kind === 'any' ? plainTree : this.noTree());
    return GuestFs.with(p.dir, (g) => fn(this.beneathTree(g)), { beneath: true });
  }

  private noTree(): HostTree {
    const no = (p: string): never => {
      throw this.refused(p, 'host path');
    };
    return {
      lstat: no,
      stat: no,
      readlink: no,
      readdir: no,
      openRead: no,
      mkdir: no,
      symlink: no,
      writeFile: no,
    };
  }

  /** The tree beneath the directory: every host path checked, then resolved by GuestFs (RESOLVE_BENEATH). */
  private beneathTree(g: GuestFs): HostTree {
    const at = <T>(p: string, fn: (rel: string) => T): T => {
      const rel = this.check(p);
      try {
        return fn(rel);
      } catch (e) {
        if (errnoOf(e) === 'EXDEV' || errnoOf(e) === 'ELOOP') throw this.refused(p, 'host path');
        throw e;
      }
    };
    return {
      lstat: (p) => at(p, (r) => g.lstat(r)),
      stat: (p) => at(p, (r) => g.stat(r)),
      readlink: (p) =>
        at(p, (r) => {
          const l = g.readlink(r);
          if (l === undefined) throw new JaulaError('not_found', `There is no symlink ${JSON.stringify(p)}`);
          return l;
        }),
      readdir: (p) => at(p, (r) => g.readdir(r)),
      openRead: (p) => at(p, (r) => g.open(r, fs.constants.O_RDONLY | O_NOFOLLOW)),
      mkdir: (p, mode) => at(p, (r) => g.mkdirp(r, mode)),
      symlink: (p, target) => at(p, (r) => g.symlink(r, target)),
      writeFile: (p, fill, o) => at(p, (r) => g.writeFileWith(r, fill, o)),
    };
  }
}
