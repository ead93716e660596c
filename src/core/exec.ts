/**
 * Commands in a running guest (`jaula exec`, `enter`), kept apart from the one-shot run
 * (core/run.ts), so that an exec loads no storage, network or spec code.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { cgroupMounts } from '../cgroups/cgroup.js';
import { cgroupMode, ownCgroups } from '../cgroups/detect.js';
import { JaulaError, messageOf } from '../common/errors.js';
import { tmpSuffix } from '../os/fs.js';
import { isSameProcess } from '../os/proc.js';
import { execBin, helperBin, paths } from '../os/paths.js';
import { ALL_CAPS } from '../runtime/testweaken.js';
import { requireRunning } from './running.js';
import { run } from '../os/spawn.js';
import { trace } from '../os/trace.js';

const { EACCES, EAGAIN, EISDIR, ENOENT, ENOEXEC, ENOMEM, ENOTDIR, EPERM, ESRCH, ETXTBSY } = constants.errno;
/** errno numbers back to their names, for messages. */
const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(constants.errno).map(([k, v]) => [v, k]),
);

export interface ExecOptions {
  tty?: boolean;
  env?: string[];
  cwd?: string;
  user?: string;
}

/**
 * Run a child and wait; the exit code (128+signal when killed). With `pipes`, the child gets
 * pipes of its own and jaula copies the data: a guest's process never holds the caller's
 * terminal (it could read what the operator types next, or inject into it).
 */
