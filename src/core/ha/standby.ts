/**
 * The standby's side of high availability: it keeps another host's guest as a replica (a
 * guest's config dir and files, hidden by the replica mark: no command sees or starts it),
 * updated by rounds that the owner's jaulad drives over the move protocol (mode "replica"):
 *
 *   begin    only from the guest's owner in the fleet; says whether the round must be whole
 *            (this host has no replica of the round the owner bases it on);
 *   parts    staged, and queued at each apply, in order: nothing of a round touches the
 *            replica before its commit, so an owner lost in mid-round leaves the last whole one;
 *   commit   the queue applied, the mark rewritten with the round and its moment.
 *
 * On the leader's order (fleet/ha.ts) the replica is promoted: its mark goes, and it starts
 * if it ran. A replica that is no longer its guest's latest (deleted, or kept elsewhere now)
 * is dropped by its host (dropStaleReplicas).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError, messageOf } from '../../common/errors.js';
import { fleetEtcd, readFleetConfig } from '../../fleet/config.js';
import { replicaKey, type FailoverRecord, type ReplicaRecord } from '../../fleet/ha.js';
import { NAMES, type OwnerRecord } from '../../fleet/keys.js';
import { ownerOf } from '../../fleet/reserve.js';
import { parseConfig, serializeConfig, type GuestConfig } from '../../guest/config.js';
import { withGuestLock } from '../../guest/locks.js';
import { guestLog } from '../../guest/log.js';
import { guestConfEntries, guestExists, isReplica, loadConfig, REPLICA_MARK } from '../../guest/store.js';
import { initAlive, readState } from '../../guest/state.js';
import { readFileOr, removeTree, writeFileAtomic } from '../../os/fs.js';
import { paths } from '../../os/paths.js';
import { storageDriver } from '../../storage/driver.js';
import { layout } from '../../storage/layout.js';
import { checkMoveId, listMoveRecords, readMove, writeMove, type MoveRecord } from '../migrate/records.js';
import { checkNetworks, checkRoom, mapLayers } from '../migrate/target-checks.js';
import type { BeginRequest } from '../migrate/target.js';
import {
  parsePathList,
  partFile,
  removeBelow,
  stagingDir,
  unlinkSymlinkAncestors,
  unpackPart,
} from '../migrate/transfer.js';

/** The replica mark's content. */
export interface ReplicaMark {
  /** The round it holds ("" while a round is being applied). */
  round: string;
  asOf: string;
  from: string;
  running: boolean;
}

const markFile = (name: string): string => join(paths().guestConf(name), REPLICA_MARK);

export function readReplicaMark(name: string): ReplicaMark | undefined {
  const t = readFileOr(markFile(name), undefined);
  if (t === undefined) return undefined;
  try {
    return JSON.parse(t) as ReplicaMark;
  } catch {
    return { round: '', asOf: new Date(0).toISOString(), from: '', running: false };
  }
}

const writeMark = (name: string, m: ReplicaMark): void =>
  writeFileAtomic(markFile(name), `${JSON.stringify(m)}\n`, 0o600);

/** A replica round begins: who may send it, and whether it must be whole. */
export async function checkReplicaBegin(
  cfg: GuestConfig,
  fleetHost: string | undefined,
  base: string | undefined,
): Promise<boolean> {
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  if (!fc || !etcd)
    throw new JaulaError(
      'state',
      'This host is in no fleet: HA replicas are kept only between hosts of a fleet',
    );
  const owner = await ownerOf(etcd, cfg.name);
  if (!owner || owner.host !== fleetHost || owner.host === fc.host)
    throw new JaulaError(
      'state',
      `Host "${fleetHost ?? '?'}" does not own "${cfg.name}" in the fleet (${owner ? `host "${owner.host}" does` : 'no host does'}): only its owner sends its replica`,
    );
  let mark = readReplicaMark(cfg.name);
  if (guestExists(cfg.name) && !mark) {
    // This host's old copy of an HA guest the fleet gave to another host (a failover while this
    // host was lost): it becomes the replica, made afresh, as a storage replication reverses
    // after a failover (its writes after the failover's replica are lost, as the failover said).
    const old = await withGuestLock(cfg.name, () => Promise.resolve(oldCopy(cfg.name)));
    if (!old)
      throw new JaulaError(
        'exists',
        `Host "${fc.host}" has a guest named "${cfg.name}" of its own: delete or rename it there to let this host keep the replica, or choose another standby (ha.standby=HOST)`,
      );
    mark = old;
  }
  // Rounds of this guest cut before their commit (its owner lost, or restarted) are dropped.
  for (const r of listMoveRecords({ replicas: true }))
    if (r.guest === cfg.name && r.phase === 'receiving') dropRound(r);
  return !mark || !mark.round || mark.round !== base;
}

