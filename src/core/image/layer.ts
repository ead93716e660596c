import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { formatMiB } from '../../common/size.js';
import { mkdirp, removeTree, tmpSuffix, writeFileAtomic } from '../../os/fs.js';
import { withLock } from '../../os/lock.js';
import { paths } from '../../os/paths.js';
import { runOk } from '../../os/spawn.js';
import {
  DEFAULT_TAR_LIMITS,
  detectCompression,
  scanTar,
  TAR_PRESERVE,
  tarCompressionFlag,
  type TarEntry,
} from '../../os/tar.js';
import { tarHeader, TAR_END } from '../../os/tarwrite.js';
import { isDir, walkTree } from '../../os/walk.js';
import { layout } from '../../storage/layout.js';
import { treeStats } from '../templates.js';
import { GuestFs } from '../../os/guestfs.js';

/**
 * An image layer unpacked as a stored jaula layer: var/lib/jaula/layers/sha256-HEX, named by
 * its diff ID (the digest of the uncompressed tar), kept once however many images and guests
 * use it. Every member is checked before anything is written (os/tar.ts: no absolute path, no
 * "..", nothing through a symlink, no hard link out, bounded size and count), its diff ID is
 * computed over the same pass, and the OCI whiteouts are made overlayfs ones: ".wh.NAME" a char
 * device 0/0 named NAME, ".wh..wh..opq" the xattr trusted.overlay.opaque=y on its directory.
 */
export interface LayerLimits {
  maxBytes: number;
  maxEntries: number;
}

export const DEFAULT_LAYER_LIMITS: LayerLimits = {
  maxBytes: DEFAULT_TAR_LIMITS.maxBytes,
  maxEntries: DEFAULT_TAR_LIMITS.maxEntries,
};

export interface LayerMeta {
  name: string;
  created: string;
  source: string;
  files: number;
  bytes: number;
  devices: number;
  /** The first device node, named in the refusal of an unprivileged guest. */
  firstDevice?: string;
  diffId: string;
}

export const OPAQUE = '.wh..wh..opq';
const WH = '.wh.';

/** The layer's name in a guest's config (storage.layers) from its diff ID. */
export function layerKey(diffId: string): string {
  return `sha256-${diffId.slice('sha256:'.length, 'sha256:'.length + 56)}`;
}

/** The stored trees of these diff IDs' layers, top first (the lower layers of the next one). */
export function lowerTrees(ids: string[]): string[] {
  return ids.map((d) => layout.templateTree(layerKey(d))).reverse();
}

export function layerStored(diffId: string): boolean {
  return fs.existsSync(layout.templateMeta(layerKey(diffId)));
}

export function readLayerMeta(key: string): LayerMeta | undefined {
  try {
    return JSON.parse(fs.readFileSync(layout.templateMeta(key), 'utf8')) as LayerMeta;
  } catch {
    return undefined;
  }
}

/** What the whiteouts of a layer ask for, checked member by member as the scan reads them. */
class Whiteouts {
  readonly hide: string[] = [];
  readonly opaque: string[] = [];
  readonly drop: string[] = [];
  /** The directories the layer has as members (others its tar made as parents). */
  readonly dirs = new Set<string>();
  firstDevice: string | undefined;
  constructor(private readonly what: string) {}

  member(e: TarEntry): void {
    const base = posix.basename(e.path);
    const refuse = (why: string): JaulaError =>
      new JaulaError('invalid', `The ${this.what} is refused: the member "${e.path}" ${why}`);
    if ((e.type === 'char' || e.type === 'block') && this.firstDevice === undefined)
      this.firstDevice = e.path;
    if (e.type === 'dir') this.dirs.add(e.path);
    if (e.type === 'hardlink' && posix.basename(e.linkname).startsWith(WH))
      throw refuse(`is a hard link to the whiteout "${e.linkname}"`);
    if (!base.startsWith(WH)) return;
    if (e.type !== 'file') throw refuse('is a whiteout that is not a regular file');
    if (base === OPAQUE) this.opaque.push(posix.dirname(e.path));
    else if (base.startsWith(`${WH}${WH}`))
      this.drop.push(e.path); // aufs' own (.wh..wh.plnk)
    else {
      const name = base.slice(WH.length);
      if (name === '' || name === '.' || name === '..')
        throw refuse('is a whiteout that names no file of its directory');
      this.hide.push(e.path);
    }
  }
}

