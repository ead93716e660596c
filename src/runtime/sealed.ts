/**
 * The OCI runtime, run from a sealed copy of itself. crun and runc guard the host's binary
 * against a guest that would write to it through /proc/PID/exe (CVE-2019-5736): each call first
 * makes itself a read-only copy and executes that. crun 1.8 makes a file in /tmp, binds its own
 * binary on it, remounts the bind read-only and detaches it (in the mount namespace it runs in:
 * the host's, where it is not wrapped), then executes itself a second time, loading its ten
 * libraries again. A runtime executed from a memfd sealed against every change (the seals their
 * is_self_cloned() asks for) is that copy already: jaula makes one per process and runs the
 * runtime from it. `crun list` took 2.2 ms so, against 4.1-4.8 ms from its path (this VM).
 *
 * The copy is made again when the runtime's file changes (an upgrade); a copy made before stays
 * open (a call may still be handing it to a child). Where a memfd cannot be made executable
 * (vm.memfd_noexec=2), the runtime runs from its path as before.
 */
import * as fs from 'node:fs';
import { native } from '../os/native.js';

/** By runtime path (guests may use crun and runc side by side): the file's identity and its copy. */
const copies = new Map<string, { key: string; fd: number | undefined }>();

/** The fd of the sealed copy of the runtime at `path` (close-on-exec), or undefined. */
export function sealedRuntime(path: string): number | undefined {
  const st = fs.statSync(path, { throwIfNoEntry: false });
  if (!st) return undefined;
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  let cached = copies.get(path);
  if (cached?.key !== key) {
    let fd: number | undefined;
    try {
      fd = native().sealedCopy(path);
    } catch {
      fd = undefined; // (run from its path)
    }
    cached = { key, fd };
    copies.set(path, cached);
  }
  return cached.fd;
}

/** How jaula's process runs a program: argv, with extra fds (3, 4...) and the file executed. */
export interface Invocation {
  argv: string[];
  fds?: number[];
  exe?: string;
}
