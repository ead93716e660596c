import { bool, onePositional } from '../args.js';
import { out, type Command } from '../command.js';
import { engine } from '../engine.js';

export const del: Command = {
  summary: 'delete a guest (its config, files and state)',
  help: `Usage: jaula delete NAME [--force]

Refuses a running guest unless --force, which kills it first.

Examples:
  jaula delete vs01
  jaula delete vs01 --force`,
  specs: { force: { type: 'bool', short: 'f' } },
  async run(p) {
    const name = onePositional(p, 'delete');
    await (await engine()).deleteGuest({ name, force: bool(p, 'force') });
    out(`Deleted guest "${name}".`);
    return 0;
  },
};
