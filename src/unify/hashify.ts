import type { HashifyReport as WireReport } from '../api/types.js';
import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { listGuestNames } from '../guest/store.js';
import { withLock } from '../os/lock.js';
import { paths } from '../os/paths.js';
import { trace } from '../os/trace.js';
import { cleanScratch } from '../storage/unifyapply.js';
import { applyPlan, collectObjects, type GuestResult, type Outcomes } from './apply.js';
import { planUnify } from './plan.js';
import { readTwins, saveIndexes, scanGuests, type Scan, type ScanOptions } from './scan.js';

/**
 * hashify: identical files of several guests end up sharing their storage, copy-on-write.
 *
 * Overlay guests ("layer"): files of the guests' own trees (their uppers) with the same content
 * and metadata (mode, owner, mtime, xattrs) become hard links to one content-addressed object,
 * in a per-guest "unified" layer right under the guest's upper (storage/unifyapply.ts). One
 * inode: disk space and page cache are shared; a write in a guest copies the file up into its
 * own upper, so no other guest ever sees it. Running guests are unified at their next start.
 *
 * Reflink guests ("dedupe"): identical files share their data extents (FIDEDUPERANGE; the kernel
 * compares the contents itself and shares them atomically), running guests included; each file
 * keeps its inode, so page cache is not shared.
 *
 * Files smaller than minSize, excluded paths (exclude.ts) and, on overlay, files with several
 * hard links or below opaque directories are left alone. The index (index.ts) keeps the hash of
 * every file read, so a rescan reads only files that changed.
 *
 * This file orchestrates: scan.ts walks the guests and reads what changed, plan.ts groups by
 * content and metadata into per-guest plans, apply.ts carries them out.
 */
export interface HashifyOptions {
  guests?: string[];
  all?: boolean;
  dryRun?: boolean;
  /** Files smaller than this are left alone (default 1 KiB). */
  minSize?: number;
  /** Extra exclude rules, before the guest's and the host's lists. */
  excludes?: string[];
  progress?: (line: string, fraction?: number) => void;
}

export type { GuestResult };

/** The API's report (api/types.ts), with this module's results. */
export interface HashifyReport extends Omit<WireReport, 'guests'> {
  guests: (WireReport['guests'][number] & { result: GuestResult })[];
}

export const DEFAULT_MIN_SIZE = 1024;

function selectGuests(o: HashifyOptions): string[] {
  const names = o.all ? listGuestNames() : (o.guests ?? []);
  if (!names.length)
    throw new JaulaError(
      'usage',
      'Name the guests to unify, or give --all: jaula hashify [GUEST...|--all] [--dry-run]',
    );
  if (o.all && o.guests?.length) throw new JaulaError('usage', 'Give guest names or --all, not both');
  return names;
}

/** Each guest scanned and not skipped, with what was done to it (counted in the totals). */
function summarise(report: HashifyReport, scans: Scan[], result: Outcomes): void {
  for (const s of scans) {
    if (report.guests.some((g) => g.name === s.cfg.name)) continue;
    const r = result.get(s) ?? { result: 'nothing to do' as const, files: 0, bytes: 0 };
    report.guests.push({ name: s.cfg.name, driver: s.driver.info.name, ...r });
    if (r.result !== 'nothing to do') {
      report.unified.files += r.files;
      report.unified.bytes += r.bytes;
    }
  }
}

export async function hashify(o: HashifyOptions): Promise<HashifyReport> {
  const t0 = Date.now();
  const names = selectGuests(o);
  const report: HashifyReport = {
    dryRun: !!o.dryRun,
    guests: [],
    scanned: { files: 0, candidates: 0, hashedFiles: 0, hashedBytes: 0 },
    unified: { files: 0, bytes: 0 },
    objectsRemoved: 0,
    ms: { scan: 0, apply: 0, total: 0 },
  };
  const so: ScanOptions = {
    dryRun: !!o.dryRun,
    minSize: o.minSize ?? DEFAULT_MIN_SIZE,
    excludes: o.excludes ?? [],
    progress: o.progress ?? (() => {}),
    skip: (g, reason) => {
      report.guests.push({ name: g.name, driver: g.driver, result: 'skipped', reason, files: 0, bytes: 0 });
    },
  };
  return withLock(paths().locks, 'hashify', 'hashify', async () => {
    cleanScratch();
    const scans: Scan[] = [];
    try {
      // 1. Walk each guest's own tree (its upper, on overlay) and pick the candidates.
      const objects = await scanGuests(names, so, scans);
      for (const s of scans) {
        report.scanned.files += s.files;
        report.scanned.candidates += s.cands.length;
      }
      trace('hashify: walked');
      // 2. Read only what may have a twin: same size and metadata elsewhere (or an object).
      const read = readTwins(scans, objects, so.progress);
      report.scanned.hashedFiles += read.files;
      report.scanned.hashedBytes += read.bytes;
      report.ms.scan = Date.now() - t0;
      trace('hashify: read');
      const t1 = Date.now();
      // 3. Group by content and metadata; plan per guest. 4. Carry it out (or say what would be done).
      const result = await applyPlan(planUnify(scans), so.dryRun);
      trace('hashify: applied');
      // 5. Objects no guest links any more go.
      if (!o.dryRun && objects) report.objectsRemoved += collectObjects(objects);
      trace('hashify: objects collected');
      // 6. Remember what was read.
      saveIndexes(scans, (s) => result.get(s)?.result === 'at next start');
      summarise(report, scans, result);
      trace('hashify: index saved');
      report.ms.apply = Date.now() - t1;
      report.ms.total = Date.now() - t0;
      return report;
    } finally {
      for (const s of scans) fs.closeSync(s.rootFd);
    }
  });
}
