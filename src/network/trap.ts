/**
 * The seed's "address binding trap": host daemons listening on every address (0.0.0.0 or ::)
 * take ports that guests need. With jaula, a forwarded port on the host shadows such a daemon
 * (or the daemon shadows the forward when it was there first), and a daemon bound to a guest's
 * address steals the guest's traffic. Read from /proc, no process spawned.
 */
import type { TrapFinding } from '../api/types.js';
import * as fs from 'node:fs';
import { valueToIp } from '../common/ip.js';
import type { GuestConfig } from '../guest/config.js';
import { formatForward } from '../guest/forward.js';

export interface Listener {
  proto: 'tcp' | 'udp';
  address: string;
  port: number;
  inode: string;
  process?: string;
}

function parseAddr(hex: string): string {
  if (hex.length === 8) {
    const n = parseInt(hex, 16);
    return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
  }
  // IPv6: four little-endian 32-bit words.
  let v = 0n;
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    const le = word.match(/../g)?.reverse().join('') ?? '0';
    v = (v << 32n) | BigInt(`0x${le}`);
  }
  return valueToIp({ family: 6, value: v });
}

export function parseProcNet(text: string, proto: 'tcp' | 'udp'): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [addr = '', port = '0'] = (f[1] ?? '').split(':');
    const state = f[3];
    if (proto === 'tcp' && state !== '0A') continue; // LISTEN
    if (proto === 'udp' && state !== '07') continue; // unconnected (bound)
    out.push({ proto, address: parseAddr(addr), port: parseInt(port, 16), inode: f[9] ?? '' });
  }
  return out;
}

export function hostListeners(): Listener[] {
  const ls: Listener[] = [];
  for (const [file, proto] of [
    ['/proc/net/tcp', 'tcp'],
    ['/proc/net/tcp6', 'tcp'],
    ['/proc/net/udp', 'udp'],
    ['/proc/net/udp6', 'udp'],
  ] as const) {
    try {
      ls.push(...parseProcNet(fs.readFileSync(file, 'utf8'), proto));
    } catch {
      /* no such family */
    }
  }
  return ls;
}

/** Which process owns each socket inode (only for the inodes asked about). */
function owners(inodes: Set<string>): Map<string, string> {
  const m = new Map<string, string>();
  if (!inodes.size) return m;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        const ino = /^socket:\[(\d+)\]$/.exec(link)?.[1];
        if (ino && inodes.has(ino) && !m.has(ino))
          m.set(ino, `${fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()} (pid ${pid})`);
      } catch {
        /* gone */
      }
    }
  }
  return m;
}

export type { TrapFinding } from '../api/types.js';

const WILDCARD = new Set(['0.0.0.0', '::']);

/** The guests' forwards and addresses that host listeners shadow or steal (guests: every guest's config). */
export function checkBindingTrap(
  guests: readonly Pick<GuestConfig, 'name' | 'forwards' | 'interfaces'>[],
): TrapFinding[] {
  const listeners = hostListeners();
  const hits: { l: Listener; why: string }[] = [];
  for (const g of guests) {
    for (const f of g.forwards) {
      for (const l of listeners) {
        if (l.proto !== f.proto || l.port !== f.hostPort) continue;
        if (WILDCARD.has(l.address) || l.address === f.hostIp || f.hostIp === '0.0.0.0')
          hits.push({ l, why: `guest "${g.name}" forwards ${formatForward(f)}` });
      }
    }
    const addrs = new Set(
      g.interfaces
        .flatMap((i) => [i.address, i.address6])
        .filter((a): a is string => !!a)
        .map((a) => a.split('/')[0] as string),
    );
    for (const l of listeners)
      if (addrs.has(l.address)) hits.push({ l, why: `${l.address} is an address of guest "${g.name}"` });
  }
  const who = owners(new Set(hits.map((h) => h.l.inode)));
  return hits.map(({ l, why }) => ({
    problem: `${who.get(l.inode) ?? 'a host process'} listens on ${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}/${l.proto}, but ${why}`,
    fix: WILDCARD.has(l.address)
      ? `bind that daemon to the host's own addresses only (not ${l.address}), or move the forward to another port`
      : `stop that daemon from binding ${l.address}, or give the guest another address`,
  }));
}
