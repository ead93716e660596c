/**
 * GET /v1/guests/{name}/attach: a command's stdio over a WebSocket (exec, enter and one-shot
 * run through jaulad; the dashboard's console). Messages:
 *   client -> server: first one JSON text {cmd, env, cwd, user, tty, rows, cols}; then binary
 *     [0, ...stdin bytes], text {"type":"resize","rows","cols"}, text {"type":"eof"};
 *   server -> client: binary [1, ...stdout] and [2, ...stderr]; last text {"type":"exit","code"}
 *     or {"type":"error","code","message"}.
 * With tty the command runs on a pty made inside the guest (jaula-helper pty-exec, through
 * core/exec.ts and runtime/session.ts), sized by the client; without, on pipes.
 *
 * Both ways are bounded: while the client has more than OUTPUT_HIGH bytes of output not yet
 * taken, jaulad stops reading the command's output (the guest's writes then wait, as on a slow
 * terminal), and while the command has more than INPUT_HIGH bytes of input not yet taken,
 * jaulad stops reading the WebSocket. A guest printing without end costs jaulad this much, not
 * more, whatever the client does.
 */
import type { ChildProcess } from 'node:child_process';
import type { WebSocket } from 'ws';
import { isJaulaError, JaulaError, messageOf } from '../common/errors.js';
import { connectConsole } from '../core/console.js';
import { execWired, loginShell, type ExecSession } from '../core/exec.js';
import { runOnce } from '../core/run.js';

interface Hello {
  cmd?: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  tty?: boolean;
  rows?: number;
  cols?: number;
}

export type AttachMode = 'exec' | 'enter' | 'run' | 'console';

/** Output held for a client that does not read, at most (then the command's output waits). */
export const OUTPUT_HIGH = 1 << 20;
const OUTPUT_LOW = OUTPUT_HIGH / 4;
/** Input held for a command that does not read, at most (then the WebSocket waits). */
export const INPUT_HIGH = 1 << 20;
/** Input a client may send before its command runs (enter looks up the shell first). */
const EARLY_MAX = 1 << 20;

function exitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : signal === 'SIGHUP' ? 1 : 2);
}

/** Deliver one client message (after the hello) to the command; false when its input is full. */
function control(session: ExecSession, buf: Buffer, isBinary: boolean): boolean {
  const { child } = session;
  if (isBinary) {
    if (buf[0] === 0 && child.stdin && !child.stdin.destroyed) child.stdin.write(buf.subarray(1));
    return (child.stdin?.writableLength ?? 0) < INPUT_HIGH;
  }
  try {
    const m = JSON.parse(buf.toString('utf8')) as { type?: string; rows?: number; cols?: number };
    if (m.type === 'eof') child.stdin?.end();
    if (m.type === 'resize' && m.rows && m.cols) session.resize(m.rows, m.cols);
  } catch {
    /* ignore what is not understood */
  }
  return true;
}

/**
 * The guest's console (mode=console), relayed between the WebSocket and its supervisor's
 * attach socket: first the text message {"type":"attached"} (or an error), then binary
 * [1, ...output] one way and [0, ...input] the other; {"type":"exit","code":0} when the console
 * closes (the guest stopped). The client detaches by closing.
 */
function serveConsole(ws: WebSocket, name: string, log: (line: string) => void): void {
  const send = (msg: Record<string, unknown>): void => {
    try {
      ws.send(JSON.stringify(msg));
    } catch {
      /* gone */
    }
  };
  connectConsole(name).then(
    (sock) => {
      if (ws.readyState !== ws.OPEN) return sock.destroy();
      send({ type: 'attached' });
      sock.on('data', (b: Buffer) => ws.send(Buffer.concat([Buffer.from([1]), b])));
      sock.on('error', () => {});
      sock.on('close', () => {
        send({ type: 'exit', code: 0 });
        ws.close(1000);
      });
      ws.on('message', (data, isBinary) => {
        const buf = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
        if (isBinary && buf[0] === 0) sock.write(buf.subarray(1));
      });
      ws.on('close', () => sock.destroy());
    },
    (e: unknown) => {
      log(`console ${name}: ${messageOf(e)}`);
      send({ type: 'error', code: isJaulaError(e) ? e.code : 'internal', message: messageOf(e) });
      ws.close(1000);
    },
  );
}

