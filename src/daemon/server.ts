/**
 * jaulad's HTTP server: the REST API of api/routes.ts on a root-only unix socket (and, on
 * request, on TCP with TLS and a bearer token), the event stream, WebSocket attach sessions and
 * the dashboard's static files. Engine routes call LocalEngine by the route's name; the few
 * routes that only jaulad has (jobs, events, attach, the OpenAPI document) have handlers here.
 */
import { timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { openapiDocument } from '../api/openapi.js';
import { matchPath, parseQueryValue, ROUTES, SCHEMAS, type Route, type RouteOp } from '../api/routes.js';
import { validate, type Schema } from '../api/schema.js';
import type { EngineInfo, JaulaEvent, ReconcileReport } from '../api/types.js';
import { httpStatus, isJaulaError, JaulaError, messageOf } from '../common/errors.js';
import { VERSION } from '../common/version.js';
import type { Engine, JobHooks } from '../core/engine.js';
import { FEATURES, LocalEngine } from '../core/local-engine.js';
import { projectDir } from '../os/paths.js';
import { serveAttach, type AttachMode } from './attach.js';
import { EventHub, GuestWatcher } from './events.js';
import { Jobs } from './jobs.js';

export interface ServerOptions {
  socket: string;
  /** host:port for TCP (with a token; TLS unless the host is a loopback address). */
  listen?: string;
  tlsCert?: string;
  tlsKey?: string;
  token?: string;
  log: (line: string) => void;
}

type Ctx = {
  args: Record<string, unknown>;
  req: http.IncomingMessage;
  res: http.ServerResponse;
};
type Special = (ctx: Ctx) => Promise<unknown>;

const MAX_BODY = 1 << 20;

const resolveRef = (ref: string): Schema | undefined => SCHEMAS[ref.replace('#/components/schemas/', '')];

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value ?? null);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

