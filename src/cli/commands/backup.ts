import { resolve } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { formatBytes } from '../../common/size.js';
import { bool, str } from '../args.js';
import { err, out, type Command } from '../command.js';
import { engine, streamEngine } from '../engine.js';

const progress = (quiet: boolean): { onProgress?: (l: string) => void } =>
  quiet ? {} : { onProgress: (l: string): void => err(`jaula: ${l}`) };

const layersNote = (ls: { sent: boolean }[]): string => {
  const left = ls.filter((l) => !l.sent).length;
  return ls.length
    ? `, ${ls.length} layer${ls.length === 1 ? '' : 's'}${left ? ` (${left} left out)` : ''}`
    : '';
};

const what = (name: string, o: { snapshot?: string; from?: string }): string =>
  `${o.snapshot ? `snapshot "${o.snapshot}" of ` : ''}guest "${name}"${o.from ? ` as an increment from snapshot "${o.from}"` : ''}`;

const deltaNote = (r: { changed?: number; removed?: number }): string =>
  r.changed === undefined ? '' : `, ${r.changed} paths new or changed, ${r.removed ?? 0} removed`;

export const backup: Command = {
  summary: "write a guest's archive: its config, its layers (by digest) and its own files",
  help: `Usage: jaula backup GUEST --to FILE|- [--snapshot SNAP] [--from BASE] [-q]

Writes one self-contained archive of GUEST: its config (limits, marks, interfaces with their
addresses and MACs, its fstab and hooks), the layers it stacks (stored templates, each named by
the digest of its content) and its own files, keeping owners, modes, xattrs, overlay whiteouts
and opaque directories, hard links, device nodes and holes of sparse files. Every member's
sha256 is in the archive's manifest, so "jaula restore" refuses a truncated or altered file.

FILE "-" writes to standard output (then run in this process, not through jaulad). FILE is
written aside and renamed when complete (mode 0600: it holds the guest's whole tree).

A stopped guest is held (it cannot start meanwhile). A running guest in a storage pool is read
from a snapshot of this moment (btrfs, atomic: as a sudden power cut would leave its files);
on a filesystem with reflinks (XFS, btrfs) from a reflink copy made while it is frozen (blocks
shared, no data copied); elsewhere its files are copied as they are while it may change them
(said on stderr): stop it first for a copy of one moment.

--snapshot SNAP archives the guest's snapshot SNAP (its files and config then), not its
present state. --from BASE writes an increment: only the files new or changed since its
snapshot BASE, and the paths removed since, against the archive of BASE (made with --snapshot
BASE, or an increment to BASE). The comparison is file by file, on every storage (type, mode,
owner, size, modification time, links, xattrs, and the change time where it is the file's
own): a file rewritten with its size and modification time put back is not seen between two
snapshots that are copies (reflink or plain copies; a pool's snapshots keep change times).
"jaula restore FULL INCREMENT..." makes the guest from the chain.

Examples:
  jaula backup web1 --to /srv/backup/web1.jaula
  jaula backup web1 --to - | ssh other jaula restore -
  jaula snapshot create web1 mon && jaula backup web1 --snapshot mon --to mon.jaula
  jaula snapshot create web1 tue && jaula backup web1 --snapshot tue --from mon --to tue.jaula
  jaula backup web1 --from tue --to now.jaula     (the present state, since tue)`,
  specs: {
    to: { type: 'string' },
    snapshot: { type: 'string' },
    from: { type: 'string' },
    quiet: { type: 'bool', short: 'q' },
  },
  async run(p) {
    const [name, ...extra] = p.positionals;
    const to = str(p, 'to');
    if (!name || !to || extra.length)
      throw new JaulaError('usage', 'jaula backup GUEST --to FILE|- (see "jaula backup --help")');
    const hooks = progress(bool(p, 'quiet'));
    const snapshot = str(p, 'snapshot');
    const from = str(p, 'from');
    const o = { ...(snapshot ? { snapshot } : {}), ...(from ? { from } : {}) };
    if (to === '-') {
      if (process.stdout.isTTY)
        throw new JaulaError(
          'usage',
          'Standard output is a terminal: redirect it to a file or a pipe (or give --to FILE)',
        );
      const r = await (await streamEngine()).backupToStream(name, process.stdout, hooks, o);
      err(
        `jaula: Backed up ${what(name, o)} (${formatBytes(r.bytes)}${layersNote(r.layers)}${deltaNote(r)}).`,
      );
      return 0;
    }
    const r = await (await engine()).backupGuest({ name, file: resolve(to), ...o }, hooks);
    out(
      `Backed up ${what(name, o)} to ${to} (${formatBytes(r.bytes)}${layersNote(r.layers)}${deltaNote(r)}).`,
    );
    return 0;
  },
};

export const restore: Command = {
  summary: 'make a guest from an archive of "jaula backup", every member checked first',
  help: `Usage: jaula restore FILE|- [INCREMENT...] [--name NEW] [-q]

Makes the guest of a "jaula backup" archive, named as it was or NEW, then puts each
INCREMENT ("jaula backup --from") on it in order: each must be an increment from the snapshot
the archive before it holds, or it is refused before anything is made. The whole archive is read
and every member checked against its manifest first: a truncated or altered file is refused and
nothing is made. Layers this host already has (same digest) are not stored twice; the others
become stored templates, each checked against its digest. The guest keeps its config, limits,
marks, addresses and MACs; its context is kept unless another guest here has it (it then gets
the next free one: its files keep their owners, its ID range follows its context).

An archive carries the guest's hooks (run on the host as root) and fstab (host paths bound into
it): restore only archives you trust as you trust root on the host that made them.

FILE "-" reads standard input (then run in this process, not through jaulad; no increments).

Examples:
  jaula restore /srv/backup/web1.jaula
  jaula restore /srv/backup/web1.jaula --name web1-copy
  jaula restore mon.jaula tue.jaula now.jaula --name web1-tuesday`,
  specs: { name: { type: 'string' }, quiet: { type: 'bool', short: 'q' } },
  async run(p) {
    const [file, ...increments] = p.positionals;
    if (!file)
      throw new JaulaError(
        'usage',
        'jaula restore FILE|- [INCREMENT...] [--name NEW] (see "jaula restore --help")',
      );
    if (file === '-' && increments.length)
      throw new JaulaError(
        'usage',
        'Increments are restored from files, not with standard input: give the full archive as a file too',
      );
    const name = str(p, 'name');
    const hooks = progress(bool(p, 'quiet'));
    const r =
      file === '-'
        ? await (await streamEngine()).restoreFromStream(process.stdin, name, hooks)
        : await (
            await engine()
          ).restoreGuest(
            {
              file: resolve(file),
              ...(increments.length ? { increments: increments.map((f) => resolve(f)) } : {}),
              ...(name ? { name } : {}),
            },
            hooks,
          );
    const stored = r.layers.filter((l) => l.stored).length;
    out(
      `Restored guest "${r.name}" (context ${r.context}${r.layers.length ? `, ${r.layers.length} layer${r.layers.length === 1 ? '' : 's'}, ${stored} stored now` : ''}). Start it with: jaula start ${r.name}`,
    );
    return 0;
  },
};
