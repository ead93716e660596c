import type { CloneRequest } from '../../api/types.js';
import { JaulaError } from '../../common/errors.js';
import { bool, list, num, str } from '../args.js';
import { err, out, type Command } from '../command.js';
import { engine } from '../engine.js';

export const clone: Command = {
  summary: 'copy a stopped guest under a new identity (cheap on overlay and reflink storage)',
  help: `Usage: jaula clone SRC DST [--hostname H] [--context N] [--interface SPEC]... [--no-interfaces]

DST gets SRC's files (overlay: SRC's layers shared, only its own changes copied; reflink: cloned;
dir: copied) and config (its marks too, as an Incus or LXC copy keeps its settings: the clone
says so), with a new identity: the next free context ID (or --context), hostname
DST (or --hostname), new MAC addresses, new addresses from the same jaula networks' pools, a new
/etc/machine-id and new SSH host keys. Port forwards are not copied. An interface with a static
address outside a jaula network cannot be renewed: give DST its own with --interface.

Examples:
  jaula clone web1 web2
  jaula clone web1 web3 --hostname www3.example.org --interface eth0=lan:192.168.39.13/24`,
  specs: {
    hostname: { type: 'string' },
    context: { type: 'number' },
    interface: { type: 'list' },
    'no-interfaces': { type: 'bool' },
    quiet: { type: 'bool', short: 'q' },
  },
  async run(p) {
    const [src, dst, ...extra] = p.positionals;
    if (!src || !dst || extra.length)
      throw new JaulaError('usage', 'jaula clone SRC DST [options] (see "jaula clone --help")');
    const o: CloneRequest = { name: src, dst };
    const hostname = str(p, 'hostname');
    const context = num(p, 'context');
    if (hostname !== undefined) o.hostname = hostname;
    if (context !== undefined) o.context = context;
    if (list(p, 'interface').length) o.interfaces = list(p, 'interface');
    if (bool(p, 'no-interfaces')) o.interfaces = [];
    const cfg = await (
      await engine()
    ).cloneGuest(o, bool(p, 'quiet') ? {} : { onProgress: (l) => err(`jaula: ${l}`) });
    out(
      `Cloned guest "${src}" to "${cfg.name}" (context ${cfg.context}, hostname ${cfg.hostname}). Start it with: jaula start ${cfg.name}`,
    );
    // A clone keeps its source's settings, marks included (as an Incus or LXC copy does): said
    // here, since a mark puts it in bulk operations and "default" in every autostart.
    if (cfg.marks.length)
      out(
        `Note: "${cfg.name}" has the marks of "${src}" (${cfg.marks.join(', ')})${cfg.marks.includes('default') ? ', so "jaula autostart" starts it too, and jaulad after a reboot once it runs' : ''}. Change them with: jaula set ${cfg.name} --mark M (or --no-marks)`,
      );
    return 0;
  },
};
