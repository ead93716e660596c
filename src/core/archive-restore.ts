/**
 * Restore: a guest made from an archive (core/archive.ts describes the format and the stream
 * API). In two steps, so that a bad archive makes nothing:
 *
 *  1. receive: every member is hashed as it comes and kept in a staging directory
 *     (templates/.restore.tmp-MAKER-ID: removed at the end, or by the leftovers' cleaner if this
 *     process dies); layers this host has (same digest) are read and dropped. Nothing else is
 *     made until the manifest and its digest check out.
 *  2. make: each missing layer is unpacked (every member checked first, src/os/tar.ts) into a
 *     new template and must give the digest it claims; the guest is reserved (its context kept
 *     unless taken here, then the next free one: files keep plain owners, so its ID range
 *     follows), its storage made, its own files unpacked. A failure undoes every step.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { JaulaError } from '../common/errors.js';
import { validateName } from '../common/names.js';
import { parseConfig, type GuestConfig } from '../guest/config.js';
import { BUILDING_MARK, guestExists, loadConfig } from '../guest/store.js';
import { guestLog } from '../guest/log.js';
import { mkdirp, removeTree, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { HostFiles } from '../os/hostfiles.js';
import { paths } from '../os/paths.js';
import { libDir } from '../storage/barrier.js';
import { layout } from '../storage/layout.js';
import type { ArchiveHeader, ArchiveLayer } from './archive.js';
import { ARCHIVE_FORMAT, ARCHIVE_VERSION, readArchive } from './archive-format.js';
import { DIGEST_RE, keepDigest, templateWithDigest, treeDigest } from './archive-digest.js';
import { applyTree, checkChain } from './archive-delta.js';
import { buildStorage, reserveGuest } from './build.js';
import { extractTemplate } from './methods/template.js';
import { Reverter } from './reverter.js';
import { deleteTemplate, makeTemplate } from './templates.js';
import { maker } from './template-leftovers.js';

type Progress = (line: string) => void;

export interface ImportOptions {
  /** The new guest's name (default: the archived guest's). */
  name?: string;
  progress?: Progress;
  signal?: AbortSignal;
}

export interface ImportResult {
  name: string;
  context: number;
  /** The archive's layers, bottom first: the template each is here, and whether it was stored now. */
  layers: { digest: string; template: string; stored: boolean }[];
  /** The archive was made from a running guest. */
  live: boolean;
}

const TREES = ['own', 'unified', 'hooks', 'own-gone', 'unified-gone'];

function checkRef(r: unknown): boolean {
  const x = r as Record<string, unknown> | undefined;
  return (
    r === undefined ||
    (typeof x === 'object' &&
      x !== null &&
      ['guest', 'snapshot', 'id', 'created'].every((k) => typeof x[k] === 'string'))
  );
}

function checkHeader(h: Record<string, unknown>, what: string): ArchiveHeader {
  const bad = (why: string): JaulaError =>
    new JaulaError('invalid', `The archive ${what} is refused: ${why}`);
  if (h['version'] !== ARCHIVE_VERSION)
    throw new JaulaError(
      'unsupported',
      `The archive ${what} is of version ${String(h['version'])} of jaula's guest archives; this jaula reads version ${ARCHIVE_VERSION}: restore it with a jaula of its version`,
    );
  const x = h as unknown as ArchiveHeader;
  if (x.format !== ARCHIVE_FORMAT || typeof x.guest !== 'string' || typeof x.config !== 'string')
    throw bad('its header lacks the guest or its config');
  if (
    !Array.isArray(x.layers) ||
    !x.layers.every((l) => DIGEST_RE.test(String(l?.digest)) && typeof l.name === 'string')
  )
    throw bad('its header names a layer without a valid digest');
  if (!Array.isArray(x.trees) || !x.trees.includes('own') || !x.trees.every((t) => TREES.includes(t)))
    throw bad('its header lists unknown trees');
  if (!checkRef(x.point) || !checkRef(x.base)) throw bad('its header names a snapshot without its ID');
  if (!x.base && x.trees.some((t) => t.endsWith('-gone')))
    throw bad('it lists removed paths but is no increment');
  validateName(x.guest);
  for (const l of x.layers) validateName(l.name, 'layer');
  return x;
}

