import { JaulaError } from '../common/errors.js';
import { ipFamily as isIP } from '../common/ip.js';

export const IF_MODES = ['bridge', 'routed', 'macvlan', 'ipvlan'] as const;
export type IfMode = (typeof IF_MODES)[number];

/**
 * A guest interface. On the command line, the seed's syntax `[name=][dev:]ip/prefix` with
 * optional `,key=value` options; the form gives the mode:
 *
 *   eth0=jaula0:auto,ip6=auto,isolated   bridge: a veth into network jaula0's bridge, its next
 *                                        free address, isolated from its neighbours
 *   10.88.0.5/16                         bridge, on the default network jaula0
 *   web=br0:192.0.2.5/24                 bridge: a veth into the host's bridge br0
 *   vs01=eth1:192.168.39.1/24            routed (the seed's meaning: the address on host device
 *                                        eth1): a veth whose host end has a route to the address,
 *                                        answered on eth1's network by proxy ARP; the host
 *                                        reaches the guest, the guest's gateway is the host
 *   eth1=eth0:192.0.2.50/24,mode=macvlan,gw=192.0.2.1   macvlan on eth0 (the host cannot reach it)
 *
 * Options: mode=bridge|routed|macvlan|ipvlan, mac=02:..., ip6=CIDR|auto, gw=IP, gw6=IP,
 * isolated, ingress=RATE (into the guest), egress=RATE (out of the guest); RATE like 10M, 1.5G,
 * 500k (bit/s).
 */
export interface InterfaceSpec {
  /** The interface's name inside the guest (default eth0, eth1, ...). */
  name?: string;
  /** A jaula network (bridge mode), or a host device (macvlan/ipvlan) or host bridge. */
  dev?: string;
  /** IPv4 or IPv6 address with prefix length ("192.168.39.1/24"), or "auto" (from the network's pool). */
  address?: string;
  /** A second, IPv6 address (or "auto"). */
  address6?: string;
  mode?: IfMode;
  mac?: string;
  gateway?: string;
  gateway6?: string;
  /** An isolated guest reaches the gateway, not its neighbours on the bridge. */
  isolated?: boolean;
  /** Bandwidth limits in bit/s: into the guest, out of the guest. */
  ingress?: number;
  egress?: number;
}

const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

export function validateIfName(n: string, what: string): string {
  if (!IFNAME_RE.test(n) || n === '.' || n === '..')
    throw new JaulaError(
      'invalid',
      `The ${what} "${n}" is not a valid interface name (1 to 15 letters, digits, "-", "_", ".")`,
    );
  return n;
}

export function validateMac(m: string): string {
  const mac = m.toLowerCase();
  if (!MAC_RE.test(mac))
    throw new JaulaError(
      'invalid',
      `"${m}" is not a MAC address (write six hex pairs, e.g. 02:00:0a:58:00:05)`,
    );
  if (parseInt(mac.slice(0, 2), 16) & 1)
    throw new JaulaError(
      'invalid',
      `"${m}" is a multicast MAC address: a guest needs a unicast one (first byte even)`,
    );
  if (mac === '00:00:00:00:00:00')
    throw new JaulaError('invalid', 'The MAC address 00:00:00:00:00:00 is not usable');
  return mac;
}

export function parseCidr(s: string): { ip: string; prefix: number; family: 4 | 6 } {
  const slash = s.lastIndexOf('/');
  if (slash < 0)
    throw new JaulaError(
      'invalid',
      `The address "${s}" has no prefix length: write it as ip/prefix, e.g. 192.168.39.1/24`,
    );
  const ip = s.slice(0, slash);
  const pstr = s.slice(slash + 1);
  const family = isIP(ip);
  if (family !== 4 && family !== 6)
    throw new JaulaError('invalid', `"${ip}" in "${s}" is not an IPv4 or IPv6 address`);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(pstr) || Number(pstr) > max || Number(pstr) < 1)
    throw new JaulaError(
      'invalid',
      `The prefix length "/${pstr}" in "${s}" is not valid for IPv${family} (1 to ${max})`,
    );
  return { ip, prefix: Number(pstr), family };
}

function isCidrOrAuto(s: string): boolean {
  if (s === 'auto') return true;
  try {
    parseCidr(s);
    return true;
  } catch {
    return false;
  }
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** A bit rate: "10M", "1.5G", "500k", "10mbit", "2000000" (bit/s). */
export function parseRate(s: string, what = 'rate'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:bit|bps|b)?(?:\/s)?$/i.exec(s.trim());
  if (!m)
    throw new JaulaError(
      'invalid',
      `The ${what} "${s}" is not a bit rate (write e.g. 10M, 1.5G or 500k, in bit/s)`,
    );
  const v = Math.round(Number(m[1]) * (UNITS[(m[2] ?? '').toLowerCase()] ?? 1));
  if (v < 8000) throw new JaulaError('invalid', `The ${what} "${s}" is below 8 kbit/s`);
  return v;
}

