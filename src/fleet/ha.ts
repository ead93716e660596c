/**
 * High availability in etcd (core/ha has the hosts' side):
 *
 *   /jaula/replicas/GUEST        the guest's latest replica: which host keeps it, from which
 *                                owner, as of when (written by the owner after each round)
 *   /jaula/leader                the fleet's leader: a host's name, on that host's lease
 *   /jaula/promote/HOST/GUEST    the leader's order to HOST: start GUEST from its replica
 *   /jaula/failovers/GUEST       the guest's last failover: from where to where, what was lost
 *
 * The leader is elected by a create-if-absent of /jaula/leader on its own lease: the key goes
 * with the leader's lease, and the next host to try takes it. A failover is one transaction:
 * it compares the guest's owner record (still the lost host's) and the lost host's record
 * (absent: its lease expired), then gives the guest to its replica's host and writes the order.
 * A host that comes back finds its guest given away: it may not start it (core/fleet-guard.ts).
 */
import type { Etcd } from './etcd.js';
import { HOSTS, hostKey, NAMES, nameKey, ROOT, type OwnerRecord } from './keys.js';

export const REPLICAS = `${ROOT}replicas/`;
export const LEADER_KEY = `${ROOT}leader`;
export const PROMOTE = `${ROOT}promote/`;
export const FAILOVERS = `${ROOT}failovers/`;
export const replicaKey = (guest: string): string => `${REPLICAS}${guest}`;
export const promoteKey = (host: string, guest: string): string => `${PROMOTE}${host}/${guest}`;
export const failoverKey = (guest: string): string => `${FAILOVERS}${guest}`;

/** A guest's latest replica. */
export interface ReplicaRecord {
  guest: string;
  /** The standby host that keeps it ("": none, HA turned off: a tombstone). */
  host: string;
  /** The owner host that sent it. */
  from: string;
  /** The moment the replica is of (the guest frozen, or stopped). */
  asOf: string;
  round: string;
  /** The guest ran then (it is started from the replica). */
  running: boolean;
  /** Bytes sent by that round. */
  bytes: number;
}

/** A failover: the leader's order to the standby, and the guest's record of it. */
export interface FailoverRecord {
  guest: string;
  /** The lost host, and the host that takes the guest. */
  from: string;
  to: string;
  leader: string;
  /** When the leader found the lost host's lease gone. */
  at: string;
  /** The replica's moment. */
  asOf: string;
  running: boolean;
  /**
   * Writes lost, in ms: at most from the replica's moment to the lease's end, at least to the
   * last renewal the lost host can have made (the lease's end minus its TTL).
   */
  lostMs: { atMost: number; atLeast: number };
  /** Set by the standby once it has acted. */
  outcome?: string;
}

/** Become (or stay) the leader: true when this host holds the leader key. */
export async function campaign(etcd: Etcd, host: string, lease: string): Promise<boolean> {
  const held = await etcd.createIfAbsent(LEADER_KEY, host, lease);
  return !held || held.value === host;
}

export async function leaderOf(etcd: Etcd): Promise<string | undefined> {
  return (await etcd.get(LEADER_KEY))?.value;
}

export async function putReplica(etcd: Etcd, r: ReplicaRecord): Promise<void> {
  await etcd.put(replicaKey(r.guest), JSON.stringify(r));
}

/** The guests' latest replicas (not the tombstones of those turned off: no host). */
export async function listReplicas(etcd: Etcd): Promise<ReplicaRecord[]> {
  return (await etcd.list(REPLICAS)).map((kv) => JSON.parse(kv.value) as ReplicaRecord).filter((r) => r.host);
}

export async function listFailovers(etcd: Etcd): Promise<FailoverRecord[]> {
  return (await etcd.list(FAILOVERS)).map((kv) => JSON.parse(kv.value) as FailoverRecord);
}

/** The live hosts (their records stand on their leases). */
export async function liveHosts(etcd: Etcd): Promise<Set<string>> {
  return new Set((await etcd.list(HOSTS, { serializable: true })).map((kv) => kv.key.slice(HOSTS.length)));
}

/**
 * The leader's pass: every guest owned by a host that is not live (and `settled`: gone long
 * enough), with a replica from that host on a live one, is given to that one (one transaction
 * each, which compares the owner record, the lost host's absent record and the standby's
 * present one). Returns the failovers made.
 */
export async function failOver(
  etcd: Etcd,
  leader: string,
  live: Set<string>,
  ttlMs: number,
  settled: (host: string) => boolean = () => true,
): Promise<FailoverRecord[]> {
  const owners = await etcd.list(NAMES);
  const out: FailoverRecord[] = [];
  for (const kv of owners) {
    const owner = JSON.parse(kv.value) as OwnerRecord;
    if (live.has(owner.host) || !settled(owner.host)) continue;
    const guest = kv.key.slice(NAMES.length);
    const rep = await etcd.get(replicaKey(guest));
    if (!rep) continue; // (not HA: shown as lost)
    const r = JSON.parse(rep.value) as ReplicaRecord;
    if (r.from !== owner.host || !live.has(r.host)) continue;
    const now = Date.now();
    const asOf = Date.parse(r.asOf);
    const f: FailoverRecord = {
      guest,
      from: owner.host,
      to: r.host,
      leader,
      at: new Date(now).toISOString(),
      asOf: r.asOf,
      running: r.running,
      lostMs: { atMost: Math.max(0, now - asOf), atLeast: Math.max(0, now - ttlMs - asOf) },
    };
    const t = await etcd.txn(
      [
        { key: nameKey(guest), value: kv.value },
        { key: hostKey(owner.host), absent: true },
        { key: hostKey(r.host), present: true },
      ],
      [
        { put: nameKey(guest), value: JSON.stringify({ ...owner, host: r.host }) },
        { put: promoteKey(r.host, guest), value: JSON.stringify(f) },
        { put: failoverKey(guest), value: JSON.stringify(f) },
      ],
    );
    if (t.succeeded) out.push(f);
  }
  return out;
}

/** The leader's orders to this host. */
export async function ordersFor(etcd: Etcd, host: string): Promise<FailoverRecord[]> {
  return (await etcd.list(`${PROMOTE}${host}/`)).map((kv) => JSON.parse(kv.value) as FailoverRecord);
}

/** The standby acted on an order: it goes, and the guest's failover record says what happened. */
export async function orderDone(etcd: Etcd, f: FailoverRecord, outcome: string): Promise<void> {
  await etcd.txn(
    [],
    [
      { del: promoteKey(f.to, f.guest) },
      { put: failoverKey(f.guest), value: JSON.stringify({ ...f, outcome }) },
    ],
  );
}
