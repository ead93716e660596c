/**
 * Pure planning of a guest's network: from its config and the networks, the devices, addresses,
 * routes, firewall elements and traffic shaping it needs, as batches for `ip -batch`, `tc -batch`
 * and `nft -f`. No I/O here: the same input gives the same commands (unit-tested).
 */
import { JaulaError } from '../common/errors.js';
import { cidrContains, parseCidrText, valueToIp } from '../common/ip.js';
import { fnv1a } from '../common/hash.js';
import type { ForwardSpec } from '../guest/forward.js';
import type { IfMode, InterfaceSpec } from '../guest/ifspec.js';
import type { NetworkConfig } from './networks.js';

export interface IfPlan {
  /** The interface's name inside the guest. */
  name: string;
  mode: IfMode;
  mac: string;
  /**
   * Bridge and routed modes: the host end of the veth pair, its bridge (bridge mode), the ifb
   * device for egress limits.
   */
  hostIf?: string;
  bridge?: string;
  ifb?: string;
  /**
   * macvlan/ipvlan: the host device it sits on, and its temporary name on the host; routed: the
   * host device whose network reaches the guest through proxy ARP.
   */
  lower?: string;
  tmpIf?: string;
  address?: string;
  address6?: string;
  gateway?: string;
  gateway6?: string;
  isolated: boolean;
  ingress?: number;
  egress?: number;
  /** The gateway is reached on the link without a route to its subnet (routed mode). */
  onlink?: boolean;
}

export interface FwdPlan extends ForwardSpec {
  guestIp: string;
}

export interface NetPlan {
  interfaces: IfPlan[];
  forwards: FwdPlan[];
  /** Networks (bridges) this guest uses, to create on first use. */
  networks: NetworkConfig[];
  /** Name servers for the guest's /etc/resolv.conf. */
  dns: string[];
}

/** Host-side device names: short (15 bytes), unique per instance, derived from the guest's context. */
export function hostIfName(kind: 'v' | 'i' | 'm', tag: string, context: number, index: number): string {
  // The system instance: jv1001.0; another instance (JAULA_ROOT elsewhere): its tag's first four
  // hex digits, then four from the context, so an instance's devices are easy to find.
  const id = tag ? `${tag.slice(0, 4)}${fnv1a(`${tag}/${context}`).slice(0, 4)}` : String(context);
  return `j${kind}${id}.${index}`;
}

/**
 * A routed guest's gateway: this link-local address on the host end of each routed veth (as
 * Incus's routed NICs and LXC's veth router mode do), reached "onlink".
 */
export const ROUTED_GATEWAY = '169.254.0.1';

/** The hint for an address outside every network's subnet. */
export function subnetHint(address: string, name = 'lan'): string {
  const c = parseCidrText(address);
  if (!c || c.family !== 4) return '';
  let gw = c.network + 1n;
  if (gw === c.value) gw = c.last - 1n;
  const sub = `${valueToIp({ family: 4, value: gw })}/${c.prefix}`;
  return ` (for ${valueToIp({ family: 4, value: c.network })}/${c.prefix}, make a network: "jaula network create ${name} --subnet ${sub} --nat", then --interface eth0=${name}:${address}; or put the address on a host device, routed: --interface eth0=eth1:${address})`;
}

export interface PlanInput {
  name: string;
  context: number;
  interfaces: InterfaceSpec[];
  forwards: ForwardSpec[];
  /** Networks by name. */
  networks: Map<string, NetworkConfig>;
  /** Host devices that exist (for macvlan/ipvlan and external bridges), and which are bridges. */
  hostDevices: Map<string, { bridge: boolean }>;
  tag: string;
  hostDns: string[];
}

/** One interface being planned: its spec, device (a network's or the host's), name for errors, the input and its index. */
interface IfAt {
  s: InterfaceSpec;
  dev: string;
  net: NetworkConfig | undefined;
  host: { bridge: boolean } | undefined;
  where: string;
  i: PlanInput;
  idx: number;
}

