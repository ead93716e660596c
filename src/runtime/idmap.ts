import { JaulaError } from '../common/errors.js';
import type { GuestConfig } from '../guest/config.js';
import { paths } from '../os/paths.js';
import { testWeakeningRequested } from './testweaken.js';

/**
 * Each unprivileged guest gets its own disjoint range of host IDs: guest uid/gid 0..65535 are
 * host IDs BASE + (context - 2) * 65536 onwards, so guest root is an unprivileged host user and
 * no two guests share an ID. Files on disk keep plain IDs (0 = the guest's root): the guest's
 * root filesystem is an idmapped mount, so templates and layers stay shareable between guests.
 */
export const IDMAP_BASE = 1_000_000;
export const IDMAP_SIZE = 65536;
export const IDMAP_MAX_CONTEXT = Math.floor((0xffffffff - IDMAP_BASE - IDMAP_SIZE) / IDMAP_SIZE) + 2;

export interface IdRange {
  hostId: number;
  size: number;
}

export function guestIdRange(cfg: GuestConfig): IdRange | undefined {
  // The escape suite's deliberately weakened guest (tests only) is privileged too.
  if (cfg.privileged || testWeakeningRequested(process.env, paths().root)) return undefined;
  if (cfg.context > IDMAP_MAX_CONTEXT)
    throw new JaulaError(
      'invalid',
      `Guest "${cfg.name}" has context ${cfg.context}: unprivileged guests need a context of at most ${IDMAP_MAX_CONTEXT} (their host ID range derives from it)`,
    );
  return { hostId: IDMAP_BASE + (cfg.context - 2) * IDMAP_SIZE, size: IDMAP_SIZE };
}
