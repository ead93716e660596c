/**
 * Programs started by posix_spawn (native/spawn.c) instead of Node's child_process, which forks:
 * a fork copies the page tables of jaulad (1.3-3 ms of its main thread per program, measured
 * under a bulk start), posix_spawn copies nothing. Their exits are reaped by one thread of the
 * addon and handed back here. Pipes are Node sockets on the parent's ends. posix_spawn's parent
 * waits until its child has exec'd (a fraction of a millisecond, more on a busy host): that wait
 * is on a thread of libuv's pool, not on the main thread.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { constants } from 'node:os';
import { native } from './native.js';

/** What a child's fd is: a pipe to it ('in'), from it ('out'), /dev/null, or an fd of ours. */
export type Slot = 'in' | 'out' | 'ignore' | number;

export interface Spawned {
  pid: number;
  /** The parent's end of each 'in' or 'out' slot. */
  stdio: (net.Socket | undefined)[];
  /** Its end: exit code (null when a signal ended it) and signal name. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Its exit no longer keeps this process's event loop alive (a detached supervisor). */
  unref(): void;
}

const waiting = new Map<number, (code: number, sig: number) => void>();
/** Exits seen before their spawn's promise settled (the reaper thread can be first). */
const early = new Map<number, [number, number]>();
let refs = 0;
let watching = false;
const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([k, v]) => [v, k as NodeJS.Signals]),
);

function ref(delta: 1 | -1): void {
  refs += delta;
  if (refs === 1 && delta === 1) native().exitsRef(true);
  if (refs === 0) native().exitsRef(false);
}

function envArray(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const k in env) {
    const v = env[k];
    if (v !== undefined) out.push(`${k}=${v}`);
  }
  return out;
}

/**
 * Start `file` (a path) with `args`; `slots[i]` is the child's fd i. Throws as Node's spawn's
 * 'error' would (code ENOENT: no such program).
 */
export async function spawnFast(
  file: string,
  args: readonly string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    slots: Slot[];
    detached?: boolean;
    /** The file executed, when not `file` (which is then only argv[0]): /proc/self/fd/N. */
    exe?: string;
  },
): Promise<Spawned> {
  const n = native();
  if (!watching) {
    n.onExit((pid, code, sig) => {
      const f = waiting.get(pid);
      if (f) {
        waiting.delete(pid);
        f(code, sig);
      } else early.set(pid, [code, sig]);
    });
    watching = true;
  }
  const mine: number[] = [];
  const theirs: number[] = [];
  const fds = opts.slots.map((s) => {
    if (s === 'ignore') return -1;
    if (typeof s === 'number') return s;
    const [r, w] = n.pipe();
    mine.push(s === 'in' ? w : r);
    theirs.push(s === 'in' ? r : w);
    return s === 'in' ? r : w;
  });
  let pid: number;
  try {
    pid = await n.spawn(
      [file, ...args],
      envArray(opts.env ?? process.env),
      fds,
      opts.detached ? 1 : 0,
      opts.cwd ?? null,
      opts.exe ?? null,
    );
  } catch (e) {
    for (const fd of [...mine, ...theirs]) fs.closeSync(fd);
    throw e;
  }
  for (const fd of theirs) fs.closeSync(fd);
  let k = 0;
  const stdio = opts.slots.map((s) => {
    if (s !== 'in' && s !== 'out') return undefined;
    const fd = mine[k++] as number;
    return new net.Socket({ fd, readable: s === 'out', writable: s === 'in' });
  });
  let counted = true;
  ref(1);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const done = (code: number, sig: number): void => {
      if (counted) ref(-1);
      counted = false;
      resolve({ code: code >= 0 ? code : null, signal: sig ? (signalNames.get(sig) ?? 'SIGKILL') : null });
    };
    const seen = early.get(pid);
    early.delete(pid);
    if (seen) done(...seen);
    else waiting.set(pid, done);
  });
  return {
    pid,
    stdio,
    exited,
    unref: () => {
      if (counted) ref(-1);
      counted = false;
    },
  };
}
