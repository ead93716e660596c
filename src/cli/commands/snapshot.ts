import { formatLocalMinute } from '../../common/cron.js';
import { JaulaError } from '../../common/errors.js';
import { formatBytes } from '../../common/size.js';
import type { SnapshotInfo } from '../../api/types.js';
import { str } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

const HOW: Record<SnapshotInfo['kind'], string> = {
  subvolume: 'a read-only btrfs subvolume snapshot (no data copied)',
  reflink: 'a reflink copy of its files (blocks shared until written)',
  copy: 'a full copy of its files (this filesystem cannot reflink)',
};

/** A time as the list shows it: UTC, to the second ("2024-05-06 03:07:00Z"). */
const when = (iso: string): string => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');

function usage(verb: string, n: number, args: string[]): void {
  const want: Record<string, [number, number, string]> = {
    create: [1, 2, 'GUEST [NAME]'],
    list: [1, 1, 'GUEST'],
    restore: [2, 2, 'GUEST NAME'],
    delete: [2, 2, 'GUEST NAME'],
  };
  const w = want[verb];
  if (!w)
    throw new JaulaError('usage', `Unknown snapshot command "${verb}": use create, list, restore or delete`);
  if (n < w[0] || n > w[1])
    throw new JaulaError(
      'usage',
      `jaula snapshot ${verb} ${w[2]} (got ${args.length ? `"${args.join(' ')}"` : 'nothing'}; see "jaula snapshot --help")`,
    );
}

export const snapshot: Command = {
  summary: "snapshots of a guest's files and config: create, list, restore, delete",
  help: `Usage: jaula snapshot create GUEST [NAME] [--expiry SPAN]
       jaula snapshot list GUEST [--format table|json]
       jaula snapshot restore GUEST NAME
       jaula snapshot delete GUEST NAME

A snapshot is a consistent point-in-time copy of a guest's own files (its tree, or its overlay
upper and unified layer) and of its config. A running guest is frozen (its cgroup's freezer)
only for the instant the snapshot takes, and thawed again whatever happens. NAME defaults to
snap0, snap1, ... as in Incus.

How it is made depends on where the guest's files are, and "create" says which:
  subvolume  in the storage pool: a read-only btrfs snapshot (milliseconds, no data copied,
             whatever the guest's size); it counts against the guest's disk limit, which is
             one quota group holding the guest and its snapshots
  reflink    elsewhere, on a filesystem that clones files (XFS, btrfs): a reflink copy
  copy       elsewhere: a plain copy (the guest stays frozen while it is made)

"restore" puts the guest back as it was: the snapshot's files are made beside its own, then
swapped in by renames, so that a failure leaves the guest exactly as before; its config is
the snapshot's (its name and storage stay). A running guest is stopped for it and started
again, as "incus snapshot restore" does, and the command says so. Later snapshots are kept.
Deleting a guest deletes its snapshots; renaming it keeps them; a clone gets none.

--expiry SPAN has jaulad delete the snapshot once SPAN has passed (as "incus snapshot create
--expiry"): M minutes, H hours, d days, w weeks, m months, y years, e.g. "2d", "1w 12H"; a
month is a calendar month (Jan 31 + 1m is Feb 28/29). "list" shows when each expires.

Scheduled snapshots: "jaula set GUEST snapshots.schedule=@daily snapshots.expiry=2w" (see
"jaula set --help") has jaulad take one on that schedule, named by snapshots.pattern (snap%d),
and delete it when it expires; "list" marks them "scheduled" and shows the next one.

Examples:
  jaula snapshot create web1
  jaula snapshot create web1 before-upgrade
  jaula snapshot create web1 --expiry 2d
  jaula snapshot list web1
  jaula snapshot restore web1 before-upgrade
  jaula snapshot delete web1 snap0`,
  verbs: ['create', 'list', 'restore', 'delete'],
  specs: { format: { type: 'string' }, expiry: { type: 'string' } },
  async run(p) {
    const [verb = '', ...args] = p.positionals;
    usage(verb, args.length, args);
    const [guest, name] = args as [string, string | undefined];
    const e = await engine();
    switch (verb) {
      case 'create': {
        const expiry = str(p, 'expiry');
        const s = await e.createSnapshot({
          name: guest,
          ...(name !== undefined ? { snapshot: name } : {}),
          ...(expiry !== undefined ? { expiry } : {}),
        });
        if (formatOf(p) === 'json') json(s);
        else
          out(
            `Snapshot "${s.name}" of guest "${guest}": ${HOW[s.kind]}${s.running ? `; the guest was frozen for ${s.frozenMs} ms` : ''}${s.expires ? `; it expires ${when(s.expires)}` : ''}.`,
          );
        return 0;
      }
      case 'list': {
        const list = await e.listSnapshots({ name: guest });
        if (formatOf(p) === 'json') {
          json(list);
          return 0;
        }
        out(
          table(
            ['NAME', 'CREATED', 'KIND', 'SIZE', 'TAKEN', 'EXPIRES'],
            list.map((s) => [
              s.name,
              when(s.created),
              s.kind,
              s.bytes !== undefined ? formatBytes(s.bytes) : s.kind === 'reflink' ? 'shared' : undefined,
              `${s.scheduled ? 'scheduled, ' : ''}${s.running ? `running (frozen ${s.frozenMs} ms)` : 'stopped'}`,
              s.expires ? when(s.expires) : 'never',
            ]),
          ),
        );
        const sched = (await e.getGuestSettings({ name: guest })).snapshots;
        if (sched.schedule)
          out(
            `Schedule: ${sched.schedule}${sched.next ? `, the next at ${formatLocalMinute(new Date(sched.next))}` : ''}${sched.expiry ? `, kept ${sched.expiry}` : ''} (taken by jaulad${sched.stopped ? '' : ' while the guest runs'})`,
          );
        return 0;
      }
      case 'restore': {
        const r = await e.restoreSnapshot(
          { name: guest, snapshot: name as string },
          { onProgress: (l) => err(l) },
        );
        out(
          `Guest "${guest}" restored to snapshot "${r.snapshot.name}" of ${r.snapshot.created}${r.restarted ? ', and started again' : ''}.`,
        );
        return 0;
      }
      default:
        await e.deleteSnapshot({ name: guest, snapshot: name as string });
        out(`Deleted snapshot "${name}" of guest "${guest}".`);
        return 0;
    }
  },
};
