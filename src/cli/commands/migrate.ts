import { JaulaError } from '../../common/errors.js';
import { bool, str } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { table } from '../table.js';

export const migrate: Command = {
  summary: 'move a guest to another host (a remote): cold, sync or live',
  help: `Usage: jaula migrate GUEST REMOTE [--mode cold|sync|live] [-t] [-q]
       jaula migrate --status [--format table|json]

Moves GUEST to the host REMOTE ("jaula remote add"). The guest keeps its name, addresses,
MACs, limits, marks and disk limit; where its context (and so its user ID range) is taken on
the target it gets another (its files keep their plain owners: idmapped mounts). Layers
(stored templates) go by content digest: only those the target lacks are sent.

  --mode sync   (the default) copy while the guest runs, then freeze it, send only what
                changed, stop it here and start it there: the guest is down for the last pass.
  --mode cold   stop it, copy, start it there: down for the whole copy.
  --mode live   copy while it runs, then checkpoint its processes with CRIU, send what changed
                and their images, and restore them there: they keep their memory, open files
                and TCP connections. Needs runc ("jaula set GUEST --runtime runc", then a
                restart) and CRIU 4.1 on both hosts ("./setup criu"); its context must be free
                on the target (its processes keep their user IDs). "jaula doctor" says whether
                this host can.
A stopped guest is moved and stays stopped. In cold and sync moves its processes do not keep
their state (they start afresh on the target). Its addresses are announced from there
(unsolicited ARP and NAs) so that neighbours follow at once.

This host keeps the guest until the target says it runs (or has it, for a stopped guest): a
failure before leaves it here (started again if it ran); one during the handover is resolved
by asking the target ("--status"; jaulad asks at its start). The next jaula command on either
host says how a move ended.

  -t        print each phase's time (as vzmigrate -t did)
  --status  this host's moves, either side, and what became of them

Examples:
  jaula migrate web1 b
  jaula migrate db b --mode cold -t`,
  specs: {
    mode: { type: 'string' },
    times: { type: 'bool', short: 't' },
    quiet: { type: 'bool', short: 'q' },
    status: { type: 'bool' },
    format: { type: 'string' },
  },
  async run(p) {
    const e = await engine();
    if (bool(p, 'status')) {
      const moves = await e.listMoves({});
      if (formatOf(p) === 'json') json(moves);
      else
        out(
          table(
            ['ID', 'GUEST', 'ROLE', 'PEER', 'MODE', 'PHASE', 'UPDATED'],
            moves.map((m) => [m.id, m.guest, m.role, m.peer, m.mode, m.phase, m.updated]),
          ),
        );
      return 0;
    }
    const [name, remote, ...extra] = p.positionals;
    if (!name || !remote || extra.length)
      throw new JaulaError(
        'usage',
        'jaula migrate GUEST REMOTE [--mode cold|sync|live] (see "jaula migrate --help")',
      );
    const mode = str(p, 'mode') ?? 'sync';
    if (mode !== 'cold' && mode !== 'sync' && mode !== 'live')
      throw new JaulaError('usage', `--mode is cold, sync or live, not ${JSON.stringify(mode)}`);
    let last = 0;
    const r = await e.migrateGuest(
      { name, remote, mode },
      bool(p, 'quiet')
        ? {}
        : {
            onProgress: (l) => {
              const now = Date.now();
              if (now - last < 200 && /sent \(/.test(l)) return;
              last = now;
              err(`jaula: ${l}`);
            },
          },
    );
    if (bool(p, 'times'))
      for (const ph of r.phases) out(`${ph.phase.padEnd(18)}${(ph.ms / 1000).toFixed(3)} s`);
    const mib = (r.bytes / 2 ** 20).toFixed(1);
    out(
      `Moved "${r.guest}" to "${r.remote}" (${r.mode}): it is ${r.state === 'running' ? `running there (down ${r.downtimeMs} ms)` : 'stored there, stopped'}; ${mib} MiB sent, ${r.layersSent} layer(s) sent, ${r.layersKept} already there${r.context ? `; context ${r.context} there` : ''}.`,
    );
    return 0;
  },
};
