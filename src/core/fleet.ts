/**
 * This host in a fleet of hosts on etcd: joining (jaula fleet init|join), leaving, the fleet's
 * hosts and guests, and the agent that holds the host's lease in jaulad (fleet/agent.ts) with
 * what it needs from core: the host's capacity, its guests, and fencing (stopping them all).
 * Without jaulad, a join is written down and checked against etcd; the lease is jaulad's.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { FleetGuest, FleetHost, FleetJoinRequest, FleetStatus } from '../api/types.js';
import { JaulaError } from '../common/errors.js';
import { FleetAgent } from '../fleet/agent.js';
import {
  DEFAULT_TTL,
  fleetEtcd,
  readFleetConfig,
  removeFleetConfig,
  writeFleetConfig,
  type FleetConfig,
} from '../fleet/config.js';
import { Etcd } from '../fleet/etcd.js';
import { FLEET_KEY, HOST_RE, hostKey, NAMES, SPREAD, type OwnerRecord } from '../fleet/keys.js';
import {
  fleetGuests,
  fleetHosts,
  ownedPerHost,
  type GuestRecord,
  type HostRecord,
} from '../fleet/records.js';
import { tryReserve } from '../fleet/reserve.js';
import { paths } from '../os/paths.js';
import { criuMissing, criuPath } from '../runtime/driver.js';
import { loadConfig } from '../guest/store.js';
import { identityOf, setFencedHere } from './fleet-guard.js';
import { heartbeat } from './ha/watch.js';
import { listNetworks } from '../network/networks.js';
import { listGuests } from './guests.js';
import { listTemplates } from './templates.js';

let agent: FleetAgent | undefined;
let haLoop: import('./ha/loop.js').HaLoop | undefined;
let agentLog: (line: string) => void = () => {};
/** Set in jaulad: the process that holds the lease. */
let inDaemon = false;

function statusOf(fc: FleetConfig | undefined, extra: Partial<FleetStatus> = {}): FleetStatus {
  if (!fc) return { state: 'none', endpoints: [], labels: {}, networks: [] };
  const state = agent ? (agent.state === 'stopped' ? 'configured' : agent.state) : 'configured';
  return {
    state,
    host: fc.host,
    endpoints: fc.endpoints,
    ttl: fc.ttl,
    labels: fc.labels,
    networks: fc.networks,
    ...extra,
  };
}

export function fleetStatus(): Promise<FleetStatus> {
  return Promise.resolve(statusOf(readFleetConfig()));
}

function requireFleet(): { fc: FleetConfig; etcd: Etcd } {
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd)
    throw new JaulaError(
      'state',
      'This host is in no fleet: "jaula fleet init --endpoints URL" makes one, "jaula fleet join --endpoints URL" joins one',
    );
  return { fc, etcd };
}

/**
 * The live-migration line of a host record: whether live moves are possible here (runc, and
 * jaula's CRIU: the quick half of jaula doctor's check, without running "criu check").
 */
function liveMigration(): string {
  const why = criuMissing();
  return why ? `no: ${why}; cold and sync moves only` : `possible (runc, CRIU at ${criuPath()})`;
}

/** This host's capacity and guests, for its record. */
export function hostCapacity(): Omit<HostRecord, 'host' | 'state' | 'labels' | 'pid' | 'at' | 'address'> {
  const gs = listGuests();
  let diskFreeBytes = 0;
  try {
    const s = fs.statfsSync(fs.existsSync(paths().lib) ? paths().lib : paths().root);
    diskFreeBytes = s.bavail * s.bsize;
  } catch {
    /* unknown: 0 */
  }
  return {
    cpus: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    memoryFreeBytes: os.freemem(),
    diskFreeBytes,
    guests: gs.length,
    running: gs.filter((g) => g.status === 'running' || g.status === 'starting').length,
    liveMigration: liveMigration(),
    templates: listTemplates().map((t) => t.name),
    networks: listNetworks().map((n) => n.name),
  };
}

function guestRecords(): GuestRecord[] {
  return listGuests().map((g) => ({
    name: g.name,
    state: g.status,
    context: g.context,
    addresses: g.interfaces.flatMap((i) => {
      const a = i.split(':')[1]?.split(',')[0];
      return a ? [a] : [];
    }),
    marks: g.marks,
  }));
}