/** Bridge mode: a veth port on a jaula network's bridge or on a host bridge. */
function planBridge(p: IfPlan, { s, dev, net, host, where, i, idx }: IfAt, plan: NetPlan): void {
  if (!net && !host?.bridge)
    throw new JaulaError(
      'not_found',
      `${where}: "${dev}" is neither a jaula network ("jaula network list") nor a bridge on the host`,
    );
  p.bridge = net ? net.bridge : dev;
  p.hostIf = hostIfName('v', i.tag, i.context, idx);
  if (s.egress) p.ifb = hostIfName('i', i.tag, i.context, idx);
  if (net) {
    if (!plan.networks.includes(net)) plan.networks.push(net);
    const c = parseCidrText(net.subnet);
    if (c && p.address && !cidrContains(c, p.address.split('/')[0] as string))
      throw new JaulaError(
        'invalid',
        `${where}: the address ${p.address} is outside the subnet of network "${net.name}" (${net.subnet})${subnetHint(p.address)}`,
      );
    const gw = s.gateway ?? c?.ip;
    if (gw) p.gateway = gw;
    const gw6 = s.gateway6 ?? (net.subnet6 ? parseCidrText(net.subnet6)?.ip : undefined);
    if (gw6 && p.address6) p.gateway6 = gw6;
    for (const d of net.dns) if (!plan.dns.includes(d)) plan.dns.push(d);
  } else {
    if (s.gateway) p.gateway = s.gateway;
    if (s.gateway6) p.gateway6 = s.gateway6;
  }
}

/** Routed mode: a veth whose address the host routes to the guest through a host device. */
function planRouted(p: IfPlan, { s, dev, net, host, where, i, idx }: IfAt): void {
  if (net)
    throw new JaulaError(
      'invalid',
      `${where}: routed mode puts the address on a host device, and "${dev}" is a jaula network (leave mode= out for a port on its bridge)`,
    );
  if (!host)
    throw new JaulaError('not_found', `${where}: the host device "${dev}" does not exist (see "ip link")`);
  if (!p.address || p.address6)
    throw new JaulaError(
      'invalid',
      `${where}: routed mode takes one IPv4 address (e.g. vs01=${dev}:192.168.39.1/24); IPv6 needs bridge mode`,
    );
  if (s.isolated) throw new JaulaError('invalid', `${where}: "isolated" needs bridge mode`);
  p.hostIf = hostIfName('v', i.tag, i.context, idx);
  if (s.egress) p.ifb = hostIfName('i', i.tag, i.context, idx);
  p.lower = dev;
  p.gateway = ROUTED_GATEWAY;
  p.onlink = true;
}

/** macvlan or ipvlan: a device on a host device, moved into the guest. */
function planDevice(p: IfPlan, { s, dev, host, where, i, idx }: IfAt): void {
  const { mode } = p;
  if (!host)
    throw new JaulaError('not_found', `${where}: the host device "${dev}" does not exist (see "ip link")`);
  if (s.ingress || s.egress)
    throw new JaulaError(
      'invalid',
      `${where}: bandwidth limits need bridge mode (the ${mode} device has no host-side end to shape)`,
    );
  if (s.isolated) throw new JaulaError('invalid', `${where}: "isolated" needs bridge mode`);
  p.lower = dev;
  p.tmpIf = hostIfName('m', i.tag, i.context, idx);
  if (s.gateway) p.gateway = s.gateway;
  if (s.gateway6) p.gateway6 = s.gateway6;
}

