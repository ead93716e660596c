import * as fs from 'node:fs';
import { JaulaError, errnoOf } from '../common/errors.js';
import { tmpSuffix } from './fs.js';
import { isSameProcess } from './proc.js';
import {
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  RESOLVE_BENEATH,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  native,
  withFsIds,
} from './native.js';

/** statfs magic numbers: proc, sysfs, devpts, cgroup, cgroup2, mqueue, fuse, debugfs, securityfs. */
const KERNEL_FS = new Set([
  0x9fa0, 0x62656572, 0x1cd1, 0x27e0eb, 0x63677270, 0x19800202, 0x65735546, 0x64626720, 0x73636673,
]);

export interface GuestFsOptions {
  /**
   * The tree shows on-disk ID n as host ID shift + n (an unprivileged guest's overlay root):
   * changes are made as host ID `shift` (the guest's root; other IDs cannot be created through
   * it), and the IDs given to and returned by GuestFs stay on-disk IDs.
   */
  shift?: number | undefined;
  /**
   * The tree is a host directory an API client may use (os/hostfiles.ts), not a guest's root:
   * lookups are RESOLVE_BENEATH, so a symlink or ".." that leads out of it fails (EXDEV)
   * instead of resolving inside it.
   */
  beneath?: boolean;
}

/**
 * openat2(2), again while it fails with EAGAIN: with RESOLVE_IN_ROOT or RESOLVE_BENEATH the
 * kernel gives up a lookup that went through ".." when any rename or mount on the host happened
 * meanwhile (it cannot tell that the ".." stayed inside), and says to retry. A busy host (or a
 * guest renaming in a loop) makes that happen; after 100 tries the error stands.
 */
export function openat2Retrying(
  dirfd: number,
  path: string,
  flags: number,
  mode: number,
  resolve: number,
): number {
  for (let i = 0; ; i++) {
    try {
      return native().openat2(dirfd, path, flags, mode, resolve);
    } catch (e) {
      if (errnoOf(e) !== 'EAGAIN' || i >= 100) throw e;
    }
  }
}

/**
 * The one way host-side code touches files inside a guest's tree. Every lookup is done by
 * openat2(2) with RESOLVE_IN_ROOT: ".." and symlinks (absolute or relative) resolve as they
 * would inside the guest, so no path can lead out of the guest's root, whatever the guest did to
 * its tree, even while it changes it. The final component of a write, rename, unlink or mkdir
 * is handled relative to an already-resolved directory fd and is never followed.
 */
export class GuestFs {
  private readonly rootFd: number;
  private closed = false;
  private readonly shift: number | undefined;
  private readonly resolve: number;