/** Serve one attach session on an open WebSocket. */
// eslint-disable-next-line max-lines-per-function -- one session's closures (finish, wire, begin) share its state
export function serveAttach(
  ws: WebSocket,
  name: string,
  mode: AttachMode,
  log: (line: string) => void,
): void {
  if (mode === 'console') return serveConsole(ws, name, log);
  let session: ExecSession | undefined;
  let ended = false;
  const finish = (msg: Record<string, unknown>): void => {
    if (ended) return;
    ended = true;
    try {
      ws.send(JSON.stringify(msg), () => ws.close(1000));
      // A client that takes nothing any more does not keep its connection.
      setTimeout(() => ws.terminate(), 30_000).unref();
    } catch {
      ws.terminate();
    }
  };
  const fail = (e: unknown): void =>
    finish({ type: 'error', code: isJaulaError(e) ? e.code : 'internal', message: messageOf(e) });

  /** Messages that came before the command was spawned, delivered to it once it is. */
  const early: [Buffer, boolean][] = [];
  let earlyBytes = 0;
  /** Input the command has not taken yet: the WebSocket waits (and resumes on drain). */
  const inputFull = (c: ChildProcess): void => {
    ws.pause();
    c.stdin?.once('drain', () => ws.resume());
    c.stdin?.once('close', () => ws.resume());
  };
  const wire = (s: ExecSession): Promise<number> =>
    new Promise((resolve) => {
      session = s;
      const c = s.child;
      let full = false;
      for (const [b, bin] of early.splice(0)) full = !control(s, b, bin) || full;
      if (full) inputFull(c);
      // Output the client has not taken yet: the command's output waits (resumed as it drains).
      let paused = false;
      const drained = (): void => {
        if (paused && ws.bufferedAmount < OUTPUT_LOW) {
          paused = false;
          c.stdout?.resume();
          c.stderr?.resume();
        }
      };
      const forward = (tag: number, b: Buffer): void => {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(Buffer.concat([Buffer.from([tag]), b]), drained);
        if (!paused && ws.bufferedAmount > OUTPUT_HIGH) {
          paused = true;
          c.stdout?.pause();
          c.stderr?.pause();
        }
      };
      c.stdout?.on('data', (b: Buffer) => forward(1, b));
      c.stderr?.on('data', (b: Buffer) => forward(2, b));
      c.stdin?.on('error', () => {});
      c.on('error', (e) => {
        log(`attach ${name}: ${e.message}`);
        resolve(127);
      });
      c.on('close', (code, signal) => resolve(exitCode(code, signal)));
    });

  let started = false;
  ws.on('message', (data, isBinary) => {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
    if (!started) {
      started = true;
      let hello: Hello;
      try {
        hello = JSON.parse(buf.toString('utf8')) as Hello;
      } catch {
        return fail(new JaulaError('usage', 'The first message must be JSON: {"cmd": [...], "tty": false}'));
      }
      void begin(hello).catch(fail);
      return;
    }
    if (session) {
      if (!control(session, buf, isBinary)) inputFull(session.child);
    } else if ((earlyBytes += buf.length) > EARLY_MAX)
      fail(new JaulaError('usage', `More than ${EARLY_MAX} bytes of input came before the command ran`));
    else early.push([buf, isBinary]); // the command is not there yet (enter looks up the shell)
  });
  ws.on('close', () => {
    const child = session?.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });

  async function begin(h: Hello): Promise<void> {
    const tty = mode === 'enter' ? true : h.tty === true;
    let cmd = h.cmd ?? [];
    const env = [...(h.env ?? [])];
    if (mode === 'enter') {
      cmd = await loginShell(name);
      if (!env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm-256color');
    }
    if (mode === 'run') return finish({ type: 'exit', code: await runOnce(name, cmd, wire) });
    const o: Parameters<typeof execWired>[2] = { env, tty };
    if (h.cwd) o.cwd = h.cwd;
    if (h.user) o.user = h.user;
    if (h.rows !== undefined) o.rows = h.rows;
    if (h.cols !== undefined) o.cols = h.cols;
    finish({ type: 'exit', code: await execWired(name, cmd, o, wire) });
  }
}
