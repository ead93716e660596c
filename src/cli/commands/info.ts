import { guestStatus, listGuests, type GuestSummary } from '../../core/guests.js';
import { bool, onePositional, str } from '../args.js';
import { formatOf, json, out, type Command } from '../command.js';
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
  help: `Usage: jaula status NAME [--format table|json]`,
  specs: FORMAT,
  async run(p) {
    const g = guestStatus(onePositional(p, 'status'));
    if (formatOf(p) === 'json') json(g);
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
  help: `Usage: jaula list [--format table|json] [--running] [--mark M]`,
  specs: { ...FORMAT, running: { type: 'bool' }, mark: { type: 'string' } },
  async run(p) {
    let guests = listGuests();
    const mark = str(p, 'mark');
    if (bool(p, 'running')) guests = guests.filter((g) => g.status !== 'stopped');
    if (mark) guests = guests.filter((g) => g.marks.includes(mark));
    if (formatOf(p) === 'json') {
      json(guests);
      return 0;
    }
    out(
      table(
        ['NAME', 'CONTEXT', 'STATUS', 'INIT', 'SECURITY', 'HOSTNAME', 'PID', 'UPTIME', 'MARKS', 'INTERFACES'],
        guests.map((g) => [
          g.name,
          g.context,
          g.status,
          g.initstyle,
          g.privileged ? 'PRIVILEGED' : g.profile === 'default' ? 'unprivileged' : `unpriv/${g.profile}`,
          g.hostname,
          g.pid,
          g.startedAt && g.status !== 'stopped' ? duration(Date.now() - Date.parse(g.startedAt)) : undefined,
          g.marks.join(',') || undefined,
          g.interfaces.join(' ') || undefined,
        ]),
      ),
    );
    return 0;
  },
};
