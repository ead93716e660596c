import * as fs from 'node:fs';
import { errnoOf } from '../common/errors.js';
import { native } from './native.js';

/**
 * Fast reads and writes of the kernel's small text files (/proc, cgroupfs): open, one read into
 * a shared buffer, close. Listing hundreds of guests reads thousands of these, so this stays
 * clear of readFileSync's fstat and per-call allocations.
 */
let buf = Buffer.allocUnsafe(1 << 16);

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
  /** File i's text (latin1), or undefined when it was unreadable. */
  text(i: number): string | undefined;
}

let manyBuf = Buffer.allocUnsafe(1 << 20);

export function readKernelFiles(paths: string[]): KernelFiles {
  const at = new Int32Array(2 * paths.length);
  while (native().readFiles(paths, manyBuf, at) < 0) manyBuf = Buffer.allocUnsafe(manyBuf.length * 2);
  let end = 0;
  for (let i = 0; i < paths.length; i++) {
    const e = (at[2 * i] as number) + Math.max(0, at[2 * i + 1] as number);
    if (e > end) end = e;
  }
  // One decoding for all; each file is then a slice of it (V8 shares the characters).
  const all = manyBuf.toString('latin1', 0, end);
  return {
    text: (i) => {
      const len = at[2 * i + 1] as number;
      if (len < 0) return undefined;
      const off = at[2 * i] as number;
      return all.slice(off, off + len);
    },
  };
}

/** Link counts of many paths in one native call (-1: absent). */
export function linkCounts(paths: string[]): Int32Array {
  const out = new Int32Array(paths.length);
  native().linkCounts(paths, out);
  return out;
}
