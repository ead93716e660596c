/**
 * Commands in a running guest (`jaula exec`, `enter`), kept apart from the one-shot run
 * (core/run.ts), so that an exec loads no storage, network or spec code.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { isSameProcess } from '../os/proc.js';
import { paths } from '../os/paths.js';
import { execProcess, execStatus, type ExecProcess } from '../runtime/exec.js';
import {
  consoleSocketPath,
  ptySession,
  runAttached,
  runCaptured,
  sessionEnd,
  type Session,
  type Wire,
} from '../runtime/session.js';
import { requireRunning } from './running.js';
import { trace } from '../os/trace.js';

const { EACCES, EAGAIN, EISDIR, ENOENT, ENOEXEC, ENOMEM, ENOTDIR, EPERM, EPIPE, ESRCH, ETXTBSY } =
  constants.errno;
/** errno numbers back to their names, for messages. */
const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(constants.errno).map(([k, v]) => [v, k]),
);

/** A command's process for a caller that wires its stdio (jaulad's attach): runtime/session.ts. */
export type ExecSession = Session;

export interface ExecOptions {
  tty?: boolean;
  env?: string[];
  cwd?: string;
  user?: string;
}

/** A command about to run in a guest through jaula-exec (runtime/exec.ts). */
export interface ExecLaunch extends ExecProcess {
  name: string;
  cmd: string[];
  cwd: string;
  /** Its init (pid and start time): a failure while it ends is the guest's stop, not the exec's. */
  init: [number, number];
}

/**
 * How to run `cmd` in the running guest `name` (runtime/exec.ts: jaula-exec). With
 * consoleSocket, on a pty made inside the guest, its master sent there.
 */
function execLaunch(
  name: string,
  cmd: string[],
  opts: ExecOptions & { consoleSocket?: string } = {},
): ExecLaunch {
  if (cmd.length === 0)
    throw new JaulaError('usage', `Give the command to run: jaula exec ${name} -- CMD [ARGS...]`);
  if (opts.user !== undefined && !/^\d+(:\d+)?$/.test(opts.user))
    throw new JaulaError(
      'usage',
      `--user takes UID[:GID] (numbers, as the guest counts them), not "${opts.user}"`,
    );
  for (const e of opts.env ?? [])
    if (!/^[^=]+=/.test(e)) throw new JaulaError('usage', `-e takes VAR=VALUE, not "${e}"`);
  const { st } = requireRunning(name);
  const pid = st.pid as number;
  const cwd = opts.cwd ?? '/';
  const p = execProcess(
    { name, pid, pidStart: st.pidStart ?? 0, runDir: paths().guestRun(name) },
    {
      cmd,
      env: opts.env ?? [],
      cwd,
      user: opts.user,
      consoleSocket: opts.tty ? opts.consoleSocket : undefined,
    },
  );
  return { ...p, name, cmd, cwd, init: [pid, st.pidStart ?? 0] };
}

