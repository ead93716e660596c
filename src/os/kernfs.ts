import * as fs from 'node:fs';
import { errnoOf } from '../common/errors.js';

/**
 * Fast reads and writes of the kernel's small text files (/proc, cgroupfs): open, one read into
 * a shared buffer, close. Listing hundreds of guests reads thousands of these, so this stays
 * clear of readFileSync's fstat and per-call allocations.
 */
let buf = Buffer.allocUnsafe(1 << 16);

/** The file's text, or undefined when it (or its process or cgroup) is gone or unreadable. */
export function readKernelFile(path: string, encoding: 'latin1' | 'utf8' = 'latin1'): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return undefined;
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
    return buf.toString(encoding, 0, len);
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
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