/** Fencing: stop (kill) every guest of this host that runs, at once. */
async function fenceGuests(): Promise<string[]> {
  const { stopGuest } = await import('./lifecycle.js');
  const running = listGuests().filter((g) => g.status !== 'stopped' && g.status !== 'broken');
  await Promise.all(running.map((g) => stopGuest(g.name, { kill: true }).catch(() => undefined)));
  return running.map((g) => g.name);
}

/**
 * At jaulad's start: guests running here that the fleet gave to another host meanwhile (an HA
 * failover while this jaulad was away, its watcher gone too) are killed before anything else.
 */
async function stopGivenAway(etcd: Etcd, fc: FleetConfig, log: (line: string) => void): Promise<void> {
  const running = listGuests().filter((g) => g.status === 'running' || g.status === 'starting');
  if (!running.length) return;
  const owners = new Map(
    (await etcd.list(NAMES)).map((kv) => [
      kv.key.slice(NAMES.length),
      (JSON.parse(kv.value) as OwnerRecord).host,
    ]),
  );
  const { stopGuest } = await import('./lifecycle.js');
  for (const g of running) {
    const owner = owners.get(g.name);
    if (!owner || owner === fc.host) continue;
    log(`fleet: "${g.name}" runs here, but the fleet gave it to host "${owner}": killed`);
    await stopGuest(g.name, { kill: true }).catch((e: unknown) =>
      log(`fleet: killing "${g.name}" failed: ${(e as Error).message}`),
    );
  }
}

/** Start holding this host's lease (jaulad, at its start and after a join). */
export async function startFleetAgent(log: (line: string) => void): Promise<FleetAgent | undefined> {
  agentLog = log;
  inDaemon = true;
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd || agent) return agent;
  agent = new FleetAgent(
    etcd,
    { host: fc.host, ttl: fc.ttl, labels: fc.labels, ...(fc.address ? { address: fc.address } : {}) },
    {
      hostRecord: () => Promise.resolve(hostCapacity()),
      guests: () => Promise.resolve(guestRecords()),
      fence: fenceGuests,
      rejoined: () => Promise.resolve(),
      renewed: (at) => heartbeat(at),
      log,
    },
  );
  setFencedHere(() => agent?.state === 'fenced');
  await stopGivenAway(etcd, fc, log).catch((e: unknown) => log(`fleet: ${(e as Error).message}`));
  await agent.start();
  const { HaLoop } = await import('./ha/loop.js');
  haLoop = new HaLoop(etcd, agent, fc.host, fc.ttl * 1000, log);
  haLoop.start();
  return agent;
}

/** jaulad stops: the lease is left to expire (guests keep running; a restart renews it). */
export async function stopFleetAgent(o: { leave?: boolean } = {}): Promise<void> {
  haLoop?.stop();
  haLoop = undefined;
  await agent?.stop(o);
  agent = undefined;
}

/** A guest of this host changed: its record is published at the next renewal. */
export function fleetTouch(): void {
  agent?.touch();
  haLoop?.touch();
}

/** Reserve this host's guests in the fleet (at a join): the names it got, and what it could not. */
async function claimGuests(etcd: Etcd, fc: FleetConfig): Promise<{ claimed: string[]; problems: string[] }> {
  const claimed: string[] = [];
  const problems: string[] = [];
  for (const g of listGuests()) {
    if (g.status === 'broken') continue;
    const owner = await etcd.get(`${NAMES}${g.name}`);
    if (owner && (JSON.parse(owner.value) as OwnerRecord).host === fc.host) continue;
    const c = await tryReserve(etcd, fc.host, identityOf(loadConfig(g.name), fc));
    if (c.length)
      problems.push(
        `guest "${g.name}": ${c.map((x) => `${x.what} ${x.value} is held by ${x.holder}`).join(', ')}`,
      );
    else claimed.push(g.name);
  }
  return { claimed, problems };
}

function newConfig(r: FleetJoinRequest, old: FleetConfig | undefined): FleetConfig {
  const endpoints = r.endpoints ?? old?.endpoints;
  if (!endpoints?.length)
    throw new JaulaError(
      'usage',
      'Give the etcd cluster: --endpoints http://ADDR:2379[,http://ADDR:2379...]',
    );
  for (const e of endpoints)
    if (!/^https?:\/\/[^/\s]+$/.test(e))
      throw new JaulaError(
        'usage',
        `"${e}" is not an etcd endpoint: give http://ADDR:PORT or https://ADDR:PORT`,
      );
  const host = r.host ?? old?.host ?? os.hostname();
  if (!HOST_RE.test(host))
    throw new JaulaError(
      'usage',
      `"${host}" is not a host name for the fleet: letters, digits, "-", "_", "."`,
    );
  return {
    endpoints,
    host,
    labels: r.labels ?? old?.labels ?? {},
    ttl: r.ttl ?? old?.ttl ?? DEFAULT_TTL,
    networks: r.networks ?? old?.networks ?? [],
    ...((r.address ?? old?.address) ? { address: (r.address ?? old?.address) as string } : {}),
  };
}

