/**
 * jaulad's HTTP server: the REST API of api/routes.ts on a root-only unix socket (and, on
 * request, on TCP with TLS and a bearer token), the event stream, WebSocket attach sessions and
 * the dashboard's static files. Engine routes call LocalEngine by the route's name; the few
 * routes that only jaulad has (jobs, events, attach, the OpenAPI document) have handlers here.
 *
 * Every request is checked where it is parsed, before any lock or file is touched: on TCP its
 * Host (an IP address, localhost or an --allow-host name), its Origin when a browser sends one
 * (WebSocket and every method but GET), its token (?access_token= only for the event stream
 * and the console, which browsers cannot give a header); then its path parameters and query
 * (every name against the name pattern), its body (application/json, at most 1 MiB, only the
 * declared fields, own properties only). Connections are bounded in number, per peer on TCP,
 * and in how long a request may take to arrive. docs/security/threat-model.md says why.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { openapiDocument } from '../api/openapi.js';
import {
  matchPath,
  PARAMS,
  parseQueryValue,
  ROUTES,
  SCHEMAS,
  type Route,
  type RouteOp,
} from '../api/routes.js';
import { MAX_PROBLEMS, propertyOf, validate, type Schema } from '../api/schema.js';
import type { EngineInfo, JaulaEvent, ReconcileReport } from '../api/types.js';
import { httpStatus, isJaulaError, JaulaError, messageOf } from '../common/errors.js';
import { VERSION } from '../common/version.js';
import type { Engine, JobHooks } from '../api/engine.js';
import { FEATURES, LocalEngine } from '../core/local-engine.js';
import { HostFiles } from '../os/hostfiles.js';
import { projectDir } from '../os/paths.js';
import { serveAttach, type AttachMode } from './attach.js';
import { EventHub, GuestWatcher } from './events.js';
import { Jobs } from './jobs.js';

export interface ServerOptions {
  socket: string;
  /** HOST:PORT for TCP (with a token; TLS unless the host is a loopback address): see parseListen. */
  listen?: string;
  tlsCert?: string;
  tlsKey?: string;
  token?: string;
  /** Over TCP, host paths (copy, template import and export) only beneath this directory; without it, none. */
  hostFiles?: string;
  /** Let guests on jaula bridges reach the TCP port (by default jaula's firewall drops their packets to it). */
  allowGuests?: boolean;
  /** Host names requests over TCP may carry in Host, besides IP addresses and localhost. */
  allowedHosts?: string[];
  log: (line: string) => void;
}

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

type Ctx = {
  args: Record<string, unknown>;
  req: http.IncomingMessage;
  res: http.ServerResponse;
};
type Special = (ctx: Ctx) => Promise<unknown>;

const resolveRef = (ref: string): Schema | undefined => {
  const name = ref.replace('#/components/schemas/', '');
  return Object.prototype.hasOwnProperty.call(SCHEMAS, name) ? SCHEMAS[name] : undefined;
};

/** On every answer: no sniffing, no referrer, never in a frame, not cached. */
const SAFE_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
};

/** The dashboard's page: its own scripts, styles and connections only (the stream and console are same-origin). */
const PAGE_CSP =
  "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function sendJson(
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
function refuse(res: http.ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } }, { connection: 'close' });
}

/** The HTTP status of an error: its code's, or the 4xx its details name (405, 413, 415). */
function statusOf(e: JaulaError): number {
  const s = e.details?.['status'];
  return typeof s === 'number' && s >= 400 && s < 500 ? s : httpStatus[e.code];
}

/**
 * Answer an error. A JaulaError says what went wrong in words written for the caller. Anything
 * else is a fault of jaulad: logged whole; on TCP the answer names only a reference into the
 * log (its message may hold host paths), on the root-only socket it keeps the message.
 */
