/**
 * Monitoring across guests from the host (the seed's spectator context): every process of
 * every guest (`jaula ps`, the seed's vps), per-guest counters and rates (`jaula top`, vtop;
 * `jaula stat`, vserver-stat) and their Prometheus exposition (`jaula metrics`).
 *
 * Processes belong to a guest by cgroup membership: the guest's cgroup.procs, read once per
 * guest, never guessed from names. Everything is read straight from /proc and cgroupfs with
 * one read per file; no process is spawned.
 */
import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { validateName } from '../common/names.js';
import { cgroupVersion, openGuestCgroup, type CgroupStats, type GuestCgroup } from '../cgroups/index.js';
import { procsBelow } from '../cgroups/cgroup.js';
import { paths } from '../os/paths.js';
import { parseNetDev, parsePasswd, type NetCounters } from '../cgroups/parse.js';
import { GuestFs } from '../os/guestfs.js';
import { linkCounts, readKernelFile, readKernelFiles } from '../os/kernfs.js';
import { CLK_TCK, bootId, isSameProcess } from '../os/proc.js';
import { emptyProcInfo, parseStat, parseStatus, type ProcInfo } from '../os/procinfo.js';
import { listRunDirs, type GuestState } from '../guest/state.js';
import type { ProcessRow } from '../api/types.js';

export interface RunningGuest {
  name: string;
  context: number;
  /** Host PID of the guest's init. */
  pid: number;
  /** Its start time (clock ticks since boot): with the PID it names the init for sure. */
  pidStart?: number;
  startedAt?: string;
  cgroup: GuestCgroup;
}

/** Guests whose state says they run, on this boot (the named ones must exist and say so). */
function claimedRunning(names: readonly string[]): { name: string; st: GuestState }[] {
  const boot = bootId();
  const wanted = names.length ? [...new Set(names)] : listRunDirs().sort();
  for (const name of names) {
    validateName(name);
    if (!fs.existsSync(paths().guestConfigFile(name)))
      throw new JaulaError('not_found', `There is no guest "${name}" (see "jaula list")`);
  }
  const files = readKernelFiles(wanted.map((n) => `${paths().guestsRun}/${n}/state.json`));
  const out: { name: string; st: GuestState }[] = [];
  wanted.forEach((name, i) => {
    let st: GuestState | undefined;
    try {
      st = JSON.parse(files.text(i) ?? 'null') as GuestState | undefined;
    } catch {
      st = undefined;
    }
    if (st?.status === 'running' && st.pid !== undefined && (st.bootId === undefined || st.bootId === boot))
      out.push({ name, st });
    else if (names.length) throw notRunning(name);
  });
  return out;
}

function notRunning(name: string): JaulaError {
  return new JaulaError('state', `Guest "${name}" is not running (start it with "jaula start ${name}")`);
}

function toRunning(name: string, st: GuestState, version: 1 | 2): RunningGuest | undefined {
  const pid = st.pid as number;
  const cgroup = openGuestCgroup(pid, st.cgroupsPath, version);
  if (!cgroup) return undefined;
  // A state written before it kept the context: take it from the config (as the builder does,
  // without loading the TOML parser on this hot path).
  const context =
    st.context ??
    Number(/^context\s*=\s*(\d+)/m.exec(readKernelFile(paths().guestConfigFile(name), 'utf8') ?? '')?.[1]);
  if (!Number.isInteger(context)) return undefined;
  const g: RunningGuest = { name, context, pid, cgroup };
  if (st.pidStart !== undefined) g.pidStart = st.pidStart;
  if (st.startedAt) g.startedAt = st.startedAt;
  return g;
}

/**
 * The running guests of this instance (all, or those named: each must exist and run), from
 * their state files and /proc: no config is parsed unless a state predates the context field.
 * `verify: false` leaves checking that the init is still the same process to the caller.
 */
export function runningGuests(
  names: readonly string[] = [],
  opts: { verify?: boolean } = {},
): RunningGuest[] {
  const version = cgroupVersion();
  const out: RunningGuest[] = [];
  for (const { name, st } of claimedRunning(names)) {
    if (opts.verify !== false && !isSameProcess(st.pid, st.pidStart)) {
      if (names.length) throw notRunning(name);
      continue;
    }
    const g = toRunning(name, st, version);
    if (g) out.push(g);
    else if (names.length) throw notRunning(name);
  }
  return out;
}

