/** jaula stat: one table of all running guests (vserver-stat), here or across the fleet. */
import type { GuestSample } from '../../api/types.js';
import { formatBytesCompact } from '../../common/size.js';
import { bool } from '../args.js';
import { formatOf, json, out, type Command } from '../command.js';
import { engine } from '../engine.js';
import { duration, table } from '../table.js';
import { FORMAT, guestsOf, noteMissing, sample } from './monitor.js';

export interface StatRow {
  /** (--fleet) */
  host?: string | undefined;
  name: string;
  context: number;
  pid: number;
  processes: number;
  tasks: number;
  memory: number;
  memoryLimit: number | null;
  cpuUser: number;
  cpuSystem: number;
  cpuTotal: number;
  uptime: number | null;
  startedAt: string | null;
  oomKills: number;
  memoryHits: number;
  throttled: number;
  pidsRefused: number;
}

export const stat: Command = {
  summary: 'one table of all running guests: processes, memory, CPU time, uptime, limit hits (vserver-stat)',
  help: `Usage: jaula stat [GUEST...] [--fleet] [--format table|json]

For each running guest: its context ID, processes (and tasks), memory in use and its limit, CPU
time used (user, system), uptime, and the limit hits since it started (OOM kills, memory limit
hits, periods throttled at cpu.max, forks refused at pids.max). --fleet: every host's guests
(this host in a fleet), with a HOST column, asked as "jaula ps --fleet" asks them.

Examples:
  jaula stat
  jaula stat --fleet
  jaula stat web1 db1 --format json`,
  specs: { ...FORMAT, guest: { type: 'list' }, fleet: { type: 'bool' } },
  async run(p) {
    const now = Date.now();
    const fleet = bool(p, 'fleet');
    let samples: (GuestSample & { host?: string })[];
    if (fleet) {
      const r = await (await engine()).fleetSamples({ detail: true });
      noteMissing(r.missing);
      const names = guestsOf(p);
      samples = r.hosts
        .flatMap((h) => h.samples.map((s) => ({ ...s, host: h.host })))
        .filter((s) => !names.length || names.includes(s.name));
    } else samples = await sample(guestsOf(p), true);
    const rows: StatRow[] = samples
      .sort((a, b) => (a.host ?? '').localeCompare(b.host ?? '') || a.context - b.context)
      .map((s) => ({
        ...(fleet ? { host: s.host } : {}),
        name: s.name,
        context: s.context,
        pid: s.pid,
        processes: s.processes ?? 0,
        tasks: s.cgroup.pids.current,
        memory: s.cgroup.memory.current,
        memoryLimit: s.cgroup.memory.limit,
        cpuUser: s.cgroup.cpu.userNs / 1e9,
        cpuSystem: s.cgroup.cpu.systemNs / 1e9,
        cpuTotal: s.cgroup.cpu.usageNs / 1e9,
        uptime: s.startedAt ? Math.max(0, (now - Date.parse(s.startedAt)) / 1000) : null,
        startedAt: s.startedAt ?? null,
        oomKills: s.cgroup.memory.oomKills,
        memoryHits: s.cgroup.memory.limitHits,
        throttled: s.cgroup.cpu.throttled,
        pidsRefused: s.cgroup.pids.refusals,
      }));
    if (formatOf(p) === 'json') {
      json(rows);
      return 0;
    }
    const secs = (s: number): string => `${s.toFixed(2)}s`;
    out(
      table(
        [
          ...(fleet ? ['HOST'] : []),
          'CTX',
          'NAME',
          'PROCS',
          'TASKS',
          'MEMORY',
          'MEMLIMIT',
          'USER',
          'SYSTEM',
          'UPTIME',
          'OOM',
          'MEMHITS',
          'THROTTLED',
          'PIDSREFUSED',
        ],
        rows.map((r) => [
          ...(fleet ? [r.host] : []),
          r.context,
          r.name,
          r.processes,
          r.tasks,
          formatBytesCompact(r.memory),
          r.memoryLimit === null ? 'max' : formatBytesCompact(r.memoryLimit),
          secs(r.cpuUser),
          secs(r.cpuSystem),
          r.uptime === null ? undefined : duration(r.uptime * 1000),
          r.oomKills,
          r.memoryHits,
          r.throttled,
          r.pidsRefused,
        ]),
      ),
    );
    return 0;
  },
};
