/**
 * Remotes: other jaulads known by name (`jaula remote add NAME URL`), as `incus remote` keeps
 * them. Each is its URL, the SHA-256 fingerprint of its TLS certificate (pinned when it is
 * added: a later certificate that differs is refused) and its API token, kept in a root-only
 * file. Stored in etc/jaula/remotes/ (mode 0700): remotes.json and NAME.token (0600).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { validateName } from '../../common/names.js';
import { mkdirp, readFileOr, writeFileAtomic } from '../../os/fs.js';
import { paths } from '../../os/paths.js';

export interface Remote {
  name: string;
  /** https://ADDRESS:PORT (http:// only on a loopback address). */
  url: string;
  /** "SHA256:AB:CD:..." of its certificate; empty for plain HTTP on loopback. */
  fingerprint: string;
  /** The root-only file holding its token. */
  tokenFile: string;
  added: string;
}

const dir = (): string => join(paths().etc, 'remotes');
const file = (): string => join(dir(), 'remotes.json');
export const tokenFileOf = (name: string): string => join(dir(), `${name}.token`);

export function listRemotes(): Remote[] {
  const text = readFileOr(file(), '[]');
  try {
    const list = JSON.parse(text) as Remote[];
    return Array.isArray(list) ? list : [];
  } catch {
    throw new JaulaError(
      'invalid',
      `${file()} is not valid JSON: fix it or remove the remotes ("jaula remote remove NAME")`,
    );
  }
}

function saveRemotes(list: Remote[]): void {
  mkdirp(dir(), 0o700);
  fs.chmodSync(dir(), 0o700);
  writeFileAtomic(file(), JSON.stringify(list, null, 2) + '\n', 0o600);
}

export function getRemote(name: string): Remote {
  const r = listRemotes().find((x) => x.name === name);
  if (!r)
    throw new JaulaError(
      'not_found',
      `There is no remote "${name}" (see "jaula remote list"; add one with "jaula remote add ${name} https://ADDRESS:PORT --token FILE")`,
    );
  return r;
}

export function remoteToken(r: Remote): string {
  return readFileOr(r.tokenFile, '').trim();
}

/** A remote's URL checked: https://IP:PORT, or http:// on a loopback address. */
export function parseRemoteUrl(url: string): { tls: boolean; host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    u = new URL('x:');
  }
  const tls = u.protocol === 'https:';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || (tls ? 443 : 80));
  const loopback = host === 'localhost' || host.startsWith('127.') || host === '::1';
  if ((!tls && u.protocol !== 'http:') || !host || (u.pathname !== '/' && u.pathname !== ''))
    throw new JaulaError(
      'usage',
      `A remote's URL is https://ADDRESS:PORT (jaulad's --listen), not ${JSON.stringify(url)}`,
    );
  if (!tls && !loopback)
    throw new JaulaError(
      'usage',
      `${url} is plain HTTP to another host: the token would cross the network in clear; use https:// (jaulad --tls-cert)`,
    );
  return { tls, host, port };
}

/** Store a remote whose certificate and token were checked (peer.ts probeRemote). */
export function storeRemote(r: Omit<Remote, 'tokenFile' | 'added'>, token: string): Remote {
  validateName(r.name, 'remote');
  const list = listRemotes();
  if (list.some((x) => x.name === r.name))
    throw new JaulaError(
      'exists',
      `A remote named "${r.name}" exists already (see "jaula remote list"; "jaula remote remove ${r.name}" first)`,
    );
  mkdirp(dir(), 0o700);
  const tokenFile = tokenFileOf(r.name);
  writeFileAtomic(tokenFile, `${token}\n`, 0o600);
  const rec: Remote = { ...r, tokenFile, added: new Date().toISOString() };
  saveRemotes([...list, rec]);
  return rec;
}

export function removeRemote(name: string): Remote {
  const r = getRemote(name);
  saveRemotes(listRemotes().filter((x) => x.name !== name));
  fs.rmSync(r.tokenFile, { force: true });
  return r;
}
