/**
 * High availability in jaulad, on a fleet host that is up (core/fleet.ts starts it with the
 * host's agent). Every half second:
 *   - the leader's orders to this host: promote those replicas (standby.ts);
 *   - the election (fleet/ha.ts: the leader key on this host's lease); the leader fails over
 *     the guests of hosts whose lease expired, to their replicas' hosts;
 *   - this host's HA guests whose round is due are replicated to their standby, one at a time
 *     (replicate.ts); a round that fails is tried again at the next interval.
 * Every ten seconds, replicas here that are no longer their guest's latest are dropped.
 */
import { messageOf } from '../../common/errors.js';
import type { Etcd } from '../../fleet/etcd.js';
import {
  campaign,
  failOver,
  liveHosts,
  orderDone,
  ordersFor,
  putReplica,
  type FailoverRecord,
} from '../../fleet/ha.js';
import { GUESTS } from '../../fleet/keys.js';
import type { FleetAgent } from '../../fleet/agent.js';
import { ownedPerHost } from '../../fleet/records.js';
import { ownerOf } from '../../fleet/reserve.js';
import { withGuestLock } from '../../guest/locks.js';
import { loadAllConfigs, loadConfig } from '../../guest/store.js';
import { listRemotes } from '../migrate/remotes.js';
import { lastRound, removeHaState, replicateGuest, roundNeeded } from './replicate.js';
import { dropStaleReplicas, promoteReplica } from './standby.js';
import { ensureWatcher } from './watch.js';

const TICK_MS = 500;
/** How long the leader sees a host gone before it fails over its guests. */
const GRACE_MS = 1000;

export class HaLoop {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private replicating = false;
  leader = false;
  private lastLive = '';
  private lastScan = 0;
  private lastSweep = 0;
  /** Hosts this leader has seen live, and since when each is gone. */
  private seen = new Set<string>();
  private goneSince = new Map<string, number>();
  /** When each HA guest's next round is due (ms since the epoch). */
  private due = new Map<string, number>();
  private haGuests: { name: string; standby: string; interval: number }[] = [];
  private lastConfigs = 0;

  constructor(
    readonly etcd: Etcd,
    readonly agent: FleetAgent,
    readonly host: string,
    readonly ttlMs: number,
    readonly log: (line: string) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.leader = false;
  }

  private async tick(): Promise<void> {
    if (this.busy || this.agent.state !== 'up' || !this.agent.lease) return;
    this.busy = true;
    try {
      for (const f of await ordersFor(this.etcd, this.host)) await this.promote(f);
      // Every host follows which hosts are gone since when: a new leader (the old one lost)
      // knows as much as it did.
      const live = await liveHosts(this.etcd);
      for (const h of live) this.goneSince.delete(h);
      for (const h of this.seen)
        if (!live.has(h) && !this.goneSince.has(h)) this.goneSince.set(h, Date.now());
      for (const h of live) this.seen.add(h);
      const was = this.leader;
      this.leader = await campaign(this.etcd, this.host, this.agent.lease);
      if (this.leader && !was) this.log(`ha: this host leads the fleet's failovers`);
      if (this.leader) await this.lead(live);
      if (Date.now() - this.lastSweep > 10_000) {
        this.lastSweep = Date.now();
        await dropStaleReplicas(this.log);
      }
      if (this.haList().length) ensureWatcher(this.ttlMs);
      if (!this.replicating) void this.replicateDue();
    } catch (e) {
      this.log(`ha: ${messageOf(e)}`);
    } finally {
      this.busy = false;
    }
  }

  private async promote(f: FailoverRecord): Promise<void> {
    let outcome: string;
    try {
      outcome = await promoteReplica(f);
      this.log(`ha: "${f.guest}" ${outcome}`);
    } catch (e) {
      outcome = `failed: ${messageOf(e)}`;
      this.log(`ha: taking over "${f.guest}" from "${f.from}" failed: ${messageOf(e)}`);
    }
    await orderDone(this.etcd, f, outcome);
    this.due.delete(f.guest); // (its next round, to a new standby, soon)
    this.lastConfigs = 0;
  }

