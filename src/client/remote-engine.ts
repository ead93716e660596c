/**
 * RemoteEngine: the Engine over jaulad's REST API, on its unix socket. Each method is one
 * route of api/routes.ts: path parameters go into the path, the rest into the query (GET,
 * DELETE) or the JSON body. Jobs (build) are followed on the event stream; exec, enter and run
 * stream stdio over a WebSocket. Errors come back as the same JaulaError codes as in-process.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { fromErrorInfo } from '../api/errors.js';
import {
  fillPath,
  pathParams,
  routeOf,
  type JobOp,
  type RequestOf,
  type ResponseOf,
  type RouteOp,
} from '../api/routes.js';
import type { ApiError, ConsoleEnd, ExecRequest, Job } from '../api/types.js';
import { relayTerminal } from '../os/terminal.js';
import { JaulaError } from '../common/errors.js';
import type { Engine, JobHooks } from '../api/engine.js';

/** Whether jaulad answers on the socket (a stale socket file refuses the connection). */
export function daemonAnswers(socket: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** jaulad's error answer as the JaulaError it was in jaulad: code, message and details. */
export function toError(status: number, body: unknown): JaulaError {
  const e = (body as Partial<ApiError> | undefined)?.error;
  return fromErrorInfo(e, status === 404 ? 'not_found' : 'internal', `jaulad answered ${status}`);
}

/** The first message of an attach session: the request, with this terminal's size and TERM. */
function attachHello(mode: 'exec' | 'enter' | 'run', hello: Omit<ExecRequest, 'name'>): string {
  return JSON.stringify({
    ...hello,
    tty: mode === 'enter' ? true : hello.tty === true,
    rows: process.stdout.rows ?? 24,
    cols: process.stdout.columns ?? 80,
    env:
      mode === 'enter' || hello.tty
        ? [...(hello.env ?? []), `TERM=${process.env['TERM'] ?? 'xterm'}`]
        : (hello.env ?? []),
  });
}

export class RemoteEngine implements Engine {
  readonly kind = 'remote' as const;
  constructor(readonly socket: string) {}

  /** One request: {method, path} of the route, params in the path, the rest in query or body. */
  async call<K extends RouteOp>(op: K, req: RequestOf<K>): Promise<ResponseOf<K>> {
    const route = routeOf(op);
    const r: Record<string, unknown> = req;
    const inPath = new Set(pathParams(route.path));
    let path = fillPath(route.path, r);
    const rest = Object.entries(r).filter(([k, v]) => !inPath.has(k) && v !== undefined);
    let body: string | undefined;
    if (route.body) body = JSON.stringify(Object.fromEntries(rest));
    else if (rest.length) {
      const q = new URLSearchParams();
      for (const [k, v] of rest) q.set(k, Array.isArray(v) ? v.join(',') : String(v));
      path += `?${q.toString()}`;
    }
    const { status, text } = await this.request(route.method, path, body);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      throw new JaulaError('internal', `jaulad answered ${status} with something that is not JSON`);
    }
    if (status >= 400) throw toError(status, parsed);
    return parsed as ResponseOf<K>; // jaulad's answer to this route (the API tests check it against its schema)
  }

  request(method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      const req = http.request({ socketPath: this.socket, method, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      });
      req.on('error', (e) =>
        reject(new JaulaError('runtime', `The connection to jaulad (${this.socket}) failed: ${e.message}`)),
      );
      req.end(body);
    });
  }

  /** Start a job and follow it on the event stream until it ends. */
  async job<K extends JobOp, T>(op: K, req: RequestOf<K>, hooks: JobHooks = {}): Promise<T> {
    const job: Job = await this.call<JobOp>(op, req);
    const cancel = (): void => void this.call('cancelJob', { id: job.id }).catch(() => {});
    hooks.signal?.addEventListener('abort', cancel, { once: true });
    try {
      const last = await this.follow(job.id, hooks);
      if (last.state === 'succeeded') return last.result as T; // the job's Engine method's result
      throw fromErrorInfo(last.error, 'runtime', `The job ${last.state}`);
    } finally {
      hooks.signal?.removeEventListener('abort', cancel);
    }
  }

  private follow(id: string, hooks: JobHooks): Promise<Job> {
    return new Promise((resolve, reject) => {
      let shown = 0;
      let last: Job | undefined;
      const req = http.get(
        {
          socketPath: this.socket,
          path: `/v1/events?job=${encodeURIComponent(id)}`,
          headers: { accept: 'text/event-stream' },
        },
        (res) => {
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            let at: number;
            while ((at = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, at);
              buf = buf.slice(at + 2);
              for (const line of block.split('\n')) {
                if (!line.startsWith('data: ')) continue;
                const ev = JSON.parse(line.slice(6)) as { type: string; job?: Job };
                if (ev.type !== 'job' || !ev.job) continue;
                last = ev.job;
                for (const l of ev.job.progress.slice(shown)) hooks.onProgress?.(l, ev.job.fraction);
                shown = ev.job.progress.length;
              }
            }
          });
          res.on('end', () =>
            last && last.state !== 'running'
              ? resolve(last)
              : reject(new JaulaError('runtime', `jaulad ended the job's event stream early (job ${id})`)),
          );
          res.on('error', reject);
        },
      );
      req.on('error', (e) =>
        reject(new JaulaError('runtime', `The connection to jaulad failed: ${e.message}`)),
      );
    });
  }

  /** exec, enter and run: this process's stdio over a WebSocket. */
  async attach(
    mode: 'exec' | 'enter' | 'run',
    name: string,
    hello: Omit<ExecRequest, 'name'>,
  ): Promise<number> {
    const { WebSocket } = await import('ws');
    const tty = (mode === 'enter' || hello.tty === true) && process.stdin.isTTY === true;
    if (mode === 'enter' && !process.stdin.isTTY)
      throw new JaulaError(
        'usage',
        `"jaula enter" needs a terminal; to run commands without one use "jaula exec ${name} -- CMD"`,
      );
    const ws = new WebSocket(
      `ws+unix:${this.socket}:/v1/guests/${encodeURIComponent(name)}/attach?mode=${mode}`,
    );
    return new Promise<number>((resolve, reject) => {
      let done = false;
      const stdin = process.stdin;
      const cleanup = (): void => {
        done = true;
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        process.stdout.off('resize', onResize);
        if (tty) stdin.setRawMode(false);
        stdin.pause();
        stdin.unref?.();
      };
      const onData = (b: Buffer): void => ws.send(Buffer.concat([Buffer.from([0]), b]));
      const onEnd = (): void => ws.send(JSON.stringify({ type: 'eof' }));
      const onResize = (): void =>
        ws.send(JSON.stringify({ type: 'resize', rows: process.stdout.rows, cols: process.stdout.columns }));
      ws.on('open', () => {
        ws.send(attachHello(mode, hello));
        if (tty) stdin.setRawMode(true);
        stdin.on('data', onData);
        stdin.on('end', onEnd);
        process.stdout.on('resize', onResize);
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) {
          // A slow terminal or pipe holds the session back (jaulad then holds the guest back).
          const to = data[0] === 1 ? process.stdout : data[0] === 2 ? process.stderr : undefined;
          if (to && !to.write(data.subarray(1))) {
            ws.pause();
            to.once('drain', () => ws.resume());
          }
          return;
        }
        const m = JSON.parse(data.toString('utf8')) as {
          type: string;
          code?: number | string;
          message?: string;
        };
        if (m.type === 'exit') {
          cleanup();
          resolve(Number(m.code ?? 0));
        } else if (m.type === 'error') {
          cleanup();
          reject(fromErrorInfo({ ...m, code: String(m.code) }, 'runtime', 'failed'));
        }
      });
      ws.on('error', (e) => {
        if (done) return;
        cleanup();
        reject(new JaulaError('runtime', `The connection to jaulad failed: ${e.message}`));
      });
      ws.on('close', () => {
        if (done) return;
        cleanup();
        reject(new JaulaError('runtime', 'jaulad closed the session before the command ended'));
      });
    });
  }

  /** The guest's console over the attach WebSocket (mode=console), on this process's terminal. */
  async console(name: string, onAttached?: () => void): Promise<ConsoleEnd> {
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(
      `ws+unix:${this.socket}:/v1/guests/${encodeURIComponent(name)}/attach?mode=console`,
    );
    await new Promise<void>((resolve, reject) => {
      const fail = (e: JaulaError): void => {
        ws.terminate();
        reject(e);
      };
      ws.once('error', (e) =>
        fail(new JaulaError('runtime', `The connection to jaulad failed: ${e.message}`)),
      );
      // jaulad answers "attached" once it holds the console, or an error.
      ws.once('message', (data: Buffer, isBinary: boolean) => {
        const m = (isBinary ? {} : JSON.parse(data.toString('utf8'))) as {
          type?: string;
          code?: string;
          message?: string;
        };
        if (m.type === 'attached') return resolve();
        fail(fromErrorInfo(m, 'runtime', 'jaulad did not attach the console'));
      });
    });
    onAttached?.();
    return relayTerminal({
      send: (d) => ws.send(Buffer.concat([Buffer.from([0]), d])),
      close: () => ws.close(1000),
      listen: (output, ended) => {
        ws.on('message', (data: Buffer, isBinary: boolean) => {
          if (isBinary && data[0] === 1) output(data.subarray(1));
          else if (!isBinary) ended(); // {"type":"exit"}: the console closed
        });
        ws.on('close', ended);
        ws.on('error', ended);
      },
    });
  }

  // One line per operation of the route table (engine: true).
  getInfo: Engine['getInfo'] = () => this.call('getInfo', {});
  listGuests: Engine['listGuests'] = (r) => this.call('listGuests', r);
  getGuest: Engine['getGuest'] = (r) => this.call('getGuest', r);
  deleteGuest: Engine['deleteGuest'] = (r) => this.call('deleteGuest', r);
  getGuestSettings: Engine['getGuestSettings'] = (r) => this.call('getGuestSettings', r);
  configureGuest: Engine['configureGuest'] = (r) => this.call('configureGuest', r);
  startGuest: Engine['startGuest'] = (r) => this.call('startGuest', r);
  stopGuest: Engine['stopGuest'] = (r) => this.call('stopGuest', r);
  restartGuest: Engine['restartGuest'] = (r) => this.call('restartGuest', r);
  execCapture: Engine['execCapture'] = (r) => this.call('execCapture', r);
  getUsage: Engine['getUsage'] = (r) => this.call('getUsage', r);
  listProcesses: Engine['listProcesses'] = (r) => this.call('listProcesses', r);
  sampleGuests: Engine['sampleGuests'] = (r) => this.call('sampleGuests', r);
  copy: Engine['copy'] = (r) => this.call('copy', r);
  doctor: Engine['doctor'] = (r) => this.call('doctor', r);
  listNetworks: Engine['listNetworks'] = () => this.call('listNetworks', {});
  createNetwork: Engine['createNetwork'] = (r) => this.call('createNetwork', r);
  deleteNetwork: Engine['deleteNetwork'] = (r) => this.call('deleteNetwork', r);
  networkGc: Engine['networkGc'] = () => this.call('networkGc', {});
  networkCheck: Engine['networkCheck'] = () => this.call('networkCheck', {});
  getFleet: Engine['getFleet'] = () => this.call('getFleet', {});
  joinFleet: Engine['joinFleet'] = (r) => this.call('joinFleet', r);
  leaveFleet: Engine['leaveFleet'] = (r) => this.call('leaveFleet', r);
  fleetHosts: Engine['fleetHosts'] = () => this.call('fleetHosts', {});
  fleetGuests: Engine['fleetGuests'] = () => this.call('fleetGuests', {});
  fleetHa: Engine['fleetHa'] = () => this.call('fleetHa', {});
  getLimits: Engine['getLimits'] = (r) => this.call('getLimits', r);
  setLimits: Engine['setLimits'] = (r) => this.call('setLimits', r);
  listTemplates: Engine['listTemplates'] = () => this.call('listTemplates', {});
  getTemplate: Engine['getTemplate'] = (r) => this.call('getTemplate', r);
  getPool: Engine['getPool'] = () => this.call('getPool', {});
  createPool: Engine['createPool'] = (r, hooks) => this.job('createPool', r, hooks);
  setPool: Engine['setPool'] = (r) => this.call('setPool', r);
  deletePool: Engine['deletePool'] = () => this.call('deletePool', {});
  setQuota: Engine['setQuota'] = (r) => this.call('setQuota', r);
  listLayers: Engine['listLayers'] = (r) => this.call('listLayers', r);
  changeLayers: Engine['changeLayers'] = (r) => this.call('changeLayers', r);
  deleteTemplate: Engine['deleteTemplate'] = (r) => this.call('deleteTemplate', r);
  diskUsage: Engine['diskUsage'] = (r) => this.call('diskUsage', r);
  renameGuest: Engine['renameGuest'] = (r) => this.call('renameGuest', r);
  guestLogs: Engine['guestLogs'] = (r) => this.call('guestLogs', r);
  buildGuest: Engine['buildGuest'] = (r, hooks) => this.job('buildGuest', r, hooks);
  cloneGuest: Engine['cloneGuest'] = (r, hooks) => this.job('cloneGuest', r, hooks);
  saveTemplate: Engine['saveTemplate'] = (r, hooks) => this.job('saveTemplate', r, hooks);
  importTemplate: Engine['importTemplate'] = (r, hooks) => this.job('importTemplate', r, hooks);
  exportTemplate: Engine['exportTemplate'] = (r, hooks) => this.job('exportTemplate', r, hooks);
  hashify: Engine['hashify'] = (r, hooks) => this.job('hashify', r, hooks);
  listRemotes: Engine['listRemotes'] = () => this.call('listRemotes', {});
  addRemote: Engine['addRemote'] = (r) => this.call('addRemote', r);
  removeRemote: Engine['removeRemote'] = (r) => this.call('removeRemote', r);
  migrateGuest: Engine['migrateGuest'] = (r, hooks) => this.job('migrateGuest', r, hooks);
  fleetDrain: Engine['fleetDrain'] = (r, hooks) => this.job('fleetDrain', r, hooks);
  fleetBalance: Engine['fleetBalance'] = (r, hooks) => this.job('fleetBalance', r, hooks);
  fleetProcesses: Engine['fleetProcesses'] = (r) => this.call('fleetProcesses', r);
  fleetSamples: Engine['fleetSamples'] = (r) => this.call('fleetSamples', r);
  listMoves: Engine['listMoves'] = (r) => this.call('listMoves', r);
  listSnapshots: Engine['listSnapshots'] = (r) => this.call('listSnapshots', r);
  createSnapshot: Engine['createSnapshot'] = (r) => this.call('createSnapshot', r);
  restoreSnapshot: Engine['restoreSnapshot'] = (r, hooks) => this.job('restoreSnapshot', r, hooks);
  deleteSnapshot: Engine['deleteSnapshot'] = (r) => this.call('deleteSnapshot', r);
  execInteractive: Engine['execInteractive'] = ({ name, ...rest }) => this.attach('exec', name, rest);
  enterGuest: Engine['enterGuest'] = ({ name }) => this.attach('enter', name, { cmd: [] });
  runOnce: Engine['runOnce'] = ({ name, cmd }) => this.attach('run', name, { cmd });
  attachConsole: Engine['attachConsole'] = ({ name }, onAttached) => this.console(name, onAttached);
  backupGuest: Engine['backupGuest'] = (r, hooks) => this.job('backupGuest', r, hooks);
  restoreGuest: Engine['restoreGuest'] = (r, hooks) => this.job('restoreGuest', r, hooks);
  listImages: Engine['listImages'] = () => this.call('listImages', {});
  pullImage: Engine['pullImage'] = (r, hooks) => this.job('pullImage', r, hooks);
  importImage: Engine['importImage'] = (r, hooks) => this.job('importImage', r, hooks);
  inspectImage: Engine['inspectImage'] = (r) => this.call('inspectImage', r);
  deleteImage: Engine['deleteImage'] = (r) => this.call('deleteImage', r);
  pushImage: Engine['pushImage'] = (r, hooks) => this.job('pushImage', r, hooks);
}
