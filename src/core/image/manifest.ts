import { createHash } from 'node:crypto';
import { JaulaError } from '../../common/errors.js';
import { DIGEST_RE } from './ref.js';

/** The media types of manifests, indexes, configs and layers that jaula reads (OCI and Docker v2.2). */
export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

export const MANIFEST_ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ');
const LAYER_TYPES =
  /^application\/vnd\.(oci\.image\.layer\.v1\.tar(\+gzip|\+zstd)?|docker\.image\.rootfs\.diff\.tar(\.gzip)?)$/;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface Manifest {
  kind: 'manifest';
  config: Descriptor;
  layers: Descriptor[];
}

export interface Index {
  kind: 'index';
  manifests: Descriptor[];
}

/** The most a manifest, an index or a config may weigh (the registry's own limit is 4 MiB). */
export const MAX_DOCUMENT = 4 << 20;

export function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

function descriptor(d: unknown, what: string): Descriptor {
  const x = d as Partial<Descriptor> | null;
  if (
    !x ||
    typeof x.digest !== 'string' ||
    !DIGEST_RE.test(x.digest) ||
    typeof x.size !== 'number' ||
    x.size < 0
  )
    throw new JaulaError(
      'invalid',
      `The image's ${what} has a descriptor without a valid sha256 digest and size`,
    );
  return { ...x, mediaType: String(x.mediaType ?? ''), digest: x.digest, size: x.size } as Descriptor;
}

/** Parse a manifest or an index, by its media type (the document's own, else the answer's). */
export function parseManifest(body: Buffer, contentType: string | undefined): Manifest | Index {
  let j: {
    mediaType?: string;
    manifests?: unknown[];
    config?: unknown;
    layers?: unknown[];
    schemaVersion?: number;
  };
  try {
    j = JSON.parse(body.toString('utf8')) as typeof j;
  } catch {
    throw new JaulaError('invalid', "The image's manifest is not JSON");
  }
  const mt = j.mediaType ?? contentType?.split(';')[0]?.trim() ?? '';
  if (mt === MT.ociIndex || mt === MT.dockerList || (Array.isArray(j.manifests) && !j.config))
    return { kind: 'index', manifests: (j.manifests ?? []).map((d) => descriptor(d, 'index')) };
  if (j.schemaVersion === 1)
    throw new JaulaError(
      'unsupported',
      'The image has a Docker schema 1 manifest, which jaula does not read: push it again with a recent tool',
    );
  const layers = (j.layers ?? []).map((d) => descriptor(d, 'manifest'));
  for (const l of layers)
    if (!LAYER_TYPES.test(l.mediaType))
      throw new JaulaError(
        'unsupported',
        `The image has a layer of media type "${l.mediaType}", which jaula does not unpack (${l.digest})`,
      );
  return { kind: 'manifest', config: descriptor(j.config, 'manifest'), layers };
}

/** This host's platform in OCI's words. */
export function hostPlatform(): { os: string; architecture: string; variant?: string } {
  const arch: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    arm: 'arm',
    ia32: '386',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
  };
  return {
    os: 'linux',
    architecture: arch[process.arch] ?? process.arch,
    ...(process.arch === 'arm64' ? { variant: 'v8' } : {}),
  };
}

export function platformName(p: Descriptor['platform']): string {
  return `${p?.os ?? '?'}/${p?.architecture ?? '?'}${p?.variant ? `/${p.variant}` : ''}`;
}

/** The index's manifest for this host's platform. */
export function choosePlatform(ix: Index, ref: string): Descriptor {
  const me = hostPlatform();
  const fits = ix.manifests.filter(
    (m) => m.platform?.os === me.os && m.platform.architecture === me.architecture,
  );
  const best =
    fits.find((m) => !me.variant || !m.platform?.variant || m.platform.variant === me.variant) ?? fits[0];
  if (!best)
    throw new JaulaError(
      'not_found',
      `The image "${ref}" has no manifest for this host's platform (${platformName(me)}); it has: ${ix.manifests.map((m) => platformName(m.platform)).join(', ') || 'none'}`,
    );
  return best;
}