// ---- processes (jaula ps) --------------------------------------------------------------------

export type { ProcessRow };

export interface PsOptions {
  guests?: readonly string[];
  /** Host processes too, as context 0. */
  all?: boolean;
  /** Read full command lines. */
  args?: boolean;
}

const MAX_PASSWD = 1 << 20;

/** A guest's /etc/passwd, read safely through its init's root (bounded, regular files only). */
function guestPasswd(initPid: number): Map<number, string> {
  try {
    return GuestFs.with(`/proc/${initPid}/root`, (g) => {
      const fd = g.open('/etc/passwd', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        if (!fs.fstatSync(fd).isFile()) return new Map<number, string>();
        const buf = Buffer.alloc(MAX_PASSWD);
        const n = fs.readSync(fd, buf, 0, MAX_PASSWD, 0);
        return parsePasswd(buf.toString('utf8', 0, n));
      } finally {
        fs.closeSync(fd);
      }
    });
  } catch {
    return new Map();
  }
}

/** A user namespace's uid_map: [inside, host, count] triples (none: the host's identity). */
type IdMap = [number, number, number][];

function parseUidMap(text: string): IdMap {
  const m: IdMap = [];
  for (const line of text.split('\n')) {
    const [a, b, c] = line.trim().split(/\s+/).map(Number);
    if (a !== undefined && b !== undefined && c !== undefined && !Number.isNaN(c)) m.push([a, b, c]);
  }
  return m;
}

/** The ID inside for a host ID under map m (-1: not mapped, the kernel's overflow uid). */
export function insideId(m: IdMap, hostId: number): number {
  for (const [inside, host, count] of m)
    if (hostId >= host && hostId < host + count) return inside + hostId - host;
  return -1;
}

function row(pid: number, p: ProcInfo, o: Owner, uptime: number): ProcessRow {
  const ticks = p.utime + p.stime;
  const elapsed = uptime - p.starttime / CLK_TCK;
  const uid = o.guest === null ? p.uid : insideId(o.uidMap(), p.uid);
  return {
    guest: o.guest,
    context: o.context,
    pid,
    vpid: p.nspid || pid,
    ppid: p.ppid,
    uid,
    hostUid: p.uid,
    user: uid === 0 ? 'root' : uid < 0 ? 'nobody' : (o.users().get(uid) ?? String(uid)),
    state: p.state,
    cpu: elapsed > 0 ? Math.round((ticks / CLK_TCK / elapsed) * 1000) / 10 : 0,
    time: ticks / CLK_TCK,
    rssKb: p.rssKb,
    command: p.comm,
  };
}

interface Owner {
  guest: string | null;
  context: number;
  users: () => Map<number, string>;
  /** The guest's user namespace ID map (identity for the host and privileged guests). */
  uidMap: () => IdMap;
}

