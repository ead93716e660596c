/**
 * hashify's plan: group the candidates read by content and metadata, and decide, per guest, the
 * files that join an object of the store (layer mode) and the pairs whose extents are shared
 * (dedupe mode). Pure: nothing here touches a file.
 */
import type { UnifyEntry } from '../storage/unifyapply.js';
import type { Cand, Scan } from './scan.js';

export interface Plan {
  /** Per overlay guest: the files to link to their objects. */
  plans: Map<Scan, UnifyEntry[]>;
  /** Reflink pairs: dst's extents become src's. */
  dedupes: { src: Cand; dst: Cand }[];
}

/** Candidates by mode, content and metadata ("layer|SHA-META"). */
function groupByContent(scans: Scan[]): Map<string, Cand[]> {
  const groups = new Map<string, Cand[]>();
  for (const s of scans)
    for (const c of s.cands) {
      if (!c.sha) continue;
      const k = `${s.mode}|${c.sha}-${c.meta}`;
      const g = groups.get(k);
      if (g) g.push(c);
      else groups.set(k, [c]);
    }
  return groups;
}

/** Layer mode: each guest's file of an object shared by two guests or more joins it. */
function planLayer(scans: Scan[], key: string, members: Cand[], plans: Plan['plans']): void {
  const byGuest = new Map<Scan, Cand>();
  // One path per object in a guest (two would look like hard links to it); the same path
  // again is what an interrupted run left half done.
  for (const c of members) {
    const at = c.g.unified.get(key);
    if (!byGuest.has(c.g) && (at === undefined || at === c.e.path)) byGuest.set(c.g, c);
  }
  const using = scans.filter((s) => s.mode === 'layer' && s.unified.has(key) && !byGuest.has(s)).length;
  if (byGuest.size === 0 || byGuest.size + using < 2) return;
  for (const [s, c] of byGuest) {
    const list = plans.get(s) ?? [];
    list.push({ path: c.e.path, ino: c.e.ino, size: c.e.size, mtime: c.mtime, ctime: c.ctime, key });
    plans.set(s, list);
  }
}

/** Dedupe mode: distinct inodes of one content share the extents of one (shared already, if any). */
function planDedupe(members: Cand[], dedupes: Plan['dedupes']): void {
  const seen = new Set<string>();
  const distinct = members.filter((c) => {
    const id = `${c.e.dev}:${c.e.ino}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  if (distinct.length < 2) return;
  const src = distinct.find((c) => c.done) ?? (distinct[0] as Cand);
  for (const c of distinct) if (c !== src && !c.done) dedupes.push({ src, dst: c });
}

export function planUnify(scans: Scan[]): Plan {
  const plan: Plan = { plans: new Map(), dedupes: [] };
  for (const [k, members] of groupByContent(scans)) {
    const key = k.slice(k.indexOf('|') + 1);
    if (k.startsWith('layer|')) planLayer(scans, key, members, plan.plans);
    else planDedupe(members, plan.dedupes);
  }
  return plan;
}
