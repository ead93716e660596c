/**
 * WebSocket upgrades: GET /v1/guests/{name}/attach (attach.ts serves the session). The same
 * checks as any request (Host, Origin, token, the name) before the upgrade; a refusal is a
 * plain HTTP answer on the socket.
 */
import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { matchPath, ROUTES, type Route } from '../api/routes.js';
import { serveAttach, type AttachMode } from './attach.js';
import { paramProblems } from './dispatch.js';
import { ownerElsewhere, relayUpgrade, unforwardable } from './forward.js';
import { messageOf } from '../common/errors.js';
import type { Gate } from './http.js';

export class Upgrades {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4 << 20 });

  constructor(
    private readonly gate: Gate,
    private readonly log: (line: string) => void,
  ) {}

  closeAll(): void {
    for (const c of this.wss.clients) c.terminate();
  }

  upgrade(req: http.IncomingMessage, sock: Duplex, head: Buffer, tcp: boolean): void {
    const refuseWs = (status: number, code: string, message: string): void => {
      const body = JSON.stringify({ error: { code, message } });
      sock.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    const peer = this.gate.peerProblem(req, tcp, true);
    if (peer) return refuseWs(403, 'denied', peer);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://jaulad');
    } catch {
      return refuseWs(404, 'not_found', 'bad URL');
    }
    if (!this.gate.authorized(req, url, tcp, true))
      return refuseWs(401, 'unauthorized', 'Give the token (access_token=TOKEN)');
    const attach = (ROUTES as readonly Route[]).find((r) => r.op === 'attach') as Route;
    const params = matchPath(attach.path, url.pathname);
    if (!params) return refuseWs(404, 'not_found', `No WebSocket route ${url.pathname}`);
    const problems = paramProblems(params);
    if (problems.length) return refuseWs(400, 'invalid', `Bad request: ${problems.join('; ')}`);
    const mode = (url.searchParams.get('mode') ?? 'exec') as AttachMode;
    if (!['exec', 'enter', 'run', 'console'].includes(mode))
      return refuseWs(400, 'invalid', `Unknown attach mode ${JSON.stringify(mode.slice(0, 20))}`);
    (sock as Socket).setNoDelay?.(true);
    const name = params['name'] as string;
    const here = (): void =>
      this.wss.handleUpgrade(req, sock, head, (ws) => {
        this.log(`attach ${mode} ${name}`);
        serveAttach(ws, name, mode, this.log);
      });
    if (tcp) return here();
    // Another host's guest, in a fleet: relayed to its host (forward.ts).
    void ownerElsewhere(name)
      .then(async (o) => {
        if (!o) return here();
        const why = unforwardable(name, o, false);
        if (why || !o.peer) return refuseWs(404, 'not_found', why?.message ?? '');
        this.log(`attach ${mode} ${name}: relayed to host ${o.host}`);
        await relayUpgrade(o.peer, req, sock, head);
      })
      .catch((e: unknown) => refuseWs(502, 'runtime', messageOf(e)));
  }
}
