import { formatBytes } from '../../common/size.js';

import { formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

export const du: Command = {
  summary: 'disk usage of guests: exclusive, shared, against their quota, and in total',
  help: `Usage: jaula du [GUEST...] [--format table|json]

  EXCLUSIVE  bytes (and INODES) only this guest holds: deleting it would free them
  SHARED     bytes of files it sees that others hold too (its layers, unified files other
             guests share, reflinked extents)
  QUOTA      its own files' space and inodes against its limits ("jaula build --quota"); in
             the storage pool its snapshots count in it too
  SNAPSHOTS  how many it has, and what they hold that it no longer has, where known
             ("jaula snapshot list GUEST" shows each)

The last line is what all guests, templates and shared objects really use on disk (each inode
once), beside what the guests see in all. Hard links count once; blocks are allocated blocks.

Examples:
  jaula du
  jaula du web1 web2 --format json`,
  specs: { format: { type: 'string' } },
  async run(p) {
    const r = await (await engine()).diskUsage({ names: p.positionals });
    if (formatOf(p) === 'json') {
      json(r);
      return 0;
    }
    out(
      table(
        ['GUEST', 'DRIVER', 'EXCLUSIVE', 'INODES', 'SHARED', 'QUOTA', 'SNAPSHOTS'],
        r.guests.map((g) => [
          g.name,
          g.driver,
          formatBytes(g.exclusiveBytes),
          g.exclusiveInodes,
          formatBytes(g.sharedBytes),
          g.quota
            ? `${formatBytes(g.quota.bytes)}/${formatBytes(g.quota.bytesLimit)}` +
              (g.quota.inodesLimit ? `, ${g.quota.inodes}/${g.quota.inodesLimit} inodes` : '')
            : undefined,
          g.snapshots
            ? `${g.snapshots.count}${g.snapshots.bytes !== undefined ? ` (${formatBytes(g.snapshots.bytes)})` : ''}`
            : undefined,
        ]),
      ),
    );
    out(`Total on disk ${formatBytes(r.totalBytes)}; the guests see ${formatBytes(r.seenBytes)} in all.`);
    return 0;
  },
};
