/**
 * Parsers of the kernel's cgroup (v1 and v2) and /proc file formats. Pure: they take the text,
 * so unit tests feed them sample contents of both versions.
 */

/** Values at or above this in a v1 limit file mean "no limit" (PAGE_COUNTER_MAX, in bytes). */
const V1_UNLIMITED = 2 ** 62;

/** "key value" lines (cpu.stat, memory.stat, memory.events, pids.events, oom_control, cpuacct.stat). */
export function parseFlatKeyed(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const v = Number(line.slice(sp + 1));
    if (Number.isFinite(v)) m.set(line.slice(0, sp), v);
  }
  return m;
}

/** A v2 limit file ("max" or a number) -> number, or null for no limit. */
export function parseV2Limit(text: string): number | null {
  const t = text.trim();
  if (t === 'max' || t === '') return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/** A v1 limit file (-1 or a huge number means none) -> number, or null for no limit. */
export function parseV1Limit(text: string): number | null {
  const n = Number(text.trim());
  if (!Number.isFinite(n) || n < 0 || n >= V1_UNLIMITED) return null;
  return n;
}

/** v2 cpu.max "QUOTA PERIOD" or "max PERIOD". */
export function parseV2CpuMax(text: string): { quota: number | null; period: number } {
  const [q, p] = text.trim().split(/\s+/);
  return { quota: q === 'max' || q === undefined ? null : Number(q), period: Number(p ?? 100000) };
}

export interface IoCounters {
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
}

/**
 * v1 blkio.throttle.io_service_bytes_recursive / io_serviced_recursive: "MAJ:MIN Read N" lines,
 * summed over devices ("Total" lines are skipped).
 */
export function parseBlkioRecursive(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length !== 3) continue;
    if (f[1] === 'Read') read += Number(f[2]) || 0;
    else if (f[1] === 'Write') write += Number(f[2]) || 0;
  }
  return { read, write };
}

/** v2 io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" per device, summed. */
export function parseIoStat(text: string): IoCounters {
  const c: IoCounters = { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 };
  for (const line of text.split('\n')) {
    for (const kv of line.split(' ').slice(1)) {
      const [k, v] = kv.split('=');
      const n = Number(v) || 0;
      if (k === 'rbytes') c.readBytes += n;
      else if (k === 'wbytes') c.writeBytes += n;
      else if (k === 'rios') c.readOps += n;
      else if (k === 'wios') c.writeOps += n;
    }
  }
  return c;
}

/** v2 io.max lines -> device -> field -> value (null for max). */
export function parseV2IoMax(text: string): Map<string, Record<string, number | null>> {
  const out = new Map<string, Record<string, number | null>>();
  for (const line of text.split('\n')) {
    const [dev, ...kvs] = line.trim().split(/\s+/);
    if (!dev) continue;
    const rec: Record<string, number | null> = {};
    for (const kv of kvs) {
      const [k, v] = kv.split('=');
      if (k) rec[k] = v === 'max' ? null : Number(v);
    }
    out.set(dev, rec);
  }
  return out;
}

/** v1 blkio.throttle.*_device: "MAJ:MIN VALUE" lines -> device -> value. */
export function parseV1Throttle(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [dev, v] = line.trim().split(/\s+/);
    if (dev && v) out.set(dev, Number(v));
  }
  return out;
}

/** /proc/PID/cgroup: controller -> path ("" = the v2 hierarchy). */
export function parseProcCgroup(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const ctrls = line.slice(a + 1, b);
    const path = line.slice(b + 1);
    if (ctrls === '') m.set('', path);
    for (const c of ctrls.split(',')) if (c) m.set(c, path);
  }
  return m;
}

/**
 * Where each cgroup hierarchy is mounted, from /proc/self/mountinfo: v1 controller -> mount
 * point, and "" -> the cgroup2 mount.
 */
export function parseCgroupMounts(mountinfo: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0) continue;
    const type = f[dash + 1];
    const point = (f[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    if (type === 'cgroup2') {
      if (!m.has('')) m.set('', point);
    } else if (type === 'cgroup') {
      for (const o of (f[dash + 3] ?? '').split(','))
        if (o !== 'rw' && o !== 'ro' && !m.has(o)) m.set(o, point);
    }
  }
  return m;
}

export interface NetCounters {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

/** /proc/PID/net/dev, summed over the interfaces but "lo". */
export function parseNetDev(text: string): NetCounters {
  const c: NetCounters = { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 };
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const ifname = line.slice(0, colon).trim();
    if (ifname === 'lo' || ifname.includes('|')) continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    c.rxBytes += f[0] ?? 0;
    c.rxPackets += f[1] ?? 0;
    c.txBytes += f[8] ?? 0;
    c.txPackets += f[9] ?? 0;
  }
  return c;
}

/** /etc/passwd -> uid -> name. */
export function parsePasswd(text: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || !f[0] || line.startsWith('#')) continue;
    const uid = Number(f[2]);
    if (Number.isInteger(uid) && !m.has(uid)) m.set(uid, f[0]);
  }
  return m;
}

/** A PID list (cgroup.procs, tasks): one number per line. */
export function parsePidList(text: string): number[] {
  const out: number[] = [];
  let n = 0;
  let inNum = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      n = n * 10 + (c - 48);
      inNum = true;
    } else {
      if (inNum) out.push(n);
      n = 0;
      inNum = false;
    }
  }
  if (inNum) out.push(n);
  return out;
}
