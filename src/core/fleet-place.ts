/**
 * Placement (`jaula build NAME --host auto|HOST|KEY=VALUE`): which host of the fleet a new guest
 * is built on, and the build itself run there, as a job of that host's jaulad followed from
 * here (its progress relayed, its result or error returned as this host's).
 *
 *   HOST        that host (up in the fleet)
 *   KEY=VALUE   among the up hosts with that label, as auto
 *   auto        among the up hosts: the one that owns the fewest guests (their owner records in
 *               etcd, exact), then the one with the most free memory (as last published)
 *
 * Among those, only the hosts that can take the guest (`Needs`): that have its stored template
 * and its jaula networks (as they last published them), and that hold no guest of its spread
 * groups (anti-affinity: two guests marked `spread.GROUP`, `jaula build --spread GROUP`, never
 * on one host; from the guests' published records, which lag a renewal). Another host must be
 * known here as a remote of its fleet name (jaula remote add).
 */
import type { FleetHost, Job } from '../api/types.js';
import { fromErrorInfo } from '../api/errors.js';
import { JaulaError, messageOf } from '../common/errors.js';
import { readFleetConfig } from '../fleet/config.js';
import { fleetOwned, fleetSpread, listFleetGuests, listFleetHosts } from './fleet.js';
import { peerOf, peerRequest, type PeerTarget } from './migrate/peer.js';
import { listRemotes } from './migrate/remotes.js';

/** What a new guest needs of its host. */
export interface Needs {
  /** A stored template's name (a build from it). */
  template?: string;
  /** The jaula networks its interfaces name. */
  networks: string[];
  /** Its spread groups (marks spread.GROUP). */
  spread: string[];
}

/** What a build request needs of its host. */
export function needsOf(r: {
  method: string;
  methodArgs?: string[];
  interfaces?: string[];
  marks?: string[];
}): Needs {
  const a = r.methodArgs ?? [];
  const t = r.method === 'template' && a[0] === '-t' ? a[1] : undefined;
  const networks = (r.interfaces ?? []).flatMap((spec) => {
    // [name=][dev:]ip/prefix|auto[,options]: the dev, when one is given
    const m = /^(?:[^=,:]+=)?([^=,:/]+):/.exec(spec);
    return m?.[1] ? [m[1]] : [];
  });
  return {
    ...(t && !t.includes('/') && !t.includes('.tar') ? { template: t } : {}),
    networks,
    spread: (r.marks ?? []).filter((m) => m.startsWith('spread.')).map((m) => m.slice(7)),
  };
}

/** Why each host cannot take the guest (none: it can). */
async function unfit(pool: FleetHost[], needs: Needs): Promise<Map<string, string>> {
  const why = new Map<string, string>();
  const everyNet = new Set(pool.flatMap((h) => h.networks ?? []));
  const spreadHolders = new Map<string, string>();
  const hold = (host: string, guest: string, group: string): void =>
    void (spreadHolders.has(host) || spreadHolders.set(host, `holds ${guest} (spread group ${group})`));
  if (needs.spread.length) {
    // The groups' members as reserved (exact: owner records), and as published (marks set later).
    const owned = await fleetOwned();
    const ownerOf = new Map([...owned].flatMap(([h, gs]) => gs.map((g) => [g, h] as const)));
    for (const s of needs.spread)
      for (const g of await fleetSpread(s)) {
        const h = ownerOf.get(g);
        if (h) hold(h, g, s);
      }
    for (const g of await listFleetGuests())
      for (const s of needs.spread) if (g.marks.includes(`spread.${s}`)) hold(g.host, g.name, s);
  }
  for (const h of pool) {
    const lacksNet = needs.networks.find((n) => everyNet.has(n) && h.networks && !h.networks.includes(n));
    const reason =
      needs.template && h.templates && !h.templates.includes(needs.template)
        ? `has no template "${needs.template}"`
        : lacksNet
          ? `has no network "${lacksNet}"`
          : spreadHolders.get(h.host);
    if (reason) why.set(h.host, reason);
  }
  return why;
}

