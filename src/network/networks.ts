import * as fs from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { JaulaError, errnoOf, messageOf } from '../common/errors.js';
import { ipFamily, parseCidrText } from '../common/ip.js';
import { validateName } from '../common/names.js';
import { mkdirp, readFileOr, writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { validateIfName } from '../guest/ifspec.js';

/**
 * A jaula network: a Linux bridge on the host with the guests' veths as ports, a gateway address
 * on the bridge, an address pool, optional NAT for outbound traffic. Stored as TOML in
 * $JAULA_ROOT/etc/jaula/networks/NAME.toml.
 */
export interface NetworkConfig {
  name: string;
  /** The bridge device on the host. */
  bridge: string;
  /** The gateway address with the subnet's prefix, e.g. "10.88.0.1/16": the pool is the rest. */
  subnet: string;
  subnet6?: string;
  /** Masquerade guests' outbound traffic to other networks (needs IP forwarding on the host). */
  nat: boolean;
  /** Name servers written to the guests' /etc/resolv.conf (default: the host's, unless loopback). */
  dns: string[];
}

export const DEFAULT_NETWORK = 'jaula0';

export function networksDir(): string {
  return join(paths().etc, 'networks');
}

function networkFile(name: string): string {
  return join(networksDir(), `${name}.toml`);
}

export function validateNetwork(n: NetworkConfig): NetworkConfig {
  validateName(n.name, 'network');
  validateIfName(n.bridge, 'bridge name');
  const c = parseCidrText(n.subnet);
  if (!c || c.family !== 4)
    throw new JaulaError(
      'invalid',
      `The subnet "${n.subnet}" of network "${n.name}" is not an IPv4 gateway/prefix (e.g. 10.88.0.1/16)`,
    );
  if (c.prefix > 30)
    throw new JaulaError(
      'invalid',
      `The subnet "${n.subnet}" of network "${n.name}" is too small (use a prefix of at most /30)`,
    );
  if (c.value === c.network || c.value === c.last)
    throw new JaulaError(
      'invalid',
      `The gateway in "${n.subnet}" must be a host address, not the subnet's network or broadcast address`,
    );
  if (n.subnet6 !== undefined) {
    const c6 = parseCidrText(n.subnet6);
    if (!c6 || c6.family !== 6 || c6.prefix > 126)
      throw new JaulaError(
        'invalid',
        `The IPv6 subnet "${n.subnet6}" of network "${n.name}" is not an IPv6 gateway/prefix (e.g. fd88::1/64)`,
      );
  }
  for (const d of n.dns)
    if (!ipFamily(d))
      throw new JaulaError('invalid', `The name server "${d}" of network "${n.name}" is not an IP address`);
  return n;
}

export function loadNetwork(name: string): NetworkConfig | undefined {
  const file = networkFile(name);
  const text = readFileOr(file, undefined);
  if (text === undefined) return undefined;
  let t: Record<string, unknown>;
  try {
    t = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new JaulaError('invalid', `The network file "${file}" is not valid TOML: ${messageOf(e)}`);
  }
  const known = new Set(['name', 'bridge', 'subnet', 'subnet6', 'nat', 'dns']);
  for (const k of Object.keys(t))
    if (!known.has(k)) throw new JaulaError('invalid', `In "${file}": unknown setting "${k}"`);
  const n: NetworkConfig = {
    name: String(t['name'] ?? name),
    bridge: String(t['bridge'] ?? ''),
    subnet: String(t['subnet'] ?? ''),
    nat: t['nat'] === true,
    dns: Array.isArray(t['dns']) ? (t['dns'] as unknown[]).map(String) : [],
  };
  if (typeof t['subnet6'] === 'string') n.subnet6 = t['subnet6'];
  return validateNetwork(n);
}

export function saveNetwork(n: NetworkConfig): void {
  validateNetwork(n);
  mkdirp(networksDir());
  const t: Record<string, unknown> = {
    name: n.name,
    bridge: n.bridge,
    subnet: n.subnet,
    nat: n.nat,
    dns: n.dns,
  };
  if (n.subnet6) t['subnet6'] = n.subnet6;
  writeFileAtomic(networkFile(n.name), `# jaula network "${n.name}"\n${stringifyToml(t)}\n`);
}

export function deleteNetworkConfig(name: string): void {
  fs.rmSync(networkFile(name), { force: true });
}

export function listNetworks(): NetworkConfig[] {
  let files: string[];
  try {
    files = fs.readdirSync(networksDir());
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw e;
  }
  return files
    .filter((f) => f.endsWith('.toml'))
    .map((f) => loadNetwork(f.slice(0, -5)))
    .filter((n): n is NetworkConfig => n !== undefined)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The default network's settings: jaula0 on 10.88.0.0/16 with NAT for the system instance
 * (what "jaula network --help" says). Another instance (a second JAULA_ROOT, tests) gets its
 * own bridge and a /24 derived from its root, with NAT as well.
 */
export function defaultNetworkConfig(): NetworkConfig {
  const tag = paths().instanceTag;
  if (!tag) return { name: DEFAULT_NETWORK, bridge: 'jaula0', subnet: '10.88.0.1/16', nat: true, dns: [] };
  const h = parseInt(tag, 16);
  return {
    name: DEFAULT_NETWORK,
    bridge: `jb${tag}`,
    subnet: `10.${200 + (h % 50)}.${(h >>> 8) % 256}.1/24`,
    nat: true,
    dns: [],
  };
}

/** Whether two subnets (CIDR texts of one family) share an address. */
export function subnetsOverlap(a: string, b: string): boolean {
  const x = parseCidrText(a);
  const y = parseCidrText(b);
  return !!x && !!y && x.family === y.family && x.network <= y.last && y.network <= x.last;
}

/** The host's IPv4 routes as CIDRs, from /proc/net/route (the default route left out). */
export function hostRoutes(): string[] {
  try {
    return fs
      .readFileSync('/proc/net/route', 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.split('\t'))
      .filter((f) => f.length > 7 && f[1] !== '00000000')
      .map((f) => {
        const le = (h: string): string => [6, 4, 2, 0].map((i) => parseInt(h.slice(i, i + 2), 16)).join('.');
        const mask =
          (f[7] as string)
            .match(/../g)
            ?.reverse()
            .map((h) => parseInt(h, 16).toString(2).replace(/0/g, '').length)
            .reduce((a, b) => a + b, 0) ?? 32;
        return `${le(f[1] as string)}/${mask}`;
      });
  } catch {
    return [];
  }
}

/**
 * The network a guest interface names, creating the default network's config on first use
 * (refused, with what to do, when its subnet is already routed on this host: podman's default
 * network is 10.88.0.0/16 too).
 */
export function networkFor(name: string): NetworkConfig | undefined {
  const n = loadNetwork(name);
  if (n || name !== DEFAULT_NETWORK) return n;
  const d = defaultNetworkConfig();
  const taken = hostRoutes().find(
    (r) => subnetsOverlap(r, d.subnet) && !fs.existsSync(`/sys/class/net/${d.bridge}`),
  );
  if (taken)
    throw new JaulaError(
      'exists',
      `The default network ${DEFAULT_NETWORK} would take ${d.subnet}, but the host already routes ${taken}: make ${DEFAULT_NETWORK} on a free subnet first ("jaula network create ${DEFAULT_NETWORK} --subnet 10.89.0.1/16 --nat")`,
    );
  saveNetwork(d);
  return d;
}
