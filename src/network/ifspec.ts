import { JaulaError } from '../common/errors.js';
import { ipFamily as isIP } from '../common/ip.js';

/**
 * A guest interface as given on the command line, in the seed's syntax
 * `[name=][dev:]ip/prefix` (`vs01=eth1:192.168.39.1/24`, `eth0:10.1.0.5/24`, `fd00::5/64`).
 */
export interface InterfaceSpec {
  /** The interface's name inside the guest (default eth0, eth1, ...). */
  name?: string;
  /** The host device or bridge it attaches to (default: jaula's bridge). */
  dev?: string;
  /** Address with prefix length, e.g. "192.168.39.1/24". */
  address?: string;
}

const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export function validateIfName(n: string, what: string): string {
  if (!IFNAME_RE.test(n) || n === '.' || n === '..')
    throw new JaulaError(
      'invalid',
      `The ${what} "${n}" is not a valid interface name (1 to 15 letters, digits, "-", "_", ".")`,
    );
  return n;
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

function isCidr(s: string): boolean {
  try {
    parseCidr(s);
    return true;
  } catch {
    return false;
  }
}

export function parseInterfaceSpec(arg: string): InterfaceSpec {
  let rest = arg.trim();
  const spec: InterfaceSpec = {};
  const eq = rest.indexOf('=');
  if (eq >= 0) {
    spec.name = validateIfName(rest.slice(0, eq), 'interface name');
    rest = rest.slice(eq + 1);
  }
  if (rest === '')
    throw new JaulaError(
      'invalid',
      `The interface "${arg}" has no address: write [name=][dev:]ip/prefix, e.g. vs01=eth1:192.168.39.1/24`,
    );
  if (!isCidr(rest)) {
    const colon = rest.indexOf(':');
    if (colon > 0 && isCidr(rest.slice(colon + 1))) {
      spec.dev = validateIfName(rest.slice(0, colon), 'host device');
      rest = rest.slice(colon + 1);
    } else if (!rest.includes('/') && !isIP(rest) && IFNAME_RE.test(rest.replace(/:$/, ''))) {
      throw new JaulaError(
        'invalid',
        `The interface "${arg}" has no address: write [name=][dev:]ip/prefix, e.g. vs01=eth1:192.168.39.1/24`,
      );
    }
  }
  const { ip, prefix } = parseCidr(rest);
  spec.address = `${ip}/${prefix}`;
  return spec;
}

export function formatInterfaceSpec(s: InterfaceSpec): string {
  return `${s.name ? `${s.name}=` : ''}${s.dev ? `${s.dev}:` : ''}${s.address ?? ''}`;
}
