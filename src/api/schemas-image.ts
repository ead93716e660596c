/** The wire shapes of OCI images (jaula image; core/image/). Registered with the other components. */
import { arr, bool, component, int, num, obj, str, strs } from './schema.js';

/** A stored OCI image (var/lib/jaula/images): its layers stored once each, its config. */
export const ImageInfo = component(
  'ImageInfo',
  obj({
    /** In full: HOST/REPO:TAG. */
    ref: str,
    /** The manifest's digest. */
    digest: str,
    created: str,
    /** "registry HOST", "file PATH". */
    source: str,
    platform: str,
    /** Bottom first; `layer` is its name among a guest's layers. */
    layers: arr(obj({ digest: str, diffId: str, layer: str, size: num, files: int, bytes: num })),
    bytes: num,
    entrypoint: strs,
    cmd: strs,
    env: strs,
    workingDir: str,
    user: str,
    exposedPorts: strs,
    stopSignal: str,
    /** Guests whose root stacks its layers. */
    usedBy: strs,
  }),
);

/** An image pull, import or push's options (credentials never leave jaulad's answer). */
export const ImagePullRequest = component(
  'ImagePullRequest',
  obj({
    ref: str,
    /** USER:PASS for the registry (else the auth file's, else anonymous). */
    'creds?': str,
    /** An auth file on jaulad's host (Docker's config.json or containers' auth.json shape). */
    'authFile?': str,
    /** Plain http and TLS without verification allowed for this registry. */
    'insecure?': bool,
    /** Bounds of one layer: bytes unpacked and members. */
    'maxLayerBytes?': num,
    'maxLayerEntries?': int,
  }),
);
