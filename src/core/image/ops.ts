import * as fs from 'node:fs';
import { join } from 'node:path';
import type { JobHooks } from '../../api/engine.js';
import type { ImageInfo, ImagePullRequest } from '../../api/types.js';
import { JaulaError } from '../../common/errors.js';
import { HostFiles } from '../../os/hostfiles.js';
import { paths } from '../../os/paths.js';
import type { Credentials } from './http.js';
import { importImage } from './archive.js';
import { DEFAULT_LAYER_LIMITS, type LayerLimits } from './layer.js';
import { pullImage } from './pull.js';
import { pushImage } from './push.js';
import { parseRef } from './ref.js';
import { imageInfo } from './store.js';

/** The default auth file: Docker's config.json shape ({"auths": {"HOST": {"auth": base64("USER:PASS")}}}). */
export const authFile = (): string => join(paths().etc, 'auth.json');

export function parseCreds(s: string): Credentials {
  const at = s.indexOf(':');
  if (at <= 0) throw new JaulaError('usage', 'Give the registry credentials as --creds USER:PASS');
  return { user: s.slice(0, at), pass: s.slice(at + 1) };
}

/** The credentials for a registry: given, else the auth file's entry for its host, else none. */
export function credentialsFor(
  host: string,
  creds: string | undefined,
  file: string | undefined,
): Credentials | undefined {
  if (creds !== undefined) return parseCreds(creds);
  const f = file ?? authFile();
  let text: string;
  try {
    text = fs.readFileSync(f, 'utf8');
  } catch (e) {
    if (file === undefined) return undefined;
    throw new JaulaError('not_found', `The auth file "${f}" cannot be read: ${(e as Error).message}`);
  }
  let j: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    j = JSON.parse(text) as typeof j;
  } catch {
    throw new JaulaError(
      'invalid',
      `The auth file "${f}" is not JSON (it has Docker's config.json shape: {"auths": {"HOST": {"auth": "BASE64(USER:PASS)"}}})`,
    );
  }
  const e =
    j.auths?.[host] ??
    j.auths?.[`https://${host}`] ??
    (host === 'docker.io' ? j.auths?.['https://index.docker.io/v1/'] : undefined);
  if (!e) return undefined;
  if (e.username !== undefined && e.password !== undefined) return { user: e.username, pass: e.password };
  return e.auth ? parseCreds(Buffer.from(e.auth, 'base64').toString('utf8')) : undefined;
}

export function limitsOf(r: { maxLayerBytes?: number; maxLayerEntries?: number }): LayerLimits {
  return {
    maxBytes: r.maxLayerBytes ?? DEFAULT_LAYER_LIMITS.maxBytes,
    maxEntries: r.maxLayerEntries ?? DEFAULT_LAYER_LIMITS.maxEntries,
  };
}

export async function pullOp(
  r: ImagePullRequest,
  hooks: JobHooks,
  hostFiles = HostFiles.any,
): Promise<ImageInfo> {
  const ref = parseRef(r.ref);
  const file = r.authFile === undefined ? undefined : hostFiles.check(r.authFile, 'auth file');
  const creds = credentialsFor(ref.host, r.creds, file);
  const rec = await pullImage(r.ref, {
    ...(creds ? { creds } : {}),
    ...(r.insecure ? { insecure: true } : {}),
    limits: limitsOf(r),
    ...(hooks.onProgress ? { progress: hooks.onProgress } : {}),
    ...(hooks.signal ? { signal: hooks.signal } : {}),
  });
  return imageInfo(rec);
}

export async function pushOp(
  r: { source: string; ref: string; creds?: string; authFile?: string; insecure?: boolean },
  hooks: JobHooks,
  hostFiles = HostFiles.any,
): Promise<{ ref: string; digest: string }> {
  const ref = parseRef(r.ref);
  const file = r.authFile === undefined ? undefined : hostFiles.check(r.authFile, 'auth file');
  const creds = credentialsFor(ref.host, r.creds, file);
  return pushImage(r.source, r.ref, {
    ...(creds ? { creds } : {}),
    ...(r.insecure ? { insecure: true } : {}),
    ...(hooks.onProgress ? { progress: hooks.onProgress } : {}),
    ...(hooks.signal ? { signal: hooks.signal } : {}),
  });
}

export async function importOp(
  r: { file: string; name?: string; maxLayerBytes?: number; maxLayerEntries?: number },
  hooks: JobHooks,
  hostFiles = HostFiles.any,
): Promise<ImageInfo> {
  const path = hostFiles.check(r.file, 'image archive or directory');
  const rec = await importImage(path, {
    ...(r.name ? { name: r.name } : {}),
    limits: limitsOf(r),
    ...(hooks.onProgress ? { progress: hooks.onProgress } : {}),
    ...(hooks.signal ? { signal: hooks.signal } : {}),
  });
  return imageInfo(rec);
}
