/**
 * Counters and rates (`jaula top`, vtop; `jaula stat`, vserver-stat; `jaula metrics`): each
 * running guest's cgroup and network counters in one bulk read, and rates between two samples.
 */
import { procsBelow } from '../../cgroups/cgroup.js';
import type { CgroupStats } from '../../cgroups/index.js';
import { parseNetDev, type NetCounters } from '../../cgroups/parse.js';
import { linkCounts, readKernelFiles } from '../../os/kernfs.js';
import { emptyProcInfo, parseStat } from '../../os/procinfo.js';
import { notRunning, runningGuests } from './running.js';

export interface GuestSample {
  name: string;
  context: number;
  pid: number;
  startedAt?: string;
  /** When the sample was taken (ms, monotonic). */
  at: number;
  cgroup: CgroupStats;
  net: NetCounters;
  /** Number of processes (with `detail`). */
  processes?: number;
}

export function sampleGuests(names: readonly string[] = [], opts: { detail?: boolean } = {}): GuestSample[] {
  const guests = runningGuests(names, { verify: false });
  // Every guest's counters in one bulk read (a refresh of top over hundreds of guests): its
  // init's stat (is it still the process that was started?), its network counters, with
  // `detail` its cgroup.procs, and the cgroup files of its stats.
  const paths: string[] = [];
  const first: number[] = [];
  const dirs = guests.map((g) => g.cgroup.procsDir ?? '/nonexistent');
  for (const [i, g] of guests.entries()) {
    first.push(paths.length);
    paths.push(`/proc/${g.pid}/stat`, `/proc/${g.pid}/net/dev`);
    if (opts.detail) paths.push(`${dirs[i]}/cgroup.procs`);
    paths.push(...g.cgroup.statsPaths(opts));
  }
  const nlinks = opts.detail ? linkCounts(dirs) : undefined;
  const files = readKernelFiles(paths);
  const text = new Map<string, string | undefined>();
  paths.forEach((p, i) => text.set(p, files.text(i)));
  const out: GuestSample[] = [];
  for (const [i, g] of guests.entries()) {
    const at = first[i] as number;
    const init = emptyProcInfo();
    const stat = files.text(at);
    if (stat === undefined || !parseStat(stat, init) || init.starttime !== g.pidStart) {
      if (names.length) throw notRunning(g.name);
      continue;
    }
    const s: GuestSample = {
      name: g.name,
      context: g.context,
      pid: g.pid,
      at: performance.now(),
      cgroup: g.cgroup.stats({ ...opts, read: (p) => text.get(p) }),
      net: parseNetDev(files.text(at + 1) ?? ''),
    };
    if (g.startedAt) s.startedAt = g.startedAt;
    if (nlinks) s.processes = procsBelow(dirs[i] as string, files.text(at + 2), nlinks[i])?.length ?? 0;
    out.push(s);
  }
  return out;
}

/** One guest's line in `jaula top`: rates over the last interval, counters since start. */
export interface GuestRates {
  name: string;
  context: number;
  /** % of one CPU over the interval. */
  cpu: number;
  memory: number;
  memoryLimit: number | null;
  pids: number;
  pidsLimit: number | null;
  /** Bytes per second. */
  ioRead: number;
  ioWrite: number;
  netRx: number;
  netTx: number;
  oomKills: number;
  memoryHits: number;
  throttled: number;
  pidsRefused: number;
}

export function rates(prev: readonly GuestSample[], cur: readonly GuestSample[]): GuestRates[] {
  const before = new Map(prev.map((s) => [`${s.name}\0${s.pid}`, s]));
  return cur.map((s) => {
    const p = before.get(`${s.name}\0${s.pid}`);
    const dt = p ? (s.at - p.at) / 1000 : 0;
    const per = (a: number, b: number | undefined): number =>
      dt > 0 && b !== undefined ? Math.max(0, (a - b) / dt) : 0;
    const c = s.cgroup;
    return {
      name: s.name,
      context: s.context,
      cpu: dt > 0 && p ? Math.max(0, ((c.cpu.usageNs - p.cgroup.cpu.usageNs) / 1e9 / dt) * 100) : 0,
      memory: c.memory.current,
      memoryLimit: c.memory.limit,
      pids: c.pids.current,
      pidsLimit: c.pids.limit,
      ioRead: per(c.io.readBytes, p?.cgroup.io.readBytes),
      ioWrite: per(c.io.writeBytes, p?.cgroup.io.writeBytes),
      netRx: per(s.net.rxBytes, p?.net.rxBytes),
      netTx: per(s.net.txBytes, p?.net.txBytes),
      oomKills: c.memory.oomKills,
      memoryHits: c.memory.limitHits,
      throttled: c.cpu.throttled,
      pidsRefused: c.pids.refusals,
    };
  });
}
