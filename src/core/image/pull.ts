import * as fs from 'node:fs';
import { JaulaError } from '../../common/errors.js';
import { formatMiB } from '../../common/size.js';
import { drain, RegistryClient, type Credentials } from './http.js';
import { fetchBlob } from './blobs.js';
import { layerStored, lowerTrees, unpackLayer, type LayerLimits } from './layer.js';
import {
  choosePlatform,
  MANIFEST_ACCEPT,
  MAX_DOCUMENT,
  parseManifest,
  platformName,
  sha256,
  type Manifest,
} from './manifest.js';
import { formatRef, parseRef, type ImageRef } from './ref.js';
import { putBlob, readImage, writeImage, type ImageRecord, type OciConfig } from './store.js';

export interface PullOptions {
  creds?: Credentials;
  insecure?: boolean;
  limits?: LayerLimits;
  progress?: (line: string, fraction?: number) => void;
  signal?: AbortSignal;
}

/** GET a manifest (by tag or digest), its bytes checked against the digest it is named by or sent with. */
async function getManifest(
  c: RegistryClient,
  ref: string,
  what: string,
): Promise<{ body: Buffer; digest: string; type: string | undefined }> {
  const a = await c.request('GET', `/v2/${c.repo}/manifests/${what}`, { accept: MANIFEST_ACCEPT });
  if (a.status === 404) {
    a.body.resume();
    throw new JaulaError(
      'not_found',
      `The registry "${c.host}" has no image "${ref}" (no manifest "${what}" in "${c.repo}")`,
    );
  }
  if (a.status !== 200) {
    a.body.resume();
    throw new JaulaError(
      'io',
      `The registry "${c.host}" answered HTTP ${a.status} for the manifest of "${ref}"`,
    );
  }
  const body = await drain(a.body, MAX_DOCUMENT);
  const digest = sha256(body);
  const named = what.startsWith('sha256:') ? what : undefined;
  const sent =
    typeof a.headers['docker-content-digest'] === 'string' ? a.headers['docker-content-digest'] : undefined;
  if ((named && digest !== named) || (sent && digest !== sent))
    throw new JaulaError(
      'invalid',
      `The manifest of "${ref}" is refused: its digest is ${digest}, not ${named ?? sent}`,
    );
  return { body, digest, type: a.headers['content-type'] };
}

async function resolveManifest(
  c: RegistryClient,
  r: ImageRef,
  refText: string,
  had: ImageRecord | undefined,
): Promise<{
  manifest: Manifest;
  digest: string;
  indexDigest?: string;
  body: Buffer;
  platform: string;
  same: boolean;
}> {
  const top = await getManifest(c, refText, r.digest ?? r.tag);
  const parsed = parseManifest(top.body, top.type);
  if (parsed.kind === 'manifest')
    return {
      manifest: parsed,
      digest: top.digest,
      body: top.body,
      platform: '',
      same: had?.digest === top.digest,
    };
  if (had?.indexDigest === top.digest)
    return {
      manifest: {
        kind: 'manifest',
        config: { mediaType: '', digest: had.configDigest, size: 0 },
        layers: [],
      },
      digest: had.digest,
      indexDigest: top.digest,
      body: top.body,
      platform: had.platform,
      same: true,
    };
  putBlob(top.digest, top.body);
  const d = choosePlatform(parsed, refText);
  const m = await getManifest(c, refText, d.digest);
  const inner = parseManifest(m.body, m.type);
  if (inner.kind !== 'manifest')
    throw new JaulaError('invalid', `The index of "${refText}" points at another index`);
  return {
    manifest: inner,
    digest: m.digest,
    indexDigest: top.digest,
    body: m.body,
    platform: platformName(d.platform),
    same: had?.digest === m.digest,
  };
}

async function fetchConfig(c: RegistryClient, m: Manifest, ref: string): Promise<OciConfig> {
  if (m.config.size > MAX_DOCUMENT)
    throw new JaulaError(
      'invalid',
      `The config of "${ref}" is larger than ${formatMiB(MAX_DOCUMENT)}: refused`,
    );
  const p = await fetchBlob(c, m.config.digest, m.config.size, `config of "${ref}"`);
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8')) as OciConfig;
  } catch {
    throw new JaulaError('invalid', `The config of "${ref}" is not JSON`);
  }
}

/** The diff IDs of the image's layers, one per layer of its manifest. */
export function diffIds(config: OciConfig, layers: number, ref: string): string[] {
  const ids = config.rootfs?.diff_ids ?? [];
  if (ids.length !== layers || ids.some((d) => !/^sha256:[0-9a-f]{64}$/.test(d)))
    throw new JaulaError(
      'invalid',
      `The config of "${ref}" names ${ids.length} layer diff IDs for ${layers} layers: refused`,
    );
  return ids;
}

/**
 * Pull an image from its registry: the manifest (the host's platform's, under an index), the
 * config, then each layer not stored yet, its blob checked against its digest as it streams and
 * unpacked as a stored layer. An unchanged image costs one manifest request.
 */
export async function pullImage(refText: string, o: PullOptions = {}): Promise<ImageRecord> {
  const r = parseRef(refText);
  const ref = formatRef(r);
  const progress = o.progress ?? (() => {});
  const c = new RegistryClient(r.host, r.repo, {
    ...(o.creds ? { creds: o.creds } : {}),
    ...(o.insecure ? { insecure: true } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const had = readImage(ref);
  const res = await resolveManifest(c, r, ref, had);
  if (res.same && had && had.layers.every((l) => layerStored(l.diffId))) {
    progress(`The image "${ref}" is up to date (${res.digest})`);
    return had;
  }
  const m = res.manifest;
  const config = await fetchConfig(c, m, ref);
  const ids = diffIds(config, m.layers.length, ref);
  const total = m.layers.reduce((a, l) => a + l.size, 0);
  progress(`Pulling "${ref}" (${res.digest}): ${m.layers.length} layers, ${formatMiB(total)}`);
  for (const [i, l] of m.layers.entries()) {
    const diffId = ids[i] as string;
    const label = `layer ${i + 1}/${m.layers.length} (${l.digest.slice(7, 19)})`;
    if (layerStored(diffId)) {
      progress(`${label}: already stored`);
      continue;
    }
    const blob = await fetchBlob(c, l.digest, l.size, label, progress);
    try {
      await unpackLayer(blob, diffId, {
        lowers: lowerTrees(ids.slice(0, i)),
        what: `${label} of "${ref}"`,
        source: `image ${ref}`,
        ...(o.limits ? { limits: o.limits } : {}),
        progress,
        ...(o.signal ? { signal: o.signal } : {}),
      });
    } catch (e) {
      fs.rmSync(blob, { force: true }); // a refused layer is not kept
      throw e;
    }
  }
  putBlob(res.digest, res.body);
  const rec: ImageRecord = {
    ref,
    digest: res.digest,
    ...(res.indexDigest ? { indexDigest: res.indexDigest } : {}),
    created: new Date().toISOString(),
    source: `registry ${r.host}`,
    platform: res.platform || `${config.os ?? 'linux'}/${config.architecture ?? '?'}`,
    configDigest: m.config.digest,
    config,
    layers: m.layers.map((l, i) => ({
      digest: l.digest,
      mediaType: l.mediaType,
      size: l.size,
      diffId: ids[i] as string,
    })),
  };
  writeImage(rec);
  progress(`Pulled "${ref}" (${m.layers.length} layers)`);
  return rec;
}
