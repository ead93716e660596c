import { JaulaError } from '../common/errors.js';
import { isIPv4 } from '../common/ip.js';

/** A port forward `host-ip:host-port -> guest:guest-port`; host-ip 0.0.0.0 means every host address. */
export interface ForwardSpec {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  guestPort: number;
}

function port(s: string, what: string, arg: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535)
    throw new JaulaError(
      'invalid',
      `The ${what} "${s}" in the forward "${arg}" is not a port number (1 to 65535)`,
    );
  return Number(s);
}

/**
 * `[host-ip:]host-port:guest-port[/tcp|/udp]`, e.g. `8080:80`, `192.0.2.2:53:53/udp`,
 * `127.0.0.1:8080:80` (on the host's loopback only).
 */
export function parseForward(arg: string): ForwardSpec {
  const [main = '', proto = 'tcp', extra] = arg.split('/');
  if (extra !== undefined || (proto !== 'tcp' && proto !== 'udp'))
    throw new JaulaError('invalid', `The forward "${arg}" has an unknown protocol: end it with /tcp or /udp`);
  const parts = main.split(':');
  if (parts.length < 2 || parts.length > 3)
    throw new JaulaError(
      'invalid',
      `The forward "${arg}" is not [host-ip:]host-port:guest-port[/tcp|/udp] (e.g. 8080:80)`,
    );
  const hostIp = parts.length === 3 ? (parts[0] as string) : '0.0.0.0';
  if (!isIPv4(hostIp))
    throw new JaulaError(
      'invalid',
      `The host address "${hostIp}" in the forward "${arg}" is not an IPv4 address`,
    );
  if (hostIp.startsWith('127.') && hostIp !== '127.0.0.1')
    throw new JaulaError(
      'invalid',
      `The forward "${arg}" uses the loopback address ${hostIp}: of the loopback, forwards take 127.0.0.1 only (or no address: every host address, loopback included)`,
    );
  return {
    proto,
    hostIp,
    hostPort: port(parts[parts.length - 2] as string, 'host port', arg),
    guestPort: port(parts[parts.length - 1] as string, 'guest port', arg),
  };
}

export function formatForward(f: ForwardSpec): string {
  return `${f.hostIp === '0.0.0.0' ? '' : `${f.hostIp}:`}${f.hostPort}:${f.guestPort}/${f.proto}`;
}

/** Two forwards collide when they take the same protocol and port on an overlapping host address. */
export function forwardsCollide(a: ForwardSpec, b: ForwardSpec): boolean {
  return (
    a.proto === b.proto &&
    a.hostPort === b.hostPort &&
    (a.hostIp === b.hostIp || a.hostIp === '0.0.0.0' || b.hostIp === '0.0.0.0')
  );
}
