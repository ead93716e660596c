import type { GuestSummary } from '../../api/types.js';
import { bool, onePositional, str } from '../args.js';
import { err, formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { duration, table } from '../table.js';

const FORMAT = { format: { type: 'string' as const } };

function describeExit(g: GuestSummary): string {
  const e = g.lastExit;
  if (!e) return '';
  const how =
    e.reason === 'exited'
      ? `exited with status ${e.code ?? '?'}`
      : e.reason === 'killed'
        ? `killed by signal ${e.signal ?? '?'}`
        : e.reason;
  return `${how} at ${e.at}${e.message ? `: ${e.message}` : ''}`;
}

export const status: Command = {
  summary: 'tell whether a guest runs (exit status 0 if it does, 3 if not)',
  help: `Usage: jaula status NAME [--format table|json]

Examples:
  jaula status vs01
  jaula status vs01 --format json`,
  specs: FORMAT,
  async run(p) {
    const g = await (await engine()).getGuest({ name: onePositional(p, 'status') });
    if (formatOf(p) === 'json') json(g);
    else if (g.status === 'broken')
      out(`${g.error ?? `Guest "${g.name}" is broken.`}${g.pid ? ` It still runs (pid ${g.pid}).` : ''}`);
    else if (g.status === 'stopped')
      out(
        `Guest "${g.name}" (context ${g.context}) is stopped${g.lastExit ? `; last run: ${describeExit(g)}` : ''}.`,
      );
    else
      out(
        `Guest "${g.name}" (context ${g.context}) is ${g.status}: pid ${g.pid}, up ${g.startedAt ? duration(Date.now() - Date.parse(g.startedAt)) : '?'}, runtime ${g.runtime}.`,
      );
    return g.status === 'running' ? 0 : 3;
  },
};

export const listCmd: Command = {
  summary: 'list guests',
  help: `Usage: jaula list [--format table|json] [--running] [--mark M] [--fleet]

--fleet: every host's guests (this host in a fleet: "jaula fleet --help"), with their host;
"lost" is a guest whose host has left the fleet's view (its lease expired).

Examples:
  jaula list
  jaula list --running --mark web --format json
  jaula list --fleet`,
  specs: { ...FORMAT, running: { type: 'bool' }, mark: { type: 'string' }, fleet: { type: 'bool' } },
  async run(p) {
    if (bool(p, 'fleet')) return listFleet(p);
    const req: { mark?: string; running?: boolean } = {};
    const mark = str(p, 'mark');
    if (mark) req.mark = mark;
    if (bool(p, 'running')) req.running = true;
    const guests = await (await engine()).listGuests(req);
    if (formatOf(p) === 'json') {
      json(guests);
      return 0;
    }
    out(
      table(
        ['NAME', 'CONTEXT', 'STATUS', 'INIT', 'SECURITY', 'HOSTNAME', 'PID', 'UPTIME', 'MARKS', 'INTERFACES'],
        guests.map((g) => [
          g.name,
          g.context || undefined,
          g.status,
          g.initstyle || undefined,
          g.privileged
            ? 'PRIVILEGED'
            : g.status === 'broken'
              ? undefined
              : g.profile === 'default'
                ? 'unprivileged'
                : `unpriv/${g.profile}`,
          g.hostname,
          g.pid,
          g.startedAt && g.status !== 'stopped' ? duration(Date.now() - Date.parse(g.startedAt)) : undefined,
          g.marks.join(',') || undefined,
          g.interfaces.join(' ') || undefined,
        ]),
      ),
    );
    // What is wrong with each broken guest, under the table (stderr, so the table stays a table).
    for (const g of guests) if (g.status === 'broken' && g.error) err(`jaula: ${g.error}`);
    return 0;
  },
};

/** jaula list --fleet: every guest of the fleet with its host, filtered as the local list is. */
async function listFleet(p: Parameters<Command['run']>[0]): Promise<number> {
  const mark = str(p, 'mark');
  const gs = (await (await engine()).fleetGuests()).filter(
    (g) => (!mark || g.marks.includes(mark)) && (!bool(p, 'running') || g.state === 'running'),
  );
  if (formatOf(p) === 'json') json(gs);
  else
    out(
      table(
        ['HOST', 'NAME', 'CONTEXT', 'STATUS', 'MARKS', 'ADDRESSES'],
        gs.map((g) => [
          g.host,
          g.name,
          g.context || undefined,
          g.state,
          g.marks.join(',') || undefined,
          g.addresses.join(' ') || undefined,
        ]),
      ),
    );
  return 0;
}