/** Wait (up to `ms`) until a process has ended. */
async function waitEnded([pid, start]: [number, number], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (isSameProcess(pid, start) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/** A cgroup file's content, or "?". */
function readKnob(dir: string | undefined, file: string): string {
  if (!dir) return '?';
  try {
    return readFileSync(join(dir, file), 'utf8').trim() || '?';
  } catch {
    return '?';
  }
}

/**
 * The command's exit status once jaula-exec ended with `code`: the command's own when it ran;
 * otherwise jaula's error, with an exit status of its own (common/errors.ts) and what to do.
 */
async function execResult(l: ExecLaunch, code: number): Promise<number> {
  const status = execStatus(l);
  if (status.startsWith('ok')) return code;
  const m = /^err (\w+) (\d+) ?(.*)$/m.exec(status);
  // A stop or kill of the guest meanwhile (its supervisor's socket gone, its init ended). The
  // command's process dies with the guest's PID namespace before jaula-exec lets it go (fork:
  // EPIPE), while the guest's init may still be ending, not yet a zombie: give it a moment.
  if (m?.[1] === 'fork' && Number(m[2]) === EPIPE) await waitEnded(l.init, 2000);
  if (!['lookup', 'exec', 'cwd'].includes(m?.[1] ?? '') && !isSameProcess(...l.init))
    throw new JaulaError('state', `Guest "${l.name}" stopped while the command was being started`);
  if (!m)
    throw new JaulaError(
      'runtime',
      `Could not run the command in guest "${l.name}": jaula-exec ended (status ${code}) without saying why`,
    );
  const stage = m[1] as string;
  const errno = Number(m[2]);
  const detail = m[3] ?? '';
  const errName = ERRNO_NAMES[errno] ?? `errno ${errno}`;
  const cmd = l.cmd[0] as string;
  const g = `guest "${l.name}"`;
  switch (stage) {
    case 'init':
      if (errno === ESRCH)
        throw new JaulaError('state', `Guest "${l.name}" is not running any more (its init ended)`);
      break;
    case 'fork':
      if (errno === EAGAIN) {
        const max = readKnob(l.pidsDir, 'pids.max');
        const cur = readKnob(l.pidsDir, 'pids.current');
        // jaula-exec itself counted in the guest's cgroup while it forked the command.
        const onlyOne = Number(cur) + 1 === Number(max) ? '; an exec needs one more for a moment' : '';
        throw new JaulaError(
          'limit',
          `Guest "${l.name}" is at its process limit: pids.max ${max} (${cur} in use${onlyOne}), so "${cmd}" ` +
            `could not be started; raise it with "jaula set ${l.name} pids.max=N" (--save keeps it), or end ` +
            `some of its processes`,
        );
      }
      // fork(2) into a PID namespace whose init has ended (the guest stopping) says ENOMEM.
      if (errno === ENOMEM)
        throw new JaulaError('state', `Guest "${l.name}" is stopping: "${cmd}" could not be started`);
      break;
    case 'lookup':
    case 'exec':
      if (errno === ENOENT)
        throw new JaulaError(
          'no_command',
          stage === 'lookup'
            ? `No command "${cmd}" in ${g}${cmd.includes('/') ? '' : ` (PATH=${l.path})`}: install it there, or give its full path`
            : `"${cmd}" in ${g} could not be executed: ENOENT (its #! interpreter or its loader is missing)`,
        );
      if ([EACCES, ENOEXEC, EPERM, ETXTBSY, EISDIR].includes(errno))
        throw new JaulaError(
          'not_executable',
          `"${cmd}" in ${g} cannot be executed: ${errName} ` +
            (errno === ENOEXEC
              ? '(not a program the kernel runs, and no #! line)'
              : '(is it a program file with its x bit, on a file system mounted without noexec?)'),
        );
      break;
    case 'cwd':
      throw new JaulaError(
        errno === ENOENT || errno === ENOTDIR ? 'not_found' : 'invalid',
        `The working directory "${l.cwd}" cannot be used in ${g}: ${errName} (give another --cwd)`,
      );
  }
  throw new JaulaError(
    'runtime',
    `Could not run the command in ${g} (${stage}: ${errName}${detail ? `: ${detail}` : ''})`,
  );
}

/**
 * The command on a pty made inside the guest, this terminal in raw mode connected to it by
 * jaula-helper pty-exec (window sizes follow SIGWINCH): never the caller's own terminal.
 */
async function execOnPty(name: string, cmd: string[], opts: ExecOptions): Promise<number> {
  const size = (): { rows: number; cols: number } => ({
    rows: process.stdout.rows || 24,
    cols: process.stdout.columns || 80,
  });
  const sock = consoleSocketPath();
  const l = execLaunch(name, cmd, { ...opts, tty: true, consoleSocket: sock });
  const raw = process.stdin.isTTY === true;
  const session = ptySession(l.argv, sock, size(), 'inherit');
  const resize = (): void => {
    const { rows, cols } = size();
    session.resize(rows, cols);
  };
  const ignore = (): void => {};
  if (raw) {
    process.stdin.setRawMode(true);
    // libuv's raw mode keeps output processing (\n -> \r\n), which the guest's pty does
    // already; setRawMode(false) restores the terminal as it was.
    spawnSync('stty', ['-opost'], { stdio: ['inherit', 'ignore', 'ignore'] });
  }
  process.on('SIGWINCH', resize);
  process.on('SIGINT', ignore);
  process.on('SIGTERM', ignore);
  try {
    return await execResult(l, await sessionEnd(session));
  } finally {
    if (raw) process.stdin.setRawMode(false);
    process.off('SIGWINCH', resize);
    process.off('SIGINT', ignore);
    process.off('SIGTERM', ignore);
  }
}

/** Run a command inside a running guest (its namespaces, cgroup and limits); returns its exit code. */
export async function execInGuest(name: string, cmd: string[], opts: ExecOptions = {}): Promise<number> {
  if (opts.tty) return execOnPty(name, cmd, opts);
  const l = execLaunch(name, cmd, opts);
  trace('exec: guest found, jaula-exec');
  // Without --tty the command gets pipes, never the caller's terminal.
  const pipes = !opts.tty && [process.stdin, process.stdout, process.stderr].some((s) => s.isTTY);
  const code = await execResult(l, await runAttached(l.argv, pipes ? 'pipes' : 'inherit'));
  trace('exec: jaula-exec ended');
  return code;
}

/**
 * Run a command inside a running guest with its stdio on pipes that `wire` connects (jaulad's
 * attach WebSocket); with tty, on a pty of rows x cols made inside the guest. Its exit code.
 */
export async function execWired(
  name: string,
  cmd: string[],
  opts: ExecOptions & { rows?: number; cols?: number },
  wire: Wire,
): Promise<number> {
  const { rows, cols, ...o } = opts;
  if (!o.tty) {
    const l = execLaunch(name, cmd, o);
    return execResult(l, await runAttached(l.argv, wire));
  }
  const sock = consoleSocketPath();
  const l = execLaunch(name, cmd, { ...o, consoleSocket: sock });
  const size = { rows: Math.max(1, Math.floor(rows ?? 24)), cols: Math.max(1, Math.floor(cols ?? 80)) };
  return execResult(l, await wire(ptySession(l.argv, sock, size, 'pipe')));
}

export interface CaptureOptions extends ExecOptions {
  input?: string;
  timeoutMs?: number;
}

/**
 * How much of a command's stdout and of its stderr execCapture keeps: the guest decides how much
 * its programs print (a replaced /usr/bin/uptime may print forever), and jaulad must hold every
 * guest's answer of `jaula exec --all` at once. The rest is read (the command runs to its end as
 * it would) and dropped, and the answer says how much. Whole outputs: the attach WebSocket
 * (`jaula exec NAME`), which streams them.
 */
export const CAPTURE_MAX = 1 << 20;

/** Run a command in a running guest to its end, with its output collected (CAPTURE_MAX each). */
export async function execCapture(
  name: string,
  cmd: string[],
  opts: CaptureOptions = {},
): Promise<{ code: number; stdout: string; stderr: string; dropped?: { stdout: number; stderr: number } }> {
  const l = execLaunch(name, cmd, { ...opts, tty: false });
  const r = await runCaptured(l.argv, {
    input: opts.input ?? '',
    timeoutMs: opts.timeoutMs ?? 300_000,
    maxOutput: CAPTURE_MAX,
  });
  return {
    code: await execResult(l, r.code),
    stdout: r.stdout,
    stderr: r.stderr,
    ...(r.dropped && (r.dropped.stdout || r.dropped.stderr) ? { dropped: r.dropped } : {}),
  };
}

/** The login shell `enter` runs: bash if the guest has it, else sh. */
export async function loginShell(name: string): Promise<string[]> {
  const { cfg, st } = requireRunning(name);
  const { GuestFs } = await import('../os/guestfs.js');
  const root =
    st.hostView ??
    (await (await import('../storage/index.js')).storageDriver(cfg.storage.driver)).treePath(name);
  const shell = GuestFs.with(
    root,
    (g) => ['/bin/bash', '/bin/sh'].find((s) => g.stat(s)?.isFile()) ?? '/bin/sh',
  );
  return [shell, '-l'];
}

/** An interactive login shell on a fresh pty inside a running guest. */
export async function enterGuest(name: string): Promise<number> {
  if (!process.stdin.isTTY)
    throw new JaulaError(
      'usage',
      `"jaula enter" needs a terminal; to run commands without one use "jaula exec ${name} -- CMD"`,
    );
  return execInGuest(name, await loginShell(name), {
    tty: true,
    env: [`TERM=${process.env['TERM'] ?? 'xterm'}`],
  });
}
