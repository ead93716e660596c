import { JaulaError } from './errors.js';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** "2G", "512M", "1.5G", "4096" (bytes; K, M, G, T are powers of 1024; "iB" and "B" allowed). */
export function parseSize(text: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m?.[1])
    throw new JaulaError('usage', `The ${what} "${text}" is not a size (write e.g. 2G, 512M, 100000)`);
  const bytes = Math.round(Number(m[1]) * (UNITS[(m[2] ?? '').toUpperCase()] ?? 1));
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw new JaulaError('usage', `The ${what} "${text}" is out of range`);
  return bytes;
}

/** 115 -> "115B", 1536 -> "1.5K", 2147483648 -> "2.0G". */
export function formatSize(bytes: number): string {
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
