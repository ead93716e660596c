import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { mkdirp, removeTree, tmpSuffix } from '../../os/fs.js';
import { runOk } from '../../os/spawn.js';
import { scanTar, TAR_PRESERVE } from '../../os/tar.js';
import { layout } from '../../storage/layout.js';
import { lowerTrees, unpackLayer, type LayerLimits } from './layer.js';
import {
  choosePlatform,
  MAX_DOCUMENT,
  parseManifest,
  platformName,
  type Descriptor,
  type Manifest,
} from './manifest.js';
import { diffIds } from './pull.js';
import { blobPath, normalRef, writeImage, type ImageRecord, type OciConfig } from './store.js';

/**
 * Import an image from files: an OCI image layout directory (index.json, blobs/sha256/...), an
 * oci-archive (that directory as a tar) or a `docker save` archive (manifest.json, a config and
 * an uncompressed tar per layer). An archive is checked member by member and unpacked aside
 * first; every file it names is read only inside it, and every blob's bytes are checked against
 * the digest it is named by.
 */
export interface ImportOptions {
  name?: string;
  limits?: LayerLimits;
  progress?: (l: string) => void;
  signal?: AbortSignal;
}

/** A file named by the image, inside `root` (no "..", no symlink that leads out), regular. */
function inside(root: string, rel: string, what: string): string {
  if (rel.startsWith('/') || rel.split('/').includes('..'))
    throw new JaulaError(
      'invalid',
      `The image's ${what} "${rel}" is refused: it names a path outside the image`,
    );
  let real: string;
  try {
    real = fs.realpathSync(join(root, rel));
  } catch {
    throw new JaulaError('invalid', `The image's ${what} "${rel}" is missing`);
  }
  const top = fs.realpathSync(root);
  if (!real.startsWith(top + sep) || !fs.statSync(real).isFile())
    throw new JaulaError('invalid', `The image's ${what} "${rel}" is refused: not a file inside the image`);
  return real;
}

function readJson<T>(p: string, what: string): T {
  if (fs.statSync(p).size > MAX_DOCUMENT)
    throw new JaulaError('invalid', `The image's ${what} is larger than 4 MiB: refused`);
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8')) as T;
  } catch {
    throw new JaulaError('invalid', `The image's ${what} is not JSON`);
  }
}

/** Copy a file into the blob store as `digest`, its bytes checked (or computed when digest is undefined). */
async function storeBlob(file: string, digest: string | undefined, what: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file)) h.update(c as Buffer);
  const got = `sha256:${h.digest('hex')}`;
  if (digest !== undefined && got !== digest)
    throw new JaulaError('invalid', `The image's ${what} is refused: its digest is ${got}, not ${digest}`);
  const dst = blobPath(got);
  if (!fs.existsSync(dst)) {
    mkdirp(dirname(dst), 0o700);
    const tmp = `${dst}.tmp-${tmpSuffix()}`;
    fs.copyFileSync(file, tmp, fs.constants.COPYFILE_FICLONE);
    fs.renameSync(tmp, dst);
  }
  return got;
}

interface Found {
  config: OciConfig;
  configDigest: string;
  digest: string;
  platform: string;
  layers: { file: string; digest?: string; mediaType: string; size: number }[];
  name?: string;
}

/** A document (manifest, config) of an OCI layout, its bytes checked against its digest. */
function verified(root: string, d: Descriptor, what: string): Buffer {
  const p = inside(root, `blobs/sha256/${d.digest.slice(7)}`, what);
  if (fs.statSync(p).size > MAX_DOCUMENT)
    throw new JaulaError('invalid', `The image's ${what} is larger than 4 MiB: refused`);
  const b = fs.readFileSync(p);
  const got = `sha256:${createHash('sha256').update(b).digest('hex')}`;
  if (got !== d.digest)
    throw new JaulaError('invalid', `The image's ${what} is refused: its digest is ${got}, not ${d.digest}`);
  return b;
}

function fromOciLayout(root: string, name: string | undefined): Found {
  const blob = (d: Descriptor, what: string): string =>
    inside(root, `blobs/sha256/${d.digest.slice(7)}`, what);
  const ix = parseManifest(fs.readFileSync(inside(root, 'index.json', 'index.json')), undefined);
  if (ix.kind !== 'index') throw new JaulaError('invalid', "The image layout's index.json is not an index");
  const tagOf = (d: Descriptor): string | undefined => d.annotations?.['org.opencontainers.image.ref.name'];
  let d =
    ix.manifests.length === 1
      ? ix.manifests[0]
      : ix.manifests.find((m) => name && (tagOf(m) === name || name.endsWith(`:${tagOf(m) ?? '\0'}`)));
  if (!d)
    throw new JaulaError(
      'usage',
      `The image layout holds ${ix.manifests.length} images: name the one to import with --name (its tags: ${ix.manifests.map(tagOf).join(', ')})`,
    );
  const tag = tagOf(d);
  let body = verified(root, d, 'manifest');
  let m = parseManifest(body, d.mediaType);
  let platform = '';
  if (m.kind === 'index') {
    d = choosePlatform(m, tag ?? root);
    platform = platformName(d.platform);
    body = verified(root, d, 'manifest');
    m = parseManifest(body, d.mediaType);
    if (m.kind !== 'manifest') throw new JaulaError('invalid', 'The image layout nests an index in an index');
  }
  const man: Manifest = m;
  let config: OciConfig;
  try {
    config = JSON.parse(verified(root, man.config, 'config').toString('utf8')) as OciConfig;
  } catch (e) {
    if (e instanceof JaulaError) throw e;
    throw new JaulaError('invalid', "The image's config is not JSON");
  }
  return {
    config,
    configDigest: man.config.digest,
    digest: d.digest,
    platform,
    layers: man.layers.map((l) => ({
      file: blob(l, 'layer'),
      digest: l.digest,
      mediaType: l.mediaType,
      size: l.size,
    })),
    ...(tag && /[/:]/.test(tag) ? { name: tag } : {}),
  };
}

