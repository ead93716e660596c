/**
 * The transfer of a guest's files between two jaulads, behind a narrow interface so that the
 * guest archive format (src/core/archive*.ts, branch i14-backup) can replace the wire format
 * here alone: the source packs a tree, or the files that changed since a manifest, as a tar
 * stream (os/tar.ts's flags: owners, modes, xattrs, hard links, device nodes kept) and sends it
 * in chunks (each one request, well within jaulad's request bounds); the target appends the
 * chunks to a staging file, checks every member (scanTar) and unpacks it. Layers (stored
 * templates) are known by a content digest and sent only when the target lacks them.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { readFileOr, writeFileAtomic } from '../../os/fs.js';
import { paths } from '../../os/paths.js';
import { runOk } from '../../os/spawn.js';
import { DEFAULT_TAR_LIMITS, scanTar, TAR_PRESERVE } from '../../os/tar.js';
import { isDir, S_IFMT, walkTree } from '../../os/walk.js';
import { layout } from '../../storage/layout.js';
import { peerRequest, type PeerTarget } from './peer.js';

/** Bytes per upload request. */
export const CHUNK = 8 << 20;
/** At most this many bytes in one upload request (jaulad refuses more). */
export const MAX_CHUNK = 16 << 20;

/** A tar stream of `dir` (all of it, or only `files`, relative paths, not recursing). */
function packTree(
  dir: string,
  files?: string[],
  exclude: string[] = [],
): { stream: NodeJS.ReadableStream; done: Promise<void> } {
  const args = ['-C', dir, '-c', '--sparse', ...TAR_PRESERVE, ...exclude.map((x) => `--exclude=./${x}`)];
  const child = spawn('tar', files ? [...args, '--no-recursion', '--null', '-T', '-'] : [...args, '.'], {
    stdio: [files ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
  if (files && child.stdin) child.stdin.end(files.map((f) => `${f}\0`).join(''));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      // 1: "file changed as we read it": the guest runs (a sync move's first pass); the next pass sends it again.
      code === 0 || code === 1
        ? resolve()
        : reject(new JaulaError('io', `Packing "${dir}" failed (tar exited ${code}): ${stderr.trim()}`)),
    );
  });
  return { stream: child.stdout as NodeJS.ReadableStream, done };
}

/** Send a tar stream of `dir` (or of `files` in it) as `part` of move `id`; returns the bytes sent. */
export async function sendTree(
  peer: PeerTarget,
  id: string,
  part: string,
  dir: string,
  o: { files?: string[]; exclude?: string[]; onBytes?: (n: number) => void; raw?: Buffer } = {},
): Promise<number> {
  let offset = 0;
  const put = async (buf: Buffer): Promise<void> => {
    await peerRequest(peer, 'PUT', `/v1/peer/moves/${id}/parts/${part}?offset=${offset}`, { raw: buf });
    offset += buf.length;
    o.onBytes?.(buf.length);
  };
  if (o.raw) {
    await put(o.raw);
    return offset;
  }
  const { stream, done } = packTree(dir, o.files, o.exclude);
  let pending: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    pending.push(c as Buffer);
    size += (c as Buffer).length;
    if (size >= CHUNK) {
      await put(Buffer.concat(pending));
      pending = [];
      size = 0;
    }
  }
  await done;
  if (size > 0 || offset === 0) await put(Buffer.concat(pending));
  return offset;
}

/** Where a move's parts are staged on the target. */
export const stagingDir = (id: string): string => join(paths().lib, 'moves', id);
export const partFile = (id: string, part: string): string => join(stagingDir(id), `${part}.tar`);

export const PART_PATTERN = /^(own|unified|delta|deleted|changed|conf|images|layer-[0-9a-f]{64})$/;

/** Append one upload chunk to the part's staging file (offset must be where the file ends). */
export function appendChunk(id: string, part: string, offset: number, data: Buffer): number {
  if (!PART_PATTERN.test(part)) throw new JaulaError('invalid', `Unknown part "${part.slice(0, 80)}"`);
  fs.mkdirSync(stagingDir(id), { recursive: true, mode: 0o700 });
  const file = partFile(id, part);
  const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  if (offset !== size)
    throw new JaulaError(
      'invalid',
      `Part "${part}" of move ${id} has ${size} bytes, not ${offset}: send from there`,
      {
        details: { have: size },
      },
    );
  try {
    fs.appendFileSync(file, data);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT')
      throw new JaulaError('limit', `This host is full: no space for the guest's files (${code})`, {
        cause: e,
      });
    throw e;
  }
  return size + data.length;
}

