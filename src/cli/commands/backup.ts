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

export const backup: Command = {
  summary: "write a guest's archive: its config, its layers (by digest) and its own files",
  help: `Usage: jaula backup GUEST --to FILE|- [-q]

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

Examples:
  jaula backup web1 --to /srv/backup/web1.jaula
  jaula backup web1 --to - | ssh other jaula restore -`,
  specs: { to: { type: 'string' }, quiet: { type: 'bool', short: 'q' } },
  async run(p) {
    const [name, ...extra] = p.positionals;
    const to = str(p, 'to');
    if (!name || !to || extra.length)
      throw new JaulaError('usage', 'jaula backup GUEST --to FILE|- (see "jaula backup --help")');
    const hooks = progress(bool(p, 'quiet'));
    if (to === '-') {
      if (process.stdout.isTTY)
        throw new JaulaError(
          'usage',
          'Standard output is a terminal: redirect it to a file or a pipe (or give --to FILE)',
        );
      const r = await (await streamEngine()).backupToStream(name, process.stdout, hooks);
      err(`jaula: Backed up guest "${name}" (${formatBytes(r.bytes)}${layersNote(r.layers)}).`);
      return 0;
    }
    const r = await (await engine()).backupGuest({ name, file: resolve(to) }, hooks);
    out(`Backed up guest "${name}" to ${to} (${formatBytes(r.bytes)}${layersNote(r.layers)}).`);
    return 0;
  },
};

export const restore: Command = {
  summary: 'make a guest from an archive of "jaula backup", every member checked first',
  help: `Usage: jaula restore FILE|- [--name NEW] [-q]

Makes the guest of a "jaula backup" archive, named as it was or NEW. The whole archive is read
and every member checked against its manifest first: a truncated or altered file is refused and
nothing is made. Layers this host already has (same digest) are not stored twice; the others
become stored templates, each checked against its digest. The guest keeps its config, limits,
marks, addresses and MACs; its context is kept unless another guest here has it (it then gets
the next free one: its files keep their owners, its ID range follows its context).

An archive carries the guest's hooks (run on the host as root) and fstab (host paths bound into
it): restore only archives you trust as you trust root on the host that made them.

FILE "-" reads standard input (then run in this process, not through jaulad).

Examples:
  jaula restore /srv/backup/web1.jaula
  jaula restore /srv/backup/web1.jaula --name web1-copy`,
  specs: { name: { type: 'string' }, quiet: { type: 'bool', short: 'q' } },
  async run(p) {
    const [file, ...extra] = p.positionals;
    if (!file || extra.length)
      throw new JaulaError('usage', 'jaula restore FILE|- [--name NEW] (see "jaula restore --help")');
    const name = str(p, 'name');
    const hooks = progress(bool(p, 'quiet'));
    const r =
      file === '-'
        ? await (await streamEngine()).restoreFromStream(process.stdin, name, hooks)
        : await (await engine()).restoreGuest({ file: resolve(file), ...(name ? { name } : {}) }, hooks);
    const stored = r.layers.filter((l) => l.stored).length;
    out(
      `Restored guest "${r.name}" (context ${r.context}${r.layers.length ? `, ${r.layers.length} layer${r.layers.length === 1 ? '' : 's'}, ${stored} stored now` : ''}). Start it with: jaula start ${r.name}`,
    );
    return 0;
  },
};
