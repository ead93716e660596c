import * as fs from 'node:fs';

/** Fields of /proc/PID/stat that jaula needs. */
export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** Start time in clock ticks since boot: with the pid it names one process for sure. */
  starttime: number;
  utime: number;
  stime: number;
  rssPages: number;
}

export function readProcStat(pid: number): ProcStat | undefined {
  let s: string;
  try {
    s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  return parseProcStat(s);
}

export function parseProcStat(s: string): ProcStat | undefined {
  const open = s.indexOf('(');
  const close = s.lastIndexOf(')');
  if (open < 0 || close < 0) return undefined;
  const f = s.slice(close + 2).split(' ');
  // f[0] is field 3 (state); field N is f[N - 3]
  return {
    pid: Number(s.slice(0, open).trim()),
    comm: s.slice(open + 1, close),
    state: f[0] ?? '?',
    ppid: Number(f[1]),
    utime: Number(f[11]),
    stime: Number(f[12]),
    starttime: Number(f[19]),
    rssPages: Number(f[21]),
  };
}

/** True when pid is alive and is the same process that started at `starttime`. */
export function isSameProcess(pid: number | undefined, starttime: number | undefined): boolean {
  if (!pid || starttime === undefined) return false;
  const st = readProcStat(pid);
  return st !== undefined && st.starttime === starttime && st.state !== 'Z';
}

let boot: string | undefined;

/** This boot's ID, read once: no process outlives a boot (a start read it seven times). */
export function bootId(): string {
  if (boot) return boot;
  try {
    return (boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
  } catch {
    return 'unknown';
  }
}

/** Seconds since boot (for turning starttime ticks into wall-clock times). */
export function uptimeSeconds(): number {
  return Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

export const CLK_TCK = 100;

/** This process's hard limit on open files (what a guest can be given at most). */
export function nofileHardLimit(): number {
  try {
    const m = /^Max open files\s+\S+\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m?.[1] === 'unlimited') return 1048576;
    return m?.[1] ? Number(m[1]) : 1024;
  } catch {
    return 1024;
  }
}
