import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { createGzip } from 'node:zlib';
import { JaulaError, messageOf } from '../../common/errors.js';
import { formatMiB } from '../../common/size.js';
import { mkdirp, tmpSuffix } from '../../os/fs.js';
import { tarHeader } from '../../os/tarwrite.js';
import { isDir, isWhiteout, walkTree } from '../../os/walk.js';
import { guestExists } from '../../guest/store.js';
import type { GuestConfig } from '../../guest/config.js';
import { storedTemplateTree } from '../../storage/tree.js';
import { withStoppedGuest } from '../running.js';
import { drain, RegistryClient, type Credentials } from './http.js';
import { layerKey } from './layer.js';
import { MT, sha256 } from './manifest.js';
import { formatRef, parseRef } from './ref.js';
import { allImages, blobPath, putBlob, type ImageLayer, type OciConfig } from './store.js';

/**
 * `jaula image push GUEST|TEMPLATE REF`: a stopped guest's root or a stored template published
 * as an OCI image. A layer that came from an image is sent as it came (its blob, by its digest;
 * not at all when the registry has it); a template stacked as a layer, hashify's unified layer
 * and the guest's own changes become new gzip'd layers, overlayfs whiteouts turned back into
 * ".wh." entries and opaque directories into ".wh..wh..opq".
 */
export interface PushOptions {
  creds?: Credentials;
  insecure?: boolean;
  progress?: (l: string) => void;
  signal?: AbortSignal;
}

/** A tree as a gzip'd layer blob in the blob store: its descriptor and diff ID. */
export async function layerBlob(dir: string, signal?: AbortSignal): Promise<ImageLayer> {
  const extra: Buffer[] = [];
  const names: string[] = [];
  for (const e of walkTree(dir, { xattrs: true })) {
    if (e.path === '') continue;
    if (isWhiteout(e)) {
      extra.push(
        tarHeader({ path: posix.join(posix.dirname(e.path), `.wh.${posix.basename(e.path)}`), type: 'file' }),
      );
      continue;
    }
    names.push(e.path);
    const opaque =
      isDir(e) && e.xattrs?.some(([k, v]) => k === 'trusted.overlay.opaque' && v.toString() === 'y');
    if (opaque) extra.push(tarHeader({ path: `${e.path}/.wh..wh..opq`, type: 'file' }));
  }
  const tmp = join(dirname(blobPath(`sha256:${'0'.repeat(64)}`)), `.push-${tmpSuffix()}`);
  mkdirp(dirname(tmp), 0o700);
  const diff = createHash('sha256');
  const out = fs.createWriteStream(tmp, { mode: 0o600 });
  const gz = createGzip();
  const comp = createHash('sha256');
  let size = 0;
  gz.on('data', (b: Buffer) => {
    comp.update(b);
    size += b.length;
  });
  gz.pipe(out);
  const put = (b: Buffer): boolean => {
    diff.update(b);
    return gz.write(b);
  };
  for (const h of extra) put(h);
  const tar = spawn(
    'tar',
    [
      '-c',
      '--numeric-owner',
      '--xattrs',
      '--xattrs-include=*',
      '--xattrs-exclude=trusted.overlay.*',
      '-f',
      '-',
      '-C',
      dir,
      '--null',
      '--no-recursion',
      '-T',
      '-',
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], ...(signal ? { signal } : {}) },
  );
  let err = '';
  tar.stderr.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-2000)));
  tar.stdin.end(names.map((n) => `${n}\0`).join(''));
  try {
    for await (const c of tar.stdout) if (!put(c as Buffer)) await new Promise((r) => gz.once('drain', r));
    const code = await new Promise<number>((r) =>
      tar.exitCode !== null ? r(tar.exitCode) : tar.once('close', (c) => r(c ?? 1)),
    );
    if (code !== 0) throw new JaulaError('io', `Archiving "${dir}" as a layer failed: ${err.trim()}`);
    await new Promise<void>((r, j) => {
      out.once('close', () => r());
      out.once('error', j);
      gz.end();
    });
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  const digest = `sha256:${comp.digest('hex')}`;
  fs.renameSync(tmp, blobPath(digest));
  return { digest, mediaType: MT.ociLayerGzip, size, diffId: `sha256:${diff.digest('hex')}` };
}

/** A layer to send, and where the registry may have it already (an image's repository there). */
type Outgoing = ImageLayer & { from?: { host: string; repo: string } };

/** The blob a stored image layer came as, when an image of this host has it. */
function imageLayerOf(key: string): Outgoing | undefined {
  for (const r of allImages())
    for (const l of r.layers)
      if (layerKey(l.diffId) === key && fs.existsSync(blobPath(l.digest))) {
        const { host, repo } = parseRef(r.ref);
        return { ...l, from: { host, repo } };
      }
  return undefined;
}

/** The image's config: an image the guest was built from gives its own, the guest's settings over it. */
function configFor(cfg: GuestConfig | undefined, layers: ImageLayer[]): OciConfig {
  const from =
    cfg &&
    allImages().find(
      (r) => r.layers.length && r.layers.every((l, i) => layerKey(l.diffId) === cfg.storage.layers?.[i]),
    );
  const c = { ...(from?.config.config ?? {}) };
  if (cfg?.initstyle === 'cmd') {
    c.Entrypoint = [];
    c.Cmd = cfg.cmd;
  } else if (cfg) {
    c.Entrypoint = [];
    c.Cmd = ['/sbin/init'];
  }
  if (cfg?.env) c.Env = cfg.env;
  if (cfg?.cwd) c.WorkingDir = cfg.cwd;
  if (cfg?.user) c.User = cfg.user;
  if (cfg?.stopSignal) c.StopSignal = cfg.stopSignal;
  return {
    architecture: from?.config.architecture ?? 'amd64',
    os: 'linux',
    config: c,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  };
}

