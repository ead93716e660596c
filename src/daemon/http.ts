/**
 * jaulad's transport: the HTTP servers (a root-only unix socket; on request TCP with TLS), their
 * bounds, who may speak (Host, Origin, bearer token), the request body, and answers (JSON,
 * refusals, errors). What a request asks for is dispatch.ts's business.
 *
 * Every request is checked where it is parsed, before any lock or file is touched: on TCP its
 * Host (an IP address, localhost or an --allow-host name), its Origin when a browser sends one
 * (WebSocket and every method but GET), its token (?access_token= only for the event stream
 * and the console, which browsers cannot give a header); its body (application/json, at most
 * 1 MiB). Connections are bounded in number, per peer on TCP, and in how long a request may take
 * to arrive. docs/security/threat-model.md says why.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, type Server as NetServer, type Socket } from 'node:net';
import { errorInfo } from '../api/errors.js';
import { httpStatus, isJaulaError, JaulaError, messageOf } from '../common/errors.js';

/** Bounds on connections and requests (TCP peers are counted by address). */
export const LIMITS = {
  maxBody: 1 << 20,
  tcpConnections: 256,
  perPeer: 32,
  unixConnections: 1024,
  /** The request's head must arrive within this (also the TLS handshake). */
  headersTimeoutMs: 10_000,
  /** The whole request (head and body) must arrive within this; answers may take longer. */
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  checkIntervalMs: 1_000,
  /**
   * The unix socket's bounds on a request's arrival, longer: only root can connect there, so
   * they guard against a stuck client, not an attack. A short one cost a sound request there:
   * on a host loaded to 19 on 2 cores, a connection jaulad accepted was not read within 10 s,
   * and closing it unread reset the client (ECONNRESET in tests/load.test.ts).
   */
  unixHeadersTimeoutMs: 120_000,
  unixRequestTimeoutMs: 300_000,
} as const;

/** TLS: 1.2 and 1.3, ephemeral (EC)DHE key exchange and AEAD ciphers only. */
const TLS_OPTIONS: https.ServerOptions = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
  ecdhCurve: 'X25519:prime256v1:secp384r1',
  handshakeTimeout: LIMITS.headersTimeoutMs,
};

export interface ListenAddress {
  host: string;
  port: number;
  loopback: boolean;
}

/**
 * `--listen HOST:PORT`: HOST an IPv4 address, [IPv6] or localhost (127.0.0.1), never a name to
 * look up; loopback when 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104.
 */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const host = m ? ((m[1] ?? m[2]) as string) : '';
  const port = m ? Number(m[3]) : NaN;
  const ip = host === 'localhost' ? '127.0.0.1' : host;
  const family = isIP(ip);
  if (!m || !family || (m[1] !== undefined && family !== 6) || !(port >= 0 && port <= 65535))
    throw new JaulaError(
      'usage',
      `--listen takes ADDRESS:PORT with an IP address (127.0.0.1:7440, [::1]:7440, 0.0.0.0:7443), not ${JSON.stringify(text)}`,
    );
  const loopback =
    family === 4 ? ip.startsWith('127.') : /^(0*:)*:?0*1$/.test(ip) || /^::ffff:127\./i.test(ip);
  return { host: ip, port, loopback };
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
type Upgrader = (req: http.IncomingMessage, sock: import('node:stream').Duplex, head: Buffer) => void;

/** Bounds shared by both servers: how many connections, how long a request may take to arrive. */
function bounded<T extends http.Server | https.Server>(
  s: T,
  max: number,
  headersTimeoutMs: number = LIMITS.headersTimeoutMs,
  requestTimeoutMs: number = LIMITS.requestTimeoutMs,
): T {
  s.maxConnections = max;
  s.headersTimeout = headersTimeoutMs;
  s.requestTimeout = requestTimeoutMs;
  s.keepAliveTimeout = LIMITS.keepAliveTimeoutMs;
  return s;
}

const timing = { connectionsCheckingInterval: LIMITS.checkIntervalMs };

/** The root-only unix socket's server (the socket is made 0600), listening. */
export async function listenUnix(socket: string, handle: Handler, upgrade: Upgrader): Promise<http.Server> {
  const unix = bounded(
    http.createServer(timing, handle),
    LIMITS.unixConnections,
    LIMITS.unixHeadersTimeoutMs,
    LIMITS.unixRequestTimeoutMs,
  );
  unix.on('upgrade', upgrade);
  fs.rmSync(socket, { force: true });
  const old = process.umask(0o177); // the socket is made 0600: root only
  try {
    await new Promise<void>((resolve, reject) => {
      unix.once('error', reject);
      unix.listen(socket, () => resolve());
    });
  } finally {
    process.umask(old);
  }
  fs.chmodSync(socket, 0o600);
  return unix;
}

/** The TCP server (TLS when given a certificate and key), not yet listening. */
export function tcpServer(
  tls: { cert: string; key: string } | undefined,
  handle: Handler,
  upgrade: Upgrader,
): http.Server | https.Server {
  const tcp = bounded(
    tls
      ? https.createServer({
          ...timing,
          ...TLS_OPTIONS,
          cert: fs.readFileSync(tls.cert),
          key: fs.readFileSync(tls.key),
        })
      : http.createServer(timing),
    LIMITS.tcpConnections,
  );
  perPeer(tcp);
  tcp.on('request', handle);
  tcp.on('upgrade', upgrade);
  return tcp;
}

