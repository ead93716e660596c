import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { paths } from '../os/paths.js';

/**
 * Where storage lives (everything under JAULA_ROOT):
 *
 *   var/lib/jaula/templates/NAME/tree          a stored template (read-only; also a layer)
 *   var/lib/jaula/templates/NAME/template.json its description (origin, size, files)
 *   var/lib/jaula/guests/NAME/rootfs           dir and reflink guests: the guest's tree
 *   var/lib/jaula/guests/NAME/upper, work      overlay guests: the guest's own changes
 *   var/lib/jaula/guests/NAME/snapshots/SNAP    a snapshot (storage/snapshot.ts; reflink guests:
 *                                               reflink/guests/NAME/snapshots/SNAP)
 *   var/lib/jaula/guests/NAME/unified          overlay guests: hashify's layer (hard links to objects)
 *   var/lib/jaula/guests/NAME/image-view/merged dir and reflink guests' builds from an image: the
 *                                               image's layers as one overlay, while copied
 *   var/lib/jaula/guests/NAME/quota.img, vol/  a guest with a quota: its own files live in an
 *                                               ext4 image mounted on vol/ (rootfs or upper+work inside)
 *   var/lib/jaula/unified/objects/XX/KEY       hashify's content-addressed objects
 *   var/lib/jaula/unified/index/NAME.json      hashify's per-guest index (rescans read only changes)
 *   var/lib/jaula/reflink/                      the reflink driver's pool: an XFS (reflink=1) or
 *                                               btrfs filesystem mounted here by the admin
 *   var/lib/jaula/reflink/images/KEY/tree       an image's layers as one tree, cloned by its guests
 *   var/lib/jaula/layers/sha256-HEX/tree       an image's layer (HEX: its diff ID's first 56 digits), a
 *   var/lib/jaula/layers/sha256-HEX/layer.json read-only layer stacked like a template, kept once
 *   var/lib/jaula/images/blobs/sha256/HEX      an image's blobs as pulled (manifests, configs, layers)
 *   var/lib/jaula/images/refs/REF.json         a stored image: its reference, manifest and config
 *   run/jaula/guests/NAME/rootfs               a privileged overlay guest's assembled root (or a
 *                                               stopped one's, read by jaula)
 *   run/jaula/guests/NAME/root                 an unprivileged guest's root: idmapped (dir,
 *                                               reflink), or overlay over run/.../layers/*
 */
/** A layer's name in a guest's config: an image layer (layers/) rather than a template. */
export const IMAGE_LAYER_RE = /^sha256-[0-9a-f]{56}$/;

export const layout = {
  templates: (): string => paths().templates,
  templateDir: (name: string): string => join(paths().templates, name),
  templateTree: (name: string): string =>
    IMAGE_LAYER_RE.test(name)
      ? join(paths().lib, 'layers', name, 'tree')
      : join(paths().templates, name, 'tree'),
  templateMeta: (name: string): string =>
    IMAGE_LAYER_RE.test(name)
      ? join(paths().lib, 'layers', name, 'layer.json')
      : join(paths().templates, name, 'template.json'),
  layers: (): string => join(paths().lib, 'layers'),
  images: (): string => join(paths().lib, 'images'),
  guestData: (name: string): string => paths().guestData(name),
  image: (name: string): string => join(paths().guestData(name), 'quota.img'),
  vol: (name: string): string => join(paths().guestData(name), 'vol'),
  snapshots: (name: string): string => join(paths().guestData(name), 'snapshots'),
  /** dir and reflink guests built from an image: the image's layers mounted as one read-only overlay while copied. */
  imageView: (name: string): string => join(paths().guestData(name), 'image-view'),
  unifiedLayer: (name: string): string => join(paths().guestData(name), 'unified'),
  unifyPending: (name: string): string => join(paths().guestData(name), 'unify-pending.json'),
  /** Matches the stamp in hashify's index while the unified layer is as the index knows it. */
  unifiedStamp: (name: string): string => join(paths().guestData(name), 'unified.stamp'),
  store: (): string => join(paths().lib, 'unified'),
  objects: (): string => join(paths().lib, 'unified', 'objects'),
  storeTmp: (): string => join(paths().lib, 'unified', 'tmp'),
  index: (name: string): string => join(paths().lib, 'unified', 'index', `${name}.json`),
  pool: (): string => join(paths().lib, 'reflink'),
  mountPoint: (name: string): string => join(paths().guestRun(name), 'rootfs'),
  poolGuest: (name: string): string => join(paths().lib, 'reflink', 'guests', name),
  poolTemplate: (name: string): string => join(paths().lib, 'reflink', 'templates', name),
  /** An image's union of layers copied once onto the pool (KEY: the digest of its layer list), cloned by its guests. */
  poolImage: (key: string): string => join(paths().lib, 'reflink', 'images', key),
};

/** Overlay's mount options cannot carry these characters in a path. */
export function overlayPath(p: string): string {
  if (/[,:\\\n]/.test(p))
    throw new JaulaError(
      'unsupported',
      `The path "${p}" contains ",", ":" or "\\", which overlayfs mount options cannot carry: choose a JAULA_ROOT without them`,
    );
  return p;
}
