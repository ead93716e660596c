/**
 * Where guests' cgroups go on a v2 (unified) host, and making that place able to hand them the
 * controllers. Guests live at `<base>/jaula[-TAG]/NAME` beneath jaula's own cgroup (the base).
 * cgroup v2 lets a cgroup give domain controllers (memory, io) to its children only while it
 * holds no processes of its own, and jaula's cgroup almost always does: a systemd service
 * (jaulad.service, a CI runner), an SSH session's scope. So before the first guest's cgroup is
 * made, the processes of the base are moved into a leaf beside the guests, `<base>/jaula-leaf`
 * (as a delegated manager must do; systemd's DelegateSubgroup= does the same), and the base
 * enables the controllers for its children. A jaula that runs in that leaf afterwards keeps the
 * same base.
 */
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { JaulaError, errnoOf } from '../common/errors.js';
import { readKernelFile, writeKernelFile } from '../os/kernfs.js';
import { parsePidList } from './parse.js';

/** The leaf jaula moves the processes of its cgroup into. */
export const V2_LEAF = 'jaula-leaf';

/** The controllers a guest's cgroup gets (what the runtimes enable for a container). */
export const GUEST_CONTROLLERS = ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids'] as const;

/** jaula's base cgroup on a v2 host, from its own cgroup (`own`, as in /proc/self/cgroup). */
export function v2Base(own: string): string {
  return basename(own) === V2_LEAF ? dirname(own) : own;
}

/** The file operations used (the real cgroupfs by default; a model of it in unit tests). */
export interface CgroupFs {
  read(path: string): string | undefined;
  /** Throws the kernel's errno (EBUSY, ESRCH, ...) as a Node error. */
  write(path: string, text: string): void;
  mkdir(path: string): void;
}

const kernelFs: CgroupFs = {
  read: (p) => readKernelFile(p),
  write: writeKernelFile,
  mkdir: (p) => {
    try {
      fs.mkdirSync(p);
    } catch (e) {
      if (errnoOf(e) !== 'EEXIST') throw e;
    }
  },
};

const words = (text: string | undefined): Set<string> => new Set((text ?? '').split(/\s+/).filter(Boolean));

/**
 * Before a guest's cgroup is made at `<mount><base>/<parent>/NAME`: enable the guests'
 * controllers (those the base has) in the base and in `parent` (made here), moving the base's
 * processes into its leaf when they are in the way. Reads two files when all is in place.
 */
export function prepareV2Parent(mount: string, base: string, parent: string, cg: CgroupFs = kernelFs): void {
  const baseDir = join(mount, base);
  const have = words(cg.read(join(baseDir, 'cgroup.controllers')));
  const wanted = GUEST_CONTROLLERS.filter((c) => have.has(c));
  enableControllers(baseDir, wanted, cg, true);
  const parentDir = join(baseDir, parent);
  try {
    cg.mkdir(parentDir);
  } catch (e) {
    throw new JaulaError(
      'io',
      `Could not make the guests' parent cgroup ${parentDir}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  enableControllers(parentDir, wanted, cg, false);
}

function enableControllers(dir: string, wanted: readonly string[], cg: CgroupFs, mayMove: boolean): void {
  const file = join(dir, 'cgroup.subtree_control');
  const on = words(cg.read(file));
  const need = wanted.filter((c) => !on.has(c));
  if (need.length === 0) return;
  // Processes may appear meanwhile (a fork in the base before its parent moved): a few rounds.
  for (let round = 0; ; round++) {
    try {
      cg.write(file, need.map((c) => `+${c}`).join(' '));
      return;
    } catch (e) {
      if (errnoOf(e) !== 'EBUSY' || !mayMove || round === 5)
        throw new JaulaError(
          'unsupported',
          `The cgroup ${dir} cannot give the ${need.join(', ')} controllers to guests (writing ${file}: ${(e as Error).message})` +
            (errnoOf(e) === 'EBUSY'
              ? `: it still holds processes after moving them into ${join(dir, V2_LEAF)}; run jaula from a cgroup it may manage (a systemd unit with Delegate=yes)`
              : ''),
          { cause: e },
        );
      moveProcesses(dir, join(dir, V2_LEAF), cg);
    }
  }
}

/** Move every process of `from` into `to` (made if absent); ones that ended meanwhile are skipped. */
function moveProcesses(from: string, to: string, cg: CgroupFs): void {
  cg.mkdir(to);
  for (const pid of parsePidList(cg.read(join(from, 'cgroup.procs')) ?? '')) {
    try {
      cg.write(join(to, 'cgroup.procs'), String(pid));
    } catch (e) {
      if (errnoOf(e) === 'ESRCH') continue;
      throw new JaulaError(
        'unsupported',
        `Could not move process ${pid} out of jaula's cgroup ${from} into ${to}, to let guests have the cgroup controllers: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
}
