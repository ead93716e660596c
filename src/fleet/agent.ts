/**
 * The host's presence in the fleet, held by jaulad: an etcd lease of `ttl` seconds, renewed
 * every third of it, with the host's record and its guests' records attached.
 *
 * Fencing: etcd lets a lease expire TTL seconds after the last renewal it received, and a
 * renewal is received after it was sent. So when no renewal *sent* in the last TTL minus a
 * margin has been answered, the lease may be gone at any moment and another host may be given
 * this host's guests (migration, HA): the agent fences first, stopping its own running guests
 * (the `fence` hook), and says so. It then keeps asking etcd for a new lease; once it has one
 * it rejoins (record published again, `rejoined` hook), unfenced.
 */
import type { Etcd } from './etcd.js';
import { publishGuests, publishHost, type GuestRecord, type HostRecord } from './records.js';

export interface AgentHooks {
  /** This host's record now (capacity, guests), without the fleet's fields. */
  hostRecord(): Promise<Omit<HostRecord, 'host' | 'state' | 'labels' | 'pid' | 'at' | 'address'>>;
  guests(): Promise<GuestRecord[]>;
  /** Stop every running guest of this host: the lease may be gone. Returns their names. */
  fence(): Promise<string[]>;
  rejoined(): Promise<void>;
  /** A renewal sent `agoMs` ago was answered (core/ha/watch.ts's heartbeat). */
  renewed?(agoMs: number): void;
  log(line: string): void;
}

export type AgentState = 'joining' | 'up' | 'fenced' | 'stopped';

export class FleetAgent {
  state: AgentState = 'joining';
  lease: string | undefined;
  /** When the last renewal that etcd answered was sent (performance.now()). */
  private lastOk = 0;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private published = new Map<string, string>();
  private dirty = true;
  private busy = false;
  private lastPublish = 0;

  constructor(
    readonly etcd: Etcd,
    readonly o: { host: string; ttl: number; labels: Record<string, string>; address?: string },
    readonly hooks: AgentHooks,
  ) {}

  /** Join (or rejoin) now, then keep the lease; resolves after the first attempt. */
  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), (this.o.ttl * 1000) / 3);
    this.watchdog = setInterval(() => void this.check(), 200);
    this.timer.unref();
    this.watchdog.unref();
  }

  /** A guest changed: publish soon (at the next renewal). */
  touch(): void {
    this.dirty = true;
  }

  private async record(state: HostRecord['state']): Promise<HostRecord> {
    return {
      host: this.o.host,
      ...(this.o.address ? { address: this.o.address } : {}),
      state,
      labels: this.o.labels,
      ...(await this.hooks.hostRecord()),
      pid: process.pid,
      at: new Date().toISOString(),
    };
  }

  private async join(): Promise<void> {
    const sent = performance.now();
    const lease = await this.etcd.grant(this.o.ttl);
    this.lease = lease;
    this.ok(sent);
    await publishHost(this.etcd, lease, await this.record('up'));
    this.published = await publishGuests(this.etcd, this.o.host, lease, await this.hooks.guests());
    this.lastPublish = performance.now();
    this.dirty = false;
    const was = this.state;
    this.state = 'up';
    if (was === 'fenced') {
      this.hooks.log(`fleet: rejoined with a new lease (${lease})`);
      await this.hooks.rejoined();
    } else this.hooks.log(`fleet: joined as "${this.o.host}" (lease ${lease}, TTL ${this.o.ttl} s)`);
  }

  /** Renew (or get) the lease, and publish what changed. */
  private async tick(): Promise<void> {
    if (this.busy || this.state === 'stopped') return;
    this.busy = true;
    try {
      if (!this.lease) return await this.join();
      const sent = performance.now();
      const ttl = await this.etcd.keepAlive(this.lease, (this.o.ttl * 1000) / 3);
      if (ttl <= 0) {
        await this.fence('its lease expired');
        this.lease = undefined;
        return await this.join();
      }
      this.ok(sent);
      if (this.dirty || performance.now() - this.lastPublish > 10_000) {
        this.dirty = false;
        this.lastPublish = performance.now();
        await publishHost(this.etcd, this.lease, await this.record('up'));
        this.published = await publishGuests(
          this.etcd,
          this.o.host,
          this.lease,
          await this.hooks.guests(),
          this.published,
        );
      }
    } catch (e) {
      if (/lease not found/.test((e as Error).message)) {
        await this.fence('its lease expired');
        this.lease = undefined;
      }
      // else: etcd unreachable; the watchdog fences when it is too late.
    } finally {
      this.busy = false;
    }
  }

  private ok(sent: number): void {
    this.lastOk = sent;
    this.hooks.renewed?.(performance.now() - sent);
  }

  /** Fence when the lease may have expired without our knowing. */
  private async check(): Promise<void> {
    if (this.state !== 'up') return;
    const margin = Math.min(1000, (this.o.ttl * 1000) / 4);
    if (performance.now() - this.lastOk > this.o.ttl * 1000 - margin)
      await this.fence(
        `etcd has not renewed its lease for ${Math.round(performance.now() - this.lastOk)} ms`,
      );
  }

  private async fence(why: string): Promise<void> {
    if (this.state === 'fenced' || this.state === 'stopped') return;
    this.state = 'fenced';
    this.hooks.log(
      `fleet: FENCED: ${why}; stopping this host's guests so that no other host's copy runs with them`,
    );
    const stopped = await this.hooks.fence().catch((e: unknown) => {
      this.hooks.log(`fleet: fencing failed: ${(e as Error).message}`);
      return [];
    });
    this.hooks.log(
      `fleet: fenced: stopped ${stopped.length ? stopped.join(', ') : 'no guest'}; waiting for etcd`,
    );
    // A new lease comes from the next tick.
    this.lease = undefined;
    this.published = new Map();
  }

  /** Stop holding the lease; with `leave`, give it back (the host's records go at once). */
  async stop(o: { leave?: boolean } = {}): Promise<void> {
    this.state = 'stopped';
    clearInterval(this.timer);
    clearInterval(this.watchdog);
    if (o.leave && this.lease) await this.etcd.revoke(this.lease).catch(() => {});
  }
}
