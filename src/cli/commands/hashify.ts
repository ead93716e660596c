import { formatBytes, parseBytes } from '../../common/size.js';
import { DEFAULT_MIN_SIZE } from '../../unify/hashify.js';
import { bool, list, str } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

export const hashify: Command = {
  summary: 'unify identical files of guests: shared on disk and in memory, copy-on-write',
  help: `Usage: jaula hashify [GUEST...|--all] [--dry-run] [--min-size SIZE] [--exclude RULE]... [--format json]

Identical files (same content, mode, owner, mtime and xattrs) of the guests end up sharing
their storage, and each guest keeps copy-on-write: a write in one guest never changes another's.

  overlay guests   the files move into a shared, content-addressed layer under each guest's own
                   changes: one inode, so disk space and page cache are shared. A running guest's
                   files are unified at its next start (its overlay must not change under it).
  reflink guests   the files share their data extents (FIDEDUPERANGE), running guests too
                   (disk shared, page cache not).
  dir guests       not unified (use overlay or reflink storage).

Left alone: files smaller than --min-size (default ${DEFAULT_MIN_SIZE} bytes), excluded paths, and on
overlay files with several hard links. Exclude rules, util-vserver's syntax, the first match
decides: /path (exclude, with what is below), ~/glob, +/path (include), -/path (exclude).
Defaults: /boot /dev /etc /home /lost+found /media /mnt /proc /root /run /srv /sys /tmp /var;
$JAULA_ROOT/etc/jaula/hashify-exclude replaces them, etc/jaula/guests/NAME/hashify-exclude
comes before them. An index remembers what was read: a rescan reads only changed files.

Examples:
  jaula hashify --all --dry-run
  jaula hashify web1 web2 --exclude /opt/app/data`,
  specs: {
    all: { type: 'bool', short: 'a' },
    'dry-run': { type: 'bool', short: 'n' },
    'min-size': { type: 'string' },
    exclude: { type: 'list' },
    format: { type: 'string' },
    quiet: { type: 'bool', short: 'q' },
  },
  async run(p) {
    const fmt = formatOf(p);
    const min = str(p, 'min-size');
    const r = await (
      await engine()
    ).hashify(
      {
        guests: p.positionals,
        all: bool(p, 'all'),
        dryRun: bool(p, 'dry-run'),
        excludes: list(p, 'exclude'),
        ...(min !== undefined ? { minSize: parseBytes(min, 'minimum size') } : {}),
      },
      bool(p, 'quiet') || fmt === 'json' ? {} : { onProgress: (l: string) => err(`jaula: ${l}`) },
    );
    if (fmt === 'json') {
      json(r);
      return 0;
    }
    out(
      table(
        ['GUEST', 'DRIVER', 'RESULT', 'FILES', 'BYTES'],
        r.guests.map((g) => [
          g.name,
          g.driver,
          g.reason ? `${g.result}: ${g.reason}` : g.result,
          g.files,
          formatBytes(g.bytes),
        ]),
      ),
    );
    out(
      `${r.dryRun ? 'Would share' : 'Shared'} ${r.unified.files} files (${formatBytes(r.unified.bytes)}); scanned ${r.scanned.files} files, read ${r.scanned.hashedFiles} (${formatBytes(r.scanned.hashedBytes)}) in ${(r.ms.scan / 1000).toFixed(2)} s; total ${(r.ms.total / 1000).toFixed(2)} s.`,
    );
    return 0;
  },
};
