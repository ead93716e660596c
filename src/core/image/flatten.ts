import * as fs from 'node:fs';
import { join } from 'node:path';
import { formatMiB } from '../../common/size.js';
import { copyTree } from '../../os/copy.js';
import { mkdirp } from '../../os/fs.js';
import { unmountAt } from '../../os/mounts.js';
import { MS_RDONLY, native } from '../../os/native.js';
import { layout, overlayPath } from '../../storage/layout.js';
import { copyDirAttrs, storedTemplateTree } from '../../storage/tree.js';
import { readLayerMeta } from './layer.js';

/**
 * An image's layers as one plain tree, for storage that cannot stack them (dir, reflink): the
 * stored layers are mounted read-only as one overlay, so that whiteouts and opaque directories
 * hide exactly what they hide from an overlay guest, and that view is copied into the guest's
 * own tree by cp (owners, modes, timestamps, xattrs, hard links, device nodes; cloned where the
 * filesystem can). The mount lives under the guest's data directory, which the driver's
 * destroy unmounts and removes after a crash.
 */
export async function copyImageLayers(
  name: string,
  keys: string[],
  dst: string,
  progress: (line: string, fraction?: number) => void,
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
        what: `Copying the image's layers into guest "${name}"`,
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
  progress(`Copied the image's ${keys.length} layers into the guest's tree (${formatMiB(bytes)})`);
}
