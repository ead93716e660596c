/**
 * The target's side of a move (jaulad's peer routes, called by the source jaulad with this
 * host's token): begin (the guest's name and context reserved, hidden behind a building mark,
 * as a build is), parts (chunks of tar streams, staged), apply (unpacked into place), commit
 * (the building mark goes: the guest is this host's; started if it ran), status and abort.
 * A jaulad killed while receiving leaves a hidden half-made guest, which its next start removes
 * (removeStaleBuilds) as it removes a half-built one; the record then says "aborted".
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError, isJaulaError, messageOf } from '../../common/errors.js';
import { parseConfig, type GuestConfig } from '../../guest/config.js';
import { guestLog } from '../../guest/log.js';
import { BUILDING_MARK, guestExists, isReplica, loadConfig } from '../../guest/store.js';
import { removeTree } from '../../os/fs.js';
import { paths } from '../../os/paths.js';
import { trace } from '../../os/trace.js';
import { storageDriver } from '../../storage/driver.js';
import { layout } from '../../storage/layout.js';
import { reserveGuest } from '../build.js';
import { fleetHostName, handOver, movingInFleet } from '../fleet-guard.js';
import { Reverter } from '../reverter.js';
import { checkMoveId, readMove, setPhase, writeMove, type MoveRecord } from './records.js';
import { criuMissing } from '../../runtime/driver.js';
import { dropReplica, dropRound, queueReplicaPart, replicaBegin } from '../ha/standby.js';
import { checkNetworks, checkRoom, mapLayers } from './target-checks.js';
import { receivedImages, receiveImagesDir, removeCriuFiles, restoreLogTail } from './live.js';
import {
  parsePathList,
  partFile,
  removeBelow,
  stagingDir,
  treeDigest,
  unlinkSymlinkAncestors,
  unpackPart,
} from './transfer.js';

export interface BeginRequest {
  id: string;
  /** The source host, as it names itself. */
  source: string;
  /** The guest's config.toml. */
  config: string;
  running: boolean;
  mode: 'cold' | 'sync' | 'live' | 'replica';
  /** A replica round: the round the replica here should hold for this one to be a delta. */
  base?: string;
  /** The source's name in the fleet, when it is in one. */
  fleetHost?: string;
  /** The size of the guest's own files. */
  bytes: number;
  layers: { name: string; digest: string }[];
}

export function receiving(id: string): MoveRecord {
  const r = readMove(checkMoveId(id));
  if (!r || r.role !== 'target') throw new JaulaError('not_found', `This host knows no move ${id}`);
  if (r.phase !== 'receiving')
    throw new JaulaError('state', `Move ${id} of "${r.guest}" is ${r.phase} here, no longer receiving`);
  return r;
}

/**
 * Reserve the guest here: its name, its context (another where its own is taken, except for a
 * live move: its restored processes keep their user IDs), addresses and MACs kept.
 */
async function reserve(cfg: GuestConfig, rev: Reverter, live: boolean, movedFrom?: string): Promise<void> {
  // (in a fleet its context is its own fleet-wide: kept)
  if (movedFrom) return reserveGuest(cfg, rev, 'moved');
  try {
    await reserveGuest(cfg, rev, true);
  } catch (e) {
    if (!isJaulaError(e) || e.code !== 'exists' || !/context/.test(e.message)) throw e;
    if (live)
      throw new JaulaError(
        'exists',
        `${e.message}: a live move keeps the guest's context and user ID range (its processes keep their IDs), so it cannot move live here; move it with --mode sync, which gives it another`,
        { cause: e },
      );
    await reserveGuest(cfg, rev, false);
  }
}

