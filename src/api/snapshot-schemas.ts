/** The wire shape of a guest's snapshot (kept apart from schemas.ts, which is at its size). */
import { bool, component, num, obj, oneOf, str } from './schema.js';

/** A guest's snapshot (jaula snapshot list): how it was made, and what it alone holds where known. */
export const SnapshotInfo = component(
  'SnapshotInfo',
  obj({
    name: str,
    /** Unique to this snapshot: an incremental backup names its base by it. */
    'id?': str,
    created: str,
    /** subvolume: a read-only btrfs snapshot in the pool; reflink or copy: of the guest's tree. */
    kind: oneOf(['subvolume', 'reflink', 'copy'] as const),
    /** The guest ran, and was frozen for frozenMs, while it was taken. */
    running: bool,
    'frozenMs?': num,
    sub: str,
    /** Bytes only this snapshot holds (a pool's snapshot, a plain copy; not known of a reflink copy). */
    'bytes?': num,
  }),
);
