/**
 * hashify's apply: carry out a plan (or say what it would do): link overlay guests' files to
 * their objects (storage/unifyapply.ts; a running guest's at its next start), share reflink
 * guests' extents, and remove the objects no guest links any more.
 */
import * as fs from 'node:fs';
import { errnoOf } from '../common/errors.js';
import { withGuestLock } from '../guest/locks.js';
import { initAlive, readState } from '../guest/state.js';
import { native } from '../os/native.js';
import { applyUnify, objectPath, savePendingUnify, type UnifyEntry } from '../storage/unifyapply.js';
import type { Plan } from './plan.js';
import { openCand, type Objects, type Scan } from './scan.js';

export type GuestResult =
  | 'unified'
  | 'deduplicated'
  | 'at next start'
  | 'would unify'
  | 'would deduplicate'
  | 'nothing to do'
  | 'skipped';

export interface Outcome {
  result: GuestResult;
  files: number;
  bytes: number;
}
export type Outcomes = Map<Scan, Outcome>;

function add(result: Outcomes, s: Scan, r: GuestResult, files: number, bytes: number): void {
  const x = result.get(s) ?? { result: r, files: 0, bytes: 0 };
  x.result = r;
  x.files += files;
  x.bytes += bytes;
  result.set(s, x);
}

/** Link an overlay guest's files to their objects, under its lock; at its next start if it runs. */
async function unifyGuest(s: Scan, entries: UnifyEntry[], result: Outcomes): Promise<void> {
  const bytes = entries.reduce((a, e) => a + e.size, 0);
  await withGuestLock(s.cfg.name, async () => {
    if (initAlive(readState(s.cfg.name))) {
      savePendingUnify(s.cfg.name, entries);
      add(result, s, 'at next start', entries.length, bytes);
      return;
    }
    const r = applyUnify(s.cfg.name, s.root, entries);
    for (const e of r.done) s.unified.set(e.key, e.path);
    const doneIno = new Set(r.done.map((e) => e.ino));
    s.cands = s.cands.filter((c) => !doneIno.has(c.e.ino));
    add(result, s, 'unified', r.unified, r.bytes);
  });
}

/** Share dst's extents with src's (the kernel compares them itself); left as they are when it cannot. */
function dedupe({ src, dst }: Plan['dedupes'][number], result: Outcomes): void {
  const a = openCand(src);
  const b = a === undefined ? undefined : openCand(dst);
  try {
    if (a === undefined || b === undefined) return;
    const n = native().dedupe(a, b, dst.e.size);
    if (n === dst.e.size) {
      src.done = dst.done = true;
      add(result, dst.g, 'deduplicated', 1, n);
    }
  } catch (e) {
    if (errnoOf(e) !== 'EINVAL' && errnoOf(e) !== 'EXDEV') throw e;
  } finally {
    if (a !== undefined) fs.closeSync(a);
    if (b !== undefined) fs.closeSync(b);
  }
}

/** Carry out the plan, or only say what it would do (a dry run). */
export async function applyPlan(plan: Plan, dryRun: boolean): Promise<Outcomes> {
  const result: Outcomes = new Map();
  for (const [s, entries] of plan.plans) {
    if (dryRun)
      add(
        result,
        s,
        'would unify',
        entries.length,
        entries.reduce((a, e) => a + e.size, 0),
      );
    else await unifyGuest(s, entries, result);
  }
  for (const d of plan.dedupes) {
    if (dryRun) add(result, d.dst.g, 'would deduplicate', 1, d.dst.e.size);
    else dedupe(d, result);
  }
  return result;
}

/** Remove the objects no guest links any more; returns how many went. */
export function collectObjects(objects: Objects): number {
  let removed = 0;
  for (const [key] of objects) {
    try {
      if (fs.lstatSync(objectPath(key)).nlink === 1) {
        fs.unlinkSync(objectPath(key));
        removed++;
      }
    } catch {
      /* gone meanwhile */
    }
  }
  return removed;
}