export function planNetwork(i: PlanInput): NetPlan {
  const plan: NetPlan = { interfaces: [], forwards: [], networks: [], dns: [] };
  i.interfaces.forEach((s, idx) => {
    const name = s.name ?? `eth${idx}`;
    const dev = s.dev ?? 'jaula0';
    const net = i.networks.get(dev);
    const host = i.hostDevices.get(dev);
    const where = `Guest "${i.name}", interface ${name}`;
    if (!s.mac) throw new JaulaError('internal', `${where} has no MAC address (assigned at build)`);
    if (s.address === 'auto' || s.address6 === 'auto')
      throw new JaulaError('internal', `${where} has no address yet (assigned at build)`);
    // A network or a host bridge: a port on it; another host device: the address routed to
    // the guest through it (the seed's meaning), unless a mode says otherwise.
    const mode: IfMode = s.mode ?? (net || host?.bridge ? 'bridge' : 'routed');
    const p: IfPlan = { name, mode, mac: s.mac, isolated: !!s.isolated };
    if (s.address?.includes(':')) p.address6 = s.address;
    else if (s.address) p.address = s.address;
    if (s.address6) p.address6 = s.address6;
    if (s.ingress) p.ingress = s.ingress;
    if (s.egress) p.egress = s.egress;
    const at: IfAt = { s, dev, net, host, where, i, idx };
    if (mode === 'bridge') planBridge(p, at, plan);
    else if (mode === 'routed') planRouted(p, at);
    else planDevice(p, at);
    plan.interfaces.push(p);
  });
  if (!plan.dns.length) plan.dns = i.hostDns.filter((d) => !d.startsWith('127.') && d !== '::1');
  for (const f of i.forwards) {
    const first = plan.interfaces.find((x) => x.address);
    if (!first?.address)
      throw new JaulaError(
        'invalid',
        `Guest "${i.name}" forwards port ${f.hostPort} but has no IPv4 interface to forward to`,
      );
    plan.forwards.push({ ...f, guestIp: first.address.split('/')[0] as string });
  }
  return plan;
}

/** Commands run inside the guest's network namespace: create veths (peer to the host), addresses, routes. */
export function guestBatch(p: NetPlan, hostPid: number): string {
  const l: string[] = [];
  for (const i of p.interfaces) {
    if (i.mode === 'bridge' || i.mode === 'routed')
      l.push(`link add ${i.name} address ${i.mac} type veth peer name ${i.hostIf} netns ${hostPid}`);
    if (i.address) l.push(`addr add ${i.address} dev ${i.name}`);
    if (i.address6) l.push(`addr add ${i.address6} dev ${i.name} nodad`);
    l.push(`link set ${i.name} up`);
  }
  const v4 = p.interfaces.find((i) => i.gateway);
  if (v4) l.push(`route add default via ${v4.gateway} dev ${v4.name}${v4.onlink ? ' onlink' : ''}`);
  const v6 = p.interfaces.find((i) => i.gateway6);
  if (v6) l.push(`route add default via ${v6.gateway6} dev ${v6.name}`);
  return l.join('\n') + '\n';
}

/**
 * guestBatch and hostPostBatch's work as native/netlink.c takes it (nine strings a veth, "" for
 * none), when every interface is a veth on a bridge without an ifb (egress limits): else
 * undefined, and the ip batches do it.
 */
export function vethFields(p: NetPlan): string[] | undefined {
  const simple = (i: IfPlan): boolean => i.mode === 'bridge' && !i.ifb && !!i.hostIf && !!i.bridge;
  if (!p.interfaces.length || p.interfaces.length > 16 || !p.interfaces.every(simple)) return undefined;
  const v4 = p.interfaces.find((i) => i.gateway);
  const v6 = p.interfaces.find((i) => i.gateway6);
  return p.interfaces.flatMap((i) => [
    i.name,
    i.mac,
    i.hostIf ?? '',
    i.bridge ?? '',
    i.address ?? '',
    i.address6 ?? '',
    i === v4 ? (i.gateway ?? '') : '',
    i === v6 ? (i.gateway6 ?? '') : '',
    i.onlink ? '1' : '',
  ]);
}

/** Commands run on the host before the guest's devices move: macvlan/ipvlan devices. */
export function hostPreBatch(p: NetPlan): string {
  const l: string[] = [];
  for (const i of p.interfaces) {
    if (i.mode === 'macvlan')
      l.push(`link add ${i.tmpIf} link ${i.lower} address ${i.mac} type macvlan mode bridge`);
    if (i.mode === 'ipvlan') l.push(`link add ${i.tmpIf} link ${i.lower} type ipvlan mode l2`);
  }
  return l.length ? l.join('\n') + '\n' : '';
}

/**
 * Commands run on the host after: veth ends into their bridges; a routed guest's host end with
 * the gateway address, the route to the guest's address and its proxy ARP entry on the host
 * device; ifb devices for egress limits.
 */