export async function peerBegin(
  r: BeginRequest,
): Promise<{ context: number; need: string[]; full?: boolean }> {
  checkMoveId(r.id);
  if (readMove(r.id)) throw new JaulaError('exists', `Move ${r.id} is known here already`);
  const cfg = parseConfig(r.config, `the config of the guest moved by ${r.source}`);
  if (r.mode === 'replica') return replicaBegin(r, cfg);
  if (isReplica(cfg.name) && (await movingInFleet(cfg.name, r.fleetHost))) await dropReplica(cfg.name);
  if (guestExists(cfg.name))
    throw new JaulaError(
      'exists',
      `A guest named "${cfg.name}" exists on this host already: delete or rename it here first`,
    );
  const driver = await storageDriver(cfg.storage.driver);
  const why = driver.unavailable();
  if (why)
    throw new JaulaError('unsupported', `Storage driver "${driver.info.name}" is not usable here: ${why}`);
  checkRoom(r.bytes);
  checkNetworks(cfg);
  const live = r.mode === 'live' && r.running;
  const cannot = live ? criuMissing() : undefined;
  if (cannot) throw new JaulaError('unsupported', `This host cannot take "${cfg.name}" live: ${cannot}`);
  const { names, need } = await mapLayers(r.layers);
  const map = (n: string): string => names.get(n) ?? n;
  const storage = { ...cfg.storage };
  if (storage.layers) storage.layers = storage.layers.map(map);
  if (storage.template) storage.template = map(storage.template);
  const mine: GuestConfig = { ...cfg, storage };
  const rev = new Reverter();
  try {
    const fleetFrom = await movingInFleet(cfg.name, r.fleetHost);
    await reserve(mine, rev, live, fleetFrom);
    trace('migrate-target: reserved');
    writeMove({
      id: r.id,
      role: 'target',
      guest: cfg.name,
      peer: r.source,
      mode: r.mode,
      running: r.running,
      phase: 'receiving',
      started: new Date().toISOString(),
      updated: '',
      ...(mine.context !== cfg.context ? { context: mine.context } : {}),
      layers: need,
      ...(fleetFrom ? { fleetFrom } : {}),
    });
    rev.success();
  } catch (e) {
    return rev.fail(e);
  }
  return { context: mine.context, need: Object.keys(need) };
}

/** A config whose storage the driver can make empty: no template copied (its files come from the source). */
const emptyStorage = (cfg: GuestConfig): GuestConfig => {
  const s = { ...cfg.storage };
  if (!s.layers) delete s.template;
  return { ...cfg, storage: s };
};

async function applyOwn(rec: MoveRecord, part: 'own' | 'unified' | 'delta'): Promise<void> {
  const cfg = readHidden(rec.guest);
  const driver = await storageDriver(cfg.storage.driver);
  const marker = join(stagingDir(rec.id), 'created');
  if (!fs.existsSync(marker)) {
    await driver.create(emptyStorage(cfg));
    fs.writeFileSync(marker, '');
  }
  const devices = cfg.privileged || driver.info.layers;
  if (part === 'unified') return unpackPart(rec.id, part, layout.unifiedLayer(cfg.name), devices);
  const tree = driver.treePath(cfg.name);
  if (part === 'delta') {
    const deleted = fs.existsSync(partFile(rec.id, 'deleted'))
      ? parsePathList(fs.readFileSync(partFile(rec.id, 'deleted')))
      : [];
    for (const p of deleted) removeBelow(tree, p);
    fs.rmSync(partFile(rec.id, 'deleted'), { force: true });
    const changed = fs.existsSync(partFile(rec.id, 'changed'))
      ? parsePathList(fs.readFileSync(partFile(rec.id, 'changed')))
      : [];
    unlinkSymlinkAncestors(tree, changed);
    fs.rmSync(partFile(rec.id, 'changed'), { force: true });
  }
  await unpackPart(rec.id, part, tree, devices);
}

/** The config of the guest being received (hidden by its building mark). */
function readHidden(name: string): GuestConfig {
  return parseConfig(fs.readFileSync(paths().guestConfigFile(name), 'utf8'), paths().guestConfigFile(name));
}

async function applyLayer(rec: MoveRecord, digest: string): Promise<void> {
  const cfg =
    rec.mode === 'replica'
      ? parseConfig(fs.readFileSync(join(stagingDir(rec.id), 'config.toml'), 'utf8'), `round ${rec.id}`)
      : readHidden(rec.guest);
  const name = rec.layers?.[digest];
  if (!name) throw new JaulaError('invalid', `Move ${rec.id} did not ask for the layer ${digest}`);
  const at = join(stagingDir(rec.id), `layer-${digest}`);
  fs.mkdirSync(at, { recursive: true, mode: 0o700 });
  await unpackPart(rec.id, `layer-${digest}`, at, cfg.privileged);
  if ((await treeDigest(join(at, 'tree'))) !== digest)
    throw new JaulaError(
      'invalid',
      `The layer sent for move ${rec.id} does not have its digest ${digest}: refused`,
    );
  fs.writeFileSync(join(at, 'digest.sha256'), `${digest}\n`);
  if (fs.existsSync(layout.templateDir(name))) return removeTree(at); // (sent twice)
  fs.mkdirSync(layout.templates(), { recursive: true, mode: 0o755 });
  fs.renameSync(at, layout.templateDir(name));
  guestLog(rec.guest, `move ${rec.id}: layer ${name} (${digest.slice(0, 12)}) received`);
}

