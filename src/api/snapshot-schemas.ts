/** The wire shapes of a guest's snapshots and their schedule (kept apart from schemas.ts, which is at its size). */
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
    /** When jaulad deletes it (ISO 8601): `--expiry`, or snapshots.expiry for a scheduled one. */
    'expires?': str,
    /** Taken by jaulad on the guest's snapshots.schedule. */
    'scheduled?': bool,
  }),
);

/** A guest's automatic snapshots (Incus' snapshots.* keys; `jaula set NAME snapshots.KEY=VALUE`). */
export const SnapshotPolicyInfo = component(
  'SnapshotPolicyInfo',
  obj({
    /** snapshots.schedule: cron (5 fields), aliases (@daily, ...), several joined by ", "; "" is off. */
    schedule: str,
    /** snapshots.schedule.stopped: a stopped guest is snapshotted too. */
    stopped: bool,
    /** snapshots.expiry: how long a scheduled snapshot is kept ("" for ever), e.g. "2w". */
    expiry: str,
    /** snapshots.pattern: the scheduled snapshots' names. */
    pattern: str,
    /** The next minute the schedule matches (ISO 8601; taken only while jaulad runs). */
    'next?': str,
  }),
);
