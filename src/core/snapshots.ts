/**
 * `jaula snapshot create|list|restore|delete`: consistent point-in-time copies of a guest's own
 * files and its config (docs/adr/0012-snapshots.md). A running guest is frozen (its cgroup's
 * freezer) only while its files are snapshotted, and always thawed. How a snapshot is made is
 * the storage's business (storage/snapshot.ts): a read-only subvolume snapshot in the pool,
 * else a reflink copy or a plain copy of the guest's tree.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { expiresAt } from '../common/expiry.js';
import { validateName } from '../common/names.js';
import { DEFAULT_PATTERN, snapshotName } from '../common/snapname.js';
import { guestFreezer, withFrozen } from '../cgroups/freeze.js';
import { parseConfig, validateConfig, type GuestConfig } from '../guest/config.js';
import { withGuestLock } from '../guest/locks.js';
import { guestLog } from '../guest/log.js';
import { initAlive, readState } from '../guest/state.js';
import { loadConfig, saveConfig } from '../guest/store.js';
import { mkdirp, removeTree, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { trace } from '../os/trace.js';
import { storageDriver, type StorageDriver } from '../storage/index.js';
import { layout } from '../storage/layout.js';
import {
  removeSnapshotDir,
  restoreSnapshot,
  snapshotBytes,
  snapshotKind,
  prepareSnapshot,
  readMeta,
  recoverSwaps,
  snapshotMetas,
  SNAPSHOT_META,
  type SnapshotKind,
  type SnapshotMeta,
} from '../storage/snapshot.js';
import { vol } from '../storage/vol.js';
import { requireGuestFiles } from './running.js';

export type { SnapshotKind, SnapshotMeta };

export interface SnapshotInfo extends SnapshotMeta {
  /** Space only this snapshot holds, where known (a pool's snapshot, a plain copy). */
  bytes?: number;
}

async function guestDriver(name: string): Promise<{ cfg: GuestConfig; driver: StorageDriver }> {
  const cfg = loadConfig(name);
  return { cfg, driver: await storageDriver(cfg.storage.driver) };
}

const metas = (driver: StorageDriver, guest: string): SnapshotMeta[] =>
  snapshotMetas(driver.snapshotsDir(guest));

/** Incus' default names: snap0, snap1, ... (one more than the highest snapN). */
export const nextSnapshotName = (existing: readonly string[]): string =>
  snapshotName(DEFAULT_PATTERN, existing, new Date());

export function requireSnapshot(driver: StorageDriver, guest: string, snap: string): SnapshotMeta {
  validateName(snap, 'snapshot');
  const m = readMeta(join(driver.snapshotsDir(guest), snap));
  if (!m)
    throw new JaulaError(
      'not_found',
      `Guest "${guest}" has no snapshot "${snap}" (see "jaula snapshot list ${guest}")`,
    );
  return m;
}

/** Remove snapshots a crash left in the making (.new-*: of `snapshot create`, and backups' copies). */
export async function removeSnapshotLeftovers(dir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith('.new-')) await removeSnapshotDir(join(dir, n));
}

/** Roll back or complete a restore a crash interrupted (storage/snapshot.ts recoverSwaps). */
async function recover(guest: string, driver: StorageDriver): Promise<void> {
  const targets = [layout.vol(guest), driver.treePath(guest), ...driver.linkedDirs(guest)];
  for (const line of await recoverSwaps(targets)) guestLog(guest, `snapshot: ${line}`);
}

/** Keep the image of a guest with an ext4 quota mounted while `fn` reads or writes its files. */
async function withAttached<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (vol.attached(name)) return fn();
  await vol.attach(name);
  try {
    return await fn();
  } finally {
    vol.detach(name);
  }
}

export interface CreateOptions {
  onProgress?: (line: string) => void;
  /** How long to keep it (`--expiry 2d`: common/expiry.ts); absent: for ever. */
  expiry?: string;
  /** Taken by jaulad's schedule: named by the guest's snapshots.pattern, kept for its snapshots.expiry. */
  scheduled?: boolean;
  /** The time its name and expiry count from (jaulad's tick; default now). */
  at?: Date;
}

