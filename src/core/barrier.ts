import * as fs from 'node:fs';
import { basename } from 'node:path';
import { messageOf } from '../common/errors.js';
import { readMountInfo } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import { runOk } from '../os/spawn.js';
import { IDMAP_BASE, guestIdRange } from '../runtime/idmap.js';
import {
  GUESTS_RUN_MODE,
  cacheBarrier,
  checkBarrier,
  checkStorageMount,
  ensureBarrier,
  guestRunBarrier,
  guestRunDirs,
  libBarrier,
  storageMounts,
  type Barrier,
  type BarrierProblem,
} from '../storage/barrier.js';
import type { Check } from './doctor.js';
import { loadEveryConfig } from '../guest/store.js';

/** Every barrier as it should be now: var/lib/jaula, the cache, run/jaula/guests and each guest's run directory. */
function allBarriers(): Barrier[] {
  const configs = new Map(loadEveryConfig().map((c) => [c.name, c]));
  const out = [
    libBarrier(),
    cacheBarrier(),
    { path: paths().guestsRun, mode: GUESTS_RUN_MODE, gid: 0, what: "guests' run directories" },
  ];
  for (const dir of guestRunDirs()) {
    const name = basename(dir);
    const cfg = configs.get(name);
    let hostGid: number | undefined;
    try {
      // A guest whose config does not load keeps the group its last start gave (a guest's root).
      hostGid = cfg ? guestIdRange(cfg)?.hostId : unprivilegedGroupOf(dir);
    } catch {
      /* a context out of range: its start is refused anyway */
    }
    out.push(guestRunBarrier(name, hostGid));
  }
  return out;
}

function unprivilegedGroupOf(dir: string): number | undefined {
  const gid = fs.statSync(dir).gid;
  return gid >= IDMAP_BASE ? gid : undefined;
}

/** The storage mounts that jaula makes itself (the pool, quota images): jaulad remounts them nosuid,nodev. */
function jaulasOwnMount(mountPoint: string, fsType: string): boolean {
  return (
    (mountPoint === paths().lib && fsType === 'btrfs') ||
    (fsType === 'ext4' && /\/guests\/[^/]+\/vol(\.new)?$/.test(mountPoint))
  );
}

/**
 * At jaulad's start: repair every barrier that exists (a looser mode or another owner), and
 * mount jaula's own storage mounts nosuid,nodev again where someone remounted them. Returns what
 * was repaired (jaulad logs it).
 */
export async function repairBarriers(): Promise<string[]> {
  const notes: string[] = [];
  for (const b of allBarriers()) {
    if (!fs.existsSync(b.path)) continue;
    try {
      const n = ensureBarrier(b);
      if (n) notes.push(`barrier: ${n}`);
    } catch (e) {
      notes.push(`problem: the barrier ${b.path}: ${messageOf(e)}`);
    }
  }
  for (const m of storageMounts()) {
    const p = checkStorageMount(m);
    if (!p || !jaulasOwnMount(m.mountPoint, m.fsType)) continue;
    try {
      await runOk(['mount', '-o', 'remount,nosuid,nodev', m.mountPoint], {
        what: `Remounting ${m.mountPoint} nosuid,nodev`,
      });
      notes.push(`barrier: ${p.problem}: remounted nosuid,nodev`);
    } catch (e) {
      notes.push(`problem: ${p.problem}: ${messageOf(e)}`);
    }
  }
  return notes;
}

/** `jaula doctor --security`: the barrier and the storage mounts' nosuid,nodev. */
export function barrierChecks(): Check[] {
  const checks: Check[] = [];
  const add = (name: string, status: Check['status'], detail: string): void => {
    checks.push({ area: 'security', name, status, detail });
  };
  const problems = allBarriers()
    .map(checkBarrier)
    .filter((p): p is BarrierProblem => !!p);
  for (const p of problems) add('barrier', 'missing', `${p.problem}; fix: ${p.fix}`);
  if (!problems.length)
    add(
      'barrier',
      'ok',
      `only root passes ${paths().lib} (0700), ${paths().cache} (0700) and each guest's run directory (0700; 0710 for the group of an unprivileged guest's root): no host user reaches a guest's or a template's setuid programs and device nodes`,
    );
  const mounts = storageMounts(readMountInfo());
  const weak = mounts.map(checkStorageMount).filter((p): p is BarrierProblem => !!p);
  for (const p of weak) add('storage mounts', 'warn', `${p.problem}; fix: ${p.fix}`);
  if (!weak.length)
    add(
      'storage mounts',
      'ok',
      mounts.length
        ? `${mounts.map((m) => m.mountPoint).join(', ')}: nosuid,nodev (guests' own views keep setuid)`
        : `${paths().lib} is on the host's filesystem (no pool): its setuid programs are stopped by the barrier alone`,
    );
  return checks;
}