interface Received {
  header: ArchiveHeader;
  /** Local templates of layers this host already had, by digest. */
  here: Map<string, string>;
  /** Staged files by stream name (layer/DIGEST, own, unified, hooks). */
  staged: Map<string, string>;
}

/** Step 1: read the whole archive into `stage`, every member checked. */
async function receive(
  source: AsyncIterable<Buffer>,
  stage: string,
  what: string,
  o: ImportOptions,
): Promise<Received> {
  let header: ArchiveHeader | undefined;
  const here = new Map<string, string>();
  const staged = new Map<string, string>();
  const fds = new Map<string, { fd: number; next: number }>();
  try {
    await readArchive(source, what, {
      header(h) {
        header = checkHeader(h, what);
        const name = o.name ?? header.guest;
        if (guestExists(name))
          throw new JaulaError(
            'exists',
            `A guest named "${name}" already exists here: restore under another name with --name NEW, or delete it first`,
          );
        for (const l of header.layers) {
          const t = templateWithDigest(l.digest);
          if (t) here.set(l.digest, t);
        }
      },
      open(member) {
        const m = /^(layer\/([0-9a-f]{64})|own|unified|hooks|own-gone|unified-gone)\.(\d{6})$/.exec(member);
        const stream = m?.[1];
        const layer = m?.[2];
        const known = layer
          ? !header?.base && header?.layers.some((l) => l.digest === layer && l.sent)
          : header?.trees.includes(stream ?? '');
        if (!m || !stream || !known)
          throw new JaulaError(
            'invalid',
            `The archive ${what} is refused: it holds an unexpected member "${member}"`,
          );
        if (layer && here.has(layer)) return { data: () => {} }; // read, checked, and dropped
        let f = fds.get(stream);
        if (!f) {
          const file = join(stage, stream.replace('/', '-'));
          f = { fd: fs.openSync(file, 'wx', 0o600), next: 0 };
          fds.set(stream, f);
          staged.set(stream, file);
        }
        if (Number(m[3]) !== f.next++)
          throw new JaulaError(
            'invalid',
            `The archive ${what} is refused: its member "${member}" is out of order`,
          );
        const fd = f.fd;
        return {
          data(b: Buffer) {
            for (let off = 0; off < b.length;) off += fs.writeSync(fd, b, off);
          },
        };
      },
    });
  } finally {
    for (const f of fds.values()) fs.closeSync(f.fd);
  }
  const h = header as ArchiveHeader;
  // (an increment's layers are its base's: checked against the chain's first archive)
  for (const l of h.base ? [] : h.layers)
    if (!here.has(l.digest) && !staged.has(`layer/${l.digest}`))
      throw new JaulaError(
        'not_found',
        `The archive ${what} leaves out the layer "${l.name}" (digest ${l.digest.slice(0, 12)}), which this host does not have: import that template first, or make the archive again without leaving it out`,
      );
  for (const t of h.trees)
    if (!staged.has(t))
      throw new JaulaError('invalid', `The archive ${what} is refused: its tree "${t}" is missing`);
  return { header: h, here, staged };
}

/** A free template name for a layer stored from an archive. */
function layerName(l: ArchiveLayer): string {
  if (!fs.existsSync(layout.templateDir(l.name))) return l.name;
  return validateName(`${l.name.slice(0, 40)}-${l.digest.slice(0, 12)}`, 'template');
}