/** Take a snapshot of a guest, running or not (the default name: snap0, snap1, ...). */
export async function createSnapshot(
  guest: string,
  snap?: string,
  o: CreateOptions = {},
): Promise<SnapshotInfo> {
  if (snap !== undefined) validateName(snap, 'snapshot');
  const when = o.at ?? new Date();
  // (checked before the lock: a bad --expiry takes nothing)
  const expires = o.expiry === undefined ? undefined : expiresAt(when, o.expiry, '--expiry');
  return withGuestLock(guest, async () => {
    const { cfg, driver } = await guestDriver(guest);
    requireGuestFiles(cfg, driver);
    const dir = driver.snapshotsDir(guest);
    await recover(guest, driver);
    await removeSnapshotLeftovers(dir);
    const policy = o.scheduled ? cfg.snapshots : undefined;
    const existing = metas(driver, guest).map((m) => m.name);
    const name = snap ?? snapshotName(policy?.pattern ?? DEFAULT_PATTERN, existing, when);
    const until = policy?.expiry ? expiresAt(when, policy.expiry) : expires;
    if (fs.existsSync(join(dir, name)))
      throw new JaulaError(
        'exists',
        `Guest "${guest}" already has a snapshot "${name}": choose another name, or delete it first ("jaula snapshot delete ${guest} ${name}")`,
      );
    const kind = snapshotKind(guest, driver);
    const at = join(dir, `.new-${name}-${tmpSuffix()}`);
    mkdirp(at, 0o700);
    try {
      // (jaula's own files, not the guest's: copied in this process, symlinks as links)
      fs.cpSync(paths().guestConf(guest), join(at, 'conf'), { recursive: true, verbatimSymlinks: true });
      const st = readState(guest);
      const running = initAlive(st);
      const meta: SnapshotMeta = {
        name,
        id: randomUUID(),
        created: new Date().toISOString(),
        kind,
        running,
        sub: driver.treePath(guest).split('/').pop() as string,
        ...(until ? { expires: until.toISOString() } : {}),
        ...(o.scheduled ? { scheduled: true } : {}),
      };
      trace('snapshot: prepared');
      await withAttached(guest, async () => {
        const take = await prepareSnapshot(cfg, driver, at, kind);
        if (!running) return take();
        const f = guestFreezer(st.pid as number, st.cgroupsPath);
        const t0 = performance.now();
        await withFrozen(f, take);
        meta.frozenMs = Math.round((performance.now() - t0) * 10) / 10;
      });
      trace('snapshot: taken');
      writeFileAtomic(join(at, SNAPSHOT_META), JSON.stringify(meta, null, 2) + '\n', 0o600);
      fs.renameSync(at, join(dir, name));
      guestLog(
        guest,
        `snapshot "${name}" taken (${o.scheduled ? 'scheduled, ' : ''}${kind}${running ? `, frozen ${meta.frozenMs} ms` : ''}${until ? `, expires ${meta.expires}` : ''})`,
      );
      o.onProgress?.(describe(guest, meta));
      return meta;
    } catch (e) {
      await removeSnapshotDir(at);
      throw e;
    }
  });
}

const KIND_TEXT: Record<SnapshotKind, string> = {
  subvolume: 'a read-only btrfs subvolume snapshot (no data copied)',
  reflink: 'a reflink copy of its files (blocks shared until written)',
  copy: 'a full copy of its files (this filesystem cannot reflink)',
};

function describe(guest: string, m: SnapshotMeta): string {
  return `Snapshot "${m.name}" of guest "${guest}": ${KIND_TEXT[m.kind]}${m.running ? `; the guest was frozen for ${m.frozenMs} ms` : ''}`;
}

export async function listSnapshots(guest: string): Promise<SnapshotInfo[]> {
  const { driver } = await guestDriver(guest);
  const list = metas(driver, guest);
  const sizes = await snapshotBytes(driver.snapshotsDir(guest), list);
  return list.map((m) => {
    const bytes = sizes.get(m.name);
    return bytes === undefined ? m : { ...m, bytes };
  });
}

