import { JaulaError } from '../../common/errors.js';
import { formatBytes, parseBytes } from '../../common/size.js';
import { bool, str } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';

export const pool: Command = {
  summary: "the storage pool: a btrfs filesystem for guests' files, with a disk limit per guest",
  help: `Usage: jaula pool show [--format table|json]
       jaula pool create [--size SIZE] [--guest-quota SIZE] [--if-absent]
       jaula pool set --guest-quota SIZE
       jaula pool delete

The pool holds var/lib/jaula (guests, templates, hashify's objects) on btrfs: each guest's own
files live in a subvolume whose quota group limits its space, so that no guest can fill the
disk. "create" makes a sparse btrfs image (var/lib/jaula.img; by default 20% of the free space,
at least 5G, at most 30G, as Incus does) and mounts it on var/lib/jaula (again after a reboot,
at the next jaula command); where var/lib/jaula is on btrfs already it only enables quota
groups. It must be made before the first guest ("./setup demo" makes it on a fresh install).

  --size SIZE         the image's size (a sparse file: it takes only what is used)
  --guest-quota SIZE  the space limit of each new guest (default: half the pool); change one
                      guest's with "jaula set GUEST --quota SIZE|none"
  --if-absent         do nothing when there is a pool, or guests or templates already

Examples:
  jaula pool create --size 50G --guest-quota 10G
  jaula pool show
  jaula pool set --guest-quota 4G`,
  verbs: ['show', 'create', 'set', 'delete'],
  specs: {
    format: { type: 'string' },
    size: { type: 'string' },
    'guest-quota': { type: 'string' },
    'if-absent': { type: 'bool' },
  },
  async run(p) {
    const [verb = 'show', ...extra] = p.positionals;
    if (extra.length)
      throw new JaulaError('usage', `jaula pool ${verb} takes no arguments (got "${extra.join(' ')}")`);
    const size = str(p, 'size');
    const gq = str(p, 'guest-quota');
    const e = await engine();
    switch (verb) {
      case 'show': {
        const i = await e.getPool();
        if (formatOf(p) === 'json') json(i ?? null);
        else if (!i)
          out(
            'No storage pool: guests have no disk limit unless built with --quota (make one with "jaula pool create").',
          );
        else
          out(
            [
              `path         ${i.path}${i.image ? ` (image ${i.image})` : " (the host's btrfs)"}`,
              `mounted      ${i.mounted ? 'yes' : 'no'}`,
              ...(i.totalBytes !== undefined
                ? [`size         ${formatBytes(i.totalBytes)}, ${formatBytes(i.usedBytes ?? 0)} used`]
                : []),
              `guest quota  ${formatBytes(i.guestQuota)} (each new guest)`,
            ].join('\n'),
          );
        return 0;
      }
      case 'create': {
        const i = await e.createPool(
          {
            ...(size !== undefined ? { bytes: parseBytes(size, 'size') } : {}),
            ...(gq !== undefined ? { guestQuota: parseBytes(gq, 'guest-quota') } : {}),
            ifAbsent: bool(p, 'if-absent'),
          },
          { onProgress: (l) => err(l) },
        );
        if (formatOf(p) === 'json') json(i ?? null);
        return 0;
      }
      case 'set': {
        if (gq === undefined) throw new JaulaError('usage', 'jaula pool set --guest-quota SIZE');
        const i = await e.setPool({ guestQuota: parseBytes(gq, 'guest-quota') });
        err(
          `New guests get ${formatBytes(i.guestQuota)}; existing guests keep theirs (jaula set GUEST --quota SIZE)`,
        );
        return 0;
      }
      case 'delete':
        await e.deletePool();
        return 0;
      default:
        throw new JaulaError('usage', `Unknown pool command "${verb}": use show, create, set or delete`);
    }
  },
};