export async function peerApply(r: { id: string; part: string }): Promise<{ applied: string }> {
  const rec = receiving(r.id);
  if (rec.mode === 'replica' && !r.part.startsWith('layer-')) return queueReplicaPart(rec, r.part);
  if (r.part === 'own' || r.part === 'unified' || r.part === 'delta') await applyOwn(rec, r.part);
  else if (r.part === 'conf') await unpackPart(rec.id, 'conf', paths().guestConf(rec.guest), false);
  else if (r.part === 'images') {
    if (rec.mode !== 'live') throw new JaulaError('invalid', `Move ${rec.id} is not live: it has no images`);
    // (straight where the restore reads them: criuDir is on another file system than staging may be)
    await unpackPart(rec.id, 'images', receiveImagesDir(readHidden(rec.guest)), false);
  } else if (/^layer-[0-9a-f]{64}$/.test(r.part)) await applyLayer(rec, r.part.slice(6));
  else throw new JaulaError('invalid', `Unknown part "${r.part.slice(0, 80)}"`);
  trace(`migrate-target: applied ${r.part}`);
  return { applied: r.part };
}

/** The guest is this host's from the moment its building mark goes; the record follows. */
function place(rec: MoveRecord): void {
  fs.rmSync(join(paths().guestConf(rec.guest), BUILDING_MARK), { force: true });
  trace('migrate-target: placed');
  setPhase(
    rec,
    'placed',
    rec.context !== undefined ? `context ${rec.context} here (its own was taken)` : undefined,
  );
  removeTree(stagingDir(rec.id));
  guestLog(rec.guest, `arrived from "${rec.peer}" (move ${rec.id}, ${rec.mode})`);
}

export async function peerCommit(r: {
  id: string;
  start: boolean;
}): Promise<{ state: 'running' | 'stored'; context: number }> {
  const rec = receiving(r.id);
  if (rec.mode === 'replica') throw new JaulaError('invalid', `${r.id} is a replica round, not a move`);
  const cfg = readHidden(rec.guest);
  const driver = await storageDriver(cfg.storage.driver);
  await driver.unmount(cfg);
  const restore = rec.mode === 'live' && r.start ? receivedImages(rec.guest) : undefined;
  // In a fleet, the guest is this host's first (a failure here leaves it unplaced: the source
  // keeps it), then placed: a placed guest is always this host's, also after a crash between.
  if (rec.fleetFrom) await handOver(rec.guest, rec.fleetFrom, fleetHostName() as string);
  place(rec);
  if (!r.start) return { state: 'stored', context: cfg.context };
  try {
    const { startGuest } = await import('../lifecycle.js');
    await startGuest(rec.guest, restore ? { restore } : {}).catch((e: unknown) => {
      throw restore ? new JaulaError('runtime', `${messageOf(e)} (CRIU: ${restoreLogTail(rec.guest)})`) : e;
    });
    if (restore) fs.rmSync(restore.images, { recursive: true, force: true });
    rec.startTried = true;
    writeMove(rec);
    trace('migrate-target: started');
    const { announceGuest } = await import('./announce.js');
    const moved = loadConfig(rec.guest);
    await announceGuest(moved);
    // Once more a moment later (one frame may be lost while its port has just joined the
    // bridge; a switch that missed it would send the guest's frames to the old host until its
    // table ages out, minutes later). Not waited for; a guest stopped meanwhile is left alone.
    setTimeout(() => void announceGuest(moved).catch(() => {}), 500).unref();
  } catch (e) {
    await dropPlaced(rec, `it could not start here: ${messageOf(e)}`);
    throw new JaulaError('runtime', `Guest "${rec.guest}" could not start on this host: ${messageOf(e)}`, {
      cause: e,
    });
  }
  return { state: 'running', context: cfg.context };
}

