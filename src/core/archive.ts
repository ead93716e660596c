/**
 * Guest archives: a guest's config, the layers it needs (by content digest, each once) and its
 * own files, in one stream (the container: core/archive-format.ts). `jaula backup` writes one
 * to a file or stdout; `jaula restore` (core/archive-restore.ts) makes a guest from one;
 * migration sends one to another jaulad.
 *
 * The stream API (no CLI concerns; the caller owns the streams and closes them):
 *
 *   exportGuest(name, sink: Writable, { have?(digest), progress?, signal? }): Promise<ExportResult>
 *     Writes the archive of guest NAME into sink. Layers whose digest `have` answers true for
 *     (the receiver has them) are named in the header but left out. A stopped guest is held
 *     (its lock) so that it cannot start meanwhile. A running guest in a storage pool is read
 *     from a snapshot of its subvolume (one moment, as a power cut leaves it); elsewhere its
 *     files are copied as they are while it runs, which the result says (`live`) and
 *     `progress` tells.
 *
 *   importGuest(source: Readable, { name?, progress?, signal? }): Promise<ImportResult>
 *     (core/archive-restore.ts) Reads a whole archive, checking every member as it comes, into
 *     a staging directory; only once the manifest and its digest check out does it store the
 *     missing layers (each checked against its digest) and make the guest. A failure at any
 *     point leaves nothing: no guest, no layer, no mount, no staging file.
 */
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { basename, join, relative } from 'node:path';
import type { Writable } from 'node:stream';
import { validateName } from '../common/names.js';
import { formatMiB } from '../common/size.js';
import { serializeConfig, type GuestConfig } from '../guest/config.js';
import { withGuestLock } from '../guest/locks.js';
import { initAlive, readState } from '../guest/state.js';
import { loadConfig } from '../guest/store.js';
import { mkdirp, readFileOr, removeTree, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { run, runOk } from '../os/spawn.js';
import { HostFiles } from '../os/hostfiles.js';
import { paths } from '../os/paths.js';
import { tarCreateStream } from '../os/tarstream.js';
import { storageDriver, type StorageDriver } from '../storage/index.js';
import { layout } from '../storage/layout.js';
import { vol } from '../storage/vol.js';
import { prepareSnapshot, removeSnapshotDir, snapshotKind } from '../storage/snapshot.js';
import { guestFreezer, withFrozen } from '../cgroups/freeze.js';
import { ARCHIVE_FORMAT, ARCHIVE_VERSION, ArchiveWriter } from './archive-format.js';
import { templateDigest } from './archive-digest.js';
import { removeSnapshotLeftovers } from './snapshots.js';
import { requireGuestFiles } from './running.js';
import { exportsDir, maker } from './template-leftovers.js';
import { checkReplaceable } from './templates.js';

type Progress = (line: string) => void;

/** A layer as the header names it: its name on the sending host, its digest, whether it is inside. */
export interface ArchiveLayer {
  name: string;
  digest: string;
  sent: boolean;
}

/** The header member: what a reader needs before the data (checked with the rest at the end). */
export interface ArchiveHeader {
  format: typeof ARCHIVE_FORMAT;
  version: number;
  created: string;
  host: string;
  guest: string;
  /** The guest's config.toml. */
  config: string;
  fstab: string | null;
  /** Bottom first, as the config's layers. */
  layers: ArchiveLayer[];
  /** The trees that follow, by member name: own (always), unified, hooks. */
  trees: string[];
  /** The guest ran while its files were read. */
  live: boolean;
}

export interface ExportOptions {
  /** Whether the receiver already has the layer with this digest (it is then left out). */
  have?: (digest: string) => boolean | Promise<boolean>;
  progress?: Progress;
  signal?: AbortSignal;
}

export interface ExportResult {
  name: string;
  bytes: number;
  layers: ArchiveLayer[];
  live: boolean;
}

/** A tree read by tar into the archive as members NAME.000000...; returns its compressed bytes. */
async function sendTree(
  w: ArchiveWriter,
  member: string,
  dir: string,
  signal?: AbortSignal,
  live = false,
): Promise<number> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  signal?.addEventListener('abort', stop);
  const t = tarCreateStream(dir, `Reading ${dir}`, ac.signal, live);
  t.done.catch(() => {});
  try {
    const n = await w.stream(member, t.stream);
    await t.done;
    return n;
  } catch (e) {
    ac.abort();
    t.stream.destroy();
    throw e;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

function nonEmptyDir(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length > 0;
  } catch {
    return false;
  }
}

/** The header of `cfg`'s archive; layers the receiver has are marked as not sent. */
async function headerOf(
  cfg: GuestConfig,
  driver: StorageDriver,
  live: boolean,
  o: ExportOptions,
): Promise<{ header: ArchiveHeader; trees: [string, string][] }> {
  const layers: ArchiveLayer[] = [];
  for (const name of driver.info.layers ? (cfg.storage.layers ?? []) : []) {
    o.progress?.(`Layer "${name}": its digest`);
    const digest = templateDigest(name);
    layers.push({ name, digest, sent: !(await o.have?.(digest)) });
  }
  const trees: [string, string][] = [['own', driver.treePath(cfg.name)]];
  if (driver.info.unify === 'layer' && nonEmptyDir(layout.unifiedLayer(cfg.name)))
    trees.push(['unified', layout.unifiedLayer(cfg.name)]);
  const hooks = join(paths().guestConf(cfg.name), 'hooks');
  if (nonEmptyDir(hooks)) trees.push(['hooks', hooks]);
  const header: ArchiveHeader = {
    format: ARCHIVE_FORMAT,
    version: ARCHIVE_VERSION,
    created: new Date().toISOString(),
    host: hostname(),
    guest: cfg.name,
    config: serializeConfig(cfg),
    fstab: readFileOr(join(paths().guestConf(cfg.name), 'fstab'), null),
    layers,
    trees: trees.map(([n]) => n),
    live,
  };
  return { header, trees };
}

async function writeGuest(
  cfg: GuestConfig,
  driver: StorageDriver,
  sink: Writable,
  live: boolean,
  o: ExportOptions & { own?: string },
): Promise<ExportResult> {
  const { header, trees } = await headerOf(cfg, driver, live, o);
  if (o.own) trees[0] = ['own', o.own];
  const w = new ArchiveWriter(sink);
  await w.header(header);
  for (const l of header.layers) {
    if (!l.sent) {
      o.progress?.(`Layer "${l.name}" (${l.digest.slice(0, 12)}): left out, the receiver has it`);
      continue;
    }
    const n = await sendTree(w, `layer/${l.digest}`, layout.templateTree(l.name), o.signal);
    o.progress?.(`Layer "${l.name}" (${l.digest.slice(0, 12)}): ${formatMiB(n)}`);
  }
  for (const [member, dir] of trees) {
    // A running guest's own files change while tar reads them (unless read from a snapshot).
    const n = await sendTree(w, member, dir, o.signal, live && !o.own && member === 'own');
    o.progress?.(
      `${member === 'own' ? 'Its own files' : member === 'unified' ? 'Its unified layer' : 'Its hooks'}: ${formatMiB(n)}`,
    );
  }
  await w.finish();
  return { name: cfg.name, bytes: w.bytes, layers: header.layers, live };
}

/**
 * A running guest's own files as of one moment: in a pool, a snapshot of its subvolume (btrfs
 * makes it atomically, in milliseconds: what a sudden power cut would leave), named as a
 * template leftover (templates/.backup.tmp-MAKER-ID) so that a crash leaves nothing for long;
 * on a filesystem that clones files (XFS, btrfs), a reflink copy made while the guest is frozen
 * (as `jaula snapshot` makes one: blocks shared, no data copied), beside its snapshots as a
 * snapshot in the making (.new-*, which the next snapshot or backup removes after a crash);
 * elsewhere its live tree, which it says.
 */
async function liveView(
  cfg: GuestConfig,
  driver: StorageDriver,
  o: ExportOptions,
): Promise<{ own: string; drop: () => Promise<void> } | undefined> {
  const name = cfg.name;
  const own = driver.treePath(name);
  if (!vol.hasSubvol(name) || !own.startsWith(`${layout.vol(name)}/`)) return frozenCopy(cfg, driver, o);
  const snap = join(layout.templates(), `.backup.tmp-${maker()}-${tmpSuffix()}`);
  await runOk(['btrfs', 'subvolume', 'snapshot', layout.vol(name), snap], {
    what: `Taking a snapshot of guest "${name}"'s files`,
  });
  o.progress?.(
    `Guest "${name}" is running: its files are read from a snapshot of this moment (as a sudden power cut would leave them)`,
  );
  const drop = async (): Promise<void> => {
    const r = await run(['btrfs', 'subvolume', 'delete', snap]);
    if (r.code !== 0) removeTree(snap);
  };
  return { own: join(snap, relative(layout.vol(name), own)), drop };
}

/** A running guest's own files cloned while it is frozen, where the filesystem can (liveView). */
async function frozenCopy(
  cfg: GuestConfig,
  driver: StorageDriver,
  o: ExportOptions,
): Promise<{ own: string; drop: () => Promise<void> } | undefined> {
  const name = cfg.name;
  if (snapshotKind(name, driver) !== 'reflink') {
    o.progress?.(
      `Guest "${name}" is running: its files are copied as they are, while they may change (stop it first, or use a storage pool or a filesystem with reflinks, for a copy of one moment)`,
    );
    return undefined;
  }
  const dir = driver.snapshotsDir(name);
  await removeSnapshotLeftovers(dir);
  const at = join(dir, `.new-backup-${tmpSuffix()}`);
  mkdirp(at, 0o700);
  const drop = (): Promise<void> => removeSnapshotDir(at);
  try {
    const take = await prepareSnapshot(cfg, driver, at, 'reflink');
    const st = readState(name);
    await withFrozen(guestFreezer(st.pid as number, st.cgroupsPath), take);
  } catch (e) {
    await drop();
    throw e;
  }
  o.progress?.(
    `Guest "${name}" is running: its files are read from a reflink copy of this moment (the guest was frozen while it was made)`,
  );
  return { own: join(at, 'vol', basename(driver.treePath(name))), drop };
}

/** Write the archive of guest `name` into `sink` (see the module's header). */
export async function exportGuest(
  name: string,
  sink: Writable,
  o: ExportOptions = {},
): Promise<ExportResult> {
  validateName(name);
  return withGuestLock(name, async () => {
    const cfg = loadConfig(name);
    const driver = await storageDriver(cfg.storage.driver);
    requireGuestFiles(cfg, driver);
    const live = initAlive(readState(name));
    const snap = live ? await liveView(cfg, driver, o) : undefined;
    if (!live) await driver.mount(cfg); // its image attached, hashify's pending moves applied
    try {
      return await writeGuest(cfg, driver, sink, live, { ...o, ...(snap ? { own: snap.own } : {}) });
    } finally {
      if (snap) await snap.drop();
      if (!live) await driver.unmount(cfg);
    }
  });
}

/**
 * Back a guest up to FILE on this host: written aside in FILE's directory (root's only, 0600:
 * it holds the guest's whole tree), recorded so that a crash leaves nothing (the template
 * leftovers' cleaner removes it), renamed to FILE when complete.
 */
export async function backupGuest(
  name: string,
  file: string,
  o: ExportOptions & { hostFiles?: HostFiles } = {},
): Promise<ExportResult & { file: string }> {
  const at = (o.hostFiles ?? HostFiles.any).openParent(file, 'backup file');
  try {
    const target = join(at.path, at.base);
    checkReplaceable(target, file);
    const id = tmpSuffix();
    const tmp = join(at.path, `${at.base}.tmp-${id}`);
    const record = join(exportsDir(), `${id}.json`);
    mkdirp(exportsDir());
    writeFileAtomic(
      record,
      JSON.stringify({ tmp: join(at.real, `${at.base}.tmp-${id}`), maker: maker(), guest: name }) + '\n',
    );
    try {
      const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      const sink = fs.createWriteStream('', { fd, autoClose: false });
      try {
        const r = await exportGuest(name, sink, o);
        await new Promise<void>((res, rej) => sink.end((e?: Error | null) => (e ? rej(e) : res())));
        fs.fsyncSync(fd);
        fs.renameSync(tmp, target);
        return { ...r, file };
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    } finally {
      fs.rmSync(record, { force: true });
    }
  } finally {
    at.close();
  }
}