function sendError(res: http.ServerResponse, e: unknown, tcp: boolean, log: (l: string) => void): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (isJaulaError(e)) {
    const status = statusOf(e);
    const body = { error: { code: e.code, message: e.message } };
    return status === 413 ? refuse(res, 413, e.code, e.message) : sendJson(res, status, body);
  }
  const ref = randomBytes(4).toString('hex');
  log(`internal error ${ref}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  const message = tcp ? `jaulad failed (reference ${ref} in its log)` : `${messageOf(e)} (reference ${ref})`;
  sendJson(res, 500, { error: { code: 'internal', message } });
}

/** The media type of a request's body must be JSON (forms and text/plain are how pages post across sites). */
function isJson(type: string | undefined): boolean {
  return type !== undefined && /^application\/json\s*(;|$)/i.test(type);
}

function tooLarge(): JaulaError {
  return new JaulaError('invalid', `The request body is larger than ${LIMITS.maxBody} bytes`, {
    details: { status: 413 },
  });
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
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

/** The dashboard: files of web/dist (made by `npm run build`; xterm.js is bundled into app.js). */
const STATIC: Record<string, [string, string]> = {
  '/': ['web/dist/index.html', 'text/html; charset=utf-8'],
  '/index.html': ['web/dist/index.html', 'text/html; charset=utf-8'],
  '/assets/app.js': ['web/dist/app.js', 'text/javascript; charset=utf-8'],
  '/assets/app.css': ['web/dist/app.css', 'text/css; charset=utf-8'],
  '/assets/xterm.css': ['web/dist/xterm.css', 'text/css; charset=utf-8'],
};

export class Server {
  /** Root's engine (the unix socket): any host path. */
  readonly local = new LocalEngine();
  /** A token holder's engine (TCP): host paths only beneath --host-files, or none. */
  readonly tcpLocal: LocalEngine;
  readonly hub = new EventHub();
  readonly watcher = new GuestWatcher(this.hub);
  readonly jobs = new Jobs(
    (job) =>
      this.hub.publish({
        type: 'job',
        at: new Date().toISOString(),
        job: { ...job, progress: [...job.progress] },
      }),
    (line) => this.o.log(line),
  );
  readonly startedAt = new Date().toISOString();
  reconcile: ReconcileReport | undefined;
  private readonly servers: (http.Server | https.Server)[] = [];
  private readonly sse = new Set<http.ServerResponse>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4 << 20 });
  private readonly tokenBuf: Buffer | undefined;
  private readonly allowedHosts: Set<string>;
  private readonly address: ListenAddress | undefined;
  private guarded: number | undefined;
  private keepalive: NodeJS.Timeout | undefined;

  constructor(private readonly o: ServerOptions) {
    this.tokenBuf = o.token ? Buffer.from(o.token) : undefined;
    this.address = o.listen ? parseListen(o.listen) : undefined;
    this.allowedHosts = new Set((o.allowedHosts ?? []).map((h) => h.toLowerCase()));
    this.tcpLocal = new LocalEngine({
      hostFiles: o.hostFiles ? HostFiles.beneath(o.hostFiles) : new HostFiles({ kind: 'none' }),
      tokenHolder: true,
    });
  }

  private readonly special: Partial<Record<RouteOp, Special>> = {
    getInfo: async () => this.info(),
    getOpenapi: async () => openapiDocument(VERSION),
    listJobs: async () => this.jobs.list(),
    getJob: async ({ args }) => this.jobs.get(String(args['id'])),
    cancelJob: async ({ args }) => this.jobs.cancel(String(args['id'])),
    guestExited: async ({ args }) => {
      const { onGuestExited } = await import('../core/lifecycle.js');
      await onGuestExited(String(args['name']), String(args['instance']));
      return { name: String(args['name']) };
    },
    attach: async () => {
      throw new JaulaError('usage', 'This route is a WebSocket: connect with "Upgrade: websocket"');
    },
  };

  async info(): Promise<EngineInfo> {
    const base = await this.local.getInfo();
    const daemon: NonNullable<EngineInfo['daemon']> = {
      pid: process.pid,
      startedAt: this.startedAt,
      socket: this.o.socket,
    };
    if (this.o.listen) daemon.listen = this.o.listen;
    if (this.o.hostFiles) daemon.hostFiles = this.o.hostFiles;
    if (this.reconcile) daemon.reconcile = this.reconcile;
    return {
      ...base,
      engine: 'remote',
      features: { ...FEATURES, daemon: true, jobs: true, console: true },
      daemon,
    };
  }

  /** Bounds shared by both servers: how many connections, how long a request may take to arrive. */
  private static bounded<T extends http.Server | https.Server>(s: T, max: number): T {
    s.maxConnections = max;
    s.headersTimeout = LIMITS.headersTimeoutMs;
    s.requestTimeout = LIMITS.requestTimeoutMs;
    s.keepAliveTimeout = LIMITS.keepAliveTimeoutMs;
    return s;
  }

  /** At most LIMITS.perPeer connections at once from one address; more are closed at once. */
  private static perPeer(s: NetServer): void {
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

  async listen(): Promise<void> {
    this.watcher.start();
    const timing = { connectionsCheckingInterval: LIMITS.checkIntervalMs };
    const unix = Server.bounded(
      http.createServer(timing, (req, res) => void this.handle(req, res, false)),
      LIMITS.unixConnections,
    );
    unix.on('upgrade', (req, sock, head) => this.upgrade(req, sock, head, false));
    fs.rmSync(this.o.socket, { force: true });
    const old = process.umask(0o177); // the socket is made 0600: root only
    try {
      await new Promise<void>((resolve, reject) => {
        unix.once('error', reject);
        unix.listen(this.o.socket, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    fs.chmodSync(this.o.socket, 0o600);
    this.servers.push(unix);
    const a = this.address;
    if (a) {
      const tls = this.o.tlsCert && this.o.tlsKey;
      const tcp = Server.bounded(
        tls
          ? https.createServer({
              ...timing,
              ...TLS_OPTIONS,
              cert: fs.readFileSync(this.o.tlsCert as string),
              key: fs.readFileSync(this.o.tlsKey as string),
            })
          : http.createServer(timing),
        LIMITS.tcpConnections,
      );
      Server.perPeer(tcp);
      tcp.on(
        'request',
        (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res, true),
      );
      tcp.on('upgrade', (req: http.IncomingMessage, sock: Duplex, head: Buffer) =>
        this.upgrade(req, sock, head, true),
      );
      // Guests are kept off the port before it opens (a port chosen by the kernel: just after).
      if (a.port !== 0) await this.guard(a.port);
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(a.port, a.host, () => resolve());
      });
      this.servers.push(tcp);
      if (a.port === 0) await this.guard(this.tcpPort() as number);
    }
    this.keepalive = setInterval(() => {
      for (const r of this.sse) r.write(': keepalive\n\n');
    }, 15_000);
    this.keepalive.unref();
  }

  /** Drop guests' packets to jaulad's port (unless --allow-guests, or loopback: guests cannot reach it). */
  private async guard(port: number): Promise<void> {
    const g = await import('../network/guard.js');
    if (this.address?.loopback) return;
    if (this.o.allowGuests) return g.setDaemonPorts([]);
    try {
      await g.setDaemonPorts([port]);
    } catch (e) {
      throw new JaulaError(
        'runtime',
        `Cannot keep guests off port ${port}: ${messageOf(e)} (start jaulad with --allow-guests to serve them too)`,
        { cause: e },
      );
    }
    this.guarded = port;
  }

  /** The TCP port actually bound (for --listen HOST:0). */
  tcpPort(): number | undefined {
    const a = this.servers[1]?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  async close(): Promise<void> {
    this.watcher.stop();
    if (this.keepalive) clearInterval(this.keepalive);
    for (const r of this.sse) r.end();
    for (const c of this.wss.clients) c.terminate();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    if (this.guarded !== undefined) await (await import('../network/guard.js')).setDaemonPorts([]);
    fs.rmSync(this.o.socket, { force: true });
  }

  /**
   * The request's Host and Origin on TCP: Host an IP address, localhost or an --allow-host name
   * (a page on another name, rebound to this address by DNS, is refused); Origin, when a browser
   * sends one with a WebSocket or a method other than GET, this server's own. Returns why not.
   */
  private peerProblem(req: http.IncomingMessage, tcp: boolean, checkOrigin: boolean): string | undefined {
    if (!tcp) return undefined;
    const host = req.headers.host ?? '';
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+))(?::\d{1,5})?$/.exec(host);
    const name = (m?.[1] ?? m?.[2] ?? '').toLowerCase();
    if (!m || !(isIP(name) || name === 'localhost' || this.allowedHosts.has(name)))
      return `The Host ${JSON.stringify(host.slice(0, 100))} is not this jaulad's: use its IP address, localhost, or a name given with --allow-host`;
    const origin = req.headers.origin;
    if (!checkOrigin || origin === undefined) return undefined;
    const own = `${this.o.tlsCert ? 'https' : 'http'}://${host}`.toLowerCase();
    if (origin.toLowerCase() !== own)
      return `The Origin ${JSON.stringify(origin.slice(0, 100))} is not this jaulad's (${own}): pages of other sites may not use its API`;
    return undefined;
  }

  /** The bearer token on TCP; as ?access_token= only where a browser cannot send a header (stream, console). */
  private authorized(req: http.IncomingMessage, url: URL, tcp: boolean, queryToken: boolean): boolean {
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

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, tcp: boolean): Promise<void> {
    const t0 = Date.now();
    for (const [k, v] of Object.entries(SAFE_HEADERS)) res.setHeader(k, v);
    const method = req.method ?? 'GET';
    const peer = this.peerProblem(req, tcp, method !== 'GET' && method !== 'HEAD');
    if (peer) return refuse(res, 403, 'denied', peer);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://jaulad');
    } catch {
      return sendError(res, new JaulaError('invalid', 'Bad request URL'), tcp, this.o.log);
    }
    if (!url.pathname.startsWith('/v1/') && url.pathname !== '/v1')
      return this.serveStatic(method, url.pathname, res);
    let found: { route: Route; params: Record<string, string> } | undefined;
    let notFound: unknown;
    try {
      found = this.find(method, url.pathname);
    } catch (e) {
      notFound = e;
    }
    if (!this.authorized(req, url, tcp, found?.route.stream === 'sse'))
      return refuse(res, 401, 'unauthorized', 'Give the token: "Authorization: Bearer TOKEN"');
    try {
      if (!found) throw notFound;
      await this.route(req, res, url, found, tcp);
    } catch (e) {
      sendError(res, e, tcp, this.o.log);
    }
    if (method !== 'GET' && method !== 'HEAD')
      this.o.log(`${method} ${url.pathname} -> ${res.statusCode} (${Date.now() - t0} ms)`);
  }

  private find(method: string, pathname: string): { route: Route; params: Record<string, string> } {
    const allowed: string[] = [];
    for (const route of ROUTES as readonly Route[]) {
      const params = matchPath(route.path, pathname);
      if (!params) continue;
      if (route.method === method) return { route, params };
      allowed.push(route.method);
    }
    if (allowed.length)
      throw new JaulaError('usage', `${pathname} takes ${allowed.join(', ')}, not ${method}`, {
        details: { status: 405 },
      });
    throw new JaulaError('not_found', `No API route ${method} ${pathname} (see GET /v1/openapi.json)`);
  }

  /** Path parameters checked against PARAMS (names: the name pattern): problems, or none. */
  private static paramProblems(params: Record<string, string>): string[] {
    return Object.entries(params).flatMap(([k, v]) =>
      validate(v, PARAMS[k] ?? { type: 'string' }, resolveRef, k),
    );
  }

  /**
   * The arguments of an engine call, from the request's path, query and body: each checked
   * against the route (names first, before the body is read), and only the declared fields
   * taken, own properties only, into an object without a prototype.
   */
  private async args(route: Route, params: Record<string, string>, url: URL, req: http.IncomingMessage) {
    const args = Object.create(null) as Record<string, unknown>;
    const bad = (problems: string[]): JaulaError =>
      new JaulaError('invalid', `Bad request: ${problems.slice(0, MAX_PROBLEMS + 1).join('; ')}`);
    const problems = Server.paramProblems(params);
    for (const [k, v] of url.searchParams) {
      if (k === 'access_token' && route.stream === 'sse') continue;
      const schema =
        route.query && Object.prototype.hasOwnProperty.call(route.query, k) ? route.query[k] : undefined;
      if (!schema) {
        problems.push(
          `${JSON.stringify(k.slice(0, 64))}: is not a parameter of ${route.method} ${route.path}`,
        );
        continue;
      }
      const value = parseQueryValue(v, schema);
      problems.push(...validate(value, schema, resolveRef, k));
      args[k] = value;
    }
    if (problems.length) throw bad(problems);
    // Anything but GET: a body, or a media type, must be JSON (a page's form or text/plain post is not).
    const type = req.headers['content-type'];
    const hasBody =
      Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (route.method !== 'GET' && (type !== undefined || hasBody) && !isJson(type))
      throw new JaulaError(
        'invalid',
        `The request body must be JSON ("Content-Type: application/json"), not ${JSON.stringify(type ?? 'untyped')}`,
        { details: { status: 415 } },
      );
    if (route.body) {
      const body = (await readBody(req)) ?? {};
      const problems = validate(body, route.body, resolveRef);
      if (problems.length) throw bad(problems);
      const schema = route.body.$ref ? (resolveRef(route.body.$ref) as Schema) : route.body;
      const b = body as Record<string, unknown>;
      for (const k of Object.keys(b)) if (propertyOf(schema, k) && b[k] !== undefined) args[k] = b[k];
    }
    for (const [k, v] of Object.entries(params)) args[k] = v;
    return args;
  }

  private async route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    { route, params }: { route: Route; params: Record<string, string> },
    tcp: boolean,
  ): Promise<void> {
    const args = await this.args(route, params, url, req);
    if (route.stream === 'sse') return this.serveEvents(res, args);
    const special = this.special[route.op as RouteOp];
    if (special) return sendJson(res, 200, await special({ args, req, res }));
    if (!route.engine) throw new JaulaError('internal', `No handler for ${route.op}`);
    const engine = tcp ? this.tcpLocal : this.local;
    const method = (engine as unknown as Record<string, (a: unknown, h?: JobHooks) => Promise<unknown>>)[
      route.op
    ];
    if (!method) throw new JaulaError('internal', `LocalEngine has no method ${route.op}`);
    if (route.job) {
      // What the job works on: a guest or template, or hashify's guests.
      const guests = Array.isArray(args['guests']) ? (args['guests'] as unknown[]).join(',') : '';
      const target = String(args['name'] ?? (args['all'] === true ? '(all guests)' : guests));
      const job = this.jobs.start(route.op, target, (hooks) => method.call(engine, args, hooks));
      return sendJson(res, 202, job);
    }
    sendJson(res, 200, await method.call(engine, args));
  }

  private serveEvents(res: http.ServerResponse, args: Record<string, unknown>): void {
    const jobId = typeof args['job'] === 'string' ? args['job'] : undefined;
    const job = jobId ? this.jobs.get(jobId) : undefined; // an unknown job: a 404, before the stream
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const send = (ev: JaulaEvent): void => {
      res.write(`data: ${JSON.stringify(ev)}\n\n`);
      if (res.writableLength > 16 << 20) res.destroy(); // a client that does not read
    };
    res.write('retry: 2000\n\n');
    let unsubscribe: () => void;
    if (job) {
      send({ type: 'job', at: new Date().toISOString(), job });
      if (job.state !== 'running') {
        res.end();
        return;
      }
      unsubscribe = this.hub.subscribe((ev) => {
        if (ev.type !== 'job' || ev.job.id !== jobId) return;
        send(ev);
        if (ev.job.state !== 'running') res.end();
      });
    } else {
      send({
        type: 'hello',
        at: new Date().toISOString(),
        guests: this.watcher.all(),
        jobs: this.jobs.list(),
      });
      unsubscribe = this.hub.subscribe(send);
    }
    this.sse.add(res);
    res.on('close', () => {
      unsubscribe();
      this.sse.delete(res);
    });
  }

  private upgrade(req: http.IncomingMessage, sock: Duplex, head: Buffer, tcp: boolean): void {
    const refuseWs = (status: number, code: string, message: string): void => {
      const body = JSON.stringify({ error: { code, message } });
      sock.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    const peer = this.peerProblem(req, tcp, true);
    if (peer) return refuseWs(403, 'denied', peer);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://jaulad');
    } catch {
      return refuseWs(404, 'not_found', 'bad URL');
    }
    if (!this.authorized(req, url, tcp, true))
      return refuseWs(401, 'unauthorized', 'Give the token (access_token=TOKEN)');
    const attach = (ROUTES as readonly Route[]).find((r) => r.op === 'attach') as Route;
    const params = matchPath(attach.path, url.pathname);
    if (!params) return refuseWs(404, 'not_found', `No WebSocket route ${url.pathname}`);
    const problems = Server.paramProblems(params);
    if (problems.length) return refuseWs(400, 'invalid', `Bad request: ${problems.join('; ')}`);
    const mode = (url.searchParams.get('mode') ?? 'exec') as AttachMode;
    if (!['exec', 'enter', 'run', 'console'].includes(mode))
      return refuseWs(400, 'invalid', `Unknown attach mode ${JSON.stringify(mode.slice(0, 20))}`);
    (sock as Socket).setNoDelay?.(true);
    this.wss.handleUpgrade(req, sock, head, (ws) => {
      this.o.log(`attach ${mode} ${params['name']}`);
      serveAttach(ws, params['name'] as string, mode, this.o.log);
    });
  }

  private serveStatic(method: string, pathname: string, res: http.ServerResponse): void {
    const hit = Object.prototype.hasOwnProperty.call(STATIC, pathname) ? STATIC[pathname] : undefined;
    if (!hit) return sendJson(res, 404, { error: { code: 'not_found', message: 'No such file' } });
    if (method !== 'GET' && method !== 'HEAD')
      return sendJson(res, 405, {
        error: { code: 'usage', message: `${pathname} takes GET, not ${method}` },
      });
    let data: Buffer;
    try {
      data = fs.readFileSync(join(projectDir, hit[0]));
    } catch {
      return sendJson(res, 404, {
        error: { code: 'not_found', message: `${hit[0]} is missing: run "npm run build"` },
      });
    }
    res.writeHead(200, {
      'content-type': hit[1],
      'content-length': data.length,
      'cache-control': 'no-cache',
      'content-security-policy': PAGE_CSP,
    });
    res.end(method === 'HEAD' ? undefined : data);
  }
}

/** For callers that want the engine type (tests). */
export type { Engine };
