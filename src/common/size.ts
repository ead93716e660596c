/**
 * Sizes in bytes, written and read in binary units (K, M, G, T, P are powers of 1024), in the two
 * meanings jaula has: a size the user gives (a pool, a quota: a positive number of bytes) and a
 * cgroup limit (a number of bytes or "max", written back exactly as the kernel takes it).
 */
import { JaulaError } from './errors.js';

/** The value of a limit that does not limit ("max" in cgroup v2's files). */
export type Unlimited = 'max';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** A size the user gives: "2G", "512M", "1.5G", "4096" (bytes; "iB" and "B" allowed) -> bytes > 0. */
export function parseBytes(text: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m?.[1])
    throw new JaulaError('usage', `The ${what} "${text}" is not a size (write e.g. 2G, 512M, 100000)`);
  const bytes = Math.round(Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? 1));
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw new JaulaError('usage', `The ${what} "${text}" is out of range`);
  return bytes;
}

/** Bytes rounded for messages, one decimal: 115 -> "115B", 1536 -> "1.5K", 2147483648 -> "2.0G". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  for (const [u, f] of [
    ['T', 2 ** 40],
    ['G', 2 ** 30],
    ['M', 2 ** 20],
    ['K', 2 ** 10],
  ] as const)
    if (bytes >= f) return `${(bytes / f).toFixed(1)}${u}`;
  return `${bytes}B`;
}

/** Bytes in MiB for progress lines: 1572864 -> "1.5 MiB". */
export function formatMiB(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Bytes rounded for narrow tables (jaula top): 1536 -> "1.5K", 300 MiB -> "300M", unknown -> "-". */
export function formatBytesCompact(n: number | undefined | null): string {
  if (n === undefined || n === null) return '-';
  if (n < 1024) return `${n}B`;
  const units = ['K', 'M', 'G', 'T', 'P'];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1).replace(/\.0$/, '')}${units[i]}`;
}

/** A cgroup limit: "512M", "1.5G", "1024", "64k", "2GiB" -> bytes (0 allowed), or "max". */
export function parseLimitBytes(s: string, key = 'size'): number | Unlimited {
  const v = s.trim();
  if (v === 'max') return 'max';
  const bad = (want: string) => new JaulaError('invalid', `Invalid ${key} "${s}": ${want}`);
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)(?:i?[bB])?$/.exec(v);
  if (!m) throw bad('give bytes with an optional unit K, M, G or T (e.g. 512M, 1.5G), or "max"');
  const n = Math.floor(Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? 1));
  if (!Number.isSafeInteger(n)) throw bad('too large');
  return n;
}

/** A cgroup limit exactly, in the largest binary unit that divides it: 536870912 -> "512M". */
export function formatLimitBytes(n: number | Unlimited): string {
  if (n === 'max') return 'max';
  for (const u of ['P', 'T', 'G', 'M', 'K'] as const) {
    const f = UNITS[u] as number;
    if (n >= f && n % f === 0) return `${n / f}${u}`;
  }
  return String(n);
}
