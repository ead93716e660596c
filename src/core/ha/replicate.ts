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
import { randomBytes } from 'node:crypto';
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
}

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

const stateFile = (name: string): string => join(paths().lib, 'ha', `${name}.json`);

function readHaState(name: string): HaState | undefined {
  const t = readFileOr(stateFile(name), undefined);
  try {
    return t === undefined ? undefined : (JSON.parse(t) as HaState);
  } catch {
    return undefined;
  }
}

export function removeHaState(name: string): void {
  fs.rmSync(stateFile(name), { force: true });
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
 * One round of `name` to `standby` (a remote of this host, named as the fleet names it). A
 * stopped guest's round holds its lock (nothing starts it meanwhile).
 */
export async function replicateGuest(name: string, standby: string): Promise<RoundResult> {
  if (initAlive(readState(name))) return round(name, standby);
  return withGuestLock(name, () => round(name, standby));
}

async function round(name: string, standby: string): Promise<RoundResult> {
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
  let frozenMs = 0;
  let asOf: string;
  let manifest: Manifest;
  let full: boolean;
  try {
    full = await begin(r, cfg, running, prev?.standby === standby ? prev.round : undefined, tree);
    await send(r, 'conf', paths().guestConf(name), {
      exclude: ['config.toml', '.moving', '.building', '.replica'],
    });
    const first = manifestOf(tree);
    if (full) {
      await send(r, 'own', tree);
      if (walkTree(layout.unifiedLayer(name)).length > 1) await send(r, 'unified', layout.unifiedLayer(name));
    } else await sendDelta(r, tree, new Map(prev?.manifest), first);
    manifest = first;
    if (running) {
      const fz = freezerOf(name, st);
      const tf = performance.now();
      await fz.freeze();
      try {
        asOf = new Date().toISOString();
        manifest = manifestOf(tree);
        await sendDelta(r, tree, first, manifest);
      } finally {
        fz.thaw();
        frozenMs = Math.round(performance.now() - tf);
      }
    } else asOf = new Date().toISOString();
    await peerRequest(r.peer, 'POST', `/v1/peer/moves/${r.id}/replica`, { json: { asOf } });
  } catch (e) {
    await peerRequest(r.peer, 'DELETE', `/v1/peer/moves/${r.id}`, {
      json: { why: 'the round failed' },
    }).catch(() => {});
    throw e;
  } finally {
    if (!running) await driver.unmount(cfg).catch(() => {});
  }
  fs.mkdirSync(join(paths().lib, 'ha'), { recursive: true, mode: 0o700 });
  writeFileAtomic(
    stateFile(name),
    JSON.stringify({ standby, round: r.id, asOf, manifest: [...manifest] }),
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
