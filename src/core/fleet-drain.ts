/**
 * `jaula fleet drain` and `jaula fleet balance`. drain: every guest of this host moved to the fleet's other hosts, one after
 * the other, each by a move of its own (migrate/source.ts: the guest stays here when its move
 * fails, and the drain goes on with the next). A target is a host that is up in the fleet and
 * that this host knows as a remote of the same name (`jaula remote add HOST URL`): of those,
 * the one that owns the fewest guests (their owner records in etcd, exact; counting those this
 * drain sent it), then the one with the most free memory (as last published). Its owner record in etcd follows each guest (the move's handover).
 */
import type { FleetBalanceResult, FleetDrainResult, FleetHost } from '../api/types.js';
import { JaulaError, messageOf } from '../common/errors.js';
import { readFleetConfig } from '../fleet/config.js';
import { fleetOwned, listFleetGuests, listFleetHosts } from './fleet.js';
import { listGuests } from './guests.js';
import { listRemotes } from './migrate/remotes.js';
import { migrateGuest, type MoveMode } from './migrate/source.js';

/** The hosts this one can drain to, or why there are none. */
function targetsOf(hosts: FleetHost[], me: string, to: string[] | undefined): FleetHost[] {
  const remotes = new Set(listRemotes().map((r) => r.name));
  const up = hosts.filter((h) => h.host !== me && h.state === 'up' && (!to || to.includes(h.host)));
  const known = up.filter((h) => remotes.has(h.host));
  if (known.length) return known;
  const unknown = up.map((h) => h.host);
  throw new JaulaError(
    'state',
    unknown.length
      ? `No host to drain "${me}" to: the fleet's hosts ${unknown.map((h) => `"${h}"`).join(', ')} are not known here as remotes ("jaula remote add HOST https://ADDRESS:7443 --token FILE" with the host's fleet name)`
      : `No host to drain "${me}" to: no other host${to ? ` of ${to.join(', ')}` : ''} is up in the fleet (see "jaula fleet hosts")`,
  );
}

export async function drainHost(o: {
  mode: MoveMode;
  to?: string[];
  onProgress?: (line: string, fraction?: number) => void;
}): Promise<FleetDrainResult> {
  const fc = readFleetConfig();
  if (!fc) throw new JaulaError('state', 'This host is in no fleet: "jaula fleet join" first');
  const targets = targetsOf(await listFleetHosts(), fc.host, o.to);
  const owned = await fleetOwned();
  const load = new Map(targets.map((h) => [h.host, owned.get(h.host)?.length ?? 0]));
  const guests = listGuests().filter((g) => g.status !== 'broken');
  const out: FleetDrainResult = { host: fc.host, moved: [], failed: [] };
  for (const [i, g] of guests.entries()) {
    const t = [...targets].sort(
      (a, b) => (load.get(a.host) ?? 0) - (load.get(b.host) ?? 0) || b.memoryFreeBytes - a.memoryFreeBytes,
    )[0] as FleetHost;
    const say = (line: string): void => o.onProgress?.(`${g.name} -> ${t.host}: ${line}`, i / guests.length);
    say(`moving (${i + 1} of ${guests.length})`);
    try {
      const r = await migrateGuest(g.name, t.host, { mode: o.mode, onProgress: say });
      load.set(t.host, (load.get(t.host) ?? 0) + 1);
      out.moved.push({ guest: g.name, to: t.host, state: r.state, downtimeMs: r.downtimeMs });
    } catch (e) {
      out.failed.push({ guest: g.name, to: t.host, error: messageOf(e) });
    }
  }
  return out;
}

/** A move of `jaula fleet balance`. */
interface Planned {
  guest: string;
  from: string;
  to: string;
}

/**
 * The moves that take this host down to its share: while it owns two guests more than the up
 * host owning the fewest, one of its guests goes there (stopped guests first: they move
 * without downtime). Only this host's guests: a host moves only what it owns (over TCP no
 * jaulad moves guests, by design), so the fleet is evened out by balancing its loaded hosts.
 */
function balancePlan(
  me: string,
  hosts: FleetHost[],
  owned: Map<string, string[]>,
  running: Set<string>,
): Planned[] {
  const load = new Map(hosts.map((h) => [h.host, [...(owned.get(h.host) ?? [])]]));
  const mine = load.get(me) ?? [];
  const plan: Planned[] = [];
  for (;;) {
    const lo = [...load]
      .filter(([h]) => h !== me)
      .sort((a, b) => a[1].length - b[1].length || a[0].localeCompare(b[0]))[0];
    const hi: [string, string[]] = [me, mine];
    if (!lo || hi[1].length - lo[1].length <= 1) return plan;
    const pick = [...hi[1]].sort(
      (a, b) => Number(running.has(a)) - Number(running.has(b)) || a.localeCompare(b),
    )[0] as string;
    hi[1].splice(hi[1].indexOf(pick), 1);
    lo[1].push(pick);
    plan.push({ guest: pick, from: hi[0], to: lo[0] });
  }
}

/** `jaula fleet balance`: this host down to its share of the fleet's guests (a dry run: the plan only). */
export async function balanceFleet(o: {
  mode: MoveMode;
  dryRun?: boolean;
  onProgress?: (line: string, fraction?: number) => void;
}): Promise<FleetBalanceResult> {
  const fc = readFleetConfig();
  if (!fc) throw new JaulaError('state', 'This host is in no fleet: "jaula fleet join" first');
  const remotes = new Map(listRemotes().map((r) => [r.name, r]));
  const hosts = (await listFleetHosts()).filter(
    (h) => h.state === 'up' && (h.host === fc.host || remotes.has(h.host)),
  );
  const running = new Set((await listFleetGuests()).filter((g) => g.state === 'running').map((g) => g.name));
  const plan = balancePlan(fc.host, hosts, await fleetOwned(), running);
  const out: FleetBalanceResult = { planned: plan, moved: [], failed: [] };
  if (o.dryRun) return out;
  for (const [i, m] of plan.entries()) {
    const say = (line: string): void =>
      o.onProgress?.(`${m.guest} ${m.from} -> ${m.to}: ${line}`, i / plan.length);
    say(`moving (${i + 1} of ${plan.length})`);
    try {
      const r = await migrateGuest(m.guest, m.to, { mode: o.mode, onProgress: say });
      out.moved.push({ ...m, state: r.state, downtimeMs: r.downtimeMs });
    } catch (e) {
      out.failed.push({ ...m, error: messageOf(e) });
    }
  }
  return out;
}
