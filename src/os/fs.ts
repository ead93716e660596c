import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { errnoOf } from '../common/errors.js';

let tmpCounter = 0;
/** A name suffix unique within this host for a temp file (no crypto: it stays off the start-up path). */
export function tmpSuffix(): string {
  return `${process.pid.toString(36)}${Date.now().toString(36)}${(tmpCounter++).toString(36)}${Math.floor(Math.random() * 2 ** 32).toString(36)}`;
}

/**
 * Write a file atomically: temp file in the same directory, fsync, rename, fsync the directory.
 * `durable: false` skips the fsyncs, for runtime state that a reboot discards anyway (rename
 * still makes the change atomic for every reader and across a crash of jaula).
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
  opts: { durable?: boolean } = {},
): void {
  const durable = opts.durable ?? true;
  const dir = dirname(path);
  const tmp = join(dir, `.tmp-${tmpSuffix()}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
  try {
    fs.writeFileSync(fd, data);
    if (durable) fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, path);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  if (durable) fsyncDir(dir);
}

export function fsyncDir(dir: string): void {
  try {
    const d = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(d);
    } finally {
      fs.closeSync(d);
    }
  } catch {
    /* best effort */
  }
}

export function readFileOr<T>(path: string, fallback: T): string | T {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return fallback;
    throw e;
  }
}

export function exists(path: string): boolean {
  try {
    fs.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export function mkdirp(path: string, mode = 0o755): void {
  fs.mkdirSync(path, { recursive: true, mode });
}

/** Remove a tree without following symlinks (fs.rm never follows them). */
export function removeTree(path: string): void {
  fs.rmSync(path, { recursive: true, force: true, maxRetries: 3 });
}

export function isExecutable(path: string): boolean {
  try {
    fs.accessSync(path, fs.constants.X_OK);
    return fs.statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Find a program on PATH (plus the sbin directories root usually has). */
export function which(name: string): string | undefined {
  const dirs = (process.env['PATH'] ?? '')
    .split(':')
    .concat(['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

export const BTRFS_SUPER_MAGIC = 0x9123683e;

/** Is `dir` on btrfs (one statfs; false when it cannot be read)? */
export function isBtrfs(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}
