/**
 * What the fleet asks of the operations on one host's guests (nothing outside a fleet):
 *   - a build reserves the guest's name, context, MACs and fleet-network addresses in etcd
 *     (fleet/reserve.ts) before it makes anything, and gives them back if it fails;
 *   - a start happens only on the guest's owner host, while that host is up in the fleet
 *     (its record on a live lease, not fenced): read linearizably, so a host cut off from
 *     etcd's quorum starts nothing;
 *   - a delete gives the guest's reservations back.
 */
import { JaulaError } from '../common/errors.js';
import { type FleetConfig, fleetEtcd, readFleetConfig } from '../fleet/config.js';
import type { Etcd } from '../fleet/etcd.js';
import { replicaKey } from '../fleet/ha.js';
import { hostKey, nameKey, spreadKey, type OwnerRecord } from '../fleet/keys.js';
import type { HostRecord } from '../fleet/records.js';
import {
  fleetTaken,
  ownerOf,
  releaseIdentity,
  reserveIdentity,
  transferOwner,
  type Identity,
} from '../fleet/reserve.js';
import type { GuestConfig } from '../guest/config.js';
import type { Reverter } from './reverter.js';

/** A guest's identity as the fleet reserves it: addresses only in the fleet's networks. */
export function identityOf(cfg: GuestConfig, fc: FleetConfig): Identity {
  const nets = new Set(fc.networks);
  return {
    name: cfg.name,
    context: cfg.context,
    macs: cfg.interfaces.flatMap((i) => (i.mac ? [i.mac] : [])),
    addresses: cfg.interfaces.flatMap((i) =>
      i.dev && nets.has(i.dev) && i.address && i.address !== 'auto'
        ? [[i.dev, i.address] as [string, string]]
        : [],
    ),
  };
}

/** The contexts and fleet-network addresses other hosts hold (for picking free ones), or none. */
export async function fleetHeld(
  except?: string,
): Promise<{ contexts: Map<number, string>; addresses: string[] } | undefined> {
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd) return undefined;
  const t = await fleetTaken(etcd);
  const nets = new Set(fc.networks);
  // (a guest moved here keeps what it holds: its own reservations are not taken from it)
  const contexts = new Map([...t.contexts].filter(([, g]) => g !== except));
  const addresses = [...t.addresses]
    .filter(([a, g]) => g !== except && nets.has(a.split('/')[0] as string))
    .map(([a]) => a.slice(a.indexOf('/') + 1));
  return { contexts, addresses };
}

/**
 * A guest moved here from another host of the fleet: that host, its owner (its reservations
 * stay; the handover gives it to this host: handOver). Undefined outside a fleet or when the
 * fleet has no such guest (then it is reserved as a new one).
 */
export async function movingInFleet(name: string, source: string | undefined): Promise<string | undefined> {
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd) return undefined;
  const owner = await ownerOf(etcd, name);
  if (!owner) return undefined;
  // Only its owner may give it: a guest of the same name on another host (or outside the
  // fleet) is another guest, whose name the fleet gave away already.
  if (owner.host !== source)
    throw new JaulaError(
      'exists',
      `A guest named "${name}" already exists in the fleet, on host ${owner.host}${source ? ` (the guest moved here is host ${source}'s)` : ' (the guest moved here comes from outside the fleet)'}: rename one of them first`,
    );
  return owner.host;
}

/** The handover of a guest moved in the fleet: `from` gives it to `to` (one transaction), or throw. */
export async function handOver(name: string, from: string, to: string): Promise<void> {
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd) return;
  if (!(await transferOwner(etcd, name, from, to)))
    throw new JaulaError(
      'state',
      `Guest "${name}" could not be handed over in the fleet: host "${from}" no longer owns it (see "jaula list --fleet")`,
    );
}

/** This host's name in the fleet, or undefined outside one. */
export function fleetHostName(): string | undefined {
  return readFleetConfig()?.host;
}

/**
 * Reserve a new guest's identity in the fleet (its context may change to one free in the
 * fleet), registering its release on `rev`. Nothing outside a fleet.
 */
export async function reserveInFleet(
  cfg: GuestConfig,
  rev: Reverter,
  o: {
    /**
     * The context given is kept (true), or may move on a conflict in the fleet ('prefer': a
     * restore); 'moved': a guest moved here from another host of the fleet keeps what it
     * holds (the move's handover gives it to this host: handOver).
     */
    fixedContext: boolean | 'prefer' | 'moved';
    nextContext: (fleet: Map<number, string>) => number;
  },
): Promise<void> {
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd || o.fixedContext === 'moved') return;
  const id = identityOf(cfg, fc);
  cfg.context = await reserveIdentity(etcd, fc.host, id, { ...o, fixedContext: o.fixedContext === true });
  rev.add('give back its fleet reservations', () => releaseIdentity(etcd, fc.host, identityOf(cfg, fc)));
  // Its spread groups, at once (placement reads them: exact, unlike the published marks).
  const groups = spreadGroups(cfg);
  if (groups.length) {
    await etcd.txn(
      [],
      groups.map((g) => ({ put: spreadKey(g, cfg.name), value: '' })),
    );
    rev.add('give back its spread groups', () =>
      etcd.txn(
        [],
        groups.map((g) => ({ del: spreadKey(g, cfg.name) })),
      ),
    );
  }
}

