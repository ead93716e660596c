import * as fs from 'node:fs';
import { join } from 'node:path';
import { formatMiB } from '../../common/size.js';
import { copyTree } from '../../os/copy.js';
import { mkdirp, removeTree, tmpSuffix } from '../../os/fs.js';
import { withLock } from '../../os/lock.js';
import { unmountAt } from '../../os/mounts.js';
import { MS_RDONLY, native } from '../../os/native.js';
import { paths } from '../../os/paths.js';
import { layout, overlayPath } from '../../storage/layout.js';
import { copyDirAttrs, storedTemplateTree } from '../../storage/tree.js';
import { readLayerMeta } from './layer.js';
import { stackKey } from './store.js';

type Progress = (line: string, fraction?: number) => void;

/**
 * Copy the union of the stored layers `keys` (bottom first) into `dst`: the layers are mounted
 * read-only as one overlay, so that whiteouts and opaque directories hide exactly what they
 * hide from an overlay guest, and cp copies that view (owners, modes, timestamps, xattrs, hard
 * links, device nodes). The mount lives under guest `name`'s data directory, where the
 * driver's destroy unmounts it after a crash.
 */
async function copyView(
  name: string,
  keys: string[],
  dst: string,
  progress: Progress,
  what: string,
): Promise<void> {
  const base = layout.imageView(name);
  const view = join(base, 'merged');
  const empty = join(base, 'empty');
  mkdirp(view, 0o700);
  mkdirp(empty, 0o755);
  const lowers = [...keys].reverse().map(storedTemplateTree);
  // Overlay without an upper needs two lowers: an image of one layer sits on an empty one.
  if (lowers.length < 2) lowers.push(empty);
  const bytes = keys.reduce((a, k) => a + (readLayerMeta(k)?.bytes ?? 0), 0);
  try {
    const opts = `lowerdir=${lowers.map(overlayPath).join(':')},redirect_dir=nofollow,index=off,metacopy=off`;
    native().mount('overlay', view, 'overlay', MS_RDONLY, opts);
    try {
      copyDirAttrs(view, dst);
      await copyTree(view, dst, {
        reflink: 'auto',
        progress,
        totalBytes: bytes,
        what: `Copying the image's layers into ${what}`,
      });
    } finally {
      unmountAt(view);
    }
  } finally {
    // rmdir only: never remove files below a mount point that did not go.
    for (const d of [view, empty, base])
      try {
        fs.rmdirSync(d);
      } catch {
        /* absent, or a mount that did not go: destroy deals with it */
      }
  }
  progress(`Copied the image's ${keys.length} layers (${formatMiB(bytes)}) into ${what}`);
}

/** The reflink pool's copy of the image's union (made once, by the first guest's build). */
async function poolCopy(name: string, keys: string[], progress: Progress): Promise<string> {
  const key = stackKey(keys);
  const tree = join(layout.poolImage(key), 'tree');
  if (fs.existsSync(tree)) return tree;
  await withLock(paths().locks, `pool-image-${key}`, 'The pool copy of an image', async () => {
    if (fs.existsSync(tree)) return;
    const tmp = `${tree}.tmp-${tmpSuffix()}`;
    mkdirp(tmp);
    try {
      await copyView(name, keys, tmp, progress, "the reflink pool's copy of the image");
      fs.renameSync(tmp, tree);
    } catch (e) {
      removeTree(tmp);
      throw e;
    }
  });
  return tree;
}

/**
 * An image's layers as one plain tree, for storage that cannot stack them: copied into a dir
 * guest's tree; for storage that clones files (`clones`: reflink), copied once into the pool's
 * copy of the image, which each guest's tree then clones (no file data copied).
 */
export async function copyImageLayers(
  name: string,
  keys: string[],
  dst: string,
  progress: Progress,
  clones: boolean,
): Promise<void> {
  if (!clones || fs.statSync(layout.pool()).dev !== fs.statSync(dst).dev)
    return copyView(name, keys, dst, progress, "the guest's tree");
  const tree = await poolCopy(name, keys, progress);
  copyDirAttrs(tree, dst);
  await copyTree(tree, dst, { reflink: 'always', what: `Cloning the image's tree into guest "${name}"` });
  progress("Cloned the pool's copy of the image into the guest's tree (no file data copied)");
}