function fromDockerSave(root: string): Found {
  const list = readJson<{ Config?: string; RepoTags?: string[] | null; Layers?: string[] }[]>(
    inside(root, 'manifest.json', 'manifest.json'),
    'manifest.json',
  );
  const e = list[0];
  if (!e?.Config || !Array.isArray(e.Layers))
    throw new JaulaError('invalid', "The docker save archive's manifest.json names no config or layers");
  const configFile = inside(root, e.Config, 'config');
  const config = readJson<OciConfig>(configFile, 'config');
  const configDigest = `sha256:${createHash('sha256').update(fs.readFileSync(configFile)).digest('hex')}`;
  return {
    config,
    configDigest,
    digest: configDigest,
    platform: '',
    layers: e.Layers.map((l) => {
      const file = inside(root, l, 'layer');
      return {
        file,
        mediaType: 'application/vnd.docker.image.rootfs.diff.tar',
        size: fs.statSync(file).size,
      };
    }),
    ...(e.RepoTags?.[0] ? { name: e.RepoTags[0] } : {}),
  };
}

/** Unpack an archive aside (every member checked first), for reading as a directory. */
async function unpackAside(file: string, o: ImportOptions): Promise<string> {
  await scanTar(file, {
    maxBytes: o.limits?.maxBytes ?? 64 * 2 ** 30,
    maxEntries: o.limits?.maxEntries ?? 2_000_000,
    allowDevices: false,
  });
  const dir = join(layout.images(), `.import-${tmpSuffix()}`);
  mkdirp(dir, 0o700);
  try {
    await runOk(['tar', '-x', ...TAR_PRESERVE.slice(0, 1), '--no-same-owner', '-f', file, '-C', dir], {
      what: `Unpacking "${file}"`,
      dieWithParent: true,
      ...(o.signal ? { signal: o.signal } : {}),
    });
  } catch (e) {
    removeTree(dir);
    throw e;
  }
  return dir;
}

export async function importImage(path: string, o: ImportOptions = {}): Promise<ImageRecord> {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    throw new JaulaError(
      'not_found',
      `"${path}" does not exist (give a docker save archive, an oci-archive or an OCI layout directory)`,
    );
  }
  const root = st.isDirectory() ? path : await unpackAside(path, o);
  try {
    const oci = fs.existsSync(join(root, 'index.json'));
    if (!oci && !fs.existsSync(join(root, 'manifest.json')))
      throw new JaulaError(
        'invalid',
        `"${path}" is no image: it has neither index.json (OCI) nor manifest.json (docker save)`,
      );
    const f = oci ? fromOciLayout(root, o.name) : fromDockerSave(root);
    const given = o.name ?? f.name;
    if (!given)
      throw new JaulaError('usage', `The image in "${path}" has no name: give it one with --name REF`);
    const ref = normalRef(given);
    return await storeFound(f, ref, path, o);
  } finally {
    if (root !== path) removeTree(root);
  }
}

async function storeFound(f: Found, ref: string, path: string, o: ImportOptions): Promise<ImageRecord> {
  const ids = diffIds(f.config, f.layers.length, ref);
  const layers: ImageRecord['layers'] = [];
  for (const [i, l] of f.layers.entries()) {
    const what = `layer ${i + 1}/${f.layers.length} of "${path}"`;
    const digest = await storeBlob(l.file, l.digest, what);
    const diffId = ids[i] as string;
    try {
      await unpackLayer(blobPath(digest), diffId, {
        lowers: lowerTrees(ids.slice(0, i)),
        what,
        source: `image ${ref}`,
        ...(o.limits ? { limits: o.limits } : {}),
        ...(o.progress ? { progress: o.progress } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
      });
    } catch (e) {
      fs.rmSync(blobPath(digest), { force: true });
      throw e;
    }
    layers.push({ digest, mediaType: l.mediaType, size: l.size, diffId });
  }
  const rec: ImageRecord = {
    ref,
    digest: f.digest,
    created: new Date().toISOString(),
    source: `file ${path}`,
    platform: f.platform || `${f.config.os ?? 'linux'}/${f.config.architecture ?? '?'}`,
    configDigest: f.configDigest,
    config: f.config,
    layers,
  };
  writeImage(rec);
  o.progress?.(`Imported "${ref}" (${layers.length} layers)`);
  return rec;
}
