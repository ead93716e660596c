import { JaulaError } from '../../common/errors.js';
import { formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

export const layer: Command = {
  summary: "stack stored templates as read-only layers under a guest's own changes",
  help: `Usage: jaula layer list GUEST [--format table|json]
       jaula layer add GUEST TEMPLATE
       jaula layer remove GUEST TEMPLATE

An overlay guest's root is its own changes over hashify's unified layer over its layers (stored
templates, "jaula template list"). "add" puts a template on top of the layers, "remove" takes
one away; both apply at the guest's next start. Files the guest changed stay its own (copied up
by overlayfs), files it deleted stay deleted (whiteouts). Make a layer from a guest's changes
with "jaula template save GUEST NAME --changes".

Examples:
  jaula template save pkgbuilder tools --changes
  jaula layer add web1 tools
  jaula restart web1`,
  specs: { format: { type: 'string' } },
  async run(p) {
    const [verb, guest, name, ...extra] = p.positionals;
    if (!guest || extra.length || (verb !== 'list' && !name) || (verb === 'list' && name))
      throw new JaulaError('usage', 'jaula layer list GUEST | add GUEST TEMPLATE | remove GUEST TEMPLATE');
    switch (verb) {
      case 'list': {
        const rows = await (await engine()).listLayers({ name: guest });
        if (formatOf(p) === 'json') json(rows);
        else
          out(
            table(
              ['LAYER', 'PATH'],
              rows.map((r) => [r.name, r.path]),
            ),
          );
        return 0;
      }
      case 'add':
      case 'remove': {
        const r = await (
          await engine()
        ).changeLayers(
          verb === 'add' ? { name: guest, add: name ?? '' } : { name: guest, remove: name ?? '' },
        );
        out(
          `Guest "${guest}" has the layers ${r.layers.join(', ') || '(none)'} (bottom first).${r.atNextStart ? ` It is running: the change applies at its next start (jaula restart ${guest}).` : ''}`,
        );
        return 0;
      }
      default:
        throw new JaulaError('usage', `Unknown "jaula layer ${verb}": use list, add or remove`);
    }
  },
};
