/**
 * jaulad's server: the REST API of api/routes.ts on a root-only unix socket (and, on request, on
 * TCP with TLS and a bearer token), the event stream, WebSocket attach sessions and the
 * dashboard's static files. Engine routes call LocalEngine by the route's name; the few routes
 * that only jaulad has (jobs, events, attach, the OpenAPI document) have handlers here.
 *
 * Its parts: http.ts (transport, bounds, who may speak, answers), dispatch.ts (a request to a
 * route and its checked arguments), sse.ts (the event stream), websocket.ts (attach upgrades),
 * static.ts (the dashboard's files). docs/security/threat-model.md says why each check is there.
 */
import { rmSync } from 'node:fs';
import type * as http from 'node:http';
import type * as https from 'node:https';
import type { Duplex } from 'node:stream';
import type { Engine } from '../api/engine.js';
import { openapiDocument } from '../api/openapi.js';
import type { EngineOp, RouteOp } from '../api/routes.js';
import type { EngineInfo, ReconcileReport } from '../api/types.js';
import { JaulaError, messageOf } from '../common/errors.js';
import { VERSION } from '../common/version.js';
import { FEATURES, LocalEngine } from '../core/local-engine.js';
import { HostFiles } from '../os/hostfiles.js';
import { engineCall, findRoute, requestArgs, type Found } from './dispatch.js';
import { EventHub, GuestWatcher } from './events.js';
import {
  Gate,
  listenUnix,
  parseListen,
  refuse,
  SAFE_HEADERS,
  sendError,
  sendJson,
  tcpServer,
  type ListenAddress,
} from './http.js';
import { Jobs } from './jobs.js';
import { EventStreams } from './sse.js';
import { serveStatic } from './static.js';
import { Upgrades } from './websocket.js';
import { forwardRequest, ownerElsewhere, unforwardable } from './forward.js';
import type { PeerTarget } from '../core/migrate/peer.js';

export { LIMITS, parseListen } from './http.js';

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
  /**
   * Token holders (TCP) may move this host's guests to the remotes root added (migrate, fleet
   * drain and balance; the dashboard's Move and Drain): the remotes' tokens stay in jaulad.
   */
  allowMoves?: boolean;
  log: (line: string) => void;
}

type Ctx = {
  args: Record<string, unknown>;
  req: http.IncomingMessage;
  res: http.ServerResponse;
  tcp: boolean;
};
type Special = (ctx: Ctx) => Promise<unknown>;

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
  private readonly streams = new EventStreams(this.hub, this.watcher, this.jobs);
  private readonly gate: Gate;
  private readonly upgrades: Upgrades;
  private readonly address: ListenAddress | undefined;
  private guarded: number | undefined;

  constructor(private readonly o: ServerOptions) {
    this.address = o.listen ? parseListen(o.listen) : undefined;
    this.gate = new Gate(o.token, o.allowedHosts, o.tlsCert !== undefined);
    this.upgrades = new Upgrades(this.gate, o.log);
    this.tcpLocal = new LocalEngine({
      hostFiles: o.hostFiles ? HostFiles.beneath(o.hostFiles) : new HostFiles({ kind: 'none' }),
      tokenHolder: true,
      tokenMoves: o.allowMoves === true,
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
    ...peerRoutes,
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
    if (this.o.listen) daemon.tcpMoves = this.o.allowMoves === true;
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
    const upgrade =
      (tcp: boolean) =>
      (req: http.IncomingMessage, sock: Duplex, head: Buffer): void =>
        this.upgrades.upgrade(req, sock, head, tcp);
    const handle =
      (tcp: boolean) =>
      (req: http.IncomingMessage, res: http.ServerResponse): void =>
        void this.handle(req, res, tcp);
    this.servers.push(await listenUnix(this.o.socket, handle(false), upgrade(false)));
    const a = this.address;
    if (a) {
      const tls = this.o.tlsCert && this.o.tlsKey ? { cert: this.o.tlsCert, key: this.o.tlsKey } : undefined;
      const tcp = tcpServer(tls, handle(true), upgrade(true));
      // Guests are kept off the port before it opens (a port chosen by the kernel: just after).
      if (a.port !== 0) await this.guard(a.port);
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(a.port, a.host, () => resolve());
      });
      this.servers.push(tcp);
      if (a.port === 0) await this.guard(this.tcpPort() as number);
    }
    this.streams.start();
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
    this.streams.stop();
    this.upgrades.closeAll();
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
    rmSync(this.o.socket, { force: true });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, tcp: boolean): Promise<void> {
    const t0 = Date.now();
    for (const [k, v] of Object.entries(SAFE_HEADERS)) res.setHeader(k, v);
    const method = req.method ?? 'GET';
    const peer = this.gate.peerProblem(req, tcp, method !== 'GET' && method !== 'HEAD');
    if (peer) return refuse(res, 403, 'denied', peer);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://jaulad');
    } catch {
      return sendError(res, new JaulaError('invalid', 'Bad request URL'), tcp, this.o.log);
    }
    if (!url.pathname.startsWith('/v1/') && url.pathname !== '/v1')
      return serveStatic(method, url.pathname, res);
    let found: Found | undefined;
    let notFound: unknown;
    try {
      found = findRoute(method, url.pathname);
    } catch (e) {
      notFound = e;
    }
    if (!this.gate.authorized(req, url, tcp, found?.route.stream === 'sse'))
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

  private async route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    found: Found,
    tcp: boolean,
  ): Promise<void> {
    const { route } = found;
    const args = await requestArgs(found, url, req);
    // Another host's guest, in a fleet (forward.ts): its host answers.
    const name = found.params['name'];
    const forGuest = route.path.startsWith('/v1/guests/{name}');
    const elsewhere = !tcp && route.engine && forGuest && name ? await ownerElsewhere(name) : undefined;
    if (elsewhere) {
      const why = unforwardable(name as string, elsewhere, route.job === true);
      if (why) throw why;
      const body = Object.fromEntries(
        Object.entries(args).filter(([k]) => !(k in found.params) && !url.searchParams.has(k)),
      );
      const hasBody = req.method !== 'GET' && req.method !== 'DELETE' && Object.keys(body).length > 0;
      return sendJson(
        res,
        200,
        await forwardRequest(
          elsewhere.peer as PeerTarget,
          req.method ?? 'GET',
          url,
          hasBody ? body : undefined,
        ),
      );
    }
    if (route.stream === 'sse')
      return this.streams.serve(res, typeof args['job'] === 'string' ? args['job'] : undefined);
    const special = this.special[route.op as RouteOp];
    if (special) return sendJson(res, 200, await special({ args, req, res, tcp }));
    if (!route.engine) throw new JaulaError('internal', `No handler for ${route.op}`);
    const engine = tcp ? this.tcpLocal : this.local;
    const call = engineCall(route.op as EngineOp);
    if (route.job) {
      engine.checkJob(route.op, args);
      // What the job works on: a guest or template, or hashify's guests.
      const guests = Array.isArray(args['guests']) ? (args['guests'] as unknown[]).join(',') : '';
      const target = String(args['name'] ?? (args['all'] === true ? '(all guests)' : guests));
      const job = this.jobs.start(route.op, target, (hooks) => call(engine, args, hooks));
      return sendJson(res, 202, job);
    }
    sendJson(res, 200, await call(engine, args, {}));
  }
}

