import { JaulaError } from '../common/errors.js';
import type { GuestConfig } from '../guest/config.js';
import type { IdRange } from '../runtime/idmap.js';

/** What a storage driver can do: core branches on these, never on a driver's name. */
export interface StorageInfo {
  name: string;
  /** Building from a stored template or cloning copies no file data. */
  cheapClone: boolean;
  /** The guest's root can stack read-only layers (stored templates) under its own changes. */
  layers: boolean;
  /**
   * How hashify shares identical files: "layer" moves them into a content-addressed layer
   * under the guest's overlay (one inode: disk and page cache shared); "dedupe" shares their
   * data extents (FIDEDUPERANGE: disk shared); "none": hashify cannot help this driver.
   */
  unify: 'layer' | 'dedupe' | 'none';
  /** Running guests are unified now, or at their next start (their overlay must not change under them). */
  unifyRunning: 'now' | 'next-start' | 'never';
  /** Per-guest quotas ("image": an ext4 image per guest; "none": not with this driver here). */
  quota: 'image' | 'none';
}

export interface MountOptions {
  /** Give the runtime an idmapped view of the root: on-disk ID 0 is host ID range.hostId. */
  idmap?: IdRange;
}

export interface MountedRoot {
  /** The root the runtime gets (idmapped for an unprivileged guest). */
  root: string;
  /** The same tree as the host may write it, for GuestFs (plain IDs unless hostShift is set). */
  hostView: string;
  /**
   * Set when hostView shows on-disk ID n as host ID hostShift + n (an overlay over idmapped
   * layers cannot show plain IDs): GuestFs writes through it as the guest's root.
   */
  hostShift?: number;
}

export interface StorageDriver {
  readonly info: StorageInfo;
  /** Why this driver cannot be used on this host (and what to do), or undefined. */
  unavailable(): string | undefined;
  /** The directory that holds the guest's own files (dir, reflink: its tree; overlay: its upper). */
  treePath(name: string): string;
  /**
   * Make the guest's storage: an empty tree to fill, or one based on the stored template
   * cfg.storage.template (overlay: as the layer cfg.storage.layers; others: a copy or clone).
   * Leaves treePath() reachable; unmount() ends that.
   */
  create(cfg: GuestConfig): Promise<void>;
  /** Make dst's storage a copy of stopped src's (cheap where info.cheapClone). */
  clone(src: GuestConfig, dst: GuestConfig, progress?: (line: string) => void): Promise<void>;
  /**
   * Make the guest's whole root ready (start, or reading a stopped guest). With opts.idmap the
   * runtime's root is an idmapped view of it (on-disk ID 0 is host ID opts.idmap.hostId).
   */
  mount(cfg: GuestConfig, opts?: MountOptions): Promise<MountedRoot>;
  /** Undo mount() and create(); idempotent. Only for a stopped guest. */
  unmount(cfg: GuestConfig): Promise<void>;
  /** Remove all the guest's data; idempotent. */
  destroy(name: string): Promise<void>;
  /** The read-only directories under the guest's own files, top first (overlay: unified layer, then layers). */
  lowerDirs(cfg: GuestConfig): string[];
  /**
   * Where the guest's snapshots are kept (storage/snapshot.ts): beside its own files, on their
   * filesystem (so that they can be a subvolume snapshot or reflinked), removed with them.
   */
  snapshotsDir(name: string): string;
  /**
   * Directories of immutable files (hard links to shared objects) that the guest's view depends
   * on besides its own files: kept in a snapshot as hard links (overlay: the unified layer).
   */
  linkedDirs(name: string): string[];
}

const registry = new Map<string, () => Promise<StorageDriver>>();

export function registerStorage(name: string, load: () => Promise<StorageDriver>): void {
  registry.set(name, load);
}

export async function storageDriver(name: string): Promise<StorageDriver> {
  const load = registry.get(name);
  if (!load)
    throw new JaulaError(
      'invalid',
      `Unknown storage driver "${name}": use one of ${[...registry.keys()].join(', ')}`,
    );
  return load();
}

export function storageNames(): string[] {
  return [...registry.keys()];
}

/** The driver a build uses when none is given: the first available of `preferred`. */
export async function defaultStorage(preferred = ['overlay', 'dir']): Promise<StorageDriver> {
  for (const n of preferred) {
    const d = await storageDriver(n);
    if (d.unavailable() === undefined) return d;
  }
  return storageDriver('dir');
}