/** Rounds whose commit is being applied (an abort meanwhile is refused). */
const committing = new Set<string>();

/**
 * A stopped HA guest here whose name the fleet gave away (checked by the caller) is marked a
 * replica (hidden; its next round whole): the mark, or undefined when it is not such a copy.
 */
function oldCopy(name: string): ReplicaMark | undefined {
  let cfg: GuestConfig;
  try {
    cfg = loadConfig(name);
  } catch {
    return undefined;
  }
  if (!cfg.ha || initAlive(readState(name))) return undefined;
  const m: ReplicaMark = { round: '', asOf: new Date(0).toISOString(), from: '', running: false };
  writeMark(name, m);
  guestLog(name, 'an old copy (the fleet gave the guest to another host): now its replica, made afresh');
  return m;
}

/** A round's record and staged parts go (the replica stays as it was); false while it is applied. */
export function dropRound(r: MoveRecord): boolean {
  if (committing.has(r.id)) return false;
  removeTree(stagingDir(r.id));
  fs.rmSync(join(paths().etc, 'moves', `${r.id}.json`), { force: true });
  return true;
}

/** The round's config, kept with its parts until the commit. */
export function stageReplicaConfig(id: string, text: string): void {
  fs.mkdirSync(stagingDir(id), { recursive: true, mode: 0o700 });
  fs.writeFileSync(join(stagingDir(id), 'config.toml'), text, { mode: 0o600 });
}

const queued = (id: string): string[] =>
  fs
    .readdirSync(stagingDir(id))
    .filter((f) => /^q\d{4}-[a-z]+\.tar$/.test(f))
    .sort();

/** A part of a round arrived whole: queued (with a delta, its lists of deleted and changed paths). */
export function queueReplicaPart(rec: MoveRecord, part: string): { applied: string } {
  if (!['own', 'unified', 'delta', 'conf'].includes(part))
    throw new JaulaError('invalid', `A replica round has no part "${part.slice(0, 80)}"`);
  const seq = String(queued(rec.id).filter((f) => !/-(deleted|changed)\.tar$/.test(f)).length).padStart(
    4,
    '0',
  );
  const parts = part === 'delta' ? ['deleted', 'changed', 'delta'] : [part];
  for (const p of parts)
    if (fs.existsSync(partFile(rec.id, p)))
      fs.renameSync(partFile(rec.id, p), join(stagingDir(rec.id), `q${seq}-${p}.tar`));
  if (!fs.existsSync(join(stagingDir(rec.id), `q${seq}-${part}.tar`)))
    throw new JaulaError('invalid', `Part "${part}" of round ${rec.id} was not sent`);
  return { applied: part };
}

async function applyQueue(rec: MoveRecord, cfg: GuestConfig): Promise<void> {
  const driver = await storageDriver(cfg.storage.driver);
  const devices = cfg.privileged || driver.info.layers;
  const tree = driver.treePath(cfg.name);
  const lists = new Map<string, string[]>();
  for (const f of queued(rec.id)) {
    const [seq, part] = f.slice(0, -4).split('-') as [string, string];
    const name = f.slice(0, -4);
    if (part === 'deleted' || part === 'changed') {
      lists.set(`${seq}-${part}`, parsePathList(fs.readFileSync(join(stagingDir(rec.id), f))));
      continue;
    }
    if (part === 'conf') await unpackPart(rec.id, name, paths().guestConf(cfg.name), false);
    else if (part === 'unified') {
      fs.mkdirSync(layout.unifiedLayer(cfg.name), { recursive: true });
      await unpackPart(rec.id, name, layout.unifiedLayer(cfg.name), devices);
    } else {
      if (part === 'delta') {
        for (const p of lists.get(`${seq}-deleted`) ?? []) removeBelow(tree, p);
        unlinkSymlinkAncestors(tree, lists.get(`${seq}-changed`) ?? []);
      }
      await unpackPart(rec.id, name, tree, devices);
    }
  }
}

