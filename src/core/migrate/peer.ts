/**
 * The client one jaulad uses to speak to another (a remote): TLS whose certificate must have
 * the pinned fingerprint (checked after the handshake, before a byte of the request is sent:
 * a self-signed certificate needs no CA), the remote's bearer token, JSON requests and
 * streamed uploads. Errors say which remote and what to do.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { fromErrorInfo } from '../../api/errors.js';
import type { ErrorInfo } from '../../api/types.js';
import { JaulaError, messageOf } from '../../common/errors.js';
import { parseRemoteUrl, remoteToken, type Remote } from './remotes.js';

export interface PeerTarget {
  name: string;
  url: string;
  fingerprint: string;
  token: string;
}

export const peerOf = (r: Remote): PeerTarget => ({ ...r, token: remoteToken(r) });

/** How long a peer may take to answer one request (a commit starts the guest). */
const ANSWER_MS = 120_000;

function connectError(p: Pick<PeerTarget, 'name' | 'url'>, e: unknown): JaulaError {
  return new JaulaError(
    'io',
    `Cannot reach the remote "${p.name}" at ${p.url}: ${messageOf(e)} (is its jaulad running with --listen?)`,
    { cause: e, details: { unreachable: true } },
  );
}

/** A connection to the peer; over TLS only once its certificate's fingerprint is the pinned one. */
export async function connectPeer(
  p: Pick<PeerTarget, 'name' | 'url' | 'fingerprint'>,
  expect = true,
): Promise<{ sock: net.Socket; fingerprint: string }> {
  const u = parseRemoteUrl(p.url);
  return new Promise((resolve, reject) => {
    const fail = (e: unknown): void => reject(connectError(p, e));
    if (!u.tls) {
      const sock = net.connect({ host: u.host, port: u.port });
      sock.once('error', fail);
      sock.once('connect', () => {
        sock.off('error', fail);
        resolve({ sock, fingerprint: '' });
      });
      return;
    }
    const sock = tls.connect({ host: u.host, port: u.port, rejectUnauthorized: false, servername: '' });
    sock.setTimeout(ANSWER_MS, () => sock.destroy(new Error('no answer')));
    sock.once('error', fail);
    sock.once('secureConnect', () => {
      sock.off('error', fail);
      const fp = `SHA256:${sock.getPeerCertificate().fingerprint256}`;
      if (expect && fp !== p.fingerprint) {
        sock.destroy();
        return reject(
          new JaulaError(
            'denied',
            `The remote "${p.name}" at ${p.url} shows another certificate (${fp}) than the one pinned when it was added (${p.fingerprint}): if it was renewed on purpose, "jaula remote remove ${p.name}" and add it again`,
          ),
        );
      }
      resolve({ sock, fingerprint: fp });
    });
  });
}

type Body = { json: unknown } | { raw: Buffer } | undefined;

/** One request to the peer; its JSON answer, or its error as a JaulaError. */
export async function peerRequest<T>(p: PeerTarget, method: string, path: string, body?: Body): Promise<T> {
  const { sock } = await connectPeer(p);
  return new Promise<T>((resolve, reject) => {
    const headers: Record<string, string | number> = {
      authorization: `Bearer ${p.token}`,
      host: new URL(p.url).host,
    };
    const data = body && 'json' in body ? JSON.stringify(body.json) : body?.raw;
    if (data !== undefined) {
      headers['content-type'] = body && 'json' in body ? 'application/json' : 'application/octet-stream';
      headers['content-length'] = Buffer.byteLength(data);
    }
    const req = http.request({ method, path, headers, createConnection: () => sock }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => reject(connectError(p, e)));
      res.on('end', () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          parsed = undefined;
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(parsed as T);
        const info = (parsed as { error?: Partial<ErrorInfo> } | undefined)?.error;
        if (status === 401)
          return reject(
            new JaulaError(
              'denied',
              `The remote "${p.name}" refused its token: add it again with the right --token FILE`,
            ),
          );
        const e = fromErrorInfo(info, 'runtime', `The remote "${p.name}" answered ${status}`);
        reject(
          new JaulaError(e.code, `On the remote "${p.name}": ${e.message}`, { details: e.details ?? {} }),
        );
      });
    });
    req.setTimeout(ANSWER_MS, () => req.destroy(new Error('no answer')));
    req.on('error', (e) => reject(connectError(p, e)));
    req.end(data);
  });
}
