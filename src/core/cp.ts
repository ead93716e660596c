/**
 * `jaula cp`: copy files into and out of a guest. Every access on the guest's side goes through
 * GuestFs (openat2 RESOLVE_IN_ROOT): a guest's symlinks resolve inside the guest, never to the
 * host, and symlinks inside copied trees are copied as links, never followed. The host's side
 * is a HostTree (os/hostfiles.ts): any absolute path for root, only beneath jaulad's
 * --host-files directory for an API client over TCP.
 */
import * as fs from 'node:fs';
import { basename, join } from 'node:path';
import { JaulaError, errnoOf } from '../common/errors.js';
import { GuestFs } from '../os/guestfs.js';
import { HostFiles, type HostTree } from '../os/hostfiles.js';
import { O_NOFOLLOW } from '../os/native.js';
import { guestIdRange } from '../runtime/idmap.js';
import { storageDriver } from '../storage/index.js';
import { withGuestLock } from '../guest/locks.js';
import { initAlive, readState } from '../guest/state.js';
import { loadConfig } from '../guest/store.js';

export interface CpOptions {
  /** Keep numeric owners (else files copied in belong to the guest's root, out to the caller). */
  archive?: boolean;
  /** Which host paths the caller may use (default: any absolute path, as root). */
  hostFiles?: HostFiles;
}

export interface GuestPath {
  guest: string;
  path: string;
}

/** `NAME:/path` names a guest path; anything else is a host path. */
export function parseCpArg(arg: string): GuestPath | undefined {
  const m = /^([A-Za-z0-9][A-Za-z0-9_.-]*):(.*)$/.exec(arg);
  if (!m || arg.startsWith('/') || arg.startsWith('.')) return undefined;
  return { guest: m[1] as string, path: m[2] || '/' };
}

/**
 * Run `fn` on the guest's tree as the host may read and write it. A running guest's tree is what
 * the guest sees: its root through /proc/PID/root of its init, so that the guest's own mounts
 * (its /tmp and /run tmpfs, fstab binds) are crossed as inside it, and written with the guest's
 * root's IDs. A stopped guest's root is assembled (and its lock held) for the while.
 */
async function withGuestFs<T>(name: string, fn: (g: GuestFs, live: boolean) => T): Promise<T> {
  const live = (): GuestFs | undefined => {
    const st = readState(name);
    if (!initAlive(st) || !st.pid) return undefined;
    return GuestFs.ofProcess(st.pid, st.pidStart, { shift: guestIdRange(loadConfig(name))?.hostId });
  };
  const g = live();
  if (g) return withClose(g, (x) => fn(x, true));
  return withGuestLock(name, async () => {
    const cfg = loadConfig(name);
    const again = live();
    if (again) return withClose(again, (x) => fn(x, true));
    const driver = await storageDriver(cfg.storage.driver);
    try {
      return GuestFs.with((await driver.mount(cfg)).hostView, (x) => fn(x, false));
    } finally {
      await driver.unmount(cfg);
    }
  });
}

function withClose<T>(g: GuestFs, fn: (g: GuestFs) => T): T {
  try {
    return fn(g);
  } finally {
    g.close();
  }
}

const CHUNK = 1 << 20;

function copyFd(from: number, to: number): void {
  const buf = Buffer.allocUnsafe(CHUNK);
  for (;;) {
    const n = fs.readSync(from, buf, 0, CHUNK, null);
    if (n === 0) break;
    let off = 0;
    while (off < n) off += fs.writeSync(to, buf, off, n - off);
  }
}

/**
 * What a copy did: files copied, and the special files (fifos, sockets, device nodes) met below
 * the path given, which are left out (a running guest's /run/initctl, a socket): a tree is still
 * copied. A special file named as the source itself is refused.
 */
interface CpCount {
  files: number;
  skipped: string[];
}

function copyIn(
  h: HostTree,
  g: GuestFs,
  src: string,
  dst: string,
  o: CpOptions,
  count: CpCount,
  top = true,
): void {
  const st = h.lstat(src);
  if (!st) throw new JaulaError('not_found', `There is no "${src}" on the host`);
  const own = (x: { uid: number; gid: number }): { uid: number; gid: number } =>
    o.archive ? { uid: x.uid, gid: x.gid } : { uid: 0, gid: 0 };
  if (st.isSymbolicLink()) {
    g.symlink(dst, h.readlink(src));
  } else if (st.isDirectory()) {
    g.mkdirp(dst, st.mode & 0o7777);
    for (const e of h.readdir(src)) copyIn(h, g, join(src, e), `${dst}/${e}`, o, count, false);
  } else if (st.isFile()) {
    const from = h.openRead(src);
    try {
      g.writeFileWith(dst, (to) => copyFd(from, to), { mode: st.mode & 0o7777, ...own(st) });
    } finally {
      fs.closeSync(from);
    }
    count.files++;
  } else if (!top) count.skipped.push(src);
  else
    throw new JaulaError(
      'invalid',
      `"${src}" is not a regular file, directory or symlink: jaula cp does not copy it`,
    );
}

