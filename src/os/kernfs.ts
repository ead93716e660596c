import * as fs from 'node:fs';
import { errnoOf } from '../common/errors.js';
import { native } from './native.js';

/**
 * Fast reads and writes of the kernel's small text files (/proc, cgroupfs): open, one read into
 * a shared buffer, close. Listing hundreds of guests reads thousands of these, so this stays
 * clear of readFileSync's fstat and per-call allocations.
 */
let buf = Buffer.allocUnsafe(1 << 16);

/**
 * At most this much of one file is read by readKernelFile and readKernelBytes (a guest controls
 * the size of some: its processes' cmdline and status); more is cut off.
 */
export const READ_ONE_MAX = 16 << 20;

/** Read into the shared buffer; the length read, or -1 when the file is gone or unreadable. */
function readInto(path: string): number {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return -1;
  }
  try {
    let len = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, len, buf.length - len, null);
      len += n;
      if (n === 0 || len < buf.length) break;
      if (buf.length >= READ_ONE_MAX) break;
      const bigger = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(bigger, 0, 0, len);
      buf = bigger;
    }
    return len;
  } catch {
    return -1;
  } finally {
    fs.closeSync(fd);
  }
}

/** The file's text, or undefined when it (or its process or cgroup) is gone or unreadable. */
export function readKernelFile(path: string, encoding: 'latin1' | 'utf8' = 'latin1'): string | undefined {
  const n = readInto(path);
  return n < 0 ? undefined : buf.toString(encoding, 0, n);
}

/** Write a kernel control file (cgroup knob) in one write; throws the errno as a Node error. */
export function writeKernelFile(path: string, text: string): void {
  const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
  try {
    fs.writeSync(fd, text);
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether a path exists (a cgroup knob, a hierarchy). */
export function kernelFileExists(path: string): boolean {
  try {
    fs.accessSync(path);
    return true;
  } catch (e) {
    return errnoOf(e) !== 'ENOENT' && errnoOf(e) !== 'ENOTDIR';
  }
}

/**
 * Read a kernel file into the shared buffer without decoding it: the returned view is valid
 * only until the next read. undefined when the file is gone or unreadable.
 */
export function readKernelBytes(path: string): Buffer | undefined {
  const n = readInto(path);
  return n < 0 ? undefined : buf.subarray(0, n);
}

/** Many small kernel files read in one native call. */
export interface KernelFiles {
  /**
   * File i's text (latin1), or undefined when it was unreadable. A file longer than the call's
   * cap per file is cut there, at its last whole line when it has lines.
   */
  text(i: number): string | undefined;
  /** Whether file i was longer than the cap per file (its text is cut). */
  truncated(i: number): boolean;
}

/**
 * What readKernelFiles reads: at most FILE_MAX bytes of one file (a guest controls the length
 * of its processes' /proc/PID/cmdline, their /proc/PID/status with a long supplementary group
 * list, its /proc/PID/net/dev), and, in all, TOTAL_MAX: with many files the cap per file is
 * lowered to share it (but never below FILE_MIN, more than any stat or status needs).
 */
export const READ_FILE_MAX = 64 << 10;
export const READ_FILE_MIN = 4 << 10;
export const READ_TOTAL_MAX = 64 << 20;

let manyBuf = Buffer.allocUnsafe(1 << 20);

export function readKernelFiles(
  paths: string[],
  o: { fileMax?: number; totalMax?: number } = {},
): KernelFiles {
  const n = paths.length;
  const per = Math.max(
    READ_FILE_MIN,
    Math.min(o.fileMax ?? READ_FILE_MAX, Math.floor((o.totalMax ?? READ_TOTAL_MAX) / Math.max(1, n))),
  );
  const at = new Float64Array(3 * n);
  // (n + 4) * per bytes always do (4: the native reader's most threads, each with its share of
  // the buffer), so this ends; the buffer starts at 1 MiB and doubles as needed.
  const enough = (n + 4) * per;
  let buf = manyBuf;
  while (native().readFiles(paths, buf, at, per) < 0) {
    const size = Math.min(buf.length * 2, Math.max(enough, buf.length + 1));
    buf = Buffer.allocUnsafe(size);
    if (size <= READ_TOTAL_MAX) manyBuf = buf; // kept for the next call; a bigger one is not
  }
  let end = 0;
  for (let i = 0; i < n; i++) {
    const e = (at[3 * i] as number) + Math.max(0, at[3 * i + 1] as number);
    if (e > end) end = e;
  }
  // One decoding for all; each file is then a slice of it (V8 shares the characters).
  const all = buf.toString('latin1', 0, end);
  const cut = (i: number): boolean => at[3 * i + 2] === 1;
  return {
    text: (i) => {
      const len = at[3 * i + 1] as number;
      if (len < 0) return undefined;
      const off = at[3 * i] as number;
      const t = all.slice(off, off + len);
      if (!cut(i)) return t;
      const nl = t.lastIndexOf('\n');
      return nl > 0 ? t.slice(0, nl + 1) : t;
    },
    truncated: cut,
  };
}

/** Link counts of many paths in one native call (-1: absent). */
export function linkCounts(paths: string[]): Int32Array {
  const out = new Int32Array(paths.length);
  native().linkCounts(paths, out);
  return out;
}