function sendError(res: http.ServerResponse, e: unknown, log?: (l: string) => void): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (isJaulaError(e))
    return sendJson(res, httpStatus[e.code], { error: { code: e.code, message: e.message } });
  log?.(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  sendJson(res, 500, { error: { code: 'internal', message: messageOf(e) } });
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_BODY) {
        reject(new JaulaError('invalid', `The request body is larger than ${MAX_BODY} bytes`));
        req.destroy();
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
  readonly local = new LocalEngine();
  readonly hub = new EventHub();
  readonly watcher = new GuestWatcher(this.hub);
  readonly jobs = new Jobs((job) =>
    this.hub.publish({
      type: 'job',
      at: new Date().toISOString(),
      job: { ...job, progress: [...job.progress] },
    }),
  );
  readonly startedAt = new Date().toISOString();
  reconcile: ReconcileReport | undefined;
  private readonly servers: (http.Server | https.Server)[] = [];
  private readonly sse = new Set<http.ServerResponse>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4 << 20 });
  private readonly tokenBuf: Buffer | undefined;
  private keepalive: NodeJS.Timeout | undefined;

  constructor(private readonly o: ServerOptions) {
    this.tokenBuf = o.token ? Buffer.from(o.token) : undefined;
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
    if (this.reconcile) daemon.reconcile = this.reconcile;
    return {
      ...base,
      engine: 'remote',
      features: { ...FEATURES, daemon: true, jobs: true, console: true },
      daemon,
    };
  }

  async listen(): Promise<void> {
    this.watcher.start();
    const unix = http.createServer((req, res) => void this.handle(req, res, false));
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
    if (this.o.listen) {
      const m = /^(.*):(\d+)$/.exec(this.o.listen);
      if (!m) throw new JaulaError('usage', `--listen takes HOST:PORT, not "${this.o.listen}"`);
      const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1');
      const tls = this.o.tlsCert && this.o.tlsKey;
      const tcp = tls
        ? https.createServer({
            cert: fs.readFileSync(this.o.tlsCert as string),
            key: fs.readFileSync(this.o.tlsKey as string),
          })
        : http.createServer();
      tcp.on(
        'request',
        (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res, true),
      );
      tcp.on('upgrade', (req: http.IncomingMessage, sock: Duplex, head: Buffer) =>
        this.upgrade(req, sock, head, true),
      );
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(Number(m[2]), host, () => resolve());
      });
      this.servers.push(tcp);
    }
    this.keepalive = setInterval(() => {
      for (const r of this.sse) r.write(': keepalive\n\n');
    }, 15_000);
    this.keepalive.unref();
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
    fs.rmSync(this.o.socket, { force: true });
  }

  private authorized(req: http.IncomingMessage, url: URL, tcp: boolean): boolean {
    if (!tcp) return true; // the unix socket is root's only (mode 0600)
    if (!this.tokenBuf) return false;
    const h = req.headers.authorization;
    const given = h?.startsWith('Bearer ') ? h.slice(7).trim() : (url.searchParams.get('access_token') ?? '');
    const b = Buffer.from(given);
    return b.length === this.tokenBuf.length && timingSafeEqual(b, this.tokenBuf);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, tcp: boolean): Promise<void> {
    const t0 = Date.now();
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://jaulad');
    } catch {
      return sendError(res, new JaulaError('invalid', 'Bad request URL'));
    }
    if (!url.pathname.startsWith('/v1/') && url.pathname !== '/v1')
      return this.serveStatic(url.pathname, res);
    if (!this.authorized(req, url, tcp))
      return sendJson(res, 401, {
        error: { code: 'unauthorized', message: 'Give the token: "Authorization: Bearer TOKEN"' },
      });
    try {
      await this.route(req, res, url);
    } catch (e) {
      sendError(res, e, this.o.log);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD')
      this.o.log(`${req.method} ${url.pathname} -> ${res.statusCode} (${Date.now() - t0} ms)`);
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

  private async args(route: Route, params: Record<string, string>, url: URL, req: http.IncomingMessage) {
    const args: Record<string, unknown> = {};
    const problems: string[] = [];
    for (const [k, v] of url.searchParams) {
      if (k === 'access_token') continue;
      const schema = route.query?.[k];
      if (!schema) {
        problems.push(`${k}: is not a parameter of ${route.method} ${route.path}`);
        continue;
      }
      args[k] = parseQueryValue(v, schema);
      problems.push(...validate(args[k], schema, resolveRef, k));
    }
    if (route.body) {
      const body = (await readBody(req)) ?? {};
      problems.push(...validate(body, route.body, resolveRef));
      if (typeof body === 'object' && body !== null) Object.assign(args, body);
    }
    if (problems.length) throw new JaulaError('invalid', `Bad request: ${problems.join('; ')}`);
    return Object.assign(args, params);
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const { route, params } = this.find(req.method ?? 'GET', url.pathname);
    const args = await this.args(route, params, url, req);
    if (route.stream === 'sse') return this.serveEvents(res, args);
    const special = this.special[route.op as RouteOp];
    if (special) return sendJson(res, 200, await special({ args, req, res }));
    if (!route.engine) throw new JaulaError('internal', `No handler for ${route.op}`);
    const method = (this.local as unknown as Record<string, (a: unknown, h?: JobHooks) => Promise<unknown>>)[
      route.op
    ];
    if (!method) throw new JaulaError('internal', `LocalEngine has no method ${route.op}`);
    if (route.job) {
      // What the job works on: a guest or template, or hashify's guests.
      const a = args as Record<string, unknown>;
      const guests = Array.isArray(a['guests']) ? (a['guests'] as unknown[]).join(',') : '';
      const target = String(a['name'] ?? (a['all'] === true ? '(all guests)' : guests));
      const job = this.jobs.start(route.op, target, (hooks) => method.call(this.local, args, hooks));
      return sendJson(res, 202, job);
    }
    sendJson(res, 200, await method.call(this.local, args));
  }

  private serveEvents(res: http.ServerResponse, args: Record<string, unknown>): void {
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
    const jobId = typeof args['job'] === 'string' ? args['job'] : undefined;
    let unsubscribe: () => void;
    if (jobId) {
      const job = this.jobs.get(jobId);
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
    const refuse = (status: number, message: string): void => {
      const body = JSON.stringify({
        error: { code: status === 401 ? 'unauthorized' : 'not_found', message },
      });
      sock.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://jaulad');
    } catch {
      return refuse(404, 'bad URL');
    }
    if (!this.authorized(req, url, tcp)) return refuse(401, 'Give the token (access_token=TOKEN)');
    const attach = (ROUTES as readonly Route[]).find((r) => r.op === 'attach') as Route;
    const params = matchPath(attach.path, url.pathname);
    if (!params) return refuse(404, `No WebSocket route ${url.pathname}`);
    const mode = (url.searchParams.get('mode') ?? 'exec') as AttachMode;
    if (!['exec', 'enter', 'run'].includes(mode)) return refuse(404, `Unknown attach mode "${mode}"`);
    (sock as Socket).setNoDelay?.(true);
    this.wss.handleUpgrade(req, sock, head, (ws) => {
      this.o.log(`attach ${mode} ${params['name']}`);
      serveAttach(ws, params['name'] as string, mode, this.o.log);
    });
  }

  private serveStatic(pathname: string, res: http.ServerResponse): void {
    const hit = STATIC[pathname];
    if (!hit) return sendJson(res, 404, { error: { code: 'not_found', message: `No file ${pathname}` } });
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
      'x-content-type-options': 'nosniff',
      'content-security-policy':
        "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    });
    res.end(data);
  }
}

/** For callers that want the engine type (tests). */
export type { Engine };
