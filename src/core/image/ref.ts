import { JaulaError } from '../../common/errors.js';

/**
 * An image reference, as Docker and Podman read one: [HOST[:PORT]/]PATH[:TAG][@DIGEST]. The
 * first component is a registry host when it has a "." or a ":", or is "localhost"; otherwise
 * the image is on Docker Hub (docker.io, "library/" for a one-word name).
 */
export interface ImageRef {
  /** The registry as named: "docker.io", "127.0.0.1:5000". */
  host: string;
  repo: string;
  tag: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
export const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

function bad(ref: string, why: string): JaulaError {
  return new JaulaError(
    'invalid',
    `"${ref}" is not an image reference (${why}): give one as [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST], e.g. 127.0.0.1:5000/busybox:1.36`,
  );
}

export function parseRef(ref: string): ImageRef {
  if (ref.length === 0 || ref.length > 512) throw bad(ref, 'empty or too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw bad(ref, `the digest "${digest}" is not sha256:<64 hex digits>`);
  }
  const parts = rest.split('/');
  let host = 'docker.io';
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    host = first;
    parts.shift();
    if (!/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](:[0-9]{1,5})?$/.test(host))
      throw bad(ref, `the registry "${host}" is not a host name`);
  }
  let tag = 'latest';
  const last = parts[parts.length - 1] ?? '';
  const colon = last.indexOf(':');
  if (colon >= 0) {
    tag = last.slice(colon + 1);
    parts[parts.length - 1] = last.slice(0, colon);
    if (!TAG.test(tag)) throw bad(ref, `the tag "${tag}" has characters a tag cannot have`);
  }
  if (host === 'docker.io' && parts.length === 1) parts.unshift('library');
  for (const p of parts) if (!COMPONENT.test(p)) throw bad(ref, `"${p}" is not a valid name component`);
  return { host, repo: parts.join('/'), tag, ...(digest ? { digest } : {}) };
}

/** The reference written out in full: "HOST/REPO:TAG" (with "@DIGEST" when it names one). */
export function formatRef(r: ImageRef): string {
  return `${r.host}/${r.repo}:${r.tag}${r.digest ? `@${r.digest}` : ''}`;
}

/** Where the registry's API answers: Docker Hub's API host is not its name. */
export function apiHost(host: string): string {
  return host === 'docker.io' ? 'registry-1.docker.io' : host;
}

/** A registry on this machine's loopback (plain http is allowed there without --insecure). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/:[0-9]+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || /^127\./.test(h) || h === '::1';
}
