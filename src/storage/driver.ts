import { JaulaError } from '../common/errors.js';
import type { GuestConfig } from '../core/config.js';
import type { IdRange } from '../runtime/idmap.js';

/** What a storage driver can do: core branches on these, never on a driver's name. */
export interface StorageInfo {
  name: string;
  /** Building from a template or cloning copies no file data. */
  cheapClone: boolean;
}

export interface MountOptions {
  /** Give the runtime an idmapped view of the root: on-disk ID 0 is host ID range.hostId. */
  idmap?: IdRange;
}

export interface MountedRoot {
  /** The root the runtime gets (idmapped for an unprivileged guest). */
  root: string;
  /** The same tree as the host may write it (plain IDs), for GuestFs. */
  hostView: string;
}

export interface StorageDriver {
  readonly info: StorageInfo;
  /** The directory that holds the guest's own tree, to fill at build and read while stopped. */
  treePath(name: string): string;
  /** Make the guest's root ready for a start. */
  mount(cfg: GuestConfig, opts?: MountOptions): Promise<MountedRoot>;
  /** Undo mount(); idempotent. */
  unmount(cfg: GuestConfig): Promise<void>;
  /** Remove all the guest's data; idempotent. */
  destroy(name: string): Promise<void>;
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
