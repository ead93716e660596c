import { spawn, type StdioOptions } from 'node:child_process';
import { JaulaError } from '../common/errors.js';
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
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = opts.inherit
      ? 'inherit'
      : [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'];
    const child = spawn(cmd, args, {
      stdio,
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      signal: opts.signal,
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL',
    });
    const max = opts.maxOutput ?? Infinity;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const kept = { stdout: 0, stderr: 0 };
    const dropped = { stdout: 0, stderr: 0 };
    const keep = (which: 'stdout' | 'stderr', into: Buffer[], b: Buffer): void => {
      const room = max - kept[which];
      if (room >= b.length) into.push(b);
      else {
        if (room > 0) into.push(b.subarray(0, room));
        dropped[which] += b.length - Math.max(0, room);
      }
      kept[which] += Math.min(b.length, Math.max(0, room));
    };
    child.stdout?.on('data', (b: Buffer) => {
      keep('stdout', out, b);
      opts.onStdout?.(b.toString());
    });
    child.stderr?.on('data', (b: Buffer) => {
      keep('stderr', err, b);
      opts.onStderr?.(b.toString());
    });
    child.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT')
        reject(
          new JaulaError(
            'unsupported',
            `The program "${cmd}" is not installed (run the README's setup command)`,
            { cause: e },
          ),
        );
      else reject(new JaulaError('runtime', `Could not run "${cmd}": ${e.message}`, { cause: e }));
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
    child.on('close', (code, signal) => {
      const r: RunResult = {
        code: code ?? 128,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if (opts.maxOutput !== undefined) r.dropped = dropped;
      resolve(r);
    });
  });
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
