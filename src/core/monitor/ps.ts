/**
 * Processes (`jaula ps`, the seed's vps): every process of the running guests, by cgroup
 * membership, owned by its guest's users (its own /etc/passwd, its user namespace's uid_map).
 */
import * as fs from 'node:fs';
import { procsBelow } from '../../cgroups/cgroup.js';
import { parsePasswd } from '../../cgroups/parse.js';
import { GuestFs } from '../../os/guestfs.js';
import { linkCounts, readKernelFile, readKernelFiles } from '../../os/kernfs.js';
import { CLK_TCK } from '../../os/proc.js';
import { emptyProcInfo, parseStat, parseStatus, type ProcInfo } from '../../os/procinfo.js';
import type { ProcessRow } from '../../api/types.js';
import { notRunning, runningGuests, type RunningGuest } from './running.js';

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
