import { spawn, type StdioOptions } from 'node:child_process';
import { JaulaError } from '../common/errors.js';
import type * as net from 'node:net';
import { spawnFast, type Spawned } from './fastspawn.js';
import { which } from './fs.js';

export interface RunOptions {
  input?: string | Uint8Array;
  timeoutMs?: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Pass the caller's stdio through instead of capturing (interactive commands). */
  inherit?: boolean;
  /** Called with each chunk of stderr (progress display). */
  onStderr?: (chunk: string) => void;
  onStdout?: (chunk: string) => void;
  /**
   * Kill the program when this process dies (setpriv --pdeathsig KILL): a build's unpacking
   * must not go on writing after jaulad was killed and its next start removed the half-built guest.
   */
  dieWithParent?: boolean;
  /**
   * Keep at most this many bytes of stdout and of stderr (a guest's program may print without
   * end); the rest is read and dropped, and counted in `dropped`.
   */
  maxOutput?: number;
  /**
   * Extra fds for the program, as its fds 3, 4...; and the file executed when not argv[0]
   * (/proc/self/fd/3: the runtime's sealed copy, runtime/sealed.ts; under `dieWithParent`,
   * argv[0] is executed, by setpriv).
   */
  fds?: number[];
  exe?: string;
}

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Bytes past maxOutput that were read and dropped, per stream (only with maxOutput). */
  dropped?: { stdout: number; stderr: number };
}

/** Run a program from an argv array (never a shell string). */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const setpriv = opts.dieWithParent ? which('setpriv') : undefined;
  const [cmd, ...args] = setpriv ? [setpriv, '--pdeathsig', 'KILL', '--', ...argv] : argv;
  if (!cmd) throw new Error('run: empty argv');
  // Without a terminal or an abort signal, by posix_spawn (os/fastspawn.ts: no fork of this process).
  if (!opts.inherit && !opts.signal) {
    const { exe, ...plain } = opts; // (under setpriv, argv[0] is setpriv's)
    return runFast(cmd, args, setpriv || !exe ? plain : opts);
  }
  return new Promise((resolve, reject) => {
    const extra = opts.fds ?? [];
    const stdio: StdioOptions = opts.inherit
      ? ['inherit', 'inherit', 'inherit', ...extra]
      : [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe', ...extra];
    const child = spawn(!setpriv && opts.exe ? opts.exe : cmd, args, {
      argv0: cmd,
      stdio,
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      signal: opts.signal,
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL',
    });
    const out = new Output(opts);
    child.stdout?.on('data', (b: Buffer) => out.add('stdout', b));
    child.stderr?.on('data', (b: Buffer) => out.add('stderr', b));
    child.on('error', (e) => reject(spawnError(cmd, e)));
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
    child.on('close', (code, signal) => resolve(out.result(code, signal)));
  });
}

/** run() through os/fastspawn.ts: the same result, the same errors. */
async function runFast(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  const file = cmd.includes('/') ? cmd : programPath(cmd);
  if (!file) throw spawnError(cmd, Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: 'ENOENT' }));
  let child: Spawned;
  try {
    child = await spawnFast(file, args, {
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      slots: [opts.input === undefined ? 'ignore' : 'in', 'out', 'out', ...(opts.fds ?? [])],
      ...(opts.exe ? { exe: opts.exe } : {}),
    });
  } catch (e) {
    throw spawnError(cmd, e as Error);
  }
  const [stdin, stdout, stderr] = child.stdio as [net.Socket | undefined, net.Socket, net.Socket];
  const out = new Output(opts);
  const drained = (s: net.Socket, which: 'stdout' | 'stderr'): Promise<void> =>
    new Promise((resolve) => {
      s.on('data', (b: Buffer) => out.add(which, b));
      s.on('close', () => resolve());
      s.on('error', () => {});
    });
  const timer =
    opts.timeoutMs !== undefined ? setTimeout(() => killQuietly(child.pid), opts.timeoutMs) : undefined;
  if (stdin && opts.input !== undefined) {
    stdin.on('error', () => {});
    stdin.end(opts.input);
  }
  const [end] = await Promise.all([child.exited, drained(stdout, 'stdout'), drained(stderr, 'stderr')]);
  clearTimeout(timer);
  return out.result(end.code, end.signal);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
}

/** A program's path on PATH, remembered once found (a start runs the same few programs each time). */
const found = new Map<string, string>();
function programPath(name: string): string | undefined {
  const hit = found.get(name);
  if (hit) return hit;
  const p = which(name);
  if (p) found.set(name, p);
  return p;
}

function spawnError(cmd: string, e: Error): JaulaError {
  if ((e as NodeJS.ErrnoException).code === 'ENOENT')
    return new JaulaError(
      'unsupported',
      `The program "${cmd}" is not installed (run the README's setup command)`,
      { cause: e },
    );
  return new JaulaError('runtime', `Could not run "${cmd}": ${e.message}`, { cause: e });
}

/** A program's stdout and stderr, kept up to maxOutput bytes each (the rest counted as dropped). */
class Output {
  private readonly max: number;
  private readonly bufs = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  private readonly kept = { stdout: 0, stderr: 0 };
  private readonly dropped = { stdout: 0, stderr: 0 };
  constructor(private readonly opts: RunOptions) {
    this.max = opts.maxOutput ?? Infinity;
  }
  add(which: 'stdout' | 'stderr', b: Buffer): void {
    const room = this.max - this.kept[which];
    if (room >= b.length) this.bufs[which].push(b);
    else {
      if (room > 0) this.bufs[which].push(b.subarray(0, room));
      this.dropped[which] += b.length - Math.max(0, room);
    }
    this.kept[which] += Math.min(b.length, Math.max(0, room));
    (which === 'stdout' ? this.opts.onStdout : this.opts.onStderr)?.(b.toString());
  }
  result(code: number | null, signal: NodeJS.Signals | null): RunResult {
    const r: RunResult = {
      code: code ?? 128,
      signal,
      stdout: Buffer.concat(this.bufs.stdout).toString(),
      stderr: Buffer.concat(this.bufs.stderr).toString(),
    };
    if (this.opts.maxOutput !== undefined) r.dropped = this.dropped;
    return r;
  }
}

/** Run and throw a JaulaError carrying the program's stderr when it fails. */
export async function runOk(
  argv: readonly string[],
  opts: RunOptions & { what?: string } = {},
): Promise<RunResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    const what = opts.what ?? `"${argv.join(' ')}"`;
    const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n');
    const how = r.signal
      ? `was killed by ${r.signal}${opts.timeoutMs ? ` (time limit ${opts.timeoutMs} ms)` : ''}`
      : `failed with status ${r.code}`;
    throw new JaulaError(
      r.signal && opts.timeoutMs ? 'timeout' : 'runtime',
      `${what} ${how}${detail ? `: ${detail}` : ''}`,
      {
        details: { argv: [...argv], code: r.code, stderr: r.stderr },
      },
    );
  }
  return r;
}