/** Store one layer as a template; its tree must give the digest the archive claims. */
async function storeLayer(l: ArchiveLayer, file: string, rev: Reverter, o: ImportOptions): Promise<string> {
  const name = layerName(l);
  await makeTemplate(name, `restore (layer "${l.name}" from an archive)`, async (tree) => {
    await extractTemplate(file, tree, o.signal, undefined, { allowDevices: true });
    const d = treeDigest(tree);
    if (d !== l.digest)
      throw new JaulaError(
        'invalid',
        `The archive's layer "${l.name}" unpacks to a tree of digest ${d.slice(0, 12)}, not the ${l.digest.slice(0, 12)} it claims: refused`,
      );
  });
  rev.add(`remove the template "${name}"`, () => deleteTemplate(name));
  keepDigest(layout.templateDir(name), l.digest);
  o.progress?.(`Layer "${l.name}" stored as template "${name}"`);
  return name;
}

/** The restored guest's config: the archive's, renamed, with this host's layer names. */
function restoredConfig(r: Received, name: string, local: string[]): GuestConfig {
  const cfg = parseConfig(r.header.config, `the config in the archive`);
  const byOld = new Map(r.header.layers.map((l, i) => [l.name, local[i] as string]));
  const storage = { ...cfg.storage };
  if (local.length) storage.layers = local;
  // A template that is no layer was copied into its tree: its name is kept as a record only.
  const t = storage.template === undefined ? undefined : byOld.get(storage.template);
  if (t) storage.template = t;
  return { ...cfg, name, storage };
}

/** Step 2: the layers this host lacks, then the guest (from the full archive, then each increment on it). */
async function make(r: Received, o: ImportOptions, increments: Received[] = []): Promise<ImportResult> {
  const name = o.name ?? r.header.guest;
  const rev = new Reverter();
  try {
    const layers: ImportResult['layers'] = [];
    for (const l of r.header.layers) {
      const have = r.here.get(l.digest) ?? templateWithDigest(l.digest);
      if (have) o.progress?.(`Layer "${l.name}" is here already as template "${have}": not stored twice`);
      const template = have ?? (await storeLayer(l, r.staged.get(`layer/${l.digest}`) as string, rev, o));
      layers.push({ digest: l.digest, template, stored: !have });
    }
    const last = increments[increments.length - 1] ?? r;
    const cfg = restoredConfig(
      last,
      name,
      layers.map((l) => l.template),
    );
    const driver = await buildStorage(cfg.storage.driver);
    const was = cfg.context;
    await reserveGuest(cfg, rev, 'prefer');
    if (cfg.context !== was)
      o.progress?.(`Context ${was} is taken here: guest "${name}" gets context ${cfg.context}`);
    rev.add('remove the guest data', () => driver.destroy(name));
    // Its files come from the archive, not from a template (dir, reflink: no copy of one).
    const bare = { ...cfg.storage };
    delete bare.template;
    await driver.create({ ...cfg, storage: bare });
    rev.add('unmount its storage', () => driver.unmount(cfg));
    const unpack = (tree: string, dir: string, devices: boolean): Promise<unknown> =>
      extractTemplate(r.staged.get(tree) as string, dir, o.signal, undefined, { allowDevices: devices });
    await unpack('own', driver.treePath(name), cfg.privileged);
    if (r.staged.has('unified')) {
      mkdirp(layout.unifiedLayer(name));
      await unpack('unified', layout.unifiedLayer(name), cfg.privileged);
    }
    for (const [i, inc] of increments.entries()) {
      const what = `increment ${i + 1} (from snapshot "${inc.header.base?.snapshot}")`;
      await applyTree(inc.staged, 'own', driver.treePath(name), cfg.privileged, what);
      if (r.staged.has('unified') || inc.staged.has('unified'))
        await applyTree(inc.staged, 'unified', layout.unifiedLayer(name), cfg.privileged, what);
      o.progress?.(
        `Increment ${i + 1} (snapshot "${inc.header.base?.snapshot}" to ${inc.header.point ? `snapshot "${inc.header.point.snapshot}"` : inc.header.created}) applied`,
      );
    }
    await driver.unmount(cfg);
    const conf = paths().guestConf(name);
    if (last.header.fstab !== null) writeFileAtomic(join(conf, 'fstab'), last.header.fstab);
    mkdirp(join(conf, 'hooks'));
    if (last.staged.has('hooks'))
      await extractTemplate(last.staged.get('hooks') as string, join(conf, 'hooks'), o.signal, undefined, {
        allowDevices: false,
      });
    fs.rmSync(join(conf, BUILDING_MARK));
    guestLog(
      name,
      `restored from an archive of guest "${r.header.guest}" made on ${r.header.host} at ${r.header.created}${increments.length ? ` and ${increments.length} increment${increments.length === 1 ? '' : 's'} (the last made at ${last.header.created})` : ''}, context ${cfg.context}`,
    );
    rev.success();
    return { name, context: loadConfig(name).context, layers, live: r.header.live === true };
  } catch (e) {
    return rev.fail(e);
  }
}