/** Read stat and status (and cmdline) of many processes in one native call. */
function readMany(
  pids: number[],
  args: boolean,
): { info: (i: number) => ProcInfo | undefined; cmdline: (i: number) => string | undefined } {
  const per = args ? 3 : 2;
  const paths: string[] = [];
  for (const pid of pids) {
    paths.push(`/proc/${pid}/stat`, `/proc/${pid}/status`);
    if (args) paths.push(`/proc/${pid}/cmdline`);
  }
  const files = readKernelFiles(paths);
  return {
    info: (i) => {
      const stat = files.text(i * per);
      const status = files.text(i * per + 1);
      const p = emptyProcInfo();
      if (stat === undefined || status === undefined || !parseStat(stat, p)) return undefined;
      parseStatus(status, p);
      return p;
    },
    cmdline: (i) => {
      const b = args ? files.text(i * per + 2) : undefined;
      if (b === undefined) return undefined;
      const text = Buffer.from(b, 'latin1').toString('utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
      // (a guest's process may have a command line of many megabytes: only its start is read)
      return files.truncated(i * per + 2) ? `${text} [...]` : text;
    },
  };
}

/**
 * Every process of the running guests (or of those named), and with `all` every other process
 * of the host as context 0. Per guest: its state and cgroup.procs; per process: its stat and
 * status (and cmdline with `args`), all read in one native call.
 */
export function listProcesses(opts: PsOptions = {}): ProcessRow[] {
  const names = opts.guests ?? [];
  const guests = runningGuests(names, { verify: false });
  const uptime = Number((readKernelFile('/proc/uptime') ?? '0').split(' ')[0]);
  const pids: number[] = [];
  const owners: Owner[] = [];
  const inits: { g: RunningGuest; at: number }[] = [];
  const seen = new Set<number>();
  const dirs = guests.map((g) => g.cgroup.procsDir ?? '/nonexistent');
  const nlinks = linkCounts(dirs);
  const procsFiles = readKernelFiles(dirs.map((d) => `${d}/cgroup.procs`));
  const procsOf = dirs.map((d, i) => procsBelow(d, procsFiles.text(i), nlinks[i]));
  // Every guest's user namespace ID map, in one native call (not one read per guest).
  const uidMaps = readKernelFiles(guests.map((g) => `/proc/${g.pid}/uid_map`));
  guests.forEach((g, gi) => {
    const procs = procsOf[gi];
    if (!procs?.includes(g.pid)) {
      if (names.length) throw notRunning(g.name);
      return;
    }
    let users: Map<number, string> | undefined;
    let uidMap: IdMap | undefined;
    const owner: Owner = {
      guest: g.name,
      context: g.context,
      users: () => (users ??= guestPasswd(g.pid)),
      uidMap: () => (uidMap ??= parseUidMap(uidMaps.text(gi) ?? '')),
    };
    for (const pid of procs) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      if (pid === g.pid) inits.push({ g, at: pids.length });
      pids.push(pid);
      owners.push(owner);
    }
  });
  if (opts.all) {
    let hostUsers: Map<number, string> | undefined;
    const host: Owner = {
      guest: null,
      context: 0,
      users: () => (hostUsers ??= parsePasswd(readKernelFile('/etc/passwd', 'utf8') ?? '')),
      uidMap: () => [[0, 0, 2 ** 32 - 1]],
    };
    for (const e of fs.readdirSync('/proc')) {
      const c = e.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(e);
      if (seen.has(pid)) continue;
      pids.push(pid);
      owners.push(host);
    }
  }
  const files = readMany(pids, !!opts.args);
  const infos = pids.map((_, i) => files.info(i));
  // A guest whose init is not the process that was started is not running: leave it out.
  const gone = new Set<string>();
  for (const { g, at } of inits)
    if (infos[at]?.starttime !== g.pidStart) {
      if (names.length) throw notRunning(g.name);
      gone.add(g.name);
    }
  const rows: ProcessRow[] = [];
  for (let i = 0; i < pids.length; i++) {
    const p = infos[i];
    const o = owners[i] as Owner;
    if (!p || (o.guest !== null && gone.has(o.guest))) continue;
    const r = row(pids[i] as number, p, o, uptime);
    if (opts.args) r.args = files.cmdline(i) || `[${r.command}]`;
    rows.push(r);
  }
  return rows;
}

// ---- counters and rates (jaula top, stat, metrics) -------------------------------------------

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

// ---- Prometheus exposition ---------------------------------------------------------------------

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(v: number | null): string {
  if (v === null) return '+Inf';
  return Number.isInteger(v) ? String(v) : v.toFixed(6).replace(/0+$/, '').replace(/\.$/, '');
}

interface Family {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  values: (s: GuestSample) => [Record<string, string>, number | null][];
}

