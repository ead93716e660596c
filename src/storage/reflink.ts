import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { copyTree } from '../os/copy.js';
import { mkdirp, removeTree, tmpSuffix } from '../os/fs.js';
import { withLock } from '../os/lock.js';
import { unmountAt } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import { libDir } from './barrier.js';
import type { StorageDriver } from './driver.js';
import { mountOrUndo, mountTree, unmountView } from './idmapped.js';
import { layout } from './layout.js';
import { copyDirAttrs, storedTemplateTree } from './tree.js';

const rootfs = (name: string): string => join(layout.poolGuest(name), 'rootfs');

let probed: { pool: string; why: string | undefined } | undefined;

/** Can the pool clone files? (A 4 KiB file cloned with FICLONE.) */
function probePool(): string | undefined {
  const pool = layout.pool();
  if (probed?.pool === pool) return probed.why;
  const how = `mount an XFS (mkfs.xfs -m reflink=1) or btrfs filesystem on ${pool}`;
  let why: string | undefined;
  if (!fs.existsSync(pool)) why = `the reflink pool ${pool} does not exist: ${how}`;
  else {
    const a = join(pool, `.probe-${tmpSuffix()}`);
    try {
      fs.writeFileSync(a, Buffer.alloc(4096, 1));
      fs.copyFileSync(a, `${a}.clone`, fs.constants.COPYFILE_FICLONE_FORCE);
    } catch (e) {
      why = `the filesystem on ${pool} cannot clone files (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): ${how}`;
    } finally {
      fs.rmSync(a, { force: true });
      fs.rmSync(`${a}.clone`, { force: true });
    }
  }
  probed = { pool, why };
  return why;
}

function requirePool(): void {
  const why = probePool();
  if (why) throw new JaulaError('unsupported', `The reflink storage driver cannot be used: ${why}`);
}

/**
 * The template's tree on the pool's filesystem: the stored tree itself when it is on the pool's
 * filesystem, else a copy made once in reflink/templates/NAME (later guests clone it).
 */
async function poolTemplate(name: string): Promise<string> {
  const tree = storedTemplateTree(name);
  if (fs.statSync(tree).dev === fs.statSync(layout.pool()).dev) return tree;
  const copy = join(layout.poolTemplate(name), 'tree');
  if (fs.existsSync(copy)) return copy;
  await withLock(paths().locks, `pool-template-${name}`, `The pool copy of template "${name}"`, async () => {
    if (fs.existsSync(copy)) return;
    const tmp = `${copy}.tmp-${tmpSuffix()}`;
    mkdirp(tmp);
    try {
      copyDirAttrs(tree, tmp);
      await copyTree(tree, tmp, { reflink: 'auto' });
      fs.renameSync(tmp, copy);
    } catch (e) {
      removeTree(tmp);
      throw e;
    }
  });
  return copy;
}

/**
 * "reflink": each guest's tree is a plain tree on an XFS or btrfs pool (var/lib/jaula/reflink),
 * made by cloning a template's files (FICLONE): no data is copied, blocks are shared until
 * written. hashify shares identical files' extents with FIDEDUPERANGE.
 */
export const reflinkDriver: StorageDriver = {
  info: {
    name: 'reflink',
    cheapClone: true,
    layers: false,
    unify: 'dedupe',
    unifyRunning: 'now',
    quota: 'none',
  },
  unavailable: probePool,
  treePath: rootfs,
  lowerDirs: () => [],
  snapshotsDir: (name) => join(layout.poolGuest(name), 'snapshots'),
  linkedDirs: () => [],
  async create(cfg) {
    requirePool();
    if (cfg.storage.quotaBytes !== undefined || cfg.storage.quotaInodes !== undefined)
      throw new JaulaError(
        'unsupported',
        'Quotas are not available with the reflink storage driver on this host (its filesystem has no project quotas here): use --storage overlay or dir with --quota',
      );
    libDir();
    mkdirp(paths().guestData(cfg.name), 0o700);
    mkdirp(rootfs(cfg.name));
    if (cfg.storage.template) {
      const tree = await poolTemplate(cfg.storage.template);
      copyDirAttrs(tree, rootfs(cfg.name));
      await copyTree(tree, rootfs(cfg.name), { reflink: 'always' });
    }
  },
  async clone(src, dst) {
    requirePool();
    libDir();
    mkdirp(paths().guestData(dst.name), 0o700);
    mkdirp(rootfs(dst.name));
    copyDirAttrs(rootfs(src.name), rootfs(dst.name));
    await copyTree(rootfs(src.name), rootfs(dst.name), { reflink: 'always' });
  },
  mount: async (cfg, opts = {}) =>
    mountOrUndo(
      () => mountTree(cfg.name, rootfs(cfg.name), opts),
      () => unmountView(cfg.name),
    ),
  unmount: async (cfg) => unmountView(cfg.name),
  async destroy(name) {
    // A build from an image mounts the image's layers there for a moment (a crash may leave it).
    unmountAt(join(layout.imageView(name), 'merged'));
    removeTree(layout.poolGuest(name));
    removeTree(paths().guestData(name));
    removeTree(layout.index(name));
  },
};