/** The host a guest goes to for `want`, and its remote (undefined: this host). */
export async function placeGuest(
  want: string,
  needs: Needs = { networks: [], spread: [] },
): Promise<{ host: string; peer: PeerTarget | undefined }> {
  const fc = readFleetConfig();
  if (!fc)
    throw new JaulaError('state', `--host ${want}: this host is in no fleet ("jaula fleet join" first)`);
  const up = (await listFleetHosts()).filter((h) => h.state === 'up');
  let pool: FleetHost[];
  if (want === 'auto') pool = up;
  else if (want.includes('=')) {
    const [k, v] = [want.slice(0, want.indexOf('=')), want.slice(want.indexOf('=') + 1)];
    pool = up.filter((h) => h.labels[k] === v);
    if (!pool.length)
      throw new JaulaError(
        'not_found',
        `No host of the fleet that is up has the label ${want} (see "jaula fleet hosts")`,
      );
  } else {
    pool = up.filter((h) => h.host === want);
    if (!pool.length)
      throw new JaulaError('not_found', `No host "${want}" is up in the fleet (see "jaula fleet hosts")`);
  }
  if (!pool.length) throw new JaulaError('state', 'No host of the fleet is up (see "jaula fleet hosts")');
  const why = await unfit(pool, needs);
  if (why.size === pool.length)
    throw new JaulaError(
      'state',
      `No host can take the guest: ${[...why].map(([h, w]) => `${h} ${w}`).join('; ')}`,
    );
  pool = pool.filter((h) => !why.has(h.host));
  const owned = await fleetOwned();
  const best = [...pool].sort(
    (a, b) =>
      (owned.get(a.host)?.length ?? 0) - (owned.get(b.host)?.length ?? 0) ||
      b.memoryFreeBytes - a.memoryFreeBytes,
  )[0] as FleetHost;
  if (best.host === fc.host) return { host: best.host, peer: undefined };
  const r = listRemotes().find((x) => x.name === best.host);
  if (!r)
    throw new JaulaError(
      'not_found',
      `The guest would go to host "${best.host}", which this host does not know as a remote: "jaula remote add ${best.host} https://ADDRESS:7443 --token FILE"`,
    );
  return { host: best.host, peer: peerOf(r) };
}

/** Run a job on another jaulad (POST `path` with `body`), follow it to its end, relay its progress: its result. */
export async function remoteJob<T>(
  peer: PeerTarget,
  path: string,
  body: unknown,
  onProgress?: (line: string, fraction?: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  const job = await peerRequest<Job>(peer, 'POST', path, { json: body });
  let seen = 0;
  for (;;) {
    if (signal?.aborted) {
      // (cancelled here: cancelled there too)
      await peerRequest(peer, 'DELETE', `/v1/jobs/${job.id}`).catch(() => {});
      throw new JaulaError('runtime', `Cancelled; the job on host "${peer.name}" was asked to stop`);
    }
    const s = await peerRequest<Job>(peer, 'GET', `/v1/jobs/${job.id}`).catch((e: unknown) => {
      throw new JaulaError(
        'runtime',
        `Lost the job on host "${peer.name}" (${messageOf(e)}): see there whether it finished ("jaula list" on that host)`,
      );
    });
    for (const line of s.progress.slice(seen)) onProgress?.(`[${peer.name}] ${line}`, s.fraction);
    seen = Math.max(seen, s.progress.length);
    if (s.state === 'succeeded') return s.result as T;
    if (s.state !== 'running') {
      const e = fromErrorInfo(s.error, 'runtime', `The job on "${peer.name}" ${s.state}`);
      throw new JaulaError(e.code, `On host "${peer.name}": ${e.message}`, { details: e.details ?? {} });
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}