/** Turn the OCI whiteouts of an unpacked layer into overlayfs ones. */
async function convertWhiteouts(tree: string, w: Whiteouts, signal?: AbortSignal): Promise<void> {
  const devices: Buffer[] = [];
  for (const p of [...w.hide, ...w.drop]) fs.rmSync(join(tree, p), { force: true });
  for (const p of w.hide) {
    const target = posix.join(posix.dirname(p), posix.basename(p).slice(WH.length));
    // The layer's own entry of that name already hides the layers below.
    if (fs.existsSync(join(tree, target)) || isSymlink(join(tree, target))) continue;
    devices.push(tarHeader({ path: target, type: 'char', mode: 0 }));
  }
  if (devices.length)
    await runOk(['tar', '-x', ...TAR_PRESERVE, '-f', '-', '-C', tree], {
      what: 'Making the whiteouts of a layer',
      input: Buffer.concat([...devices, TAR_END]),
      ...(signal ? { signal } : {}),
    });
  for (const d of w.opaque) {
    fs.rmSync(join(tree, d, OPAQUE), { force: true });
    await runOk(['setfattr', '-h', '-n', 'trusted.overlay.opaque', '-v', 'y', '--', join(tree, d)], {
      what: 'Marking an opaque directory of a layer',
    });
  }
}

/**
 * A directory the layer does not have as a member (tar made it as a parent) is the lower
 * layers' directory in the image: it takes the owner and mode of the topmost lower one (read
 * inside that layer, never through its symlinks), as it would unpacked over them.
 */
function inheritParents(tree: string, w: Whiteouts, lowers: string[]): void {
  if (!lowers.length) return;
  for (const e of walkTree(tree)) {
    if (!isDir(e) || w.dirs.has(e.path)) continue;
    for (const lower of lowers) {
      const st = GuestFs.with(lower, (g) => g.lstat(e.path || '/'));
      if (!st) continue;
      if (st.isDirectory()) {
        const p = join(tree, e.path);
        fs.chownSync(p, st.uid, st.gid);
        fs.chmodSync(p, st.mode & 0o7777);
      }
      break;
    }
  }
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Unpack a layer's blob (tar, gzip or zstd) as the stored layer of `diffId`, unless it is stored
 * already. The blob's bytes must be the diff ID's once decompressed; a layer that fails any
 * check leaves nothing.
 */
export async function unpackLayer(
  blob: string,
  diffId: string,
  o: {
    /** The trees of the image's layers below this one, top first. */
    lowers?: string[];
    what: string;
    source: string;
    limits?: LayerLimits;
    progress?: (l: string) => void;
    signal?: AbortSignal;
  },
): Promise<LayerMeta> {
  const key = layerKey(diffId);
  const final = dirname(layout.templateTree(key));
  const had = readLayerMeta(key);
  if (had) return had;
  const limits = o.limits ?? DEFAULT_LAYER_LIMITS;
  const w = new Whiteouts(o.what);
  const hash = createHash('sha256');
  await scanTar(
    blob,
    { ...limits, allowDevices: true },
    { onMember: (e) => w.member(e), onData: (b) => hash.update(b) },
  ).catch((e: unknown) => {
    // The scan names the blob's file; the user knows the layer of the image.
    if (!(e instanceof JaulaError)) throw e;
    const msg = e.message
      .replace(`The archive "${blob}"`, `The ${o.what}`)
      .replace(`"${blob}"`, `the ${o.what}`);
    throw new JaulaError(e.code, msg, { cause: e });
  });
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== diffId)
    throw new JaulaError(
      'invalid',
      `The ${o.what} is refused: its content's digest is ${got}, not ${diffId} as the image's config says`,
    );
  mkdirp(layout.layers(), 0o700);
  const tmp = join(layout.layers(), `.${key}.tmp-${tmpSuffix()}`);
  const tree = join(tmp, 'tree');
  mkdirp(tree, 0o755);
  try {
    const c = detectCompression(blob);
    await runOk(['tar', '-x', ...tarCompressionFlag(c), ...TAR_PRESERVE, '-f', blob, '-C', tree], {
      what: `Unpacking the ${o.what}`,
      dieWithParent: true,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    await convertWhiteouts(tree, w, o.signal);
    inheritParents(tree, w, o.lowers ?? []);
    const meta: LayerMeta = {
      name: key,
      created: new Date().toISOString(),
      source: o.source,
      ...treeStats(tree),
      ...(w.firstDevice ? { firstDevice: w.firstDevice } : {}),
      diffId,
    };
    writeFileAtomic(join(tmp, 'layer.json'), JSON.stringify(meta, null, 2) + '\n');
    await withLock(paths().locks, 'layers', 'The layer store', async () => {
      if (fs.existsSync(final)) removeTree(tmp);
      else fs.renameSync(tmp, final);
    });
    o.progress?.(
      `Stored the ${o.what} as layer ${key.slice(0, 19)} (${meta.files} files, ${formatMiB(meta.bytes)})`,
    );
    return readLayerMeta(key) ?? meta;
  } catch (e) {
    removeTree(tmp);
    throw e;
  }
}
