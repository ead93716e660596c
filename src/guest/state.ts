import * as fs from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../common/errors.js';
import { mkdirp, readFileOr, writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { bootId, isSameProcess } from '../os/proc.js';
import type { RuntimeName } from './config.js';

export type GuestStatus = 'stopped' | 'starting' | 'running' | 'stopping';

/** Why a guest's last run ended. */
export type ExitReason =
  'stopped' | 'halt' | 'reboot' | 'exited' | 'killed' | 'failed' | 'lost' | 'host-reboot';

export interface ExitInfo {
  reason: ExitReason;
  code?: number;
  signal?: number;
  at: string;
  message?: string;
}

/** Runtime state of a guest, kept apart from its config, in run/jaula/guests/NAME/state.json. */
export interface GuestState {
  status: GuestStatus;
  /** A random ID per start: the exit of one run is never mistaken for another's. */
  instance?: string;
  pid?: number;
  pidStart?: number;
  shimPid?: number;
  shimStart?: number;
  bootId?: string;
  startedAt?: string;
  runtime?: RuntimeName;
  /** The context ID it runs with (listings of processes need no config parsing). */
  context?: number;
  cgroupsPath?: string;
  /** The guest's tree as the host writes it while it runs (for GuestFs users such as cp). */
  hostView?: string;
  /** hostView shows on-disk IDs shifted by this (GuestFs shift). */
  hostShift?: number;
  haltSignal?: number;
  stopRequested?: boolean;
  restarts?: number;
  lastExit?: ExitInfo;
}

export function stateFile(name: string): string {
  return join(paths().guestRun(name), 'state.json');
}

export function readState(name: string): GuestState {
  const text = readFileOr(stateFile(name), undefined);
  if (text === undefined) return { status: 'stopped' };
  try {
    return JSON.parse(text) as GuestState;
  } catch {
    return { status: 'stopped' };
  }
}

export function writeState(name: string, st: GuestState): void {
  mkdirp(paths().guestRun(name), 0o700);
  writeFileAtomic(stateFile(name), JSON.stringify(st, null, 1) + '\n', 0o600, { durable: false });
}

/** The exit record the supervisor writes when the guest's init ends. */
export interface ExitRecord {
  pid: number;
  code?: number;
  signal?: number;
  time: number;
}

export function readExitRecord(name: string): ExitRecord | undefined {
  const text = readFileOr(join(paths().guestRun(name), 'exit'), undefined);
  if (text === undefined) return undefined;
  const kv = new Map(
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('=', 2) as [string, string]),
  );
  const rec: ExitRecord = { pid: Number(kv.get('pid')), time: Number(kv.get('time') ?? Date.now()) };
  if (kv.has('code')) rec.code = Number(kv.get('code'));
  if (kv.has('signal')) rec.signal = Number(kv.get('signal'));
  return rec;
}

/**
 * What is true now, from the stored state and /proc: a guest is running only if its init is the
 * very process that was started (pid and start time), on this boot.
 */
export function liveStatus(st: GuestState): GuestStatus {
  if (st.status === 'stopped') return 'stopped';
  if (st.bootId !== undefined && st.bootId !== bootId()) return 'stopped';
  if (st.status === 'starting')
    return isSameProcess(st.shimPid, st.shimStart) || isSameProcess(st.pid, st.pidStart)
      ? 'starting'
      : 'stopped';
  if (isSameProcess(st.pid, st.pidStart)) return st.status;
  // The init ended; until its supervisor (now jaula's exit handler, same pid) has cleaned up and
  // recorded why, the guest is still stopping.
  return isSameProcess(st.shimPid, st.shimStart) ? 'stopping' : 'stopped';
}

/** Whether the guest's init process is alive (whatever the stored state says). */
export function initAlive(st: GuestState): boolean {
  if (st.status === 'stopped' || (st.bootId !== undefined && st.bootId !== bootId())) return false;
  return isSameProcess(st.pid, st.pidStart);
}

export function listRunDirs(): string[] {
  try {
    return fs.readdirSync(paths().guestsRun);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw e;
  }
}

/*
 * What survives a host reboot (var/lib, not run/): the boot jaula last saw, and for each guest
 * that runs the boot it was started in. A guest is "running at the last boot" from its start
 * until the administrator stops it (jaula stop, stop --all, delete) or it halts itself; a crash,
 * a kill or the host going down leave the mark. After a real reboot (a recorded boot_id that
 * differs from this one), jaulad starts the guests marked "default" that have such a mark from
 * an earlier boot: never a guest that was stopped on purpose (like Docker's unless-stopped and
 * Incus's last state).
 */
const bootIdRecord = (): string => join(paths().lib, 'boot_id');
const runningDir = (): string => join(paths().lib, 'running');

/** The boot ID jaula recorded last (at its first run on this host, then by jaulad), if any. */
export function recordedBootId(): string | undefined {
  return readFileOr(bootIdRecord(), '').trim() || undefined;
}

/** Record this boot's ID (first run: only if none is recorded yet). */
export function recordBootId(opts: { ifAbsent?: boolean } = {}): void {
  if (opts.ifAbsent && fs.existsSync(bootIdRecord())) return;
  mkdirp(paths().lib, 0o755);
  writeFileAtomic(bootIdRecord(), `${bootId()}\n`, 0o644);
}

/** The file of a guest's running mark (moved by jaula rename). */
export function runningMarkFile(name: string): string {
  return join(runningDir(), name);
}

/** Mark the guest as running in this boot (at a start). */
export function markRunning(name: string): void {
  mkdirp(runningDir(), 0o700);
  writeFileAtomic(join(runningDir(), name), `${bootId()}\n`, 0o600, { durable: false });
}

/** The guest was stopped on purpose (or deleted): a reboot must not start it. */
export function clearRunning(name: string): void {
  fs.rmSync(join(runningDir(), name), { force: true });
}

/** The guests marked as running, with the boot they were started in. */
export function runningMarks(): Map<string, string> {
  const marks = new Map<string, string>();
  let names: string[] = [];
  try {
    names = fs.readdirSync(runningDir());
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
  }
  for (const n of names) if (!n.startsWith('.')) marks.set(n, readFileOr(join(runningDir(), n), '').trim());
  return marks;
}