/** Undo a placed guest whose start failed (the source takes it back). */
async function dropPlaced(rec: MoveRecord, why: string): Promise<void> {
  const { deleteGuest } = await import('../delete.js');
  removeCriuFiles(rec.guest);
  // (in a fleet, given back to its owner before: a delete releases what this host owns; one
  // not given back keeps its reservations, for the source's restart to take back)
  const back = rec.fleetFrom
    ? await handOver(rec.guest, fleetHostName() as string, rec.fleetFrom).then(
        () => true,
        () => false,
      )
    : true;
  await deleteGuest(rec.guest, { force: true, ...(back ? {} : { keepFleet: true }) }).catch(() => {});
  setPhase(rec, 'aborted', why);
}

export function peerStatus(r: { id: string }): { phase: string; guest?: string } {
  const rec = readMove(checkMoveId(r.id));
  return rec ? { phase: rec.phase, guest: rec.guest } : { phase: 'none' };
}

/** Abandon a move that is not placed: its hidden guest and staged parts go. */
export async function peerAbort(r: { id: string; why?: string }): Promise<{ phase: string }> {
  const rec = readMove(checkMoveId(r.id));
  if (!rec) return { phase: 'none' };
  if (rec.phase === 'placed')
    throw new JaulaError(
      'state',
      `Move ${r.id} of "${rec.guest}" is complete here: the guest is this host's`,
    );
  // (a replica round being applied is not dropped under its commit: it completes, or fails whole)
  if (rec.mode === 'replica') return { phase: dropRound(rec) ? 'aborted' : 'applying' };
  if (rec.phase === 'receiving') await removeHidden(rec);
  if (rec.phase !== 'aborted') setPhase(rec, 'aborted', r.why ?? 'the source gave it up');
  return { phase: 'aborted' };
}

async function removeHidden(rec: MoveRecord): Promise<void> {
  removeCriuFiles(rec.guest);
  // (handed over, then cut before it was placed: back to its owner; a no-op otherwise)
  if (rec.fleetFrom) await handOver(rec.guest, fleetHostName() as string, rec.fleetFrom).catch(() => {});
  const mark = join(paths().guestConf(rec.guest), BUILDING_MARK);
  if (fs.existsSync(mark)) {
    const text = fs.readFileSync(paths().guestConfigFile(rec.guest), 'utf8');
    const driver = await storageDriver(/driver = "([a-z]+)"/.exec(text)?.[1] ?? 'dir');
    await driver.destroy(rec.guest);
    removeTree(paths().guestConf(rec.guest));
  }
  removeTree(stagingDir(rec.id));
}

/**
 * At jaulad's start: a move still receiving was cut (this jaulad died): if its guest was placed
 * already (the building mark gone, the record not yet written), it is placed; else what is
 * left goes. A placed guest that was to run and does not is started.
 */
export async function reconcileTargetMoves(list: MoveRecord[]): Promise<string[]> {
  const out: string[] = [];
  for (const rec of list.filter((x) => x.role === 'target')) {
    if (rec.phase === 'receiving') {
      const placed =
        guestExists(rec.guest) && !fs.existsSync(join(paths().guestConf(rec.guest), BUILDING_MARK));
      if (placed && fs.existsSync(paths().guestConfigFile(rec.guest))) {
        place(rec);
        out.push(`move ${rec.id}: "${rec.guest}" had arrived (placed)`);
      } else {
        await removeHidden(rec);
        setPhase(rec, 'aborted', 'this jaulad stopped while receiving it');
        out.push(`move ${rec.id}: the half-received "${rec.guest}" removed`);
        continue;
      }
    }
    if (rec.phase === 'placed' && rec.running && !rec.startTried) {
      rec.startTried = true;
      writeMove(rec);
      try {
        const { startGuest } = await import('../lifecycle.js');
        await startGuest(rec.guest);
        out.push(`move ${rec.id}: started "${rec.guest}", which had arrived running`);
      } catch (e) {
        if (!isJaulaError(e) || e.code !== 'state')
          out.push(`move ${rec.id}: "${rec.guest}" could not start: ${messageOf(e)}`);
      }
    }
  }
  return out;
}