  constructor(
    readonly root: string,
    opts: GuestFsOptions = {},
  ) {
    this.shift = opts.shift;
    this.resolve = (opts.beneath ? RESOLVE_BENEATH : RESOLVE_IN_ROOT) | RESOLVE_NO_MAGICLINKS;
    try {
      this.rootFd = fs.openSync(root, O_PATH | O_DIRECTORY);
    } catch (e) {
      throw new JaulaError(
        'not_found',
        `The guest root "${root}" cannot be opened: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  static with<T>(root: string, fn: (g: GuestFs) => T, opts: GuestFsOptions = {}): T {
    const g = new GuestFs(root, opts);
    try {
      return fn(g);
    } finally {
      g.close();
    }
  }

  /**
   * The root of a running process (a guest's init) as it sees it: /proc/PID/root, whose lookups
   * cross the mounts of the process's own mount namespace. Undefined when `pid` is no longer the
   * process that started at `starttime` (checked after opening: the fd is that process's root).
   */
  static ofProcess(
    pid: number,
    starttime: number | undefined,
    opts: GuestFsOptions = {},
  ): GuestFs | undefined {
    let g: GuestFs;
    try {
      g = new GuestFs(`/proc/${pid}/root`, opts);
    } catch {
      return undefined;
    }
    if (isSameProcess(pid, starttime)) return g;
    g.close();
    return undefined;
  }

  close(): void {
    if (!this.closed) fs.closeSync(this.rootFd);
    this.closed = true;
  }

  /** A change inside the guest, made as its root when the tree is shifted. */
  private act<T>(fn: () => T): T {
    return withFsIds(this.shift, fn);
  }

  /** On-disk IDs in a stat of a shifted tree. */
  private unshift(st: fs.Stats): fs.Stats {
    const s = this.shift;
    if (s !== undefined) {
      if (st.uid >= s && st.uid - s < 65536) st.uid -= s;
      if (st.gid >= s && st.gid - s < 65536) st.gid -= s;
    }
    return st;
  }

  /** Split a guest path into clean components ("/etc/../etc/x" -> ["etc", "x"]). */
  static components(path: string): string[] {
    const out: string[] = [];
    for (const c of path.split('/')) {
      if (c === '' || c === '.') continue;
      if (c === '..') out.pop();
      else out.push(c);
    }
    return out;
  }

  /** openat2 inside the guest's root; the fd must be closed by the caller. */
  open(path: string, flags: number, mode = 0o644): number {
    const rel = GuestFs.components(path).join('/') || '.';
    return openat2Retrying(this.rootFd, rel, flags, mode, this.resolve);
  }

  /** Resolve the parent directory of `path`; returns [dirFd, baseName]. */
  private parent(path: string, create: boolean): [number, string] {
    const comps = GuestFs.components(path);
    const base = comps.pop();
    if (!base) throw new JaulaError('invalid', `"${path}" names the guest's root itself, not a file in it`);
    if (create && comps.length) this.mkdirp(comps.join('/'));
    const fd = this.open(comps.join('/') || '.', O_PATH | O_DIRECTORY);
    return [fd, base];
  }

  private withParent<T>(path: string, create: boolean, fn: (at: string) => T): T {
    const [fd, base] = this.parent(path, create);
    try {
      return fn(`/proc/self/fd/${fd}/${base}`);
    } finally {
      fs.closeSync(fd);
    }
  }

  readFile(path: string): Buffer | undefined {
    let fd: number;
    try {
      fd = this.open(path, fs.constants.O_RDONLY);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return undefined;
      throw e;
    }
    try {
      if (!fs.fstatSync(fd).isFile()) return undefined;
      return fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  readText(path: string): string | undefined {
    return this.readFile(path)?.toString('utf8');
  }

  /** Atomically replace `path` (a symlink there is replaced, never followed). */
  writeFile(
    path: string,
    data: string | Uint8Array,
    opts: { mode?: number; uid?: number; gid?: number } = {},
  ): void {
    this.writeFileWith(path, (fd) => fs.writeFileSync(fd, data), opts);
  }

  /** Like writeFile, with the content written by `fill` to the new file's fd. */
  writeFileWith(
    path: string,
    fill: (fd: number) => void,
    opts: { mode?: number; uid?: number; gid?: number } = {},
  ): void {
    const [dfd, base] = this.parent(path, true);
    try {
      const dir = `/proc/self/fd/${dfd}`;
      const tmp = `.jaula-${tmpSuffix()}`;
      this.act(() => {
        const fd = fs.openSync(
          `${dir}/${tmp}`,
          fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW,
          opts.mode ?? 0o644,
        );
        try {
          fill(fd);
          fs.fchmodSync(fd, opts.mode ?? 0o644);
          if (opts.uid !== undefined)
            fs.fchownSync(fd, opts.uid + (this.shift ?? 0), (opts.gid ?? opts.uid) + (this.shift ?? 0));
          fs.closeSync(fd);
          fs.renameSync(`${dir}/${tmp}`, `${dir}/${base}`);
        } catch (e) {
          fs.rmSync(`${dir}/${tmp}`, { force: true });
          throw e;
        }
      });
    } finally {
      fs.closeSync(dfd);
    }
  }

  /** Create directories inside the guest; an existing symlink in the way resolves inside the guest. */
  mkdirp(path: string, mode = 0o755): void {
    const comps = GuestFs.components(path);
    for (let i = 1; i <= comps.length; i++) {
      const sub = comps.slice(0, i).join('/');
      try {
        fs.closeSync(this.open(sub, O_PATH | O_DIRECTORY));
        continue;
      } catch (e) {
        if (errnoOf(e) !== 'ENOENT') throw e;
      }
      this.withParent(sub, false, (at) => {
        try {
          this.act(() => fs.mkdirSync(at, mode));
        } catch (e) {
          if (errnoOf(e) !== 'EEXIST') throw e;
        }
      });
    }
  }

  /** Make `path` a symlink to `target`, replacing what is there (not a directory). */
  symlink(path: string, target: string): void {
    this.withParent(path, true, (at) => {
      const tmp = `${at}.jaula-${tmpSuffix()}`;
      this.act(() => {
        fs.symlinkSync(target, tmp);
        try {
          fs.renameSync(tmp, at);
        } catch (e) {
          fs.rmSync(tmp, { force: true });
          throw e;
        }
      });
    });
  }

  readlink(path: string): string | undefined {
    try {
      return this.withParent(path, false, (at) => fs.readlinkSync(at));
    } catch (e) {
      if (['ENOENT', 'EINVAL', 'ENOTDIR'].includes(errnoOf(e) ?? '')) return undefined;
      throw e;
    }
  }

  lstat(path: string): fs.Stats | undefined {
    if (GuestFs.components(path).length === 0) return this.unshift(fs.fstatSync(this.rootFd));
    try {
      return this.withParent(path, false, (at) => this.unshift(fs.lstatSync(at)));
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  /** stat following symlinks inside the guest. */
  stat(path: string): fs.Stats | undefined {
    let fd: number;
    try {
      fd = this.open(path, O_PATH);
    } catch (e) {
      if (['ENOENT', 'ENOTDIR', 'ELOOP'].includes(errnoOf(e) ?? '')) return undefined;
      throw e;
    }
    try {
      return this.unshift(fs.fstatSync(fd));
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Whether the directory `path` is on one of the kernel's pseudo file systems (proc, sysfs,
   * devpts, cgroup, mqueue, FUSE such as lxcfs): what a copy of a running guest's tree skips.
   */
  onKernelFs(path: string): boolean {
    let fd: number;
    try {
      fd = this.open(path, O_PATH | O_DIRECTORY);
    } catch {
      return false;
    }
    try {
      return KERNEL_FS.has(fs.statfsSync(`/proc/self/fd/${fd}`).type);
    } finally {
      fs.closeSync(fd);
    }
  }

  exists(path: string): boolean {
    return this.lstat(path) !== undefined;
  }

  unlink(path: string): void {
    try {
      this.withParent(path, false, (at) => this.act(() => fs.unlinkSync(at)));
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT' && errnoOf(e) !== 'ENOTDIR') throw e;
    }
  }

  readdir(path: string): string[] {
    let fd: number;
    try {
      fd = this.open(path, fs.constants.O_RDONLY | O_DIRECTORY);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return [];
      throw e;
    }
    try {
      return fs.readdirSync(`/proc/self/fd/${fd}`);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Follow a symlink chain inside the guest and return the final guest path. */
  realpath(path: string): string | undefined {
    let fd: number;
    try {
      fd = this.open(path, O_PATH);
    } catch {
      return undefined;
    }
    try {
      const host = fs.readlinkSync(`/proc/self/fd/${fd}`);
      // (a root in another mount namespace, /proc/PID/root, reads as "/" and its files as
      // paths below it)
      const rootHost = fs.readlinkSync(`/proc/self/fd/${this.rootFd}`).replace(/\/$/, '');
      if (host === rootHost || host === '/') return '/';
      return host.startsWith(rootHost + '/') ? host.slice(rootHost.length) : undefined;
    } finally {
      fs.closeSync(fd);
    }
  }
}
