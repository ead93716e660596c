/**
 * Where a guest archive's trees are read from (core/archive.ts): the guest's present state (its
 * own directories, or for a running guest a view of one moment: a pool snapshot or a frozen
 * reflink copy), or one of its snapshots.
 */
import * as fs from 'node:fs';
import { basename, join, relative } from 'node:path';
import { parseConfig, validateConfig, type GuestConfig } from '../guest/config.js';
import { readState } from '../guest/state.js';
import { mkdirp, readFileOr, removeTree, tmpSuffix } from '../os/fs.js';
import { run, runOk } from '../os/spawn.js';
import { paths } from '../os/paths.js';
import type { StorageDriver } from '../storage/index.js';
import { layout } from '../storage/layout.js';
import { vol } from '../storage/vol.js';
import {
  prepareSnapshot,
  removeSnapshotDir,
  snapshotId,
  snapshotKind,
  type SnapshotMeta,
} from '../storage/snapshot.js';
import { guestFreezer, withFrozen } from '../cgroups/freeze.js';
import type { ExportOptions, SnapshotRef } from './archive.js';
import { removeSnapshotLeftovers, requireSnapshot } from './snapshots.js';
import { maker } from './template-leftovers.js';

/** Where an archive's trees are read from: the guest's own directories, or a snapshot's. */
export interface Source {
  cfg: GuestConfig;
  own: string;
  unified?: string;
  hooks: string;
  fstab: string | null;
  /** The tree changes while it is read (a running guest's, not a snapshot of it). */
  changing: boolean;
  /** The status change times in `own` are its files' own (not a copy's): the delta's ctime rule. */
  ctimes: boolean;
}

/** A snapshot of the guest as an archive names it, and where its trees are. */
export function snapshotOf(
  cfg: GuestConfig,
  driver: StorageDriver,
  snap: string,
): { ref: SnapshotRef; meta: SnapshotMeta; dir: string; trees: Map<string, string> } {
  const meta = requireSnapshot(driver, cfg.name, snap);
  const dir = join(driver.snapshotsDir(cfg.name), snap);
  const trees = new Map<string, string>([['own', join(dir, 'vol', meta.sub)]]);
  if (driver.info.unify === 'layer') trees.set('unified', join(dir, 'linked', '0'));
  return {
    ref: { guest: cfg.name, snapshot: snap, id: snapshotId(meta), created: meta.created },
    meta,
    dir,
    trees,
  };
}

/** The guest's present state as an archive's source (`own`: another view of its tree, if any). */
export function presentSource(
  cfg: GuestConfig,
  driver: StorageDriver,
  changing: boolean,
  view?: View,
): Source {
  const conf = paths().guestConf(cfg.name);
  return {
    cfg,
    own: view?.own ?? driver.treePath(cfg.name),
    ...(driver.info.unify === 'layer' ? { unified: layout.unifiedLayer(cfg.name) } : {}),
    hooks: join(conf, 'hooks'),
    fstab: readFileOr(join(conf, 'fstab'), null),
    changing: changing && !view,
    ctimes: view ? view.ctimes : true,
  };
}

/** A snapshot's state as an archive's source: its files, and its config under the guest's name today. */
export function snapshotSource(cfg: GuestConfig, s: ReturnType<typeof snapshotOf>): Source {
  const file = join(s.dir, 'conf', 'config.toml');
  const old = parseConfig(fs.readFileSync(file, 'utf8'), file);
  return {
    cfg: validateConfig({ ...old, name: cfg.name, storage: cfg.storage }),
    own: s.trees.get('own') as string,
    ...(s.trees.has('unified') ? { unified: s.trees.get('unified') as string } : {}),
    hooks: join(s.dir, 'conf', 'hooks'),
    fstab: readFileOr(join(s.dir, 'conf', 'fstab'), null),
    changing: false,
    // a pool's snapshot keeps its files' inodes and times; a copy's are the copy's
    ctimes: s.meta.kind === 'subvolume',
  };
}

/** Another view of a running guest's tree (liveView): where, whether its ctimes are the files' own, and how it goes. */
export interface View {
  own: string;
  ctimes: boolean;
  drop: () => Promise<void>;
}

/**
 * A running guest's own files as of one moment: in a pool, a snapshot of its subvolume (btrfs
 * makes it atomically, in milliseconds: what a sudden power cut would leave), named as a
 * template leftover (templates/.backup.tmp-MAKER-ID) so that a crash leaves nothing for long;
 * on a filesystem that clones files (XFS, btrfs), a reflink copy made while the guest is frozen
 * (as `jaula snapshot` makes one: blocks shared, no data copied), beside its snapshots as a
 * snapshot in the making (.new-*, which the next snapshot or backup removes after a crash);
 * elsewhere its live tree, which it says.
 */
export async function liveView(
  cfg: GuestConfig,
  driver: StorageDriver,
  o: ExportOptions,
): Promise<View | undefined> {
  const name = cfg.name;
  const own = driver.treePath(name);
  if (!vol.hasSubvol(name) || !own.startsWith(`${layout.vol(name)}/`)) return frozenCopy(cfg, driver, o);
  const snap = join(layout.templates(), `.backup.tmp-${maker()}-${tmpSuffix()}`);
  await runOk(['btrfs', 'subvolume', 'snapshot', layout.vol(name), snap], {
    what: `Taking a snapshot of guest "${name}"'s files`,
  });
  o.progress?.(
    `Guest "${name}" is running: its files are read from a snapshot of this moment (as a sudden power cut would leave them)`,
  );
  const drop = async (): Promise<void> => {
    const r = await run(['btrfs', 'subvolume', 'delete', snap]);
    if (r.code !== 0) removeTree(snap);
  };
  return { own: join(snap, relative(layout.vol(name), own)), ctimes: true, drop };
}

/** A running guest's own files cloned while it is frozen, where the filesystem can (liveView). */
async function frozenCopy(
  cfg: GuestConfig,
  driver: StorageDriver,
  o: ExportOptions,
): Promise<View | undefined> {
  const name = cfg.name;
  if (snapshotKind(name, driver) !== 'reflink') {
    o.progress?.(
      `Guest "${name}" is running: its files are copied as they are, while they may change (stop it first, or use a storage pool or a filesystem with reflinks, for a copy of one moment)`,
    );
    return undefined;
  }
  const dir = driver.snapshotsDir(name);
  await removeSnapshotLeftovers(dir);
  const at = join(dir, `.new-backup-${tmpSuffix()}`);
  mkdirp(at, 0o700);
  const drop = (): Promise<void> => removeSnapshotDir(at);
  try {
    const take = await prepareSnapshot(cfg, driver, at, 'reflink');
    const st = readState(name);
    await withFrozen(guestFreezer(st.pid as number, st.cgroupsPath), take);
  } catch (e) {
    await drop();
    throw e;
  }
  o.progress?.(
    `Guest "${name}" is running: its files are read from a reflink copy of this moment (the guest was frozen while it was made)`,
  );
  return { own: join(at, 'vol', basename(driver.treePath(name))), ctimes: false, drop };
}