/**
 * Directories of a running guest that a copy of a tree leaves empty: the runtime's /proc, /sys
 * and /dev (devices, the kernel's views), and any mount of a kernel pseudo file system.
 */
function skipInTree(g: GuestFs, src: string, live: boolean): boolean {
  if (!live) return false;
  const p = `/${GuestFs.components(src).join('/')}`;
  return p === '/proc' || p === '/sys' || p === '/dev' || g.onKernelFs(src);
}

function copyOut(
  h: HostTree,
  g: GuestFs,
  src: string,
  dst: string,
  o: CpOptions & { live?: boolean },
  count: CpCount,
  top = true,
): void {
  const st = g.lstat(src);
  if (!st) throw new JaulaError('not_found', `There is no "${src}" in the guest`);
  if (st.isSymbolicLink()) {
    h.symlink(dst, g.readlink(src) ?? '');
  } else if (st.isDirectory()) {
    h.mkdir(dst, st.mode & 0o7777);
    if (!top && skipInTree(g, src, o.live === true)) return;
    for (const e of g.readdir(src)) copyOut(h, g, `${src}/${e}`, join(dst, e), o, count, false);
  } else if (st.isFile()) {
    // Opened by the final component without following it (it was not a symlink just now; if
    // the guest swaps one in meanwhile, O_NOFOLLOW refuses it).
    const from = g.open(src, fs.constants.O_RDONLY | O_NOFOLLOW);
    try {
      h.writeFile(dst, (to) => copyFd(from, to), {
        mode: st.mode & 0o777,
        ...(o.archive ? { uid: st.uid, gid: st.gid } : {}),
      });
    } finally {
      fs.closeSync(from);
    }
    count.files++;
  } else if (!top) count.skipped.push(src);
  else
    throw new JaulaError(
      'invalid',
      `"${src}" in the guest is not a regular file, directory or symlink: jaula cp does not copy it`,
    );
}

/**
 * A write the guest's side refused, said as such: in a running guest its mounts apply (a
 * read-only bind or file system), and its quota.
 */
function refusedIn(e: unknown, d: GuestPath, live: boolean): unknown {
  const code = errnoOf(e);
  const at = `Cannot copy into "${d.path}" of guest "${d.guest}"`;
  if (code === 'EROFS')
    return new JaulaError(
      'denied',
      `${at}: that file system is read-only${live ? ' in the guest (a ro bind, or its read-only /sys or /proc)' : ''}`,
      { cause: e },
    );
  if (code === 'EACCES' || code === 'EPERM')
    return new JaulaError('denied', `${at}: permission denied (${code}: an immutable file?)`, { cause: e });
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new JaulaError('io', `${at}: no space left (${code}) in the guest's file system`, { cause: e });
  return e;
}

export async function copy(
  srcArg: string,
  dstArg: string,
  o: CpOptions = {},
): Promise<{ files: number; direction: 'in' | 'out'; skipped?: string[] }> {
  const s = parseCpArg(srcArg);
  const d = parseCpArg(dstArg);
  if ((s && d) || (!s && !d))
    throw new JaulaError(
      'usage',
      'Exactly one side of "jaula cp" names a guest path: jaula cp FILE GUEST:/path, or jaula cp GUEST:/path FILE',
    );
  const count: CpCount = { files: 0, skipped: [] };
  const skipped = (): { skipped?: string[] } => (count.skipped.length ? { skipped: count.skipped } : {});
  const host = o.hostFiles ?? HostFiles.any;
  if (d) {
    host.check(srcArg);
    if (!host.withTree((h) => h.lstat(srcArg)))
      throw new JaulaError('not_found', `There is no "${srcArg}" on the host`);
    await withGuestFs(d.guest, (g, live) =>
      host.withTree((h) => {
        const into = g.stat(d.path)?.isDirectory()
          ? `${d.path.replace(/\/+$/, '')}/${basename(srcArg)}`
          : d.path;
        try {
          copyIn(h, g, srcArg, into, o, count);
        } catch (e) {
          throw refusedIn(e, d, live);
        }
      }),
    );
    return { files: count.files, direction: 'in', ...skipped() };
  }
  const gs = s as GuestPath;
  host.check(dstArg);
  await withGuestFs(gs.guest, (g, live) =>
    host.withTree((h) => {
      const into = h.stat(dstArg)?.isDirectory() ? join(dstArg, basename(gs.path) || 'root') : dstArg;
      // The path itself resolves as the guest sees it (its symlinks stay inside it); below it,
      // links are copied as links.
      const real = g.realpath(gs.path);
      if (real === undefined)
        throw new JaulaError('not_found', `There is no "${gs.path}" in guest "${gs.guest}"`);
      copyOut(h, g, real, into, { ...o, live }, count);
    }),
  );
  return { files: count.files, direction: 'out', ...skipped() };
}