/** The round's commit: its parts applied to the replica (made afresh for a whole round). */
export async function commitReplica(r: { id: string; asOf: string }): Promise<{ round: string }> {
  const rec = readMove(checkMoveId(r.id));
  if (!rec || rec.mode !== 'replica' || rec.phase !== 'receiving')
    throw new JaulaError('not_found', `This host has no replica round ${r.id} under way`);
  const cfg = parseConfig(
    fs.readFileSync(join(stagingDir(rec.id), 'config.toml'), 'utf8'),
    `round ${rec.id}`,
  );
  committing.add(rec.id);
  try {
    return await withGuestLock(cfg.name, () => applyRound(rec, cfg, r.asOf));
  } finally {
    committing.delete(rec.id);
  }
}

async function applyRound(rec: MoveRecord, cfg: GuestConfig, asOf: string): Promise<{ round: string }> {
  const mark = readReplicaMark(cfg.name);
  if (guestExists(cfg.name) && !mark)
    throw new JaulaError('state', `"${cfg.name}" is no longer a replica here (it was promoted, or built)`);
  const driver = await storageDriver(cfg.storage.driver);
  const next: ReplicaMark = { round: '', asOf: mark?.asOf ?? asOf, from: rec.peer, running: rec.running };
  if (rec.replicaFull || !mark) {
    await driver.destroy(cfg.name).catch(() => removeTree(paths().guestData(cfg.name)));
    removeTree(paths().guestConf(cfg.name));
    fs.mkdirSync(paths().guestConf(cfg.name), { recursive: true, mode: 0o755 });
    writeMark(cfg.name, next); // (hidden before anything else is made)
    const s = { ...cfg.storage };
    if (!s.layers) delete s.template;
    await driver.create({ ...cfg, storage: s });
  } else writeMark(cfg.name, next);
  await driver.mount(cfg);
  try {
    writeFileAtomic(
      paths().guestConfigFile(cfg.name),
      fs.readFileSync(join(stagingDir(rec.id), 'config.toml')),
    );
    await applyQueue(rec, cfg);
  } finally {
    await driver.unmount(cfg);
  }
  writeMark(cfg.name, { ...next, round: rec.id, asOf, running: rec.running });
  committing.delete(rec.id);
  dropRound(rec);
  return { round: rec.id };
}

/** The leader's order: the replica becomes this host's guest, started if it ran. */
export async function promoteReplica(f: FailoverRecord): Promise<string> {
  const mark = readReplicaMark(f.guest);
  const { startGuest } = await import('../lifecycle.js');
  if (!mark && guestExists(f.guest)) {
    // (promoted already: this host stopped before it said so) started if it is to run
    if (f.running) await startGuest(f.guest).catch(() => undefined);
    return `taken over from host "${f.from}" (promoted before)${f.running ? '; started' : ''}`;
  }
  if (!mark) throw new JaulaError('not_found', `This host has no replica of "${f.guest}"`);
  if (!mark.round)
    throw new JaulaError(
      'state',
      `The replica of "${f.guest}" here is incomplete (a round was cut while it was applied): it is not started; the guest stays lost until host "${f.from}" is back`,
    );
  const lost = `${(f.lostMs.atLeast / 1000).toFixed(1)}-${(f.lostMs.atMost / 1000).toFixed(1)} s`;
  await withGuestLock(f.guest, () => {
    fs.rmSync(markFile(f.guest), { force: true });
    return Promise.resolve();
  });
  const what = `taken over from host "${f.from}", whose lease expired: its replica of ${mark.asOf} is the guest now; writes of the last ${lost} before the loss are lost`;
  guestLog(f.guest, what);
  if (!f.running) return `${what}; it was stopped, and stays so`;
  await startGuest(f.guest);
  const { announceGuest } = await import('../migrate/announce.js');
  const { loadConfig } = await import('../../guest/store.js');
  await announceGuest(loadConfig(f.guest)).catch(() => {});
  return `${what}; started`;
}

