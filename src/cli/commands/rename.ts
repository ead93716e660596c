import { JaulaError } from '../../common/errors.js';
import { out, type Command } from '../command.js';
import { engine } from '../engine.js';

export const rename: Command = {
  summary: 'rename a stopped guest',
  help: `Usage: jaula rename OLD NEW

Renames a stopped guest. Everything jaula keys by its name moves with it: its config (with
its fstab and hooks), its files (the storage pool's subvolume and quota group, or its quota
image), its state and console log, its lifecycle log, hashify's index; other guests that
--depends on it are changed to the new name. Its context, addresses, MACs and port forwards
stay, and so does its hostname (change it with "jaula set NEW --hostname NEW"). A running
guest is refused: stop it first.

Examples:
  jaula rename vs01 web1
  jaula stop db && jaula rename db db-old && jaula start db-old`,
  specs: {},
  async run(p) {
    if (p.positionals.length !== 2)
      throw new JaulaError('usage', 'jaula rename OLD NEW (see "jaula rename --help")');
    const [name, newName] = p.positionals as [string, string];
    const s = await (await engine()).renameGuest({ name, newName });
    out(`Renamed guest "${name}" to "${s.name}" (context ${s.context}, hostname ${s.hostname}).`);
    return 0;
  },
};
