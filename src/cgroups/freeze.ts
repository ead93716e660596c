/**
 * Freezing a guest's cgroup for an instant (a consistent snapshot of a running guest): every
 * process of the guest stops where it is, in the kernel, until thawed. v1: the freezer
 * controller's freezer.state (FROZEN, FREEZING while it is under way); v2: cgroup.freeze and the
 * "frozen" key of cgroup.events. The caller always thaws (see withFrozen), even on error.
 */
import { join } from 'node:path';
import { JaulaError, errnoOf } from '../common/errors.js';
import { readKernelFile, writeKernelFile } from '../os/kernfs.js';
import { cgroupMounts, guestCgroupPaths } from './cgroup.js';
import { ownCgroups } from './detect.js';
import { cgroupVersion } from './index.js';

export interface Freezer {
  /** The file written (freezer.state or cgroup.freeze): where to look when it fails. */
  readonly file: string;
  freeze(): void;
  thaw(): void;
  /** The freeze is complete: no process of the cgroup runs any more. */
  frozen(): boolean;
}

/** Is `inner` the cgroup `outer` or below it? */
export const within = (inner: string, outer: string): boolean =>
  inner === outer || outer === '/' || inner.startsWith(`${outer}/`);

/** The freezer of the cgroup at `dir` (the hierarchy's version decides the files). */
export function freezerAt(dir: string, version: 1 | 2): Freezer {
  if (version === 2)
    return {
      file: join(dir, 'cgroup.freeze'),
      freeze: () => writeKernelFile(join(dir, 'cgroup.freeze'), '1'),
      thaw: () => writeKernelFile(join(dir, 'cgroup.freeze'), '0'),
      frozen: () => /^frozen 1$/m.test(readKernelFile(join(dir, 'cgroup.events')) ?? ''),
    };
  return {
    file: join(dir, 'freezer.state'),
    freeze: () => writeKernelFile(join(dir, 'freezer.state'), 'FROZEN'),
    thaw: () => writeKernelFile(join(dir, 'freezer.state'), 'THAWED'),
    frozen: () => (readKernelFile(join(dir, 'freezer.state')) ?? '').trim() === 'FROZEN',
  };
}

/**
 * The freezer of a running guest whose init is `pid`, or an error saying why it has none. Never
 * a cgroup that holds jaula itself (the hierarchy's root, or one of its own cgroup's parents).
 */
export function guestFreezer(pid: number, cgroupsPath?: string, version = cgroupVersion()): Freezer {
  const key = version === 2 ? '' : 'freezer';
  const mount = cgroupMounts().get(key);
  const path = guestCgroupPaths(pid, cgroupsPath)?.get(key);
  if (mount === undefined)
    throw new JaulaError(
      'unsupported',
      'This host has no cgroup freezer (the v1 "freezer" controller is not mounted): a running guest cannot be frozen for a snapshot; stop it first',
    );
  if (path === undefined)
    throw new JaulaError('state', `The guest's init (pid ${pid}) is gone: it stopped meanwhile`);
  const own = ownCgroups().get(key) ?? '/';
  if (within(own, path))
    throw new JaulaError(
      'state',
      `The guest's ${version === 2 ? 'cgroup' : 'freezer cgroup'} ${path} holds jaula itself (${own}): it is not frozen, so that jaula does not freeze itself; stop the guest to snapshot it`,
    );
  return freezerAt(mount + path, version);
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

/**
 * Run `fn` with the cgroup frozen, and thaw it afterwards whatever happens. A freeze that does
 * not complete within `timeoutMs` (a process in an uninterruptible wait) is undone and refused.
 */
export async function withFrozen<T>(f: Freezer, fn: () => Promise<T>, timeoutMs = 5000): Promise<T> {
  try {
    f.freeze();
  } catch (e) {
    throw new JaulaError('runtime', `Cannot freeze the guest (${f.file}: ${(e as Error).message})`, {
      cause: e,
    });
  }
  const thaw = (): void => {
    try {
      f.thaw();
    } catch (e) {
      // (a guest that ended meanwhile has no cgroup left to thaw: not this operation's failure)
      if (errnoOf(e) !== 'ENOENT')
        throw new JaulaError(
          'runtime',
          `Cannot thaw the guest (${f.file}: ${(e as Error).message}): it stays frozen until that file is written (THAWED, or 0 on cgroup v2)`,
          { cause: e },
        );
    }
  };
  let result: T;
  try {
    const end = Date.now() + timeoutMs;
    while (!f.frozen()) {
      if (Date.now() > end)
        throw new JaulaError(
          'busy',
          `The guest did not freeze within ${timeoutMs} ms (${f.file}; a process in an uninterruptible wait?): try again, or stop it first`,
        );
      await tick();
    }
    result = await fn();
  } catch (e) {
    thaw();
    throw e;
  }
  thaw();
  return result;
}