  /**
   * The leader: fail over the guests of hosts gone, once this leader has seen them gone for
   * GRACE_MS (the lost host's fencing has that much more time to finish: its watcher kills
   * its HA guests before its lease can expire, and this is the margin for a slow kill).
   * Scanned when the live hosts change, else every 5 s.
   */
  private async lead(live: Set<string>): Promise<void> {
    const settling = [...this.goneSince.values()].some((t) => Date.now() - t < GRACE_MS + TICK_MS);
    const key = [...live].sort().join(',');
    if (key === this.lastLive && !settling && Date.now() - this.lastScan < 5000) return;
    this.lastLive = key;
    this.lastScan = Date.now();
    // (a host this leader never saw alive is settled: it was gone before this leader began)
    const settled = (h: string): boolean => Date.now() - (this.goneSince.get(h) ?? 0) >= GRACE_MS;
    for (const f of await failOver(this.etcd, this.host, live, this.ttlMs, settled))
      this.log(
        `ha: host "${f.from}" is lost: "${f.guest}" goes to "${f.to}", from its replica of ${f.asOf} (writes lost: ${(f.lostMs.atLeast / 1000).toFixed(1)}-${(f.lostMs.atMost / 1000).toFixed(1)} s)`,
      );
  }

  /** This host's HA guests (their configs read at most every 5 s). */
  private haList(): { name: string; standby: string; interval: number }[] {
    if (Date.now() - this.lastConfigs > 5000) {
      this.lastConfigs = Date.now();
      this.haGuests = loadAllConfigs().flatMap((c) =>
        c.ha ? [{ name: c.name, standby: c.ha.standby, interval: c.ha.interval }] : [],
      );
    }
    return this.haGuests;
  }

  /** A guest config changed (its HA keys, maybe): read them at the next tick. */
  touch(): void {
    this.lastConfigs = 0;
  }

  private async replicateDue(): Promise<void> {
    this.replicating = true;
    try {
      for (const g of this.haList()) {
        const last = lastRound(g.name);
        const due = this.due.get(g.name) ?? (last ? Date.parse(last.asOf) + g.interval * 1000 : 0);
        if (Date.now() < due || this.agent.state !== 'up') continue;
        this.due.set(g.name, Date.now() + g.interval * 1000);
        try {
          // (a guest the fleet gave to another host is an old copy here: not replicated)
          if ((await ownerOf(this.etcd, g.name))?.host !== this.host) continue;
          if (!loadConfig(g.name).ha) continue; // (turned off since the list was read)
          const standby = await this.standbyFor(g.name, g.standby, last?.standby);
          if (!roundNeeded(g.name, standby)) continue; // (stopped, unchanged: its replica is whole)
          const r = await replicateGuest(g.name, standby);
          // Published under the guest's lock, if it is still HA: turning HA off takes that lock
          // too, so a round under way then never revives the record it has just retired.
          const kept = await withGuestLock(g.name, async () => {
            if (!loadConfig(g.name).ha) {
              removeHaState(g.name);
              return false;
            }
            await putReplica(this.etcd, {
              guest: g.name,
              host: standby,
              from: this.host,
              asOf: r.asOf,
              round: r.round,
              running: r.running,
              bytes: r.bytes,
            });
            return true;
          });
          if (!kept) continue;
          this.log(
            `ha: "${g.name}" replicated to "${standby}" (${r.full ? 'whole' : 'changes'}, ${r.bytes} bytes, ${r.ms} ms, frozen ${r.frozenMs} ms)`,
          );
        } catch (e) {
          this.log(`ha: replicating "${g.name}" failed: ${messageOf(e)}`);
        }
      }
    } finally {
      this.replicating = false;
    }
  }

  /**
   * The standby: the one named, else (auto) the last one while it is up, else among this host's
   * remotes the up host that holds no old copy of it, then that owns the fewest guests.
   */
  private async standbyFor(name: string, choice: string, last: string | undefined): Promise<string> {
    if (choice !== 'auto' && choice !== this.host) return choice;
    const live = await liveHosts(this.etcd);
    const remotes = new Set(listRemotes().map((r) => r.name));
    const ok = (h: string): boolean => h !== this.host && live.has(h) && remotes.has(h);
    if (last && ok(last)) return last;
    const owned = await ownedPerHost(this.etcd);
    // (hosts holding an old copy of it last: that copy becomes the replica, made afresh)
    const holders = new Set(
      (await this.etcd.list(GUESTS, { serializable: true }))
        .filter((kv) => kv.key.endsWith(`/${name}`))
        .map((kv) => kv.key.slice(GUESTS.length).split('/')[0]),
    );
    const pick = [...live]
      .filter(ok)
      .sort(
        (a, b) =>
          Number(holders.has(a)) - Number(holders.has(b)) ||
          (owned.get(a)?.length ?? 0) - (owned.get(b)?.length ?? 0) ||
          a.localeCompare(b),
      )[0];
    if (!pick)
      throw new Error(
        `no standby for "${name}": no other up host of the fleet is a remote of this one ("jaula remote add HOST ..." under its fleet name)`,
      );
    return pick;
  }
}