async function guestLayers(
  cfg: GuestConfig,
  lowers: string[],
  upper: string,
  o: PushOptions,
): Promise<Outgoing[]> {
  const out: Outgoing[] = [];
  for (const key of cfg.storage.layers ?? []) {
    const had = imageLayerOf(key);
    if (had) out.push(had);
    else {
      o.progress?.(`Archiving the layer "${key}"`);
      out.push(await layerBlob(storedTemplateTree(key), o.signal));
    }
  }
  const unified = lowers[0];
  if (unified && walkTree(unified).length > 1) out.push(await layerBlob(unified, o.signal));
  o.progress?.(`Archiving the guest's own changes`);
  out.push(await layerBlob(upper, o.signal));
  return out;
}

async function uploadBlob(
  c: RegistryClient,
  l: Outgoing | { digest: string; size: number },
  label: string,
  o: PushOptions,
): Promise<void> {
  const head = await c.request('HEAD', `/v2/${c.repo}/blobs/${l.digest}`);
  head.body.resume();
  if (head.status === 200) {
    o.progress?.(`${label}: the registry has it`);
    return;
  }
  const from = 'from' in l ? l.from : undefined;
  if (from && from.host === c.host && from.repo !== c.repo) {
    // Mounted from the repository it came from: the registry copies no byte.
    const q = `mount=${encodeURIComponent(l.digest)}&from=${encodeURIComponent(from.repo)}`;
    const m = await c.request(
      'POST',
      `/v2/${c.repo}/blobs/uploads/?${q}`,
      { 'content-length': '0' },
      Buffer.alloc(0),
    );
    m.body.resume();
    if (m.status === 201) {
      o.progress?.(`${label}: mounted from "${from.repo}" (the registry has it)`);
      return;
    }
  }
  const start = await c.request(
    'POST',
    `/v2/${c.repo}/blobs/uploads/`,
    { 'content-length': '0' },
    Buffer.alloc(0),
  );
  start.body.resume();
  const loc = start.headers.location;
  if (start.status !== 202 || !loc)
    throw new JaulaError(
      'io',
      `The registry "${c.host}" refused an upload to "${c.repo}" (HTTP ${start.status})`,
    );
  const url = `${loc}${loc.includes('?') ? '&' : '?'}digest=${encodeURIComponent(l.digest)}`;
  const put = await c.request(
    'PUT',
    url,
    { 'content-type': 'application/octet-stream', 'content-length': String(l.size) },
    () => fs.createReadStream(blobPath(l.digest)),
  );
  const text = (await drain(put.body)).toString().slice(0, 300);
  if (put.status !== 201)
    throw new JaulaError('io', `The registry "${c.host}" refused the ${label} (HTTP ${put.status}): ${text}`);
  o.progress?.(`${label}: sent ${formatMiB(l.size)}`);
}

export async function pushImage(
  source: string,
  refText: string,
  o: PushOptions = {},
): Promise<{ ref: string; digest: string }> {
  const r = parseRef(refText);
  const ref = formatRef(r);
  const c = new RegistryClient(r.host, r.repo, {
    ...(o.creds ? { creds: o.creds } : {}),
    ...(o.insecure ? { insecure: true } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  let cfg: GuestConfig | undefined;
  let layers: ImageLayer[];
  if (guestExists(source))
    layers = await withStoppedGuest(
      source,
      'so that its files do not change while they are pushed',
      async (g, driver) => {
        if (!driver.info.layers)
          throw new JaulaError(
            'unsupported',
            `Guest "${source}" uses ${driver.info.name} storage: save it as a template ("jaula template save ${source} NAME") and push the template`,
          );
        cfg = g;
        return guestLayers(g, driver.lowerDirs(g), driver.treePath(source), o);
      },
    );
  else {
    let tree: string;
    try {
      tree = storedTemplateTree(source);
    } catch {
      throw new JaulaError(
        'not_found',
        `There is no guest or stored template "${source}" to push (see "jaula list" and "jaula template list")`,
      );
    }
    o.progress?.(`Archiving the template "${source}"`);
    layers = [await layerBlob(tree, o.signal)];
  }
  const config = Buffer.from(JSON.stringify(configFor(cfg, layers)));
  const configDigest = sha256(config);
  putBlob(configDigest, config);
  try {
    for (const [i, l] of layers.entries()) await uploadBlob(c, l, `layer ${i + 1}/${layers.length}`, o);
    await uploadBlob(c, { digest: configDigest, size: config.length }, 'config', o);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        config: { mediaType: MT.ociConfig, digest: configDigest, size: config.length },
        layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      }),
    );
    const put = await c.request(
      'PUT',
      `/v2/${c.repo}/manifests/${r.tag}`,
      { 'content-type': MT.ociManifest },
      manifest,
    );
    const text = (await drain(put.body)).toString().slice(0, 300);
    if (put.status !== 201)
      throw new JaulaError(
        'io',
        `The registry "${c.host}" refused the manifest of "${ref}" (HTTP ${put.status}): ${text}`,
      );
    return { ref, digest: sha256(manifest) };
  } catch (e) {
    if (e instanceof JaulaError) throw e;
    throw new JaulaError('io', `Pushing "${ref}" failed: ${messageOf(e)}`, { cause: e });
  }
}