/** Unpack a staged part into `dir`, every member checked first. */
export async function unpackPart(
  id: string,
  part: string,
  dir: string,
  allowDevices: boolean,
): Promise<void> {
  const file = partFile(id, part);
  if (!fs.existsSync(file)) throw new JaulaError('invalid', `Part "${part}" of move ${id} was not sent`);
  await scanTar(file, { ...DEFAULT_TAR_LIMITS, allowDevices });
  await runOk(['tar', '-x', ...TAR_PRESERVE, '-f', file, '-C', dir], {
    what: `Unpacking the moved guest's files into "${dir}"`,
    dieWithParent: true,
  });
  fs.rmSync(file, { force: true });
}

/** A tree's manifest for the next pass: each path's type and what changes with its content or metadata. */
export type Manifest = Map<string, string>;

export function manifestOf(dir: string): Manifest {
  const m: Manifest = new Map();
  for (const e of walkTree(dir))
    m.set(
      e.path,
      `${e.mode & S_IFMT} ${e.mode} ${e.ino} ${e.size} ${e.mtimeSec}.${e.mtimeNsec} ${e.ctimeSec}.${e.ctimeNsec}`,
    );
  return m;
}

/**
 * What changed between two manifests of a tree: `changed` (new, or its ctime, mtime, size, inode
 * or mode differ: a chmod, chown or xattr change moves ctime), `deleted` (gone, or its type
 * changed: removed first on the target), both sorted so that a directory comes before its
 * entries. The root is ".".
 */
export function deltaOf(before: Manifest, now: Manifest): { changed: string[]; deleted: string[] } {
  const changed: string[] = [];
  const deleted: string[] = [];
  const type = (v: string | undefined): string | undefined => v?.split(' ')[0];
  for (const [p, v] of now) {
    const old = before.get(p);
    if (old !== v) changed.push(p === '' ? '.' : p);
    if (old !== undefined && type(old) !== type(v)) deleted.push(p);
  }
  for (const p of before.keys()) if (!now.has(p)) deleted.push(p);
  return { changed: changed.sort(), deleted: deleted.sort() };
}

/**
 * Remove `rel` below `tree` without following a symlink out of it: every ancestor must be a
 * real directory (lstat), else nothing is removed (a guest's link never leads the host out).
 */
export function removeBelow(tree: string, rel: string): void {
  const parts = rel.split('/');
  if (!rel || parts.some((x) => x === '' || x === '.' || x === '..')) return;
  let at = tree;
  for (const p of parts.slice(0, -1)) {
    at = join(at, p);
    const st = fs.lstatSync(at, { throwIfNoEntry: false });
    if (!st || !st.isDirectory()) return;
  }
  fs.rmSync(join(at, parts[parts.length - 1] as string), { recursive: true, force: true });
}

/**
 * Before a delta is unpacked: an ancestor of a changed path that is a symlink here was a
 * directory on the source when it was walked (a guest swapped it meanwhile): remove it, so that
 * tar never writes through it.
 */
export function unlinkSymlinkAncestors(tree: string, changed: string[]): void {
  for (const rel of changed) {
    const parts = rel.split('/');
    let at = tree;
    for (const p of parts.slice(0, -1)) {
      if (p === '' || p === '.' || p === '..') break;
      at = join(at, p);
      const st = fs.lstatSync(at, { throwIfNoEntry: false });
      if (!st) break;
      if (st.isSymbolicLink()) {
        fs.rmSync(at, { force: true });
        break;
      }
    }
  }
}

/** Paths as a NUL-separated list (a move's deleted/changed parts, an increment's removed paths). */
export const pathList = (paths: readonly string[]): Buffer =>
  Buffer.from(paths.map((p) => `${p}\0`).join(''));

/** NUL-separated paths (a part's body), checked to be relative and without "..". */
export function parsePathList(buf: Buffer): string[] {
  return buf
    .toString('utf8')
    .split('\0')
    .filter((p) => p !== '' && !p.startsWith('/') && !p.split('/').includes('..'));
}

/**
 * The content digest of a stored template: SHA-256 of a tar of its tree in name order (owners,
 * modes, times and contents). Stored templates do not change, so it is computed once and kept
 * beside the template (digest.sha256).
 */
export async function templateDigest(name: string): Promise<string> {
  const cache = join(layout.templateDir(name), 'digest.sha256');
  const known = readFileOr(cache, '').trim();
  if (/^[0-9a-f]{64}$/.test(known)) return known;
  const digest = await treeDigest(layout.templateTree(name));
  writeFileAtomic(cache, `${digest}\n`, 0o644);
  return digest;
}

export async function treeDigest(tree: string): Promise<string> {
  if (!fs.statSync(tree, { throwIfNoEntry: false })?.isDirectory() || !isDir(fs.lstatSync(tree)))
    throw new JaulaError('not_found', `No template tree at "${tree}"`);
  const h = createHash('sha256');
  const child = spawn('tar', ['-C', tree, '-c', '--sort=name', '--format=gnu', '--numeric-owner', '.'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for await (const c of child.stdout) h.update(c as Buffer);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  if (code !== 0)
    throw new JaulaError('io', `Reading the template tree "${tree}" failed (tar exited ${code})`);
  return h.digest('hex');
}
