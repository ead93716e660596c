/**
 * The owner's side of high availability: one replication round of an HA guest to its standby
 * (core/ha/standby.ts takes it), over the move protocol with mode "replica".
 *
 * A round sends what changed since the last round this standby took (the whole guest the first
 * time, or when the standby lacks that round): a first pass while the guest runs, then, frozen,
 * what changed during it. The replica is thus of one moment (the freeze), like a snapshot: the
 * guest pauses only for that last pass. A stopped guest is sent in one pass. The round's
 * manifest is kept here (var/lib/jaula/ha/NAME.json) to find the next round's changes.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { serializeConfig, type GuestConfig } from '../../guest/config.js';
import { withGuestLock } from '../../guest/locks.js';
import { movingOf } from '../../guest/moving.js';
import { initAlive, readState } from '../../guest/state.js';
import { loadConfig } from '../../guest/store.js';
import { readFileOr, writeFileAtomic } from '../../os/fs.js';
import { paths } from '../../os/paths.js';
import { walkTree } from '../../os/walk.js';
import { storageDriver } from '../../storage/driver.js';
import { layout } from '../../storage/layout.js';
import { fleetHostName } from '../fleet-guard.js';
import { freezerOf } from '../migrate/freeze.js';
import { peerOf, peerRequest, type PeerTarget } from '../migrate/peer.js';
import { getRemote } from '../migrate/remotes.js';
import {
  deltaOf,
  manifestOf,
  pathList,
  sendTree,
  templateDigest,
  type Manifest,
} from '../migrate/transfer.js';

/** What this host keeps of an HA guest's last round. */
interface HaState {
  standby: string;
  round: string;
  asOf: string;
  manifest: [string, string][];
  /** A digest of the unified layer's manifest: when it changed (hashify), the round is whole. */
  unified?: string;
  /** The guest ran at the round's moment. */
  running?: boolean;
}

/**
 * Whether a round would send nothing new: the guest was stopped at the last round (to this
 * standby) and since, and its config has not changed after it.
 */
export function roundNeeded(name: string, standby: string): boolean {
  const prev = readHaState(name);
  if (!prev || prev.running !== false || prev.standby !== standby || initAlive(readState(name))) return true;
  const changed = fs.statSync(paths().guestConf(name), { throwIfNoEntry: false })?.mtimeMs ?? Infinity;
  const cfg = fs.statSync(paths().guestConfigFile(name), { throwIfNoEntry: false })?.mtimeMs ?? Infinity;
  return Math.max(changed, cfg) >= Date.parse(prev.asOf);
}

/** The unified layer's state in a word (its files move there from the guest's own by hashify). */
const unifiedDigest = (name: string): string =>
  createHash('sha256')
    .update(JSON.stringify([...manifestOf(layout.unifiedLayer(name))]))
    .digest('hex');

export interface RoundResult {
  guest: string;
  standby: string;
  round: string;
  asOf: string;
  running: boolean;
  full: boolean;
  bytes: number;
  /** How long the guest was frozen (0 for a stopped guest). */
  frozenMs: number;
  ms: number;
}

/** Where the last round's manifest is kept: present while the guest has a replica from here. */
export const haStateFile = (name: string): string => join(paths().lib, 'ha', `${name}.json`);

function readHaState(name: string): HaState | undefined {
  const t = readFileOr(haStateFile(name), undefined);
  try {
    return t === undefined ? undefined : (JSON.parse(t) as HaState);
  } catch {
    return undefined;
  }
}

export function removeHaState(name: string): void {
  fs.rmSync(haStateFile(name), { force: true });
}

/** HA turned off: the fleet forgets the replica (its standby drops it), then this host its state. */
export async function haOff(name: string): Promise<void> {
  const { dropReplicaRecord } = await import('../fleet-guard.js');
  await dropReplicaRecord(name);
  removeHaState(name);
}

/** The last round's standby and moment, if any. */
export function lastRound(name: string): { standby: string; asOf: string } | undefined {
  const s = readHaState(name);
  return s ? { standby: s.standby, asOf: s.asOf } : undefined;
}

interface Round {
  peer: PeerTarget;
  id: string;
  bytes: number;
}

async function send(
  r: Round,
  part: string,
  dir: string,
  o: Parameters<typeof sendTree>[4] = {},
): Promise<void> {
  r.bytes += await sendTree(r.peer, r.id, part, dir, o);
  await peerRequest(r.peer, 'POST', `/v1/peer/moves/${r.id}/apply`, { json: { part } });
}

async function sendDelta(r: Round, tree: string, before: Manifest, now: Manifest): Promise<void> {
  const { changed, deleted } = deltaOf(before, now);
  r.bytes += await sendTree(r.peer, r.id, 'deleted', tree, { raw: pathList(deleted) });
  r.bytes += await sendTree(r.peer, r.id, 'changed', tree, { raw: pathList(changed) });
  await send(r, 'delta', tree, { files: changed.length ? changed : ['.'] });
}