/** A replica here: its guest, and its mark. */
export function replicasHere(): { name: string; mark: ReplicaMark }[] {
  return guestConfEntries().flatMap((name) => {
    const mark = name.startsWith('.') ? undefined : readReplicaMark(name);
    return mark ? [{ name, mark }] : [];
  });
}

/** Remove a replica (its files and config dir): nothing of the fleet is released. */
export async function dropReplica(name: string): Promise<void> {
  await withGuestLock(name, async () => {
    if (!isReplica(name)) return;
    const text = readFileOr(paths().guestConfigFile(name), '');
    const driver = await storageDriver(/driver = "([a-z]+)"/.exec(text)?.[1] ?? 'dir');
    await driver.destroy(name).catch(() => removeTree(paths().guestData(name)));
    removeTree(paths().guestConf(name));
  });
}

/**
 * Replicas that are no longer their guest's latest go: the guest is gone from the fleet, or
 * its latest replica is on another host (a new standby) and newer than this one. A replica
 * whose record is not written yet (its round just committed) is kept a while.
 */
export async function dropStaleReplicas(log: (line: string) => void): Promise<void> {
  // Rounds cut for good (their owner lost, or gone): their parts go after ten minutes.
  for (const r of listMoveRecords({ replicas: true }))
    if (Date.now() - Date.parse(r.started) > 600_000 && dropRound(r))
      log(`ha: dropped round ${r.id} of "${r.guest}", cut before its commit`);
  const fc = readFleetConfig();
  const etcd = fleetEtcd(fc);
  const here = replicasHere();
  if (!fc || !etcd || !here.length) return;
  const owners = new Map(
    (await etcd.list(NAMES)).map((kv) => [kv.key.slice(NAMES.length), JSON.parse(kv.value) as OwnerRecord]),
  );
  for (const { name, mark } of here) {
    const rec = await etcd.get(replicaKey(name));
    const r = rec ? (JSON.parse(rec.value) as ReplicaRecord) : undefined;
    const old = Date.now() - Date.parse(mark.asOf) > 120_000;
    const why = !owners.has(name)
      ? 'its guest is gone from the fleet'
      : owners.get(name)?.host === fc.host
        ? undefined
        : r && !r.host
          ? 'HA was turned off for it'
          : r && r.host !== fc.host && Date.parse(r.asOf) >= Date.parse(mark.asOf)
            ? `its latest replica is on host "${r.host}" now`
            : !r && old
              ? 'the fleet has no record of it'
              : undefined;
    if (!why) continue;
    await dropReplica(name).then(
      () => log(`ha: dropped the replica of "${name}": ${why}`),
      (e: unknown) => log(`ha: dropping the replica of "${name}" failed: ${messageOf(e)}`),
    );
  }
}

/** A replica round of an HA guest (core/ha/standby.ts): staged, applied whole at its commit. */
export async function replicaBegin(
  r: BeginRequest,
  cfg: GuestConfig,
): Promise<{ context: number; need: string[]; full: boolean }> {
  const full = await checkReplicaBegin(cfg, r.fleetHost, r.base);
  const driver = await storageDriver(cfg.storage.driver);
  const why = driver.unavailable();
  if (why)
    throw new JaulaError('unsupported', `Storage driver "${driver.info.name}" is not usable here: ${why}`);
  if (full) checkRoom(r.bytes);
  checkNetworks(cfg);
  const { names, need } = await mapLayers(r.layers);
  const storage = { ...cfg.storage };
  if (storage.layers) storage.layers = storage.layers.map((n) => names.get(n) ?? n);
  if (storage.template) storage.template = names.get(storage.template) ?? storage.template;
  stageReplicaConfig(r.id, serializeConfig({ ...cfg, storage }));
  writeMove({
    id: r.id,
    role: 'target',
    guest: cfg.name,
    peer: r.fleetHost ?? r.source,
    mode: 'replica',
    running: r.running,
    phase: 'receiving',
    started: new Date().toISOString(),
    updated: '',
    layers: need,
    replicaFull: full,
  });
  return { context: cfg.context, need: Object.keys(need), full };
}
