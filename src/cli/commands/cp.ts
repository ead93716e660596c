import { isAbsolute, resolve } from 'node:path';
import { bool } from '../args.js';
import { JaulaError } from '../../common/errors.js';
import { err, out, type Command } from '../command.js';
import { engine } from '../engine.js';

export const cp: Command = {
  summary: 'copy files and directories into or out of a guest',
  help: `Usage: jaula cp [-a] SRC DST

One side names a guest path as GUEST:/path. Directories are copied recursively; symlinks are
copied as links. The guest's side is resolved as the guest sees it: its symlinks never lead to
the host's files. Files copied in belong to the guest's root unless -a keeps numeric owners.
In a running guest, paths cross the guest's own mounts (its /tmp and /run, fstab binds) as
inside it; a tree copied out leaves the kernel's /proc, /sys and /dev empty.

Examples:
  jaula cp ./site web1:/var/www
  jaula cp web1:/var/log/syslog ./web1-syslog
  jaula cp ./socket-test.sh web1:/tmp/
  jaula cp -a web1:/etc ./web1-etc`,
  specs: { archive: { type: 'bool', short: 'a' } },
  async run(p) {
    if (p.positionals.length !== 2)
      throw new JaulaError('usage', 'jaula cp [-a] SRC DST (one of them GUEST:/path)');
    const [src, dst] = p.positionals as [string, string];
    // Host paths are made absolute: jaulad's working directory is not ours.
    const guestPath = (a: string): boolean => /^[A-Za-z0-9][A-Za-z0-9_.-]*:/.test(a) && !a.startsWith('.');
    const abs = (a: string): string => (guestPath(a) || isAbsolute(a) ? a : resolve(a));
    const r = await (await engine()).copy({ src: abs(src), dst: abs(dst), archive: bool(p, 'archive') });
    out(
      `Copied ${r.files} file${r.files === 1 ? '' : 's'} ${r.direction === 'in' ? 'into' : 'out of'} the guest.`,
    );
    const skipped = r.skipped ?? [];
    if (skipped.length)
      err(
        `jaula: left out ${skipped.length} special file${skipped.length === 1 ? '' : 's'} (fifo, socket or device node), which cp does not copy: ${skipped.slice(0, 5).join(', ')}${skipped.length > 5 ? ', ...' : ''}`,
      );
    return 0;
  },
};