/** One archive of a chain: where it is read from, and its name in messages. */
export interface ChainLink {
  source: Readable | AsyncIterable<Buffer>;
  what: string;
}

/**
 * Make a guest from a chain of archives: a full one, then increments, each from the snapshot
 * the archive before it holds (see the module's header). Every archive is read and checked
 * before anything is made.
 */
export async function importChain(chain: ChainLink[], o: ImportOptions = {}): Promise<ImportResult> {
  if (o.name !== undefined) validateName(o.name);
  if (!chain.length) throw new JaulaError('usage', 'No archive to restore');
  libDir();
  mkdirp(layout.templates(), 0o700);
  const stage = join(layout.templates(), `.restore.tmp-${maker()}-${tmpSuffix()}`);
  mkdirp(stage, 0o700);
  try {
    const got: Received[] = [];
    for (const [i, link] of chain.entries()) {
      const dir = join(stage, String(i));
      mkdirp(dir, 0o700);
      const name = o.name ?? got[0]?.header.guest;
      got.push(
        await receive(link.source as AsyncIterable<Buffer>, dir, link.what, {
          ...o,
          ...(name ? { name } : {}),
        }),
      );
    }
    checkChain(
      got.map((g) => g.header),
      chain.map((c) => c.what),
    );
    const [full, ...increments] = got as [Received, ...Received[]];
    o.progress?.(
      `Archive${chain.length > 1 ? 's' : ''} checked (every member against its manifest): making guest "${o.name ?? full.header.guest}"`,
    );
    return await make(full, o, increments);
  } finally {
    removeTree(stage);
  }
}

/** Make a guest from the archive read from `source` (a full one). */
export async function importGuest(
  source: Readable | AsyncIterable<Buffer>,
  o: ImportOptions & { what?: string } = {},
): Promise<ImportResult> {
  return importChain([{ source, what: o.what ?? 'on the input' }], o);
}

/**
 * Restore from FILE on this host, then each of `increments` on it (each opened once: beneath
 * --host-files for a client over TCP).
 */
export async function restoreGuest(
  file: string,
  o: ImportOptions & { hostFiles?: HostFiles; increments?: string[] } = {},
): Promise<ImportResult> {
  const files = [file, ...(o.increments ?? [])];
  const opened: { close(): void }[] = [];
  const inputs: fs.ReadStream[] = [];
  try {
    const chain = files.map((f) => {
      const src = (o.hostFiles ?? HostFiles.any).openFile(f, 'backup file');
      opened.push(src);
      const input = fs.createReadStream(src.path, { highWaterMark: 1 << 20 });
      inputs.push(input);
      return { source: input, what: `"${f}"` };
    });
    return await importChain(chain, o);
  } finally {
    for (const i of inputs) i.destroy();
    for (const s of opened) s.close();
  }
}
