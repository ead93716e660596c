/**
 * `jaula migrate GUEST REMOTE`: the source's side, which drives the move (docs/adr/0008).
 *
 *   1. begin: the target checks the guest fits (name free, room, networks, driver), reserves
 *      its name and context (another where its own is taken: the user ID range follows) and
 *      says which layers (by digest) it lacks; the guest gets its moving mark here (nothing
 *      starts it meanwhile) and the move its record (phase copying).
 *   2. copy: the layers the target lacks, the config dir, the guest's own files. cold: stopped
 *      first. sync: a first pass while it runs; then it is frozen and only what changed since
 *      the first pass's manifest is sent; then it is killed (frozen: it runs nothing more).
 *      live: the same first pass; then CRIU checkpoints it (frozen, dumped, killed: live.ts),
 *      and what changed is sent with its images; the target restores its processes.
 *   3. handover (recorded before it is asked): the target places the guest (its building mark
 *      goes) and starts it if it ran, and announces its addresses.
 *   4. done: the source deletes its copy.
 * A failure before 3 gives the guest back (the target drops what it has; the guest restarts
 * here if it ran). A failure during 3 asks the target what it did; unanswered, the move stays
 * in doubt (the guest stopped, its mark kept) until jaulad's reconcile gets the answer.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { JaulaError, isJaulaError, messageOf } from '../../common/errors.js';
import { serializeConfig, type GuestConfig } from '../../guest/config.js';
import { guestLog } from '../../guest/log.js';
import { clearMoving, movingOf, setMoving } from '../../guest/moving.js';
import { initAlive, readState } from '../../guest/state.js';
import { loadConfig } from '../../guest/store.js';
import { paths } from '../../os/paths.js';
import { trace } from '../../os/trace.js';
import { walkTree } from '../../os/walk.js';
import { storageDriver, type StorageDriver } from '../../storage/driver.js';
import { layout } from '../../storage/layout.js';
import { freezerOf, type Freezer } from './freeze.js';
import { killFrozen } from './kill.js';
import { checkpointGuest, liveRefusal } from './live.js';
import { fleetHostName, handOver } from '../fleet-guard.js';
import { peerOf, peerRequest, type PeerTarget } from './peer.js';
import { activeMoves, setPhase, writeMove, type MoveRecord } from './records.js';
import { getRemote } from './remotes.js';
import { deltaOf, manifestOf, pathList, sendTree, templateDigest } from './transfer.js';

export type MoveMode = 'cold' | 'sync' | 'live';

export interface MigrateOptions {
  mode: MoveMode;
  onProgress?: (line: string, fraction?: number) => void;
}

export interface MigrateResult {
  guest: string;
  remote: string;
  mode: MoveMode;
  id: string;
  state: 'running' | 'stored';
  context: number;
  bytes: number;
  layersSent: number;
  layersKept: number;
  /** From the guest's stop (or freeze) to its start on the target. */
  downtimeMs: number;
  phases: { phase: string; ms: number }[];
}

