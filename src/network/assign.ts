/**
 * Completing and checking a guest's interfaces: names, networks, addresses from the pool, stable
 * MACs; refusing IP and MAC conflicts with other guests and with the host's own addresses.
 */
import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { cidrContains, firstFree, parseCidrText, valueToIp } from '../common/ip.js';
import { fnv1a } from '../common/hash.js';
import { forwardsCollide, formatForward, type ForwardSpec } from '../guest/forward.js';
import { MAX_INTERFACES_PER_GUEST, type GuestNetConfig } from './guestnet.js';
import { validateMac, type InterfaceSpec } from '../guest/ifspec.js';
import { DEFAULT_NETWORK, listNetworks, networkFor, type NetworkConfig } from './networks.js';
import { subnetHint } from './plan.js';

/**
 * IPv4 and IPv6 addresses configured on the host (from /proc, no process spawned); with
 * `{ v6: false }` the IPv4 ones only. The host has an IPv6 link-local address per running
 * guest's veth: reading /proc/net/if_inet6 costs about a millisecond at 1000 guests, so callers
 * that compare no IPv6 address leave it out, and each address is converted to text once.
 */
export function hostAddresses(o: { v6?: boolean } = {}): Set<string> {
  const out = new Set<string>();
  let last = '';
  for (const line of readOrEmpty('/proc/net/fib_trie').split('\n')) {
    const m = /^\s*[|+]-- (\d+\.\d+\.\d+\.\d+)$/.exec(line);
    if (m?.[1]) last = m[1];
    else if (/\/32 host LOCAL/.test(line) && last) out.add(last);
  }
  if (o.v6 === false) return out;
  const seen = new Map<string, string>();
  for (const line of readOrEmpty('/proc/net/if_inet6').split('\n')) {
    const hex = line.slice(0, 32);
    if (hex.length !== 32 || line[32] !== ' ') continue;
    const text = v6Text.get(hex) ?? valueToIp({ family: 6, value: BigInt(`0x${hex}`) });
    seen.set(hex, text);
    out.add(text);
  }
  v6Text = seen; // (the addresses gone are forgotten)
  return out;
}

/** The host's IPv6 addresses as text, by their hex form in /proc/net/if_inet6, as of the last call. */
let v6Text = new Map<string, string>();

