import { readKernelFile } from './kernfs.js';

/**
 * What `jaula ps` shows of one process, from /proc/PID/stat and /proc/PID/status. Listing
 * hundreds of guests parses thousands of these, so the parsers jump with indexOf (a builtin)
 * rather than walk characters in script.
 */
export interface ProcInfo {
  comm: string;
  state: string;
  ppid: number;
  /** Clock ticks. */
  utime: number;
  stime: number;
  starttime: number;
  uid: number;
  /** PID in the innermost PID namespace (last field of NSpid). */
  nspid: number;
  rssKb: number;
}

/** The unsigned number at s[i...], after blanks and tabs. */
function numAt(s: string, i: number): number {
  let c = s.charCodeAt(i);
  while (c === 0x20 || c === 0x09) c = s.charCodeAt(++i);
  let n = 0;
  while (c >= 0x30 && c <= 0x39) {
    n = n * 10 + (c - 0x30);
    c = s.charCodeAt(++i);
  }
  return n;
}

/** Fields of /proc/PID/stat; false when malformed. Fills `out`. */
export function parseStat(s: string, out: ProcInfo): boolean {
  const open = s.indexOf('(');
  const close = s.lastIndexOf(')');
  if (open < 0 || close < open) return false;
  out.comm = s.slice(open + 1, close);
  out.state = s.charAt(close + 2) || '?';
  // field 3 (state) is at close + 2; jump from space to space to fields 4, 14, 15 and 22
  let i = close + 2;
  for (let field = 4; field <= 22; field++) {
    i = s.indexOf(' ', i) + 1;
    if (i === 0) return false;
    if (field === 4) out.ppid = numAt(s, i);
    else if (field === 14) out.utime = numAt(s, i);
    else if (field === 15) out.stime = numAt(s, i);
    else if (field === 22) out.starttime = numAt(s, i);
  }
  return true;
}

/** Uid, NSpid (its last field: the innermost namespace) and VmRSS of /proc/PID/status. */
export function parseStatus(s: string, out: ProcInfo): void {
  let at = s.indexOf('\nUid:');
  out.uid = at < 0 ? -1 : numAt(s, at + 5);
  at = s.indexOf('\nNSpid:', at < 0 ? 0 : at);
  if (at >= 0) {
    const eol = s.indexOf('\n', at + 1);
    out.nspid = numAt(s, s.lastIndexOf('\t', eol < 0 ? s.length : eol) + 1);
  } else out.nspid = 0;
  at = s.indexOf('\nVmRSS:', at < 0 ? 0 : at);
  out.rssKb = at < 0 ? 0 : numAt(s, at + 7);
}

export function emptyProcInfo(): ProcInfo {
  return { comm: '', state: '?', ppid: 0, utime: 0, stime: 0, starttime: 0, uid: -1, nspid: 0, rssKb: 0 };
}

/** Read /proc/PID/stat and /proc/PID/status; undefined when the process is gone. */
export function readProcInfo(pid: number): ProcInfo | undefined {
  const out = emptyProcInfo();
  const stat = readKernelFile(`/proc/${pid}/stat`);
  if (stat === undefined || !parseStat(stat, out)) return undefined;
  const status = readKernelFile(`/proc/${pid}/status`);
  if (status === undefined) return undefined;
  parseStatus(status, out);
  return out;
}