export function hostPostBatch(p: NetPlan): string {
  const l: string[] = [];
  for (const i of p.interfaces) {
    // A bridge port's host end has no use for IPv6: without a link-local address it sends no
    // DAD, MLD or router solicitation, each flooded to every other port of the bridge (a cost
    // that grew with the guests: native/netlink.c does the same).
    if (i.mode === 'bridge')
      l.push(
        `link set ${i.hostIf} addrgenmode none`,
        `link set ${i.hostIf} master ${i.bridge}`,
        `link set ${i.hostIf} up`,
      );
    else if (i.mode === 'routed') {
      const ip = (i.address as string).split('/')[0] as string;
      l.push(
        `link set ${i.hostIf} up`,
        `addr add ${ROUTED_GATEWAY}/32 dev ${i.hostIf}`,
        `route add ${ip}/32 dev ${i.hostIf}`,
        `neigh replace proxy ${ip} dev ${i.lower}`,
      );
    } else continue;
    if (i.ifb) l.push(`link add ${i.ifb} type ifb`, `link set ${i.ifb} up`);
  }
  return l.length ? l.join('\n') + '\n' : '';
}

/** Token-bucket shaping in both directions, on the host side where the guest cannot undo it. */
export function tcBatch(p: NetPlan): string {
  const l: string[] = [];
  const tbf = (dev: string, rate: number): string => {
    const burst = Math.max(32 * 1024, Math.round(rate / 8 / 100)); // 10 ms worth, at least 32 KiB
    return `qdisc replace dev ${dev} root tbf rate ${rate}bit burst ${burst} latency 50ms`;
  };
  for (const i of p.interfaces) {
    if (!i.hostIf) continue;
    if (i.ingress) l.push(tbf(i.hostIf, i.ingress)); // host -> guest leaves through the host end
    if (i.egress && i.ifb) {
      l.push(`qdisc add dev ${i.hostIf} handle ffff: ingress`);
      l.push(
        `filter add dev ${i.hostIf} parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev ${i.ifb}`,
      );
      l.push(tbf(i.ifb, i.egress));
    }
  }
  return l.length ? l.join('\n') + '\n' : '';
}

/** Host-side commands that remove the guest's devices (the guest ends go with them). */
export function hostDownBatch(p: NetPlan, keep: string[] = []): string {
  const l: string[] = [];
  for (const i of p.interfaces) {
    if (i.hostIf && !keep.includes(i.hostIf)) l.push(`link del ${i.hostIf}`);
    if (i.ifb) l.push(`link del ${i.ifb}`);
    if (i.tmpIf) l.push(`link del ${i.tmpIf}`);
    if (i.mode === 'routed') l.push(`neigh del proxy ${(i.address as string).split('/')[0]} dev ${i.lower}`);
  }
  return l.length ? l.join('\n') + '\n' : '';
}

/** The bridge of a network, with its gateway addresses. */
/** The bridge of a network with its gateway address, up (`exists`: made by someone else). */
/**
 * A bridge's own MAC, fixed (locally administered, from its name): a bridge without one takes
 * the lowest of its ports' and changes as guests' veths come and go, and the guests' ARP entries
 * for the gateway then name a MAC that has moved to another guest's port.
 */
export function bridgeMac(bridge: string): string {
  const h = fnv1a(`bridge/${bridge}`) + fnv1a(`${bridge}/bridge`);
  return `02:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}`;
}

export function bridgeBatch(n: NetworkConfig, o: { exists?: boolean } = {}): string {
  // Bridged traffic skips the IP-layer netfilter hooks (br_netfilter): jaula's bridge-family
  // table filters it, and guest-to-guest packets need no conntrack. (A bridge made by someone
  // else keeps its MAC as it is.)
  const opts = 'nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0';
  const l = o.exists
    ? [`link set ${n.bridge} type bridge ${opts}`]
    : [`link add ${n.bridge} address ${bridgeMac(n.bridge)} type bridge ${opts}`];
  // "replace": an address that is there already is no error.
  l.push(`addr replace ${n.subnet} dev ${n.bridge}`);
  if (n.subnet6) l.push(`addr replace ${n.subnet6} dev ${n.bridge} nodad`);
  l.push(`link set ${n.bridge} up`);
  return l.join('\n') + '\n';
}
