import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { mkdirp, readFileOr, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { layout } from '../storage/layout.js';

/**
 * hashify's persistent index, one per guest (var/lib/jaula/unified/index/NAME.idx): the content
 * hash of every file it read, keyed by inode and valid while size, mtime and ctime are the same,
 * so a rescan reads only files that changed; and the objects the guest's unified layer already
 * links, valid while the stamp next to the layer matches (every change to the layer removes it).
 */
export interface IndexedFile {
  size: number;
  mtime: string;
  ctime: string;
  sha: string;
  /** Already deduplicated (reflink storage). */
  done: boolean;
}

export interface GuestIndex {
  files: Map<number, IndexedFile>;
  /** Objects linked in the unified layer (key -> path), or undefined when unknown (walk the layer). */
  unified: Map<string, string> | undefined;
}

const HEADER = 'jaula-hashify-index 1';

const stampFile = layout.unifiedStamp;

export function loadIndex(name: string): GuestIndex {
  const idx: GuestIndex = { files: new Map(), unified: undefined };
  const text = readFileOr(layout.index(name), undefined);
  if (text === undefined || !text.startsWith(HEADER)) return idx;
  const stamp = readFileOr(stampFile(name), '').trim();
  const unified = new Map<string, string>();
  let stampOk = false;
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    const tag = line.slice(0, sp);
    if (tag === 'f') {
      const [, ino, size, mtime, ctime, sha, flag] = line.split(' ');
      if (ino && size && mtime && ctime && sha)
        idx.files.set(Number(ino), { size: Number(size), mtime, ctime, sha, done: flag === 'd' });
    } else if (tag === 'u') {
      const sp2 = line.indexOf(' ', 2);
      unified.set(line.slice(2, sp2), line.slice(sp2 + 1));
    } else if (tag === 'stamp') stampOk = stamp !== '' && line.slice(6) === stamp;
  }
  if (stampOk) idx.unified = unified;
  return idx;
}

/** Forget what is known of the unified layer (call before changing it). */
export function invalidateUnified(name: string): void {
  fs.rmSync(stampFile(name), { force: true });
}

export function saveIndex(name: string, idx: GuestIndex): void {
  const stamp = tmpSuffix();
  const lines = [HEADER];
  if (idx.unified) {
    lines.push(`stamp ${stamp}`);
    for (const [k, p] of idx.unified) lines.push(`u ${k} ${p}`);
  }
  for (const [ino, f] of idx.files)
    lines.push(`f ${ino} ${f.size} ${f.mtime} ${f.ctime} ${f.sha} ${f.done ? 'd' : '-'}`);
  mkdirp(dirname(layout.index(name)), 0o700);
  writeFileAtomic(layout.index(name), lines.join('\n') + '\n', 0o600, { durable: false });
  if (idx.unified && fs.existsSync(paths().guestData(name)))
    writeFileAtomic(stampFile(name), `${stamp}\n`, 0o600, { durable: false });
}
