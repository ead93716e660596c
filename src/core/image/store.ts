import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import type { ImageInfo } from '../../api/types.js';
import { JaulaError } from '../../common/errors.js';
import { mkdirp, removeTree, tmpSuffix, writeFileAtomic } from '../../os/fs.js';
import { withLock } from '../../os/lock.js';
import { paths } from '../../os/paths.js';
import { layout } from '../../storage/layout.js';
import { loadEveryConfig } from '../../guest/store.js';
import type { GuestConfig } from '../../guest/config.js';
import { layerKey, readLayerMeta } from './layer.js';
import { DIGEST_RE, formatRef, parseRef } from './ref.js';

/**
 * Stored images: var/lib/jaula/images/refs/KEY.json (KEY from the reference) records an image:
 * its reference, its manifest's digest, its config and its layers; the blobs it was made of are
 * kept in images/blobs/sha256/HEX (a pull of an unchanged image fetches only the manifest, and a
 * push sends a layer as it came), its layers unpacked in var/lib/jaula/layers (layer.ts).
 */
export interface OciConfig {
  architecture?: string;
  os?: string;
  config?: {
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Env?: string[] | null;
    WorkingDir?: string;
    User?: string;
    StopSignal?: string;
    ExposedPorts?: Record<string, unknown> | null;
  };
  rootfs?: { type?: string; diff_ids?: string[] };
}

export interface ImageLayer {
  digest: string;
  mediaType: string;
  size: number;
  diffId: string;
}

export interface ImageRecord {
  ref: string;
  /** The manifest's digest (the platform's manifest under an index). */
  digest: string;
  /** The digest of the index (manifest list) the manifest was chosen from. */
  indexDigest?: string;
  created: string;
  source: string;
  platform: string;
  configDigest: string;
  config: OciConfig;
  layers: ImageLayer[];
}

const refsDir = (): string => join(layout.images(), 'refs');
const recordFile = (ref: string): string =>
  join(refsDir(), `${createHash('sha256').update(ref).digest('hex').slice(0, 32)}.json`);

export function blobPath(digest: string): string {
  if (!DIGEST_RE.test(digest)) throw new JaulaError('invalid', `"${digest}" is not a sha256 digest`);
  return join(layout.images(), 'blobs', 'sha256', digest.slice(7));
}

export function partialBlobPath(digest: string): string {
  return join(layout.images(), 'blobs', '.partial', digest.slice(7));
}

/** The normal form of a reference the user gives (a stored image is found by it). */
export function normalRef(ref: string): string {
  const r = parseRef(ref);
  return formatRef(r);
}

export function readImage(ref: string): ImageRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordFile(normalRef(ref)), 'utf8')) as ImageRecord;
  } catch {
    return undefined;
  }
}

export function allImages(): ImageRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(refsDir());
  } catch {
    return [];
  }
  const out: ImageRecord[] = [];
  for (const n of names.filter((x) => x.endsWith('.json')))
    try {
      out.push(JSON.parse(fs.readFileSync(join(refsDir(), n), 'utf8')) as ImageRecord);
    } catch {
      /* a record being written */
    }
  return out.sort((a, b) => a.ref.localeCompare(b.ref));
}

export function writeImage(r: ImageRecord): void {
  mkdirp(refsDir(), 0o700);
  writeFileAtomic(recordFile(r.ref), JSON.stringify(r, null, 2) + '\n');
}

/** Store a blob held in memory (a manifest, a config) under its digest. */
export function putBlob(digest: string, data: Buffer): void {
  const p = blobPath(digest);
  if (fs.existsSync(p)) return;
  mkdirp(dirname(p), 0o700);
  writeFileAtomic(p, data);
}

/** The name of an image's stack of layers (its copy on the reflink pool): the digest of their names. */
export function stackKey(keys: string[]): string {
  return createHash('sha256').update(keys.join('\n')).digest('hex').slice(0, 56);
}

/** The layers' names in a guest's config, bottom first. */
export function layerKeys(r: ImageRecord): string[] {
  return r.layers.map((l) => layerKey(l.diffId));
}

