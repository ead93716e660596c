/**
 * Freezing a running guest for the last pass of a sync move: its cgroup's freezer (v1
 * freezer.state, or v2 cgroup.freeze), waited for until every task is frozen. A frozen guest
 * changes no file, so the last pass sends exactly what it will have.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { cgroupMounts, guestCgroupPaths, procsBelow } from '../../cgroups/cgroup.js';
import type { GuestState } from '../../guest/state.js';

export interface Freezer {
  freeze(): Promise<void>;
  thaw(): void;
  /** SIGKILL to every process of the (frozen) guest: they die when thawed, having run nothing more. */
  killAll(): void;
  /** Wait (at most `ms`) until the cgroup holds no process; false if some still run then. */
  emptied(ms: number): Promise<boolean>;
}

export function freezerOf(name: string, st: GuestState): Freezer {
  const cg = st.pid ? guestCgroupPaths(st.pid, st.cgroupsPath) : undefined;
  const mounts = cgroupMounts();
  const v1 = mounts.get('freezer');
  const rel = cg?.get(v1 ? 'freezer' : '');
  const base = v1 ?? mounts.get('');
  if (!cg || rel === undefined || !base)
    throw new JaulaError('runtime', `Cannot find the freezer of guest "${name}"'s cgroup: is it running?`);
  const dir = join(base, rel);
  const file = v1 ? join(dir, 'freezer.state') : join(dir, 'cgroup.freeze');
  const [on, off] = v1 ? ['FROZEN', 'THAWED'] : ['1', '0'];
  const frozen = (): boolean =>
    v1
      ? fs.readFileSync(file, 'utf8').trim() === 'FROZEN'
      : /^frozen 1$/m.test(fs.readFileSync(join(dir, 'cgroup.events'), 'utf8'));
  return {
    async freeze() {
      fs.writeFileSync(file, on);
      const deadline = Date.now() + 10_000;
      while (!frozen()) {
        if (Date.now() > deadline) {
          fs.writeFileSync(file, off);
          throw new JaulaError('timeout', `Guest "${name}" did not freeze within 10 s`);
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    },
    thaw() {
      fs.writeFileSync(file, off);
    },
    killAll() {
      for (const pid of procsBelow(dir) ?? [])
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
    },
    async emptied(ms) {
      const deadline = Date.now() + ms;
      while ((procsBelow(dir) ?? []).length) {
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 2));
      }
      return true;
    },
  };
}