/** `why` goes to the guest's log ("expired at ..."). */
export async function deleteSnapshot(guest: string, snap: string, why?: string): Promise<void> {
  await withGuestLock(guest, async () => {
    const { driver } = await guestDriver(guest);
    requireSnapshot(driver, guest, snap);
    const dir = join(driver.snapshotsDir(guest), snap);
    // Out of sight first (one rename): a crash in the removal leaves a leftover, not half a snapshot.
    const gone = join(driver.snapshotsDir(guest), `.new-deleted-${snap}-${tmpSuffix()}`);
    fs.renameSync(dir, gone);
    await removeSnapshotDir(gone);
    guestLog(guest, `snapshot "${snap}" deleted${why ? ` (${why})` : ''}`);
  });
}

/** A guest's snapshots whose expiry is at or before `now` (cheap: their meta.json only). */
export async function expiredSnapshots(guest: string, now: Date): Promise<SnapshotMeta[]> {
  const { driver } = await guestDriver(guest);
  return metas(driver, guest).filter(
    (m) => m.expires !== undefined && Date.parse(m.expires) <= now.getTime(),
  );
}

/** Remove every snapshot of a guest (deleting it). */
export async function removeAllSnapshots(guest: string, driver: StorageDriver): Promise<void> {
  const dir = driver.snapshotsDir(guest);
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) await removeSnapshotDir(join(dir, n));
}

/** The config a restore saves: the snapshot's, under the guest's name and storage today. */
function restoredConfig(cfg: GuestConfig, snapDir: string): GuestConfig {
  const file = join(snapDir, 'conf', 'config.toml');
  const old = parseConfig(fs.readFileSync(file, 'utf8'), file);
  return validateConfig({ ...old, name: cfg.name, storage: cfg.storage });
}

export interface RestoreResult {
  snapshot: SnapshotMeta;
  /** The guest was running: it was stopped for the restore and started again. */
  restarted: boolean;
}

/**
 * Put a guest back as it was at a snapshot (its files and config). A running guest is stopped
 * for it and started again, as Incus does (`incus snapshot restore`); a failure leaves its files
 * as they were (storage/snapshot.ts restoreSnapshot) and it is started again all the same.
 */
export async function restoreGuestSnapshot(
  guest: string,
  snap: string,
  o: { onProgress?: (line: string) => void } = {},
): Promise<RestoreResult> {
  const { driver } = await guestDriver(guest);
  requireSnapshot(driver, guest, snap);
  const { stopGuest, startGuest } = await import('./lifecycle.js');
  const wasRunning = initAlive(readState(guest));
  if (wasRunning) {
    o.onProgress?.(`Guest "${guest}" is running: stopping it to restore "${snap}", then starting it again`);
    await stopGuest(guest);
  }
  try {
    const meta = await withGuestLock(guest, async () => {
      const { cfg } = await guestDriver(guest);
      if (initAlive(readState(guest)))
        throw new JaulaError('state', `Guest "${guest}" was started again meanwhile: stop it, then restore`);
      const m = requireSnapshot(driver, guest, snap);
      await recover(guest, driver);
      const dir = join(driver.snapshotsDir(guest), snap);
      const next = restoredConfig(cfg, dir);
      await driver.unmount(cfg);
      await withAttached(guest, () => restoreSnapshot(cfg, driver, dir, m.kind));
      saveConfig(next);
      const fstab = join(dir, 'conf', 'fstab');
      if (fs.existsSync(fstab)) fs.copyFileSync(fstab, join(paths().guestConf(guest), 'fstab'));
      else fs.rmSync(join(paths().guestConf(guest), 'fstab'), { force: true });
      // hashify reads the restored files afresh; a unify pending for the old ones is dropped.
      for (const f of [layout.unifyPending(guest), layout.unifiedStamp(guest), layout.index(guest)])
        removeTree(f);
      guestLog(guest, `restored to snapshot "${snap}" of ${m.created}`);
      return m;
    });
    if (wasRunning) await startGuest(guest);
    return { snapshot: meta, restarted: wasRunning };
  } catch (e) {
    // its files are as they were: it runs again as it did (a failure to start says why itself)
    if (wasRunning && !initAlive(readState(guest))) await startGuest(guest).catch(() => {});
    throw e;
  }
}
