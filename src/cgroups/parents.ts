import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../common/errors.js';
import { paths } from '../os/paths.js';
import { deepestOwnCgroup, ownCgroups } from './detect.js';
import { v2Base } from './v2parent.js';

/**
 * Directories that may hold a guest's cgroup: `<mount>/<base>/jaula[-TAG]/NAME` in every
 * hierarchy; of this instance, or of the instance with tag `tag` (tests and benchmarks remove
 * their instances' parents when they end).
 */
export function cgroupParents(tag = paths().instanceTag): string[] {
  const parent = `jaula${tag ? `-${tag}` : ''}`;
  const out = new Set<string>();
  let mounts = '';
  try {
    mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return [];
  }
  const own = ownCgroups();
  const deepest = deepestOwnCgroup();
  for (const line of mounts.split('\n')) {
    const [, dir, type, opts] = line.split(' ');
    if (!dir || (type !== 'cgroup' && type !== 'cgroup2')) continue;
    const ctrls = type === 'cgroup2' ? [''] : (opts ?? '').split(',');
    const bases = new Set(['/', deepest]);
    for (const c of ctrls) {
      const p = own.get(c);
      // (on v2 jaula may have moved itself into a leaf beside its guests: v2parent.ts)
      if (p !== undefined) bases.add(c === '' ? v2Base(p) : p);
    }
    for (const b of bases) out.add(join(dir, b, parent));
  }
  return [...out].filter((d) => fs.existsSync(d));
}

/**
 * rmdir an empty cgroup. On v1 a cgroup stays busy (EBUSY) for a moment after its last process
 * ended or its last child was removed: up to `ms` are given. Returns the error that stays (none
 * when it is gone or was never there).
 */
function rmdirCgroup(d: string, ms = 2000): Error | undefined {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      fs.rmdirSync(d);
      return undefined;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      if (errnoOf(e) !== 'EBUSY' || Date.now() > deadline) return e as Error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/**
 * Remove the (empty) parent cgroups of the instance with tag `tag`, when its last guest is gone
 * (tests and benchmarks, at their end). Returns the directories that stay.
 */
export function removeCgroupParents(tag: string): string[] {
  return cgroupParents(tag).filter((d) => rmdirCgroup(d) !== undefined);
}

/**
 * The cgroup a guest's supervisor works from, beside the guest's own (jaula-helper shim makes it
 * and removes it; a name no guest can have, since guest names begin with a letter or digit).
 */
export const supervisorCgroupName = (guest: string): string => `.supervisor-${guest}`;

/** Remove the supervisor cgroups a killed supervisor of a guest left; returns problems to report. */
export function removeSupervisorCgroups(guest: string): string[] {
  const problems: string[] = [];
  for (const p of cgroupParents()) {
    // (a supervisor killed a moment ago leaves its cgroups busy for that moment: EBUSY)
    const d = join(p, supervisorCgroupName(guest));
    const e = rmdirCgroup(d);
    if (e) problems.push(`the supervisor's cgroup ${d}: ${e.message}`);
  }
  return problems;
}
