/**
 * Layers by content: a stored template's digest is the sha256 of its tree's description (every
 * entry's path, type and mode, owner, device number, xattrs, symlink target, hard-link group
 * and file contents; not times, which no copy keeps exactly), so the same layer has the same
 * digest on every host however it got there. Templates never change once stored, so the digest
 * is computed once and kept beside template.json (templates/NAME/digest).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { readFileOr, writeFileAtomic } from '../os/fs.js';
import { isReg, S_IFLNK, S_IFMT, walkTree } from '../os/walk.js';
import { layout } from '../storage/layout.js';

export const DIGEST_RE = /^[0-9a-f]{64}$/;

/** sha256 of one file's contents, read without following a symlink. */
function fileDigest(path: string): string {
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}

/** The content digest of a tree (see the module's header). */
export function treeDigest(tree: string): string {
  const entries = walkTree(tree, { xattrs: true }).sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
  );
  const firstOfIno = new Map<number, string>();
  const h = createHash('sha256');
  h.update('jaula-tree-digest 1\n');
  for (const e of entries) {
    const p = join(tree, e.path);
    let what = '';
    if (isReg(e)) {
      const first = e.nlink > 1 ? firstOfIno.get(e.ino) : undefined;
      if (first !== undefined) what = `link ${first}`;
      else {
        if (e.nlink > 1) firstOfIno.set(e.ino, e.path);
        what = `data ${fileDigest(p)}`;
      }
    } else if ((e.mode & S_IFMT) === S_IFLNK) what = `symlink ${fs.readlinkSync(p)}`;
    const xs = (e.xattrs ?? []).map(([k, v]) => `${k}=${v.toString('hex')}`).join(',');
    h.update(`${JSON.stringify(e.path)} ${e.mode.toString(8)} ${e.uid}:${e.gid} ${e.rdev} [${xs}] ${what}\n`);
  }
  return h.digest('hex');
}

const digestFile = (template: string): string => join(layout.templateDir(template), 'digest');

/** A stored template's digest: kept, or computed now and kept. */
export function templateDigest(template: string): string {
  const kept = readFileOr(digestFile(template), '').trim();
  if (DIGEST_RE.test(kept)) return kept;
  const d = treeDigest(layout.templateTree(template));
  writeFileAtomic(digestFile(template), `${d}\n`);
  return d;
}

/** Record a template's digest (a restore that checked it). */
export function keepDigest(templateDir: string, digest: string): void {
  writeFileAtomic(join(templateDir, 'digest'), `${digest}\n`);
}

/** The stored template with this digest, if any (digests computed for those that lack one). */
export function templateWithDigest(digest: string): string | undefined {
  let names: string[] = [];
  try {
    names = fs
      .readdirSync(layout.templates())
      .filter((n) => !n.startsWith('.'))
      .sort();
  } catch {
    return undefined;
  }
  const stored = names.filter((n) => fs.existsSync(layout.templateMeta(n)));
  // Those with a digest kept are cheap: look at them first.
  for (const n of stored) if (readFileOr(digestFile(n), '').trim() === digest) return n;
  for (const n of stored)
    if (!DIGEST_RE.test(readFileOr(digestFile(n), '').trim()) && templateDigest(n) === digest) return n;
  return undefined;
}
