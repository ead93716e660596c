/**
 * The firewall of one jaula instance as nft text: the tables (bridge family: anti-spoofing,
 * isolation, the daemon guard; ip family: port forwards, NAT) and a guest's set elements. Pure,
 * like plan.ts, whose NetPlan it reads.
 */
import { parseCidrText, valueToIp } from '../common/ip.js';
import type { NetworkConfig } from './networks.js';
import type { NetPlan } from './plan.js';

/** Guests' packets to the host's daemon ports (jaulad's API) are dropped (reject is not available in the bridge family on every kernel). */
export const DAEMON_GUARD_RULE = 'iifname @ports meta l4proto tcp th dport @daemon_ports drop';

export function tableName(tag: string): string {
  return tag ? `jaula_${tag}` : 'jaula';
}

/**
 * The firewall of one jaula instance: a bridge-family table whose sets name, per guest port, the
 * MAC and addresses that port may send from (anti-spoofing), the isolated ports, and the host's
 * TCP ports guests may not reach (jaulad's API, network/guard.ts); an ip-family table with port
 * forwards and NAT. Guests come and go as set elements, never as rules.
 *
 * Port forwards also answer on the host's loopback (`curl 127.0.0.1:PORT`), as Docker's and
 * Incus's do: the output chain's DNAT sends a connection from 127.0.0.1 to the guest, its bridge
 * routes loopback sources (route_localnet, set by networkUp), and postrouting masquerades them
 * to the gateway's address, so the guest answers the host. route_localnet would also let a guest
 * send to the host's 127.0.0.0/8 through the bridge (Kubernetes' CVE-2020-8558): the localnet
 * chain drops every packet to 127.0.0.0/8 that comes in on another interface than lo and does
 * not belong to a connection the host opened.
 */
export function firewallDefinition(tag: string, daemonPorts: readonly number[] = []): string {
  const t = tableName(tag);
  const ports = daemonPorts.length ? ` elements = { ${daemonPorts.join(', ')} };` : '';
  return `table bridge ${t}
delete table bridge ${t}
table bridge ${t} {
  set ports { type ifname; }
  set macs { type ifname . ether_addr; }
  set v4 { type ifname . ipv4_addr; }
  set v6 { type ifname . ipv6_addr; }
  set isolated { type ifname; }
  set daemon_ports { type inet_service;${ports} }
  chain spoof {
    iifname . ether saddr != @macs drop
    meta protocol ip iifname . ip saddr != @v4 drop
    meta protocol arp arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @v4 drop
    meta protocol arp iifname . arp saddr ether != @macs drop
    meta protocol ip6 ip6 saddr != { ::, fe80::/10 } iifname . ip6 saddr != @v6 drop
  }
  chain forward {
    type filter hook forward priority -200; policy accept;
    iifname @ports jump spoof
    iifname @isolated drop
    oifname @isolated drop
  }
  chain input {
    type filter hook input priority -200; policy accept;
    iifname @ports jump spoof
    ${DAEMON_GUARD_RULE}
  }
}
table ip ${t}
delete table ip ${t}
table ip ${t} {
  map tcp_at { type ipv4_addr . inet_service : ipv4_addr . inet_service; }
  map udp_at { type ipv4_addr . inet_service : ipv4_addr . inet_service; }
  map tcp_any { type inet_service : ipv4_addr . inet_service; }
  map udp_any { type inet_service : ipv4_addr . inet_service; }
  set nat { type ipv4_addr; flags interval; }
  chain forwards {
    dnat ip to ip daddr . tcp dport map @tcp_at
    dnat ip to ip daddr . udp dport map @udp_at
    fib daddr type local dnat ip to tcp dport map @tcp_any
    fib daddr type local dnat ip to udp dport map @udp_any
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump forwards
  }
  chain output {
    type nat hook output priority -100; policy accept;
    jump forwards
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @nat ip daddr != @nat masquerade
    ip saddr 127.0.0.0/8 ct status dnat masquerade
  }
  chain localnet {
    type filter hook input priority filter; policy accept;
    iifname != "lo" ip daddr 127.0.0.0/8 ct state != { established, related } drop
  }
}
`;
}

function fwdElements(p: NetPlan, op: 'add' | 'delete', t: string): string[] {
  return p.forwards.map((f) =>
    f.hostIp === '0.0.0.0'
      ? `${op} element ip ${t} ${f.proto}_any { ${f.hostPort}${op === 'add' ? ` : ${f.guestIp} . ${f.guestPort}` : ''} }`
      : `${op} element ip ${t} ${f.proto}_at { ${f.hostIp} . ${f.hostPort}${op === 'add' ? ` : ${f.guestIp} . ${f.guestPort}` : ''} }`,
  );
}

/** nft commands that add (or delete) this guest's firewall elements. */
export function firewallElements(p: NetPlan, tag: string, op: 'add' | 'delete'): string {
  const t = tableName(tag);
  const l: string[] = [];
  for (const i of p.interfaces) {
    if (!i.hostIf || i.mode !== 'bridge') continue; // (a routed veth: rp_filter, networkUp)
    const q = `"${i.hostIf}"`;
    l.push(`${op} element bridge ${t} ports { ${q} }`, `${op} element bridge ${t} macs { ${q} . ${i.mac} }`);
    if (i.address) l.push(`${op} element bridge ${t} v4 { ${q} . ${i.address.split('/')[0]} }`);
    if (i.address6) l.push(`${op} element bridge ${t} v6 { ${q} . ${i.address6.split('/')[0]} }`);
    if (i.isolated) l.push(`${op} element bridge ${t} isolated { ${q} }`);
  }
  l.push(...fwdElements(p, op, t));
  return l.length ? l.join('\n') + '\n' : '';
}

/** The subnet a network masquerades, as an nft interval element. */
export function natElement(n: NetworkConfig, tag: string): string {
  const c = parseCidrText(n.subnet);
  if (!c) return '';
  return `add element ip ${tableName(tag)} nat { ${valueToIp({ family: 4, value: c.network })}/${c.prefix} }\n`;
}