export function waitChild(argv: string[], opts: { pipes?: boolean } = {}): Promise<number> {
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

/** A command about to run in a guest through jaula-exec (native/jaula-exec.c). */
export interface ExecLaunch {
  argv: string[];
  /** Where jaula-exec says whether the command runs ("ok") or why not. */
  statusFile: string;
  name: string;
  cmd: string[];
  cwd: string;
  path: string;
  /** The guest's pids cgroup directory, for the limit's values in an error. */
  pidsDir: string | undefined;
  /** Its init (pid and start time): a failure while it ends is the guest's stop, not the exec's. */
  init: [number, number];
}

/** The parts of the guest's OCI spec (its bundle's config.json) an exec takes over. */
interface BundleSpec {
  process?: { env?: string[]; noNewPrivileges?: boolean; capabilities?: { bounding?: string[] } };
  linux?: { seccomp?: { listenerPath?: string } };
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The capability set as jaula-exec takes it: a hexadecimal mask. */
function capMask(names: string[]): string {
  let m = 0n;
  for (const n of names) {
    const i = ALL_CAPS.indexOf(n);
    if (i >= 0) m |= 1n << BigInt(i);
  }
  return m.toString(16);
}

/** `base` with the VAR=VALUE entries of `extra` added, or replacing those of the same name. */
function mergeEnv(base: string[], extra: string[]): string[] {
  const key = (e: string): string => e.slice(0, Math.max(0, e.indexOf('=')));
  const keys = new Set(extra.map(key));
  return [...base.filter((e) => !keys.has(key(e))), ...extra];
}

/**
 * Per cgroup hierarchy the guest's init is in: its cgroup.procs, and this process's own to go
 * back to (jaula-exec leaves the guest's cgroups once the command runs). Where both are the
 * same cgroup, nothing moves.
 */
function cgroupMoves(initPid: number): { moves: [string, string][]; pidsDir: string | undefined } {
  const mounts = cgroupMounts();
  const mine = ownCgroups();
  const moves: [string, string][] = [];
  const seen = new Set<string>();
  let pidsDir: string | undefined;
  for (const [key, path] of ownCgroups(initPid)) {
    const mount = mounts.get(key);
    if (mount === undefined || seen.has(mount)) continue;
    seen.add(mount);
    if (key === 'pids' || (key === '' && cgroupMode() === 'v2')) pidsDir = join(mount, path);
    const own = mine.get(key);
    if (own === undefined || own === path) continue;
    moves.push([join(mount, path, 'cgroup.procs'), join(mount, own, 'cgroup.procs')]);
  }
  return { moves, pidsDir };
}

/**
 * How to run `cmd` in the running guest `name`: jaula-exec joins its init's cgroups and
 * namespaces, its seccomp filter and capabilities, and only then forks the command into the
 * guest's PID namespace (the runtime's own exec showed the guest a foreign process while it set
 * itself up: docs/adr/0004-inside-the-guest.md). With tty, a pty is made inside the guest and
 * its master sent to consoleSocket.
 */
export function execLaunch(
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
  const runDir = paths().guestRun(name);
  let spec: BundleSpec;
  try {
    spec = JSON.parse(readFileSync(join(runDir, 'bundle/config.json'), 'utf8')) as BundleSpec;
  } catch (e) {
    throw new JaulaError('runtime', `Cannot read the running spec of guest "${name}": ${messageOf(e)}`);
  }
  const env = mergeEnv(spec.process?.env ?? [], opts.env ?? []);
  const path = env.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
  const { moves, pidsDir } = cgroupMoves(pid);
  const statusFile = join(runDir, `exec-${tmpSuffix()}.status`);
  const cwd = opts.cwd ?? '/';
  const seccomp = spec.linux?.seccomp;
  const bounding = spec.process?.capabilities?.bounding;
  const argv = [
    execBin,
    '--pid',
    String(pid),
    '--pid-start',
    String(st.pidStart ?? 0),
    '--status',
    statusFile,
    ...moves.flatMap(([guest, own]) => ['--cgroup', guest, own]),
    // The filter the runtime gave the init, read back from it once per run (INSTANCE_FILES).
    ...(seccomp ? ['--seccomp', join(runDir, 'seccomp.bpf')] : []),
    ...(seccomp?.listenerPath ? ['--listener', seccomp.listenerPath] : []),
    ...(bounding ? ['--caps', capMask(bounding)] : []),
    ...(spec.process?.noNewPrivileges ? ['--no-new-privs'] : []),
    ...(opts.user ? ['--user', opts.user] : []),
    '--cwd',
    cwd,
    ...env.flatMap((e) => ['--env', e]),
    ...(opts.tty && opts.consoleSocket ? ['--tty', '--console-socket', opts.consoleSocket] : []),
    '--',
    ...cmd,
  ];
  return { argv, statusFile, name, cmd, cwd, path, pidsDir, init: [pid, st.pidStart ?? 0] };
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
export function execResult(l: ExecLaunch, code: number): number {
  let status = '';
  try {
    status = readFileSync(l.statusFile, 'utf8');
  } catch {
    /* jaula-exec did not get that far */
  }
  rmSync(l.statusFile, { force: true });
  if (status.startsWith('ok')) return code;
  const m = /^err (\w+) (\d+) ?(.*)$/m.exec(status);
  // A stop or kill of the guest meanwhile (its supervisor's socket gone, its init ended).
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
  const sock = join(paths().run, `console-${tmpSuffix()}.sock`);
  const l = execLaunch(name, cmd, { ...opts, tty: true, consoleSocket: sock });
  const size = (): string => `${process.stdout.rows || 24} ${process.stdout.columns || 80}`;
  const [rows, cols] = size().split(' ') as [string, string];
  const raw = process.stdin.isTTY === true;
  const child = spawn(helperBin, ['pty-exec', rows, cols, sock, '--', ...l.argv], {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
  });
  const ctl = child.stdio[3] as NodeJS.WritableStream;
  ctl.on('error', () => {});
  const resize = (): void => void ctl.write(`${size()}\n`);
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
    const code = await new Promise<number>((resolve, reject) => {
      child.on('error', (e) => reject(new JaulaError('runtime', `Could not run ${helperBin}: ${e.message}`)));
      child.on('close', (c, sig) => resolve(c ?? 128 + (sig ? (constants.signals[sig] ?? 1) : 1)));
    });
    return execResult(l, code);
  } finally {
    if (raw) process.stdin.setRawMode(false);
    process.off('SIGWINCH', resize);
    process.off('SIGINT', ignore);
    process.off('SIGTERM', ignore);
    rmSync(sock, { force: true });
  }
}

/** Run a command inside a running guest (its namespaces, cgroup and limits); returns its exit code. */
export async function execInGuest(name: string, cmd: string[], opts: ExecOptions = {}): Promise<number> {
  if (opts.tty) return execOnPty(name, cmd, opts);
  const l = execLaunch(name, cmd, opts);
  trace('exec: guest found, jaula-exec');
  // Without --tty the command gets pipes, never the caller's terminal.
  const pipes = !opts.tty && [process.stdin, process.stdout, process.stderr].some((s) => s.isTTY);
  const code = execResult(l, await waitChild(l.argv, { pipes }));
  trace('exec: jaula-exec ended');
  return code;
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
  const r = await run(l.argv, {
    input: opts.input ?? '',
    timeoutMs: opts.timeoutMs ?? 300_000,
    maxOutput: CAPTURE_MAX,
  });
  return {
    code: execResult(l, r.signal ? 128 + (r.signal === 'SIGKILL' ? 9 : 15) : r.code),
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