async function begin(
  r: Round,
  cfg: GuestConfig,
  running: boolean,
  base: string | undefined,
  tree: string,
): Promise<boolean> {
  const layers = cfg.storage.layers ?? [];
  const digests = await Promise.all(
    layers.map(async (name) => ({ name, digest: await templateDigest(name) })),
  );
  let bytes = 0;
  for (const e of walkTree(tree)) bytes += e.size;
  const a = await peerRequest<{ need: string[]; full?: boolean }>(r.peer, 'POST', '/v1/peer/moves', {
    json: {
      id: r.id,
      source: hostname(),
      config: serializeConfig(cfg),
      running,
      mode: 'replica',
      ...(base ? { base } : {}),
      fleetHost: fleetHostName(),
      bytes,
      layers: digests,
    },
  });
  for (const d of digests.filter((x) => a.need.includes(x.digest)))
    await send(r, `layer-${d.digest}`, layout.templateDir(d.name), { exclude: ['digest.sha256'] });
  return a.full !== false;
}

/**
 * The last pass of a running guest's round, frozen, under its lock (taken by the caller): no
 * snapshot freezes it meanwhile (a thaw here would end that one's freeze), no move has begun,
 * and it still runs.
 */
async function lastPass(
  name: string,
  r: Round,
  tree: string,
  first: Manifest,
): Promise<{ asOf: string; manifest: Manifest; frozenMs: number }> {
  if (movingOf(name)) throw new JaulaError('state', `Guest "${name}" is being moved: round given up`);
  const st = readState(name);
  if (!initAlive(st)) throw new JaulaError('state', `Guest "${name}" stopped during the round`);
  const fz = freezerOf(name, st);
  const tf = performance.now();
  await fz.freeze();
  try {
    const asOf = new Date().toISOString();
    const manifest = manifestOf(tree);
    await sendDelta(r, tree, first, manifest);
    return { asOf, manifest, frozenMs: Math.round(performance.now() - tf) };
  } finally {
    fz.thaw();
  }
}

/**
 * One round of `name` to `standby` (a remote of this host, named as the fleet names it). A
 * stopped guest's round holds its lock (nothing starts it meanwhile).
 */
export async function replicateGuest(name: string, standby: string): Promise<RoundResult> {
  if (initAlive(readState(name))) return round(name, standby, false);
  // (it may have started by the time the lock is ours: then it is a running guest's round)
  return withGuestLock(name, () => round(name, standby, true));
}

async function round(name: string, standby: string, locked: boolean): Promise<RoundResult> {
  const t0 = performance.now();
  const cfg = loadConfig(name);
  if (movingOf(name)) throw new JaulaError('state', `Guest "${name}" is being moved: no replica round now`);
  const driver = await storageDriver(cfg.storage.driver);
  const prev = readHaState(name);
  const r: Round = {
    peer: peerOf(getRemote(standby)),
    id: `${Date.now().toString(36)}${randomBytes(6).toString('hex')}`,
    bytes: 0,
  };
  const st = readState(name);
  const running = initAlive(st);
  if (!running) await driver.mount(cfg);
  const tree = driver.treePath(name);
  const unified = unifiedDigest(name);
  const base = prev?.standby === standby && prev.unified === unified ? prev.round : undefined;
  let last = { asOf: '', manifest: new Map() as Manifest, frozenMs: 0 };
  let full: boolean;
  try {
    full = await begin(r, cfg, running, base, tree);
    await send(r, 'conf', paths().guestConf(name), {
      exclude: ['config.toml', '.moving', '.building', '.replica'],
    });
    const first = manifestOf(tree);
    if (full) {
      await send(r, 'own', tree);
      if (walkTree(layout.unifiedLayer(name)).length > 1) await send(r, 'unified', layout.unifiedLayer(name));
    } else await sendDelta(r, tree, new Map(prev?.manifest), first);
    last = !running
      ? { asOf: new Date().toISOString(), manifest: first, frozenMs: 0 }
      : locked
        ? await lastPass(name, r, tree, first)
        : await withGuestLock(name, () => lastPass(name, r, tree, first));
    await peerRequest(r.peer, 'POST', `/v1/peer/moves/${r.id}/replica`, { json: { asOf: last.asOf } });
  } catch (e) {
    await peerRequest(r.peer, 'DELETE', `/v1/peer/moves/${r.id}`, {
      json: { why: 'the round failed' },
    }).catch(() => {});
    throw e;
  } finally {
    if (!running) await driver.unmount(cfg).catch(() => {});
  }
  const { asOf, manifest, frozenMs } = last;
  fs.mkdirSync(join(paths().lib, 'ha'), { recursive: true, mode: 0o700 });
  writeFileAtomic(
    haStateFile(name),
    JSON.stringify({ standby, round: r.id, asOf, manifest: [...manifest], unified, running }),
    0o600,
  );
  return {
    guest: name,
    standby,
    round: r.id,
    asOf,
    running,
    full,
    bytes: r.bytes,
    frozenMs,
    ms: Math.round(performance.now() - t0),
  };
}
