/**
 * The temporary things of template saves, imports, exports and deletes, named by their maker
 * (a process, by pid and start time), and their removal once the maker is gone.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { removeTree } from '../os/fs.js';
import { isSameProcess, readProcStat } from '../os/proc.js';
import { layout } from '../storage/layout.js';

/** Who makes a temporary thing: this process, by pid and start time (it may be dead later). */
export function maker(): string {
  return `${process.pid}.${readProcStat(process.pid)?.starttime ?? 0}`;
}

/** Whether the maker named by maker() still runs. */
function makerAlive(text: string): boolean {
  const [pid, start] = text.split('.').map(Number);
  return isSameProcess(pid, start);
}

/**
 * Remove what interrupted saves, imports, exports and deletes left (their makers are gone):
 * temporary template directories, and the temporary archives of exports (their paths are
 * recorded in var/lib/jaula/templates/.exports while they are written). Returns what went.
 */
export function cleanTemplateLeftovers(): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(layout.templates());
  } catch {
    return removed;
  }
  for (const n of names) {
    const m = /^\.(.+)\.(tmp|deleting)-(\d+\.\d+)?/.exec(n);
    if (!m) continue;
    // Its maker still works on it. (A delete whose maker died had renamed the template aside,
    // so it is gone for everyone: finishing the delete is right.)
    if (m[3] && makerAlive(m[3])) continue;
    if (m[2] === 'tmp' && !m[3]) {
      // Made by an older jaula (no maker in the name): left alone for a day.
      const stat = fs.statSync(join(layout.templates(), n));
      if (Date.now() - stat.mtimeMs < 24 * 3600_000) continue;
    }
    removeTree(join(layout.templates(), n));
    removed.push(`template ${n}`);
  }
  for (const r of pendingExports())
    if (!makerAlive(r.maker)) {
      fs.rmSync(r.tmp, { force: true });
      fs.rmSync(r.record, { force: true });
      removed.push(`export ${r.tmp}`);
    }
  return removed;
}

export const exportsDir = (): string => join(layout.templates(), '.exports');

function pendingExports(): { record: string; tmp: string; maker: string }[] {
  const out: { record: string; tmp: string; maker: string }[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(exportsDir());
  } catch {
    return out;
  }
  for (const n of names) {
    const record = join(exportsDir(), n);
    try {
      const r = JSON.parse(fs.readFileSync(record, 'utf8')) as { tmp?: string; maker?: string };
      if (typeof r.tmp === 'string' && typeof r.maker === 'string' && /\.tmp-/.test(r.tmp))
        out.push({ record, tmp: r.tmp, maker: r.maker });
      else fs.rmSync(record, { force: true });
    } catch {
      // A record being written (writeFileAtomic: never half a file) or unreadable: skip.
    }
  }
  return out;
}
