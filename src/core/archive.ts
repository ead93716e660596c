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
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { validateName } from '../common/names.js';
import { formatMiB } from '../common/size.js';
import { JaulaError } from '../common/errors.js';
import { serializeConfig } from '../guest/config.js';
import { withGuestLock } from '../guest/locks.js';
import { initAlive, readState } from '../guest/state.js';
import { loadConfig } from '../guest/store.js';
import { mkdirp, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { HostFiles } from '../os/hostfiles.js';
import { tarCreateStream } from '../os/tarstream.js';
import { storageDriver, type StorageDriver } from '../storage/index.js';
import { layout } from '../storage/layout.js';
import { vol } from '../storage/vol.js';
import { ARCHIVE_FORMAT, ARCHIVE_VERSION, ArchiveWriter } from './archive-format.js';
import { templateDigest } from './archive-digest.js';
import { treeDelta, type TreeDelta } from './archive-delta.js';
import { pathList } from './migrate/transfer.js';
import { liveView, presentSource, snapshotOf, snapshotSource, type Source } from './archive-source.js';
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
  /** The snapshot whose files these are (backup --snapshot): an increment may follow it. */
  point?: SnapshotRef;
  /**
   * An increment (backup --from): its trees hold only what changed since this snapshot, and
   * TREE-gone the paths removed since; it is restored after the archive of that snapshot.
   */
  base?: SnapshotRef;
}

/** A snapshot as an archive names it: an increment's base must be its predecessor's point. */
export interface SnapshotRef {
  guest: string;
  snapshot: string;
  id: string;
  created: string;
}

export interface ExportOptions {
  /** Archive this snapshot of the guest (its files and config then), not its present state. */
  snapshot?: string;
  /** Only what changed since this snapshot (an increment: restored after that snapshot's archive). */
  from?: string;
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
  /** An increment: its base snapshot, and how many paths it sends again and removes. */
  base?: string;
  changed?: number;
  removed?: number;
}

/** A tree read by tar into the archive as members NAME.000000...; returns its compressed bytes. */
async function sendTree(
  w: ArchiveWriter,
  member: string,
  dir: string,
  signal?: AbortSignal,
  live = false,
  files?: readonly string[],
): Promise<number> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  signal?.addEventListener('abort', stop);
  const t = tarCreateStream(dir, `Reading ${dir}`, ac.signal, live, files);
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

/** The header of `src`'s archive; layers the receiver has (or an increment's base has) are marked as not sent. */
async function headerOf(
  src: Source,
  driver: StorageDriver,
  live: boolean,
  o: ExportOptions,
  refs: { point?: SnapshotRef; base?: SnapshotRef },
): Promise<{ header: ArchiveHeader; trees: [string, string][] }> {
  const cfg = src.cfg;
  const layers: ArchiveLayer[] = [];
  for (const name of driver.info.layers ? (cfg.storage.layers ?? []) : []) {
    o.progress?.(`Layer "${name}": its digest`);
    const digest = templateDigest(name);
    layers.push({ name, digest, sent: !refs.base && !(await o.have?.(digest)) });
  }
  const trees: [string, string][] = [['own', src.own]];
  if (src.unified && nonEmptyDir(src.unified)) trees.push(['unified', src.unified]);
  if (nonEmptyDir(src.hooks)) trees.push(['hooks', src.hooks]);
  const header: ArchiveHeader = {
    format: ARCHIVE_FORMAT,
    version: ARCHIVE_VERSION,
    created: new Date().toISOString(),
    host: hostname(),
    guest: cfg.name,
    config: serializeConfig(cfg),
    fstab: src.fstab,
    layers,
    trees: trees.map(([n]) => n),
    live,
    ...(refs.point ? { point: refs.point } : {}),
    ...(refs.base ? { base: refs.base } : {}),
  };
  return { header, trees };
}

const TREE_TEXT: Record<string, string> = {
  own: 'Its own files',
  unified: 'Its unified layer',
  hooks: 'Its hooks',
};