/** A guest's anti-affinity groups: its marks spread.GROUP. */
export const spreadGroups = (cfg: { marks: string[] }): string[] =>
  cfg.marks.filter((m) => m.startsWith('spread.')).map((m) => m.slice(7));

/** Give back a deleted guest's reservations (only those it holds). */
export async function releaseInFleet(cfg: GuestConfig): Promise<void> {
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd) return;
  await releaseIdentity(etcd, fc.host, identityOf(cfg, fc));
  const groups = spreadGroups(cfg);
  if (groups.length)
    await etcd.txn(
      [],
      groups.map((g) => ({ del: spreadKey(g, cfg.name) })),
    );
  if (cfg.ha) await dropReplicaRecord(cfg.name);
}

/**
 * Forget a guest's replica in the fleet, if this host made it (an old copy deleted on a host
 * that lost the guest in a failover leaves the new owner's alone): its record becomes a
 * tombstone naming no host, for two minutes (on a lease of its own), so that the standby drops
 * its replica at its next look, and no leader fails the guest over.
 */
export async function dropReplicaRecord(name: string): Promise<void> {
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd) return;
  const kv = await etcd.get(replicaKey(name));
  if (!kv || (JSON.parse(kv.value) as { from: string }).from !== fc.host) return;
  const lease = await etcd.grant(120);
  const tomb = {
    guest: name,
    host: '',
    from: fc.host,
    asOf: new Date().toISOString(),
    round: '',
    running: false,
    bytes: 0,
  };
  await etcd.txn(
    [{ key: replicaKey(name), value: kv.value }],
    [{ put: replicaKey(name), value: JSON.stringify(tomb), lease }],
  );
}

/** Set by jaulad's fleet agent (core/fleet.ts): true while this host has fenced itself. */
let fencedHere: () => boolean = () => false;
export function setFencedHere(fn: () => boolean): void {
  fencedHere = fn;
}

async function ownerAndHost(
  etcd: Etcd,
  name: string,
  host: string,
): Promise<[OwnerRecord | undefined, HostRecord | undefined]> {
  const r = await etcd.txn([], [{ get: nameKey(name) }, { get: hostKey(host) }]);
  const [o, h] = r.found.map((kvs) => kvs[0]?.value);
  return [o ? (JSON.parse(o) as OwnerRecord) : undefined, h ? (JSON.parse(h) as HostRecord) : undefined];
}

/**
 * Refuse to start a guest this host does not own, or while this host is not up in the fleet
 * (its lease gone, fenced, or etcd without quorum). Nothing outside a fleet.
 */
export async function mayStartInFleet(name: string): Promise<void> {
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd) return;
  // The lease may still stand in etcd while this host, its renewals unanswered, has stopped
  // its guests: it starts none until it has rejoined.
  if (fencedHere())
    throw new JaulaError(
      'state',
      `Cannot start guest "${name}": this host ("${fc.host}") has fenced itself (etcd did not renew its lease in time) and starts no guest until it has rejoined (see "jaula fleet status")`,
    );
  let owner: OwnerRecord | undefined;
  let me: HostRecord | undefined;
  try {
    [owner, me] = await ownerAndHost(etcd, name, fc.host);
  } catch (e) {
    throw new JaulaError(
      'state',
      `Cannot start guest "${name}": the fleet's etcd does not answer, so this host cannot know that it still owns it (${(e as Error).message})`,
    );
  }
  if (!me || me.state !== 'up')
    throw new JaulaError(
      'state',
      `Cannot start guest "${name}": this host ("${fc.host}") is ${me ? me.state : 'not up'} in the fleet (its jaulad holds its lease: start it with "jaula daemon", and see "jaula fleet hosts")`,
    );
  if (owner && owner.host !== fc.host)
    throw new JaulaError(
      'state',
      `Cannot start guest "${name}" here: the fleet gave it to host "${owner.host}" (run it there, or see "jaula list --fleet")`,
      { details: { owner: owner.host } },
    );
}

/** Refuse what the fleet cannot follow yet (a rename: its reservations would stay on the old name). */
export function refuseInFleet(what: string): void {
  const fc = readFleetConfig();
  if (fc)
    throw new JaulaError(
      'unsupported',
      `Cannot ${what}: this host is in a fleet ("${fc.host}"), and a rename does not move the name's reservation in etcd yet (clone it under the new name, then delete it)`,
    );
}
