/**
 * Commands in a running guest (`jaula exec`, `enter`), kept apart from the one-shot run
 * (core/run.ts), so that an exec loads no storage, network or spec code.
 */
import { spawn } from 'node:child_process';
import { JaulaError } from '../common/errors.js';
import { paths } from '../os/paths.js';
import { testWeakeningRequested } from '../runtime/testweaken.js';
import { requireRunning } from './running.js';
import { run } from '../os/spawn.js';
import { trace } from '../os/trace.js';

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

/** The argv of `runtime exec` that runs cmd in the running guest (a pty inside it with opts.tty). */
export function execArgv(
  name: string,
  cmd: string[],
  opts: ExecOptions & { consoleSocket?: string } = {},
): string[] {
  if (cmd.length === 0)
    throw new JaulaError('usage', `Give the command to run: jaula exec ${name} -- CMD [ARGS...]`);
  const { rt } = requireRunning(name);
  const args = ['exec', ...(opts.tty ? ['--tty'] : []), '--cwd', opts.cwd ?? '/'];
  if (opts.tty && opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
  for (const e of opts.env ?? []) args.push('--env', e);
  if (opts.user) args.push('--user', opts.user);
  return rt.argv(...args, name, ...cmd);
}

/** Run a command inside a running guest (its namespaces, cgroup and limits); returns its exit code. */
export async function execInGuest(name: string, cmd: string[], opts: ExecOptions = {}): Promise<number> {
  const argv = execArgv(name, cmd, opts);
  trace('exec: guest found, runtime exec');
  // Without --tty the command gets pipes, never the caller's terminal.
  const pipes =
    !opts.tty &&
    [process.stdin, process.stdout, process.stderr].some((s) => s.isTTY) &&
    !testWeakeningRequested(process.env, paths().root); // the escape suite's weakened guest only
  const code = await waitChild(argv, { pipes });
  trace('exec: runtime ended');
  return code;
}

export interface CaptureOptions extends ExecOptions {
  input?: string;
  timeoutMs?: number;
}

/** Run a command in a running guest to its end, with its output collected. */
export async function execCapture(
  name: string,
  cmd: string[],
  opts: CaptureOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = execArgv(name, cmd, { ...opts, tty: false });
  const r = await run(argv, {
    input: opts.input ?? '',
    timeoutMs: opts.timeoutMs ?? 300_000,
  });
  return {
    code: r.signal ? 128 + (r.signal === 'SIGKILL' ? 9 : 15) : r.code,
    stdout: r.stdout,
    stderr: r.stderr,
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
