/**
 * How a command jaula runs for someone (jaula exec, enter, run) is connected: to this process's
 * terminal, to pipes jaula copies to its stdio, or to pipes its caller wires (jaulad's attach
 * WebSocket); on a pty made inside the guest, through jaula-helper pty-exec. Every such process
 * is spawned here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { JaulaError, messageOf } from '../common/errors.js';
import { spawnFast } from '../os/fastspawn.js';
import type { Invocation } from './sealed.js';
import { tmpSuffix } from '../os/fs.js';
import { helperBin, paths } from '../os/paths.js';
import { run } from '../os/spawn.js';

/** A command's process, for a caller that wires its stdio itself. */
export interface Session {
  readonly child: ChildProcess;
  /** A new window size for its pty (nothing without one). */
  resize(rows: number, cols: number): void;
}

/** Connects a session's pipes (stdio 0-2) to whatever serves it; resolves with its exit status. */
export type Wire = (s: Session) => Promise<number>;

/**
 * 'inherit': this process's stdio; 'pipes': pipes of its own that jaula copies to this
 * process's stdio (a guest's process never holds the caller's terminal); a Wire: pipes handed
 * to the caller.
 */
export type Io = 'inherit' | 'pipes' | Wire;

/**
 * Run a child and wait; the exit code (128+signal when killed). With `pipes`, the child gets
 * pipes of its own and jaula copies the data: a guest's process never holds the caller's
 * terminal (it could read what the operator types next, or inject into it).
 */
function waitChild(argv: string[], opts: { pipes?: boolean } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd as string, args, { stdio: opts.pipes ? 'pipe' : 'inherit' });
    const ignore = (): void => {};
    // Signals from the terminal reach the runtime too: it forwards them to the guest process.
    process.on('SIGINT', ignore);
    process.on('SIGTERM', ignore);
    if (opts.pipes) {
      process.stdin.pipe(child.stdin as NodeJS.WritableStream);
      child.stdin?.on('error', () => {});
      child.stdout?.pipe(process.stdout);
      child.stderr?.pipe(process.stderr);
    }
    child.on('error', (e) => reject(new JaulaError('runtime', `Could not run ${cmd}: ${e.message}`)));
    child.on('close', (code, signal) => {
      process.off('SIGINT', ignore);
      process.off('SIGTERM', ignore);
      if (opts.pipes) {
        process.stdin.unpipe(child.stdin as NodeJS.WritableStream);
        process.stdin.destroy();
      }
      resolve(
        code ??
          128 +
            (signal ? (({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 } as Record<string, number>)[signal] ?? 1) : 1),
      );
    });
  });
}

/**
 * `argv` on this process's own stdio, to its end: its exit status. Started by posix_spawn
 * (os/fastspawn.ts: a one-shot run does not fork the CLI, 5-8 ms here).
 */
async function waitInherited(argv: string[], via: Via): Promise<number> {
  const [cmd, ...args] = argv;
  const ignore = (): void => {};
  // Signals from the terminal reach the runtime too: it forwards them to the guest process.
  process.on('SIGINT', ignore);
  process.on('SIGTERM', ignore);
  try {
    const slots = [0, 1, 2, ...(via.fds ?? [])];
    const child = await spawnFast(cmd as string, args, { slots, ...(via.exe ? { exe: via.exe } : {}) }).catch(
      (e: unknown) => {
        throw new JaulaError('runtime', `Could not run ${cmd}: ${messageOf(e)}`);
      },
    );
    const { code, signal } = await child.exited;
    return code ?? 128 + (signal ? (constants.signals[signal] ?? 1) : 1);
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', ignore);
  }
}

/** Extra fds for the program (its 3, 4...) and the file executed, if not argv[0]. */
type Via = Omit<Invocation, 'argv'>;

/**
 * Run `argv` connected as `io` says, to its end: its exit status. `via` is used only on the
 * caller's own stdio ('inherit'), where posix_spawn runs it.
 */
export function runAttached(argv: string[], io: Io, via: Via = {}): Promise<number> {
  if (io === 'inherit' && argv[0]?.startsWith('/')) return waitInherited(argv, via);
  if (typeof io !== 'function') return waitChild(argv, { pipes: io === 'pipes' });
  const [bin, ...args] = argv;
  return io({ child: spawn(bin as string, args, { stdio: ['pipe', 'pipe', 'pipe'] }), resize: () => {} });
}

/** A fresh path for a pty's console socket (ptySession removes it once the session ends). */
export function consoleSocketPath(): string {
  return join(paths().run, `console-${tmpSuffix()}.sock`);
}

/**
 * `argv` (jaula-exec with --tty --console-socket SOCKET) on a pty of `size` that it makes inside
 * the guest and passes on SOCKET to jaula-helper pty-exec, which relays it to its own stdio: this
 * process's terminal ('inherit') or pipes for the caller ('pipe'). Window sizes go to pty-exec
 * on fd 3. SOCKET is removed once the session ends.
 */
export function ptySession(
  argv: string[],
  consoleSocket: string,
  size: { rows: number; cols: number },
  stdio: 'inherit' | 'pipe',
): Session {
  const pty = ['pty-exec', String(size.rows), String(size.cols), consoleSocket, '--', ...argv];
  const child = spawn(helperBin, pty, { stdio: [stdio, stdio, stdio, 'pipe'] });
  const removeSocket = (): void => rmSync(consoleSocket, { force: true });
  child.on('error', removeSocket);
  child.on('close', removeSocket);
  const ctl = child.stdio[3] as NodeJS.WritableStream | null;
  ctl?.on('error', () => {});
  return {
    child,
    resize: (rows, cols) => void ctl?.write(`${Math.floor(rows)} ${Math.floor(cols)}\n`),
  };
}

/** A session's end: its exit status (128+signal when killed). */
export function sessionEnd(s: Session): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    s.child.on('error', (e) => reject(new JaulaError('runtime', `Could not run ${helperBin}: ${e.message}`)));
    s.child.on('close', (c, sig) => resolve(c ?? 128 + (sig ? (constants.signals[sig] ?? 1) : 1)));
  });
}

/**
 * Run `argv` to its end with `input` on its stdin and its output collected (at most maxOutput
 * bytes of each); its status is 128+signal when killed (by the timeout: SIGKILL).
 */
export async function runCaptured(
  argv: string[],
  opts: { input: string; timeoutMs: number; maxOutput: number },
): Promise<{ code: number; stdout: string; stderr: string; dropped?: { stdout: number; stderr: number } }> {
  const r = await run(argv, opts);
  const code = r.signal ? 128 + (r.signal === 'SIGKILL' ? 9 : 15) : r.code;
  return { code, stdout: r.stdout, stderr: r.stderr, ...(r.dropped ? { dropped: r.dropped } : {}) };
}