/** At most LIMITS.perPeer connections at once from one address; more are closed at once. */
function perPeer(s: NetServer): void {
  const open = new Map<string, number>();
  s.on('connection', (sock: Socket) => {
    const who = sock.remoteAddress ?? '';
    const n = (open.get(who) ?? 0) + 1;
    if (n > LIMITS.perPeer) {
      sock.destroy();
      return;
    }
    open.set(who, n);
    sock.once('close', () => {
      const left = (open.get(who) ?? 1) - 1;
      if (left > 0) open.set(who, left);
      else open.delete(who);
    });
  });
}

/** Who may speak to jaulad over TCP: Host and Origin checks, the bearer token. */
export class Gate {
  private readonly tokenBuf: Buffer | undefined;
  private readonly allowedHosts: Set<string>;

  constructor(
    token: string | undefined,
    allowedHosts: string[] | undefined,
    private readonly tls: boolean,
  ) {
    this.tokenBuf = token ? Buffer.from(token) : undefined;
    this.allowedHosts = new Set((allowedHosts ?? []).map((h) => h.toLowerCase()));
  }

  /**
   * The request's Host and Origin on TCP: Host an IP address, localhost or an --allow-host name
   * (a page on another name, rebound to this address by DNS, is refused); Origin, when a browser
   * sends one with a WebSocket or a method other than GET, this server's own. Returns why not.
   */
  peerProblem(req: http.IncomingMessage, tcp: boolean, checkOrigin: boolean): string | undefined {
    if (!tcp) return undefined;
    const host = req.headers.host ?? '';
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+))(?::\d{1,5})?$/.exec(host);
    const name = (m?.[1] ?? m?.[2] ?? '').toLowerCase();
    if (!m || !(isIP(name) || name === 'localhost' || this.allowedHosts.has(name)))
      return `The Host ${JSON.stringify(host.slice(0, 100))} is not this jaulad's: use its IP address, localhost, or a name given with --allow-host`;
    const origin = req.headers.origin;
    if (!checkOrigin || origin === undefined) return undefined;
    const own = `${this.tls ? 'https' : 'http'}://${host}`.toLowerCase();
    if (origin.toLowerCase() !== own)
      return `The Origin ${JSON.stringify(origin.slice(0, 100))} is not this jaulad's (${own}): pages of other sites may not use its API`;
    return undefined;
  }

  /** The bearer token on TCP; as ?access_token= only where a browser cannot send a header (stream, console). */
  authorized(req: http.IncomingMessage, url: URL, tcp: boolean, queryToken: boolean): boolean {
    if (!tcp) return true; // the unix socket is root's only (mode 0600)
    if (!this.tokenBuf) return false;
    const h = req.headers.authorization;
    const given = h?.startsWith('Bearer ')
      ? h.slice(7).trim()
      : queryToken
        ? (url.searchParams.get('access_token') ?? '')
        : '';
    const b = Buffer.from(given);
    return b.length === this.tokenBuf.length && timingSafeEqual(b, this.tokenBuf);
  }
}

/** On every answer: no sniffing, no referrer, never in a frame, not cached. */
export const SAFE_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
};

export function sendJson(
  res: http.ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value ?? null);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

/** A refusal (401, 403, 413, 415): the connection is closed after it. */
export function refuse(res: http.ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } }, { connection: 'close' });
}

/** The HTTP status of an error: its code's, or the 4xx its details name (405, 413, 415). */
function statusOf(e: JaulaError): number {
  const s = e.details?.['status'];
  return typeof s === 'number' && s >= 400 && s < 500 ? s : httpStatus[e.code];
}

/**
 * Answer an error. A JaulaError says what went wrong in words written for the caller, with its
 * details (RemoteEngine rebuilds it whole). Anything
 * else is a fault of jaulad: logged whole; on TCP the answer names only a reference into the
 * log (its message may hold host paths), on the root-only socket it keeps the message.
 */
export function sendError(
  res: http.ServerResponse,
  e: unknown,
  tcp: boolean,
  log: (l: string) => void,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (isJaulaError(e)) {
    const status = statusOf(e);
    if (status === 413) return refuse(res, 413, e.code, e.message);
    // 405: the methods the path takes (RFC 9110 15.5.6).
    const allow = e.details?.['allow'];
    const headers: Record<string, string> =
      status === 405 && Array.isArray(allow) ? { allow: allow.join(', ') } : {};
    return sendJson(res, status, { error: errorInfo(e) }, headers);
  }
  const ref = randomBytes(4).toString('hex');
  log(`internal error ${ref}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  const message = tcp ? `jaulad failed (reference ${ref} in its log)` : `${messageOf(e)} (reference ${ref})`;
  sendJson(res, 500, { error: { code: 'internal', message } });
}

/** The media type of a request's body must be JSON (forms and text/plain are how pages post across sites). */
export function isJson(type: string | undefined): boolean {
  return type !== undefined && /^application\/json\s*(;|$)/i.test(type);
}

function tooLarge(): JaulaError {
  return new JaulaError('invalid', `The request body is larger than ${LIMITS.maxBody} bytes`, {
    details: { status: 413 },
  });
}

export function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    if (Number(req.headers['content-length'] ?? 0) > LIMITS.maxBody) return reject(tooLarge());
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size > LIMITS.maxBody) {
        req.pause();
        req.removeAllListeners('data');
        reject(tooLarge());
      } else chunks.push(b);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (!text) return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new JaulaError('invalid', 'The request body is not valid JSON'));
      }
    });
    req.on('error', reject);
  });
}