export function formatRate(bits: number): string {
  for (const [u, f] of [
    ['G', 1e9],
    ['M', 1e6],
    ['k', 1e3],
  ] as const)
    if (bits >= f && bits % (f / 1000) === 0) return `${+(bits / f).toFixed(3)}${u}`;
  return String(bits);
}

const NO_ADDRESS = (arg: string): JaulaError =>
  new JaulaError(
    'invalid',
    `The interface "${arg}" has no address: write [name=][dev:]ip/prefix or [name=][dev:]auto, e.g. vs01=eth1:192.168.39.1/24`,
  );

export function parseInterfaceSpec(arg: string): InterfaceSpec {
  const [main = '', ...opts] = arg.trim().split(',');
  let rest = main;
  const spec: InterfaceSpec = {};
  const eq = rest.indexOf('=');
  if (eq >= 0) {
    spec.name = validateIfName(rest.slice(0, eq), 'interface name');
    rest = rest.slice(eq + 1);
  }
  if (rest === '') throw NO_ADDRESS(arg);
  if (!isCidrOrAuto(rest)) {
    const colon = rest.indexOf(':');
    const right = rest.slice(colon + 1);
    const looksLikeAddress = (x: string): boolean => x === 'auto' || isIP(x.split('/')[0] ?? '') !== 0;
    if (colon > 0 && IFNAME_RE.test(rest.slice(0, colon)) && looksLikeAddress(right)) {
      spec.dev = validateIfName(rest.slice(0, colon), 'host device or network');
      rest = rest.slice(colon + 1);
    } else if (!rest.includes('/') && !isIP(rest) && IFNAME_RE.test(rest.replace(/:$/, '')))
      throw NO_ADDRESS(arg);
  }
  if (rest === 'auto') spec.address = 'auto';
  else {
    const { ip, prefix } = parseCidr(rest);
    spec.address = `${ip}/${prefix}`;
  }
  for (const o of opts) {
    const [k = '', v] = o.split('=', 2) as [string, string | undefined];
    const need = (): string => {
      if (v === undefined || v === '')
        throw new JaulaError('invalid', `The interface option "${k}" in "${arg}" needs a value (${k}=...)`);
      return v;
    };
    switch (k) {
      case 'mode': {
        const m = need();
        if (!(IF_MODES as readonly string[]).includes(m))
          throw new JaulaError('invalid', `Unknown interface mode "${m}": use ${IF_MODES.join(', ')}`);
        spec.mode = m as IfMode;
        break;
      }
      case 'mac':
        spec.mac = validateMac(need());
        break;
      case 'ip6': {
        const a = need();
        if (a !== 'auto' && parseCidr(a).family !== 6)
          throw new JaulaError('invalid', `ip6=${a} in "${arg}" is not an IPv6 address with prefix`);
        spec.address6 = a;
        break;
      }
      case 'gw':
        if (isIP(need()) !== 4) throw new JaulaError('invalid', `gw=${v} in "${arg}" is not an IPv4 address`);
        spec.gateway = need();
        break;
      case 'gw6':
        if (isIP(need()) !== 6)
          throw new JaulaError('invalid', `gw6=${v} in "${arg}" is not an IPv6 address`);
        spec.gateway6 = need();
        break;
      case 'isolated':
        if (v !== undefined && v !== 'true' && v !== 'false')
          throw new JaulaError('invalid', `isolated takes no value (or true/false), not "${v}"`);
        spec.isolated = v !== 'false';
        break;
      case 'ingress':
        spec.ingress = parseRate(need(), 'ingress rate');
        break;
      case 'egress':
        spec.egress = parseRate(need(), 'egress rate');
        break;
      default:
        throw new JaulaError(
          'invalid',
          `Unknown interface option "${k}" in "${arg}" (mode, mac, ip6, gw, gw6, isolated, ingress, egress)`,
        );
    }
  }
  return spec;
}

export function formatInterfaceSpec(s: InterfaceSpec): string {
  const opts: string[] = [];
  if (s.mode) opts.push(`mode=${s.mode}`);
  if (s.address6) opts.push(`ip6=${s.address6}`);
  if (s.mac) opts.push(`mac=${s.mac}`);
  if (s.gateway) opts.push(`gw=${s.gateway}`);
  if (s.gateway6) opts.push(`gw6=${s.gateway6}`);
  if (s.isolated) opts.push('isolated');
  if (s.ingress) opts.push(`ingress=${formatRate(s.ingress)}`);
  if (s.egress) opts.push(`egress=${formatRate(s.egress)}`);
  return `${s.name ? `${s.name}=` : ''}${s.dev ? `${s.dev}:` : ''}${s.address ?? ''}${opts.length ? `,${opts.join(',')}` : ''}`;
}