async function writeGuest(
  src: Source,
  driver: StorageDriver,
  sink: Writable,
  live: boolean,
  o: ExportOptions,
  refs: { point?: SnapshotRef; base?: SnapshotRef; baseTrees?: Map<string, string> } = {},
): Promise<ExportResult> {
  const { header, trees } = await headerOf(src, driver, live, o, refs);
  // An increment: each tree's delta against the base snapshot's, before anything is written.
  const deltas = new Map<string, TreeDelta>();
  if (refs.base)
    for (const [member, dir] of trees) {
      const from = refs.baseTrees?.get(member);
      if (member === 'hooks' || from === undefined) continue;
      o.progress?.(`${TREE_TEXT[member]}: comparing with snapshot "${refs.base.snapshot}"`);
      // The unified layer's files are the snapshot's own inodes (hard links): no ctime rule there.
      const since = member === 'own' && src.ctimes ? Date.parse(refs.base.created) : undefined;
      deltas.set(member, treeDelta(from, dir, since));
    }
  for (const member of deltas.keys()) header.trees.push(`${member}-gone`);
  const w = new ArchiveWriter(sink);
  await w.header(header);
  for (const l of header.layers) {
    if (!l.sent) {
      o.progress?.(
        refs.base
          ? `Layer "${l.name}" (${l.digest.slice(0, 12)}): left out, the archive of the base snapshot holds it`
          : `Layer "${l.name}" (${l.digest.slice(0, 12)}): left out, the receiver has it`,
      );
      continue;
    }
    const n = await sendTree(w, `layer/${l.digest}`, layout.templateTree(l.name), o.signal);
    o.progress?.(`Layer "${l.name}" (${l.digest.slice(0, 12)}): ${formatMiB(n)}`);
  }
  let changed = 0;
  let removed = 0;
  for (const [member, dir] of trees) {
    const d = deltas.get(member);
    // A running guest's own files change while tar reads them (unless read from a snapshot).
    const n = await sendTree(w, member, dir, o.signal, src.changing && member === 'own', d?.changed);
    if (d) {
      await w.stream(`${member}-gone`, Readable.from([pathList(d.removed)]));
      changed += d.changed.length;
      removed += d.removed.length;
    }
    o.progress?.(
      `${TREE_TEXT[member]}: ${formatMiB(n)}${d ? ` (${d.changed.length} paths new or changed, ${d.removed.length} removed since snapshot "${refs.base?.snapshot}")` : ''}`,
    );
  }
  await w.finish();
  return {
    name: src.cfg.name,
    bytes: w.bytes,
    layers: header.layers,
    live,
    ...(refs.base ? { base: refs.base.snapshot, changed, removed } : {}),
  };
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
    const base = o.from === undefined ? undefined : snapshotOf(cfg, driver, o.from);
    const point = o.snapshot === undefined ? undefined : snapshotOf(cfg, driver, o.snapshot);
    if (base && point && (base.ref.id === point.ref.id || base.meta.created > point.meta.created))
      throw new JaulaError(
        'invalid',
        `An increment goes from an older snapshot to a newer one: "${o.from}" (${base.meta.created}) is not older than "${o.snapshot}" (${point.meta.created})`,
      );
    const refs = {
      ...(point ? { point: point.ref } : {}),
      ...(base ? { base: base.ref, baseTrees: base.trees } : {}),
    };
    if (point) {
      const attach = !vol.attached(name);
      if (attach) await vol.attach(name);
      try {
        return await writeGuest(snapshotSource(cfg, point), driver, sink, false, o, refs);
      } finally {
        if (attach) vol.detach(name);
      }
    }
    const live = initAlive(readState(name));
    const view = live ? await liveView(cfg, driver, o) : undefined;
    if (!live) await driver.mount(cfg); // its image attached, hashify's pending moves applied
    try {
      return await writeGuest(presentSource(cfg, driver, live, view), driver, sink, live, o, refs);
    } finally {
      if (view) await view.drop();
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
