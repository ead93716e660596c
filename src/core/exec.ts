import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { mkdirp, removeTree, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { initBin, paths } from '../os/paths.js';
import { bootId, nofileHardLimit, readProcStat } from '../os/proc.js';
import { buildSpec, GUEST_INIT_PATH } from '../runtime/spec.js';
import { runtimeDelete, selectRuntime } from '../runtime/oci.js';
import { storageDriver } from '../storage/index.js';
import { guestIdRange } from '../runtime/idmap.js';
import { testWeakeningRequested } from '../runtime/testweaken.js';
import { removeUserns } from '../runtime/userns.js';
import { guestLog } from './log.js';
import { limitSpecInput } from './limits.js';
import { Reverter } from './reverter.js';
import { trace } from '../os/trace.js';
import { withGuestLock } from './locks.js';
import { prepareGuest, settleLocked } from './lifecycle.js';
import { requireRunning } from './running.js';
import { initAlive, readState, writeState, type GuestState } from './state.js';
import { loadConfig, loadFstab } from './store.js';
import { networkDown } from '../network/apply.js';
import { run } from '../os/spawn.js';

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
  // Without --tty the command gets pipes, never the caller's terminal.
  const pipes =
    !opts.tty &&
    [process.stdin, process.stdout, process.stderr].some((s) => s.isTTY) &&
    !testWeakeningRequested(process.env, paths().root); // the escape suite's weakened guest only
  return waitChild(argv, { pipes });
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
  const storage = await storageDriver(cfg.storage.driver);
  const { GuestFs } = await import('../os/guestfs.js');
  const shell = GuestFs.with(
    st.hostView ?? storage.treePath(name),
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

/**
 * One-shot run (like lxc-execute): start the stopped guest with CMD as the only program under
 * jaula-init, stdio attached, and stop it when CMD ends. Returns CMD's exit code.
 */
export async function runOnce(
  name: string,
  cmd: string[],
  runChild: (argv: string[]) => Promise<number> = (argv) => waitChild(argv),
): Promise<number> {
  if (cmd.length === 0)
    throw new JaulaError('usage', `Give the command to run: jaula run ${name} -- CMD [ARGS...]`);
  const runDir = paths().guestRun(name);
  const instance = tmpSuffix();
  trace('run: begin');
  const prepared = await withGuestLock(name, async () => {
    trace('run: locked');
    const cfg = loadConfig(name);
    await settleLocked(cfg);
    const prev = readState(name);
    if (initAlive(prev))
      throw new JaulaError(
        'state',
        `Guest "${name}" is running: "jaula run" needs a stopped guest (use "jaula exec")`,
      );
    const rt = selectRuntime(cfg.runtime);
    trace('run: config loaded, runtime selected');
    if (prev.status !== 'stopped') await runtimeDelete(rt, name);
    mkdirp(join(runDir, 'bundle'), 0o700);
    for (const f of ['init.pid', 'exit']) removeTree(join(runDir, f));
    const storage = await storageDriver(cfg.storage.driver);
    const idmap = guestIdRange(cfg);
    // A failure before the run leaves nothing behind (no mount, loop device or namespace).
    const rev = new Reverter();
    try {
      const { mounted, ...ns } = await prepareGuest(cfg, storage, idmap, rev);
      const spec = buildSpec({
        cfg,
        rootfs: mounted.root,
        cgroupsPath: rt.cgroupsPath(name),
        initBin,
        fstab: loadFstab(name),
        nofileHard: nofileHardLimit(),
        hostMemory: totalmem(),
        ...ns,
        ...(idmap ? { idmap } : {}),
        args: [GUEST_INIT_PATH, '--', ...cmd],
        terminal: false,
        ...limitSpecInput(cfg),
      });
      writeFileAtomic(join(runDir, 'bundle/config.json'), JSON.stringify(spec), 0o600, { durable: false });
      const me = readProcStat(process.pid);
      const st: GuestState = {
        status: 'starting',
        instance,
        runtime: rt.name,
        bootId: bootId(),
        shimPid: process.pid,
        startedAt: new Date().toISOString(),
      };
      if (me) st.shimStart = me.starttime;
      writeState(name, st);
      trace('run: bundle and state written');
      rev.success();
      return { cfg, rt, storage, st };
    } catch (e) {
      return rev.fail(e);
    }
  });
  const { cfg, rt, storage, st } = prepared;
  const pidFile = join(runDir, 'init.pid');
  const watcher = setInterval(() => {
    try {
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      const ps = readProcStat(pid);
      if (pid && ps) {
        writeState(name, { ...st, status: 'running', pid, pidStart: ps.starttime });
        clearInterval(watcher);
      }
    } catch {
      /* not there yet */
    }
  }, 5);
  let code: number;
  try {
    trace('run: runtime run');
    code = await runChild(rt.argv('run', '--bundle', join(runDir, 'bundle'), '--pid-file', pidFile, name));
    trace('run: runtime ended');
  } finally {
    clearInterval(watcher);
    await withGuestLock(name, async () => {
      await runtimeDelete(rt, name).catch(() => {});
      await networkDown(cfg).catch(() => {});
      await removeUserns(name).catch(() => {});
      await storage.unmount(cfg).catch(() => {});
      writeState(name, {
        status: 'stopped',
        instance,
        lastExit: { reason: 'exited', at: new Date().toISOString() },
      });
    });
  }
  trace('run: cleaned up');
  guestLog(name, `one-shot run of "${cmd.join(' ')}" ended with status ${code}`);
  const st2 = readState(name);
  if (st2.lastExit) writeState(name, { ...st2, lastExit: { ...st2.lastExit, code } });
  return code;
}
