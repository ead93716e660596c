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
  help: `Usage: jaula list [--format table|json] [--running] [--mark M]

Examples:
  jaula list
  jaula list --running --mark web --format json`,
  specs: { ...FORMAT, running: { type: 'bool' }, mark: { type: 'string' } },
  async run(p) {
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