const FAMILIES: Family[] = [
  {
    name: 'jaula_guest_cpu_usage_seconds_total',
    type: 'counter',
    help: 'CPU time used by the guest (user + system).',
    values: (s) => [[{}, s.cgroup.cpu.usageNs / 1e9]],
  },
  {
    name: 'jaula_guest_cpu_seconds_total',
    type: 'counter',
    help: 'CPU time used by the guest, by mode.',
    values: (s) => [
      [{ mode: 'user' }, s.cgroup.cpu.userNs / 1e9],
      [{ mode: 'system' }, s.cgroup.cpu.systemNs / 1e9],
    ],
  },
  {
    name: 'jaula_guest_cpu_periods_total',
    type: 'counter',
    help: 'CPU bandwidth periods elapsed under cpu.max.',
    values: (s) => [[{}, s.cgroup.cpu.periods]],
  },
  {
    name: 'jaula_guest_cpu_throttled_periods_total',
    type: 'counter',
    help: 'Periods in which the guest was throttled at cpu.max (limit hits).',
    values: (s) => [[{}, s.cgroup.cpu.throttled]],
  },
  {
    name: 'jaula_guest_cpu_throttled_seconds_total',
    type: 'counter',
    help: 'Time the guest spent throttled at cpu.max.',
    values: (s) => [[{}, s.cgroup.cpu.throttledNs / 1e9]],
  },
  {
    name: 'jaula_guest_memory_usage_bytes',
    type: 'gauge',
    help: 'Memory charged to the guest (incl. page cache).',
    values: (s) => [[{}, s.cgroup.memory.current]],
  },
  {
    name: 'jaula_guest_memory_limit_bytes',
    type: 'gauge',
    help: "The guest's memory.max (+Inf: none).",
    values: (s) => [[{}, s.cgroup.memory.limit]],
  },
  {
    name: 'jaula_guest_memory_limit_hits_total',
    type: 'counter',
    help: 'Times the guest hit its memory limit (v1 memory.failcnt, v2 memory.events max).',
    values: (s) => [[{}, s.cgroup.memory.limitHits]],
  },
  {
    name: 'jaula_guest_oom_kills_total',
    type: 'counter',
    help: 'Processes of the guest ended by the OOM killer.',
    values: (s) => [[{}, s.cgroup.memory.oomKills]],
  },
  {
    name: 'jaula_guest_pids',
    type: 'gauge',
    help: 'Tasks (processes and threads) in the guest.',
    values: (s) => [[{}, s.cgroup.pids.current]],
  },
  {
    name: 'jaula_guest_pids_limit',
    type: 'gauge',
    help: "The guest's pids.max (+Inf: none).",
    values: (s) => [[{}, s.cgroup.pids.limit]],
  },
  {
    name: 'jaula_guest_pids_limit_hits_total',
    type: 'counter',
    help: "Forks refused at the guest's pids.max.",
    values: (s) => [[{}, s.cgroup.pids.refusals]],
  },
  {
    name: 'jaula_guest_io_bytes_total',
    type: 'counter',
    help: 'Block I/O of the guest, bytes.',
    values: (s) => [
      [{ direction: 'read' }, s.cgroup.io.readBytes],
      [{ direction: 'write' }, s.cgroup.io.writeBytes],
    ],
  },
  {
    name: 'jaula_guest_io_operations_total',
    type: 'counter',
    help: 'Block I/O of the guest, operations.',
    values: (s) => [
      [{ direction: 'read' }, s.cgroup.io.readOps],
      [{ direction: 'write' }, s.cgroup.io.writeOps],
    ],
  },
  {
    name: 'jaula_guest_network_bytes_total',
    type: 'counter',
    help: "Network traffic of the guest's interfaces (but lo), bytes.",
    values: (s) => [
      [{ direction: 'receive' }, s.net.rxBytes],
      [{ direction: 'transmit' }, s.net.txBytes],
    ],
  },
  {
    name: 'jaula_guest_network_packets_total',
    type: 'counter',
    help: "Network traffic of the guest's interfaces (but lo), packets.",
    values: (s) => [
      [{ direction: 'receive' }, s.net.rxPackets],
      [{ direction: 'transmit' }, s.net.txPackets],
    ],
  },
  {
    name: 'jaula_guest_processes',
    type: 'gauge',
    help: 'Processes in the guest.',
    values: (s) => (s.processes === undefined ? [] : [[{}, s.processes]]),
  },
  {
    name: 'jaula_guest_start_time_seconds',
    type: 'gauge',
    help: 'When the guest started, seconds since the epoch.',
    values: (s) => (s.startedAt ? [[{}, Date.parse(s.startedAt) / 1000]] : []),
  },
];

/** The Prometheus text exposition (version 0.0.4) of the guests' counters. */
export function prometheusText(samples: readonly GuestSample[]): string {
  const lines: string[] = [
    '# HELP jaula_guests_running Guests running in this jaula instance.',
    '# TYPE jaula_guests_running gauge',
    `jaula_guests_running ${samples.length}`,
  ];
  for (const f of FAMILIES) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of samples)
      for (const [extra, v] of f.values(s)) {
        const labels = { guest: s.name, context: String(s.context), ...extra };
        const l = Object.entries(labels)
          .map(([k, x]) => `${k}="${label(x)}"`)
          .join(',');
        lines.push(`${f.name}{${l}} ${num(v)}`);
      }
  }
  return lines.join('\n') + '\n';
}