/** Guests whose root stacks every layer of the image, in its order, at its bottom. */
export function imageUsers(r: ImageRecord, all: GuestConfig[] = loadEveryConfig()): string[] {
  const keys = layerKeys(r);
  return all
    .filter((c) => keys.length > 0 && keys.every((k, i) => (c.storage.layers ?? [])[i] === k))
    .map((c) => c.name);
}

export function imageInfo(r: ImageRecord, all?: GuestConfig[]): ImageInfo {
  const c = r.config.config ?? {};
  const layers = r.layers.map((l) => {
    const m = readLayerMeta(layerKey(l.diffId));
    return {
      digest: l.digest,
      diffId: l.diffId,
      layer: layerKey(l.diffId),
      size: l.size,
      files: m?.files ?? 0,
      bytes: m?.bytes ?? 0,
    };
  });
  return {
    ref: r.ref,
    digest: r.digest,
    created: r.created,
    source: r.source,
    platform: r.platform,
    layers,
    bytes: layers.reduce((a, l) => a + l.bytes, 0),
    entrypoint: c.Entrypoint ?? [],
    cmd: c.Cmd ?? [],
    env: c.Env ?? [],
    workingDir: c.WorkingDir ?? '',
    user: c.User ?? '',
    exposedPorts: Object.keys(c.ExposedPorts ?? {}),
    stopSignal: c.StopSignal ?? '',
    usedBy: imageUsers(r, all),
  };
}

export function listImages(): ImageInfo[] {
  const all = loadEveryConfig();
  return allImages().map((r) => imageInfo(r, all));
}

export function inspectImage(ref: string): ImageInfo {
  const r = readImage(ref);
  if (!r)
    throw new JaulaError(
      'not_found',
      `There is no stored image "${ref}" (see "jaula image list"; get one with "jaula image pull ${ref}")`,
    );
  return imageInfo(r);
}

/**
 * Delete a stored image: refused while a guest stacks its layers. Its layers and blobs go
 * unless another image or a guest still uses them.
 */
export async function deleteImage(ref: string): Promise<string> {
  return withLock(paths().locks, 'build', 'Building guests', async () => {
    const r = readImage(ref);
    if (!r) throw new JaulaError('not_found', `There is no stored image "${ref}" (see "jaula image list")`);
    const all = loadEveryConfig();
    const users = imageUsers(r, all);
    if (users.length)
      throw new JaulaError(
        'state',
        `The image "${r.ref}" is used by ${users.length === 1 ? 'guest' : 'guests'} ${users.map((u) => `"${u}"`).join(', ')} (${users.length === 1 ? 'its root stacks' : 'their roots stack'} the image's layers): delete ${users.length === 1 ? 'it' : 'them'} first`,
      );
    fs.rmSync(recordFile(r.ref));
    const rest = allImages();
    const keep = new Set<string>([
      ...rest.flatMap((x) => [
        x.digest,
        x.configDigest,
        ...(x.indexDigest ? [x.indexDigest] : []),
        ...x.layers.map((l) => l.digest),
      ]),
    ]);
    const keepLayers = new Set([...rest.flatMap(layerKeys), ...all.flatMap((c) => c.storage.layers ?? [])]);
    for (const d of [
      r.digest,
      r.configDigest,
      ...(r.indexDigest ? [r.indexDigest] : []),
      ...r.layers.map((l) => l.digest),
    ])
      if (!keep.has(d)) fs.rmSync(blobPath(d), { force: true });
    for (const k of layerKeys(r))
      if (!keepLayers.has(k)) {
        const dir = dirname(layout.templateTree(k));
        const gone = join(layout.layers(), `.${k}.deleting-${tmpSuffix()}`);
        try {
          fs.renameSync(dir, gone);
        } catch {
          continue;
        }
        removeTree(gone);
      }
    const stack = stackKey(layerKeys(r));
    if (!rest.some((x) => stackKey(layerKeys(x)) === stack)) removeTree(layout.poolImage(stack));
    return r.ref;
  });
}
