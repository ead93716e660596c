/**
 * `jaula fleet drain`: every guest of this host moved to the fleet's other hosts, one after
 * the other, each by a move of its own (migrate/source.ts: the guest stays here when its move
 * fails, and the drain goes on with the next). A target is a host that is up in the fleet and
 * that this host knows as a remote of the same name (`jaula remote add HOST URL`): of those,
 * the one that owns the fewest guests (their owner records in etcd, exact; counting those this
 * drain sent it), then the one with the most free memory (as last published). Its owner record in etcd follows each guest (the move's handover).
 */
import type { FleetDrainResult, FleetHost } from '../api/types.js';
import { JaulaError, messageOf } from '../common/errors.js';
import { readFleetConfig } from '../fleet/config.js';
import { fleetOwned, listFleetHosts } from './fleet.js';
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
  const load = new Map(targets.map((h) => [h.host, owned.get(h.host) ?? 0]));
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
