/** IP address parsing without node:net (kept off the CLI's start-up path). */

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(s: string): boolean {
  return V4.test(s);
}

/** The 16 bytes of an IPv6 address, or undefined when `s` is not one. */
export function parseIPv6(s: string): number[] | undefined {
  if (s.length > 45 || s.includes('%')) return undefined;
  let tail: number[] = [];
  let text = s;
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.slice(lastColon + 1).includes('.')) {
    const v4 = text.slice(lastColon + 1);
    if (!isIPv4(v4)) return undefined;
    tail = v4.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string): number[] | undefined => {
    if (h === '') return [];
    const groups = h.split(':');
    if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
    return groups.map((g) => parseInt(g, 16));
  };
  const head = parse(halves[0] ?? '');
  const rest = halves.length === 2 ? parse(halves[1] ?? '') : [];
  if (!head || !rest) return undefined;
  const groups =
    halves.length === 2 ? [...head, ...Array<number>(8 - head.length - rest.length).fill(0), ...rest] : head;
  if (groups.length !== 8 || (halves.length === 2 && head.length + rest.length > 7)) return undefined;
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

export function isIPv6(s: string): boolean {
  return parseIPv6(s) !== undefined;
}

/** 4, 6, or 0 like node:net's isIP. */
export function ipFamily(s: string): 0 | 4 | 6 {
  return isIPv4(s) ? 4 : isIPv6(s) ? 6 : 0;
}

/** An address as a bigint (IPv4: 32 bits, IPv6: 128 bits) with its family. */
export interface IpValue {
  family: 4 | 6;
  value: bigint;
}

export function ipToValue(s: string): IpValue | undefined {
  if (isIPv4(s))
    return { family: 4, value: s.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
  const b = parseIPv6(s);
  if (!b) return undefined;
  return { family: 6, value: b.reduce((acc, o) => (acc << 8n) | BigInt(o), 0n) };
}

export function valueToIp(v: IpValue): string {
  if (v.family === 4) return [24n, 16n, 8n, 0n].map((sh) => String((v.value >> sh) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((v.value >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export interface Cidr {
  family: 4 | 6;
  /** The address as written (a host address inside the subnet, or the subnet itself). */
  ip: string;
  prefix: number;
  /** The address as a number and the subnet's first and last addresses. */
  value: bigint;
  network: bigint;
  last: bigint;
}

export function cidrOf(ip: string, prefix: number): Cidr | undefined {
  const v = ipToValue(ip);
  if (!v) return undefined;
  const bits = v.family === 4 ? 32 : 128;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return undefined;
  const hostBits = BigInt(bits - prefix);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << hostBits) - 1n);
  const network = v.value & mask;
  return { family: v.family, ip, prefix, value: v.value, network, last: network | ((1n << hostBits) - 1n) };
}

export function parseCidrText(s: string): Cidr | undefined {
  const slash = s.lastIndexOf('/');
  if (slash < 0 || !/^\d{1,3}$/.test(s.slice(slash + 1))) return undefined;
  return cidrOf(s.slice(0, slash), Number(s.slice(slash + 1)));
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const v = ipToValue(ip);
  return v !== undefined && v.family === c.family && v.value >= c.network && v.value <= c.last;
}

/**
 * The first free host address of a subnet, skipping the network address, the broadcast
 * address (IPv4), and every address in `used`.
 */
export function firstFree(c: Cidr, used: Set<string>): string | undefined {
  const first = c.network + 1n;
  const last = c.family === 4 && c.prefix < 31 ? c.last - 1n : c.last;
  const usedValues = new Set(
    [...used].map((u) => ipToValue(u)?.value).filter((x): x is bigint => x !== undefined),
  );
  for (let v = first; v <= last && v - first < 1_000_000n; v++)
    if (!usedValues.has(v)) return valueToIp({ family: c.family, value: v });
  return undefined;
}