/** The routes another jaulad calls to move a guest here (core/migrate/target.ts). */
const target = (): Promise<typeof import('../core/migrate/target.js')> => import('../core/migrate/target.js');
const peerRoutes: Partial<Record<RouteOp, Special>> = {
  peerBegin: async ({ args, tcp }) => {
    const t = await target();
    const r = args as unknown as import('../core/migrate/target.js').BeginRequest;
    if (tcp && /^privileged\s*=\s*true/m.test(r.config))
      throw new JaulaError(
        'denied',
        "A privileged guest cannot be moved here over TCP: its root is the host's root, which only root makes (move it as an unprivileged guest, or build it here)",
      );
    return t.peerBegin(r);
  },
  peerPart: async ({ args, req }) => {
    const { appendChunk, MAX_CHUNK } = await import('../core/migrate/transfer.js');
    (await target()).receiving(String(args['move'])); // (nothing is staged for a move not under way)
    const data = await readRaw(req, MAX_CHUNK);
    return {
      bytes: appendChunk(String(args['move']), String(args['part']), Number(args['offset'] ?? 0), data),
    };
  },
  peerApply: async ({ args }) =>
    (await target()).peerApply({ id: String(args['move']), part: String(args['part']) }),
  peerCommit: async ({ args }) =>
    (await target()).peerCommit({ id: String(args['move']), start: args['start'] === true }),
  peerReplica: async ({ args }) =>
    (await import('../core/ha/standby.js')).commitReplica({
      id: String(args['move']),
      asOf: String(args['asOf']),
    }),
  peerStatus: async ({ args }) => (await target()).peerStatus({ id: String(args['move']) }),
  peerAbort: async ({ args }) =>
    (await target()).peerAbort({
      id: String(args['move']),
      ...(typeof args['why'] === 'string' ? { why: args['why'] } : {}),
    }),
};

/** A raw request body, at most `max` bytes. */
function readRaw(req: http.IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > max)
      return reject(
        new JaulaError('invalid', `A chunk is at most ${max} bytes`, { details: { status: 413 } }),
      );
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.destroy();
        reject(new JaulaError('invalid', `A chunk is at most ${max} bytes`, { details: { status: 413 } }));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** For callers that want the engine type (tests). */
export type { Engine };