/** The move's state as it goes, for the failure path. */
interface Move {
  rec: MoveRecord;
  peer: PeerTarget;
  cfg: GuestConfig;
  driver: StorageDriver;
  running: boolean;
  stopped: boolean;
  frozen?: Freezer | undefined;
  /** sync: the killed guest's clean-up here, held back (behind its lock) until the target has answered. */
  cleanUp?: (() => Promise<number>) | undefined;
  mounted: boolean;
  bytes: number;
  t0: number;
  /** When the target answered that the guest runs. */
  up?: number;
  phases: { phase: string; ms: number }[];
  progress: (line: string, fraction?: number) => void;
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function phase<T>(m: Move, name: string, fn: () => Promise<T>): Promise<T> {
  const t = performance.now();
  const v = await fn();
  m.phases.push({ phase: name, ms: Math.round(performance.now() - t) });
  trace(`migrate: ${name}`);
  return v;
}

/** Send a tree (or part of one), with progress: bytes and rate. */
async function send(
  m: Move,
  part: string,
  dir: string,
  o: Parameters<typeof sendTree>[4] = {},
): Promise<number> {
  const t = performance.now();
  let sent = 0;
  const n = await sendTree(m.peer, m.rec.id, part, dir, {
    ...o,
    onBytes: (b) => {
      sent += b;
      m.bytes += b;
      const s = (performance.now() - t) / 1000;
      m.progress(`${part}: ${mib(sent)} sent (${mib(s > 0 ? sent / s : 0)}/s)`);
    },
  });
  await peerRequest(m.peer, 'POST', `/v1/peer/moves/${m.rec.id}/apply`, { json: { part } });
  return n;
}

function sizeOf(dir: string): number {
  let n = 0;
  for (const e of walkTree(dir)) n += e.size;
  return n;
}

async function begin(m: Move): Promise<{ need: string[]; layers: string[] }> {
  const layers = m.cfg.storage.layers ?? [];
  const digests = await Promise.all(
    layers.map(async (name) => ({ name, digest: await templateDigest(name) })),
  );
  const r = await peerRequest<{ context: number; need: string[] }>(m.peer, 'POST', '/v1/peer/moves', {
    json: {
      id: m.rec.id,
      source: `${hostname()}${paths().root === '/' ? '' : `:${paths().root}`}`,
      config: serializeConfig(m.cfg),
      running: m.running,
      mode: m.rec.mode,
      ...(fleetHostName() ? { fleetHost: fleetHostName() } : {}),
      bytes: sizeOf(m.driver.treePath(m.cfg.name)),
      layers: digests,
    },
  });
  if (r.context !== m.cfg.context) m.rec.context = r.context;
  const need = digests.filter((d) => r.need.includes(d.digest));
  for (const d of need)
    await send(m, `layer-${d.digest}`, layout.templateDir(d.name), { exclude: ['digest.sha256'] });
  return { need: need.map((d) => d.name), layers };
}

async function sendOwn(m: Move): Promise<void> {
  await send(m, 'conf', paths().guestConf(m.cfg.name), { exclude: ['config.toml', '.moving', '.building'] });
  const tree = m.driver.treePath(m.cfg.name);
  const sync = m.rec.mode !== 'cold' && m.running;
  const before = sync ? manifestOf(tree) : undefined;
  await phase(m, sync ? 'first pass' : 'copy', async () => {
    await send(m, 'own', tree);
    if (walkTree(layout.unifiedLayer(m.cfg.name)).length > 1)
      await send(m, 'unified', layout.unifiedLayer(m.cfg.name));
  });
  if (!before) return;
  const st = readState(m.cfg.name);
  let images: string | undefined;
  if (m.rec.mode === 'live') {
    m.t0 = performance.now();
    const cp = await phase(m, 'checkpoint', () => checkpointGuest(m.cfg, st)).catch((e: unknown) => {
      if (!initAlive(readState(m.cfg.name))) m.stopped = true; // (left dead: giveBack starts it)
      throw e;
    });
    // (dead here from now on: a failure before the handover starts it here again)
    m.cleanUp = cp.release;
    m.stopped = true;
    images = cp.images;
  } else {
    m.frozen = freezerOf(m.cfg.name, st);
    await phase(m, 'freeze', () => (m.frozen as Freezer).freeze());
    m.t0 = performance.now();
  }
  await phase(m, 'last pass', async () => {
    const { changed, deleted } = deltaOf(before, manifestOf(tree));
    m.progress(`last pass: ${changed.length} changed, ${deleted.length} removed`);
    await sendTree(m.peer, m.rec.id, 'deleted', tree, {
      raw: pathList(deleted),
    });
    await sendTree(m.peer, m.rec.id, 'changed', tree, {
      raw: pathList(changed),
    });
    // (the root's own entry at least: an archive is never empty)
    await send(m, 'delta', tree, { files: changed.length ? changed : ['.'] });
    if (images) await send(m, 'images', images);
  });
}

/** The killed guest's clean-up, once the target has answered (or the move failed). */
async function cleanUpHere(m: Move): Promise<void> {
  const c = m.cleanUp;
  if (!c) return;
  m.cleanUp = undefined;
  m.phases.push({ phase: 'clean-up here', ms: await c() });
}

async function stopHere(m: Move): Promise<void> {
  if (m.frozen)
    m.cleanUp = await killFrozen(m.cfg, m.frozen, () => {
      m.frozen = undefined;
      m.stopped = true;
    });
  else {
    const { stopGuest } = await import('../lifecycle.js');
    m.t0 = performance.now();
    await stopGuest(m.cfg.name);
  }
  m.stopped = true;
}

/** A move refused before anything is made (the guest stays as it is). */
function refuseMove(cfg: GuestConfig, mode: MoveMode, running: boolean): void {
  const moving = movingOf(cfg.name);
  if (moving)
    throw new JaulaError(
      'state',
      `Guest "${cfg.name}" is being moved already (move ${moving.id} to "${moving.remote}")`,
    );
  const why = running && mode === 'live' ? liveRefusal(cfg, readState(cfg.name)) : undefined;
  if (why) throw new JaulaError('unsupported', `Guest "${cfg.name}" cannot move live: ${why}`);
}

export async function migrateGuest(
  name: string,
  remoteName: string,
  o: MigrateOptions,
): Promise<MigrateResult> {
  const remote = getRemote(remoteName);
  const cfg = loadConfig(name);
  const driver = await storageDriver(cfg.storage.driver);
  const running = initAlive(readState(name));
  refuseMove(cfg, o.mode, running);
  const id = `${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
  const now = new Date().toISOString();
  const rec = writeMove({
    id,
    role: 'source',
    guest: name,
    peer: remoteName,
    mode: o.mode,
    running,
    phase: 'copying',
    started: now,
    updated: now,
    told: true,
  });
  setMoving(name, id, remoteName);
  activeMoves.add(id);
  trace('migrate: begun');
  const m: Move = {
    rec,
    peer: peerOf(remote),
    cfg,
    driver,
    running,
    stopped: false,
    mounted: false,
    bytes: 0,
    t0: 0,
    phases: [],
    progress: o.onProgress ?? (() => {}),
  };
  const t = performance.now();
  try {
    if (!running) {
      await driver.mount(cfg);
      m.mounted = true;
    }
    const { need, layers } = await phase(m, 'begin', () => begin(m));
    if (running && o.mode === 'cold') await phase(m, 'stop', () => stopHere(m));
    await sendOwn(m);
    if (running && !m.stopped) await phase(m, 'stop', () => stopHere(m));
    if (m.mounted) await driver.unmount(cfg);
    m.mounted = false;
    trace('migrate: copied');
    const r = await handover(m);
    return {
      guest: name,
      remote: remoteName,
      mode: o.mode,
      id,
      state: r.state,
      context: r.context,
      bytes: m.bytes,
      layersSent: need.length,
      layersKept: layers.length - need.length,
      downtimeMs: running ? Math.round((m.up ?? performance.now()) - m.t0) : 0,
      phases: [...m.phases, { phase: 'total', ms: Math.round(performance.now() - t) }],
    };
  } catch (e) {
    if (m.rec.phase === 'copying') await giveBack(m, e);
    throw e;
  } finally {
    await cleanUpHere(m).catch(() => {});
    activeMoves.delete(id);
  }
}

/** Before the handover: the target drops its copy, the guest is this host's again (started if it ran). */
async function giveBack(m: Move, e: unknown): Promise<never> {
  const why = messageOf(e);
  const undone: string[] = [];
  if (m.frozen) m.frozen.thaw();
  await cleanUpHere(m).catch((x: unknown) => undone.push(`its stop here failed: ${messageOf(x)}`));
  if (m.mounted) await m.driver.unmount(m.cfg).catch(() => {});
  await peerRequest(m.peer, 'DELETE', `/v1/peer/moves/${m.rec.id}`, { json: { why } }).catch((x: unknown) =>
    undone.push(
      `the remote "${m.rec.peer}" was not told (${messageOf(x)}); it drops its half-made copy itself at its next start`,
    ),
  );
  clearMoving(m.cfg.name);
  if (m.stopped) {
    const { startGuest } = await import('../lifecycle.js');
    const me = fleetHostName(); // (in a fleet: back from the target if it kept it, else a no-op)
    if (me) await handOver(m.cfg.name, m.rec.peer, me).catch(() => {});
    await startGuest(m.cfg.name).catch((x: unknown) =>
      undone.push(`restarting it here failed: ${messageOf(x)}`),
    );
  }
  setPhase(m.rec, 'back', why);
  m.rec.told = true;
  writeMove(m.rec);
  guestLog(m.cfg.name, `move ${m.rec.id} to "${m.rec.peer}" failed, the guest stays here: ${why}`);
  const code = isJaulaError(e) ? e.code : 'runtime';
  throw new JaulaError(
    code,
    `Moving "${m.cfg.name}" to "${m.rec.peer}" failed: ${why}. The guest stays on this host${m.stopped ? (undone.length ? '' : ' and runs again') : ''}${undone.length ? ` (${undone.join('; ')})` : ''}`,
    { cause: e, details: { movedBack: true } },
  );
}

async function handover(m: Move): Promise<{ state: 'running' | 'stored'; context: number }> {
  setPhase(m.rec, 'handover');
  m.rec.told = true;
  writeMove(m.rec);
  trace('migrate: handover');
  let r: { state: 'running' | 'stored'; context: number };
  try {
    r = await phase(m, 'start on target', () =>
      peerRequest<typeof r>(m.peer, 'POST', `/v1/peer/moves/${m.rec.id}/commit`, {
        json: { start: m.running },
      }),
    );
    m.up = performance.now();
  } catch (e) {
    await cleanUpHere(m).catch(() => {});
    const outcome = await resolveHandover(m.rec, e);
    if (outcome === 'back') {
      m.rec.phase = 'copying'; // (giveBack's precondition: the target does not have it)
      return giveBack(m, e);
    }
    if (outcome === 'doubt')
      throw new JaulaError(
        'io',
        `Moving "${m.cfg.name}" to "${m.rec.peer}" is in doubt: ${messageOf(e)}. The guest stays stopped here until "${m.rec.peer}" says whether it took it (jaulad asks at its start; "jaula migrate --status" shows it)`,
        { cause: e },
      );
    r = { state: m.running ? 'running' : 'stored', context: m.rec.context ?? m.cfg.context };
  }
  // (a failed clean-up here is finished by the delete)
  await cleanUpHere(m).catch(() => {});
  await finishDone(m.rec);
  return r;
}

/** The source's copy goes once the target has the guest. */
export async function finishDone(rec: MoveRecord, message?: string): Promise<void> {
  const { deleteGuest } = await import('../delete.js');
  await deleteGuest(rec.guest, { force: true });
  trace('migrate: source removed');
  setPhase(rec, 'done', message);
  rec.told = message === undefined;
  writeMove(rec);
}

/** What the target did with a handover whose answer was lost: done, back (it does not have it), or in doubt. */
export async function resolveHandover(rec: MoveRecord, _e?: unknown): Promise<'done' | 'back' | 'doubt'> {
  let peer: PeerTarget;
  try {
    peer = peerOf(getRemote(rec.peer));
  } catch {
    return 'doubt';
  }
  for (let i = 0; i < 3; i++) {
    try {
      const s = await peerRequest<{ phase: string }>(peer, 'GET', `/v1/peer/moves/${rec.id}`);
      if (s.phase === 'placed') return 'done';
      if (s.phase === 'aborted' || s.phase === 'none') return 'back';
      if (s.phase === 'receiving') {
        await peerRequest(peer, 'DELETE', `/v1/peer/moves/${rec.id}`, {
          json: { why: 'the handover was cut' },
        });
        return 'back';
      }
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return 'doubt';
}