/** A file of /proc, or nothing (no IPv4, no IPv6). */
function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Host devices, and whether each is a bridge: all of them, or only those of `names` that exist
 * (a guest's start asks about its own devices only: the host has a veth per running guest).
 */
export function hostDevices(names?: string[]): Map<string, { bridge: boolean }> {
  const m = new Map<string, { bridge: boolean }>();
  try {
    for (const d of names ?? fs.readdirSync('/sys/class/net'))
      if (!names || (!d.includes('/') && d !== '.' && d !== '..' && fs.existsSync(`/sys/class/net/${d}`)))
        m.set(d, { bridge: fs.existsSync(`/sys/class/net/${d}/bridge`) });
  } catch {
    /* none */
  }
  return m;
}

export function hostDns(): string[] {
  try {
    return fs
      .readFileSync('/etc/resolv.conf', 'utf8')
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((x): x is string => !!x);
  } catch {
    return [];
  }
}

const ip = (cidr: string | undefined): string | undefined => cidr?.split('/')[0];

/** A stable, locally administered unicast MAC for interface `index` of a guest. */
export function stableMac(name: string, context: number, index: number, salt = 0): string {
  const h = fnv1a(`${name}/${context}/${index}/${salt}`) + fnv1a(`${salt}/${index}/${context}/${name}`);
  return validateMac(
    `02:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}`,
  );
}

interface Others {
  ips: Map<string, string>;
  macs: Map<string, string>;
  forwards: { guest: string; f: ForwardSpec }[];
}

function othersOf(name: string, all: GuestNetConfig[]): Others {
  const o: Others = { ips: new Map(), macs: new Map(), forwards: [] };
  for (const g of all) {
    if (g.name === name) continue;
    for (const i of g.interfaces) {
      for (const a of [ip(i.address), ip(i.address6)]) if (a && a !== 'auto') o.ips.set(a, g.name);
      if (i.mac) o.macs.set(i.mac, g.name);
    }
    for (const f of g.forwards) o.forwards.push({ guest: g.name, f });
  }
  return o;
}

/**
 * Check interface `s`'s address `key` (`want`, as the user gave it), or pick a free one of its
 * network for "auto" (set in `s`).
 */
function checkAddress(
  s: InterfaceSpec,
  key: 'address' | 'address6',
  want: string,
  net: NetworkConfig | undefined,
  where: string,
  { others, taken, hostAddrs }: { others: Others; taken: Set<string>; hostAddrs: Set<string> },
): void {
  const subnet = key === 'address' ? net?.subnet : net?.subnet6;
  if (want === 'auto') {
    if (!net || !subnet)
      throw new JaulaError(
        'invalid',
        `${where}: "auto" needs a jaula network with ${key === 'address' ? 'an IPv4' : 'an IPv6'} subnet ("${s.dev}" has none)`,
      );
    const c = parseCidrText(subnet);
    const pick = c && firstFree(c, new Set([...taken, c.ip]));
    if (!pick || !c)
      throw new JaulaError(
        'exists',
        `${where}: the network "${net.name}" (${subnet}) has no free address left`,
      );
    s[key] = `${pick}/${c.prefix}`;
  } else {
    const a = ip(want) as string;
    const owner = others.ips.get(a);
    if (owner)
      throw new JaulaError('exists', `${where}: the address ${a} is already used by guest "${owner}"`);
    if (net && subnet) {
      const c = parseCidrText(subnet);
      if (c && !cidrContains(c, a))
        throw new JaulaError(
          'invalid',
          `${where}: the address ${a} is outside the subnet of network "${net.name}" (${subnet})${subnetHint(want)}`,
        );
      const prefix = Number(want.split('/')[1]);
      if (c && prefix !== c.prefix)
        throw new JaulaError(
          'invalid',
          `${where}: the address ${want} has another prefix than network "${net.name}" (${subnet}): write ${a}/${c.prefix}, or "auto"`,
        );
      if (c && a === c.ip)
        throw new JaulaError('exists', `${where}: the address ${a} is the gateway of network "${net.name}"`);
    }
    if (hostAddrs.has(a))
      throw new JaulaError('exists', `${where}: the address ${a} belongs to the host itself`);
  }
}

/** Refuse forwards that collide with another guest's or each other, or name an address not the host's. */
function checkForwards(g: GuestNetConfig, others: Others, hostAddrs: Set<string>): void {
  for (const f of g.forwards) {
    const clash = others.forwards.find((o) => forwardsCollide(o.f, f));
    if (clash)
      throw new JaulaError(
        'exists',
        `The port ${formatForward(f)} is already forwarded to guest "${clash.guest}" (${formatForward(clash.f)})`,
      );
  }
  for (let a = 0; a < g.forwards.length; a++)
    for (let b = a + 1; b < g.forwards.length; b++)
      if (forwardsCollide(g.forwards[a] as ForwardSpec, g.forwards[b] as ForwardSpec))
        throw new JaulaError(
          'exists',
          `Guest "${g.name}" forwards ${formatForward(g.forwards[a] as ForwardSpec)} twice`,
        );
  const local = new Set([...hostAddrs, ...listNetworks().map((n) => ip(n.subnet) as string)]);
  const foreign = g.forwards.find((x) => x.hostIp !== '0.0.0.0' && !local.has(x.hostIp));
  if (foreign) {
    const f = foreign;
    throw new JaulaError(
      'invalid',
      `The forward ${formatForward(f)} names ${f.hostIp}, which is not an address of this host`,
    );
  }
}

/**
 * Fill in what the user left out (names, network, addresses, MACs) and refuse conflicts. Run
 * at build and set (results are stored, so addresses and MACs stay stable) and again at start.
 */
export function assignInterfaces(
  g: GuestNetConfig,
  all: GuestNetConfig[],
  opts: { hostAddrs?: Set<string>; reserved?: Iterable<string> } = {},
): GuestNetConfig {
  if (g.interfaces.length > MAX_INTERFACES_PER_GUEST)
    throw new JaulaError(
      'invalid',
      `Guest "${g.name}" has ${g.interfaces.length} interfaces (at most ${MAX_INTERFACES_PER_GUEST})`,
    );
  const others = othersOf(g.name, all);
  // (forwards are IPv4: the host's IPv6 addresses matter only to a guest with IPv6 addresses)
  const v6 = g.interfaces.some((s) => s.address6 !== undefined);
  const hostAddrs = opts.hostAddrs ?? hostAddresses({ v6 });
  // reserved: addresses other hosts of a fleet hold; "auto" does not pick them.
  const taken = new Set([...others.ips.keys(), ...hostAddrs, ...(opts.reserved ?? [])]);
  const names = new Set<string>();
  const devices = hostDevices(g.interfaces.map((s) => s.dev ?? DEFAULT_NETWORK));
  const out: InterfaceSpec[] = [];
  g.interfaces.forEach((s0, idx) => {
    const s: InterfaceSpec = { ...s0 };
    s.name ??= `eth${idx}`;
    if (names.has(s.name))
      throw new JaulaError('invalid', `Guest "${g.name}" has two interfaces named "${s.name}"`);
    names.add(s.name);
    s.dev ??= DEFAULT_NETWORK;
    const net: NetworkConfig | undefined =
      s.mode === 'macvlan' || s.mode === 'ipvlan' || s.mode === 'routed' ? undefined : networkFor(s.dev);
    const where = `Guest "${g.name}", interface ${s.name}`;
    if (!net && !devices.has(s.dev))
      throw new JaulaError(
        'not_found',
        `${where}: "${s.dev}" is neither a jaula network ("jaula network list") nor a device of this host ("ip link")${s.dev === DEFAULT_NETWORK ? '' : `; to make a network of that name: jaula network create ${s.dev} --subnet GW/PREFIX --nat`}`,
      );
    // The seed's form on a host device that is not a bridge: the address routed to the guest
    // (stored, so that list and the config say which mode the guest has).
    if (!net && !s.mode && !devices.get(s.dev)?.bridge) s.mode = 'routed';
    for (const key of ['address', 'address6'] as const) {
      const want = s[key];
      if (want === undefined) continue;
      checkAddress(s, key, want, net, where, { others, taken, hostAddrs });
      taken.add(ip(s[key]) as string);
    }
    if (s.mac) {
      const owner = others.macs.get(s.mac);
      if (owner)
        throw new JaulaError(
          'exists',
          `${where}: the MAC address ${s.mac} is already used by guest "${owner}"`,
        );
    } else {
      let salt = 0;
      do s.mac = stableMac(g.name, g.context, idx, salt++);
      while (others.macs.has(s.mac));
    }
    out.push(s);
  });
  checkForwards(g, others, hostAddrs);
  return { ...g, interfaces: out };
}
