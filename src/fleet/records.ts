/**
 * What each host publishes in etcd for the others to read: its own record (capacity, labels,
 * state) and a short record of each of its guests, all on the host's lease, so that a host that
 * stops renewing it vanishes from `jaula fleet hosts` and `jaula list --fleet` a TTL later (its
 * guests then show as "lost": their names are still owned by it, keys.ts).
 */
import type { Etcd } from './etcd.js';
import { GUESTS, guestKey, HOSTS, hostKey, NAMES, type OwnerRecord } from './keys.js';

export interface HostRecord {
  host: string;
  /** Where its jaulad answers other hosts (https://ADDR:PORT), if it listens on TCP. */
  address?: string;
  state: 'up' | 'fenced' | 'leaving';
  labels: Record<string, string>;
  cpus: number;
  memoryBytes: number;
  memoryFreeBytes: number;
  /** Free space where guests' files are (the pool, or var/lib/jaula). */
  diskFreeBytes: number;
  guests: number;
  running: number;
  /** Whether this host can send or take a running guest, as `jaula doctor` finds it. */
  liveMigration: string;
  /** Its stored templates and jaula networks (placement weighs them). */
  templates?: string[];
  networks?: string[];
  /** jaulad's pid and when the record was written. */
  pid: number;
  at: string;
}

/** One guest as its host last saw it. */
export interface GuestRecord {
  name: string;
  state: string;
  context: number;
  addresses: string[];
  marks: string[];
}

export interface FleetGuest extends GuestRecord {
  host: string;
}

export async function publishHost(etcd: Etcd, lease: string, r: HostRecord): Promise<void> {
  await etcd.put(hostKey(r.host), JSON.stringify(r), lease);
}

export async function fleetHosts(etcd: Etcd): Promise<HostRecord[]> {
  return (await etcd.list(HOSTS)).map((kv) => JSON.parse(kv.value) as HostRecord);
}

/**
 * Publish this host's guests: the records that changed, and the removal of those gone, in one
 * transaction (atomic: a reader sees the old list or the new one).
 */
export async function publishGuests(
  etcd: Etcd,
  host: string,
  lease: string,
  guests: GuestRecord[],
  before: Map<string, string> = new Map(),
): Promise<Map<string, string>> {
  const now = new Map(guests.map((g) => [g.name, JSON.stringify(g)]));
  const ops = [
    ...[...now]
      .filter(([n, v]) => before.get(n) !== v)
      .map(([n, v]) => ({ put: guestKey(host, n), value: v, lease })),
    ...[...before.keys()].filter((n) => !now.has(n)).map((n) => ({ del: guestKey(host, n) })),
  ];
  // etcd takes at most 128 operations in a transaction (its --max-txn-ops).
  for (let i = 0; i < ops.length; i += 128) await etcd.txn([], ops.slice(i, i + 128));
  return now;
}

/** The guests each host owns (their names' owner records: exact, not as last published). */
export async function ownedPerHost(etcd: Etcd): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const kv of await etcd.list(NAMES)) {
    const h = (JSON.parse(kv.value) as OwnerRecord).host;
    out.set(h, [...(out.get(h) ?? []), kv.key.slice(NAMES.length)]);
  }
  return out;
}

/**
 * Every guest of the fleet, with its host: the published records of the live hosts, and the
 * guests whose owner host is gone (its lease expired) as "lost". Three range reads at once.
 */
export async function fleetGuests(etcd: Etcd): Promise<FleetGuest[]> {
  const [published, owners, hosts] = await Promise.all([
    etcd.list(GUESTS),
    etcd.list(NAMES),
    etcd.list(HOSTS),
  ]);
  const live = new Set(hosts.map((kv) => kv.key.slice(HOSTS.length)));
  const out: FleetGuest[] = [];
  const seen = new Set<string>();
  for (const kv of published) {
    const host = kv.key.slice(GUESTS.length).split('/')[0] as string;
    const g = JSON.parse(kv.value) as GuestRecord;
    seen.add(`${host}/${g.name}`);
    out.push({ host, ...g });
  }
  for (const kv of owners) {
    const name = kv.key.slice(NAMES.length);
    const o = JSON.parse(kv.value) as OwnerRecord;
    // Owned by a host that is gone: lost; by a live host that has not published it yet: unknown.
    if (!seen.has(`${o.host}/${name}`))
      out.push({
        host: o.host,
        name,
        state: live.has(o.host) ? 'unknown' : 'lost',
        context: o.context,
        addresses: [],
        marks: [],
      });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.host.localeCompare(b.host));
}
