import { JaulaError } from '../../common/errors.js';
import { formatBytes } from '../../common/size.js';
import { resolve } from 'node:path';
import { bool } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

const USAGE = `Usage: jaula template save GUEST NAME [--changes]
       jaula template list [--format table|json]
       jaula template import FILE [NAME]
       jaula template export NAME FILE
       jaula template delete NAME`;

export const template: Command = {
  summary: 'stored templates: save a guest, list, import, export, delete',
  help: `${USAGE}

A stored template is a read-only tree in $JAULA_ROOT/var/lib/jaula/templates/NAME. Guests on
overlay storage stack it as a layer ("jaula build NAME -m template -- -t TEMPLATE" copies no
file data); dir guests copy it, reflink guests clone it. Owners, modes, xattrs, hard links and
device nodes are kept everywhere.

  save GUEST NAME   the whole tree of a stopped guest; with --changes (overlay guests) only its
                    own changes (whiteouts kept), to stack on other guests: "jaula layer add"
  import FILE       a .tar, .tar.gz or .tar.zst archive, every member checked first (absolute
                    paths, "..", writes through symlinks are refused and nothing is written)
  export NAME FILE  to FILE; its name (.tar, .tar.gz, .tar.zst) chooses the format
  delete NAME       refused while a guest stacks it as a layer

Examples:
  jaula template import /srv/bookworm.tar.zst bookworm
  jaula build web1 -m template -- -t bookworm
  jaula template save web1 web-base
  jaula template export web-base /srv/web-base.tar.zst`,
  specs: {
    changes: { type: 'bool' },
    format: { type: 'string' },
    quiet: { type: 'bool', short: 'q' },
  },
  async run(p) {
    const [verb, a, b, ...extra] = p.positionals;
    const hooks = bool(p, 'quiet') ? {} : { onProgress: (l: string): void => err(`jaula: ${l}`) };
    // Through jaulad when it answers (save, import and export are jobs there), else here.
    const e = await engine();
    const need = (ok: boolean): void => {
      if (!ok || extra.length) throw new JaulaError('usage', `${USAGE}\n(see "jaula template --help")`);
    };
    switch (verb) {
      case 'save': {
        need(!!a && !!b);
        const m = await e.saveTemplate(
          { guest: a as string, name: b as string, changes: bool(p, 'changes') },
          hooks,
        );
        out(`Saved template "${m.name}" from guest "${a}" (${m.files} files, ${formatBytes(m.bytes)}).`);
        return 0;
      }
      case 'list':
      case undefined: {
        need(!a);
        const ts = await e.listTemplates();
        if (formatOf(p) === 'json') json(ts);
        else
          out(
            table(
              ['NAME', 'SIZE', 'FILES', 'CREATED', 'SOURCE', 'USED BY'],
              ts.map((t) => [
                t.name,
                formatBytes(t.bytes),
                t.files,
                t.created.slice(0, 19).replace('T', ' '),
                t.source,
                t.usedBy.join(',') || undefined,
              ]),
            ),
          );
        return 0;
      }
      case 'import': {
        need(!!a);
        // A file is the host's: absolute for jaulad, whose working directory is not ours.
        const m = await e.importTemplate(
          { file: resolve(a as string), ...(b !== undefined ? { name: b } : {}) },
          hooks,
        );
        out(`Imported template "${m.name}" (${m.files} files, ${formatBytes(m.bytes)}).`);
        return 0;
      }
      case 'export':
        need(!!a && !!b);
        await e.exportTemplate({ name: a as string, file: resolve(b as string) }, hooks);
        out(`Exported template "${a}" to ${b}.`);
        return 0;
      case 'delete':
        need(!!a && !b);
        await e.deleteTemplate({ name: a as string });
        out(`Deleted template "${a}".`);
        return 0;
      default:
        throw new JaulaError('usage', `Unknown "jaula template ${verb}": ${USAGE}`);
    }
  },
};