/** `jaula fleet init|join`: check the fleet, write the membership, reserve the guests, hold the lease. */
export async function joinFleet(r: FleetJoinRequest): Promise<FleetStatus> {
  const old = readFleetConfig();
  if (old && agent && agent.state !== 'stopped')
    throw new JaulaError(
      'state',
      `This host is already in the fleet as "${old.host}" ("jaula fleet leave" first)`,
    );
  const fc = newConfig(r, old);
  const etcd = new Etcd({ endpoints: fc.endpoints });
  const meta = JSON.stringify({ created: new Date().toISOString(), by: fc.host });
  if (r.create) await etcd.createIfAbsent(FLEET_KEY, meta);
  else if (!(await etcd.get(FLEET_KEY)))
    throw new JaulaError(
      'not_found',
      `There is no fleet at ${fc.endpoints.join(',')}: make it with "jaula fleet init --endpoints ${fc.endpoints.join(',')}"`,
    );
  const other = await etcd.get(hostKey(fc.host));
  if (other && (JSON.parse(other.value) as HostRecord).pid !== process.pid)
    throw new JaulaError(
      'exists',
      `A host named "${fc.host}" is up in the fleet already: give this one another name (--host NAME)`,
    );
  writeFleetConfig(fc);
  const { claimed, problems } = await claimGuests(etcd, fc);
  if (inDaemon) await startFleetAgent(agentLog);
  return statusOf(fc, { claimed, problems });
}

/** `jaula fleet leave`: refused while the host owns guests, unless forced (they stay reserved). */
export async function leaveFleet(force: boolean): Promise<FleetStatus> {
  const { fc, etcd } = requireFleet();
  const owned = (await etcd.list(NAMES)).filter(
    (kv) => (JSON.parse(kv.value) as OwnerRecord).host === fc.host,
  );
  if (owned.length && !force)
    throw new JaulaError(
      'state',
      `This host owns ${owned.length} guests of the fleet (${owned
        .slice(0, 5)
        .map((kv) => kv.key.slice(NAMES.length))
        .join(
          ', ',
        )}${owned.length > 5 ? ', ...' : ''}): delete or move them first, or leave anyway with --force (their names stay reserved to this host)`,
    );
  // Out of the fleet, nothing fails its guests over, and no replica here is kept up to date:
  // their records go (a forced leave keeps the names, not HA), and the replicas here.
  const { dropReplicaRecord } = await import('./fleet-guard.js');
  for (const kv of owned) await dropReplicaRecord(kv.key.slice(NAMES.length));
  const { dropReplica, replicasHere } = await import('./ha/standby.js');
  for (const r of replicasHere()) await dropReplica(r.name);
  await stopFleetAgent({ leave: true });
  await etcd.del(hostKey(fc.host));
  removeFleetConfig();
  return statusOf(undefined);
}

export async function listFleetHosts(): Promise<FleetHost[]> {
  return fleetHosts(requireFleet().etcd);
}

/** The guests each host of the fleet owns now. */
export async function fleetOwned(): Promise<Map<string, string[]>> {
  return ownedPerHost(requireFleet().etcd);
}

/** The guests of an anti-affinity group, as reserved. */
export async function fleetSpread(group: string): Promise<string[]> {
  const prefix = `${SPREAD}${group}/`;
  return (await requireFleet().etcd.list(prefix)).map((kv) => kv.key.slice(prefix.length));
}

export async function listFleetGuests(): Promise<FleetGuest[]> {
  return fleetGuests(requireFleet().etcd);
}

/** High availability: the leader, each HA guest's latest replica, the failovers. */
export async function fleetHa(): Promise<import('../api/types.js').FleetHa> {
  const { etcd } = requireFleet();
  const { leaderOf, listFailovers, listReplicas } = await import('../fleet/ha.js');
  const [leader, replicas, failovers] = await Promise.all([
    leaderOf(etcd),
    listReplicas(etcd),
    listFailovers(etcd),
  ]);
  return { ...(leader ? { leader } : {}), replicas, failovers };
}
