/**
 * Monitoring across guests from the host (the seed's spectator context): every process of
 * every guest (`jaula ps`, the seed's vps: ps.ts), per-guest counters and rates (`jaula top`,
 * vtop; `jaula stat`, vserver-stat: sample.ts) and their Prometheus exposition (`jaula metrics`:
 * prometheus.ts). This file finds the guests that run.
 *
 * Processes belong to a guest by cgroup membership: the guest's cgroup.procs, read once per
 * guest, never guessed from names. Everything is read straight from /proc and cgroupfs with
 * one read per file; no process is spawned.
 */
import * as fs from 'node:fs';
import { JaulaError } from '../../common/errors.js';
import { validateName } from '../../common/names.js';
import { cgroupVersion, openGuestCgroup, type GuestCgroup } from '../../cgroups/index.js';
import { paths } from '../../os/paths.js';
import { readKernelFile, readKernelFiles } from '../../os/kernfs.js';
import { bootId, isSameProcess } from '../../os/proc.js';
import { listRunDirs, type GuestState } from '../../guest/state.js';

export interface RunningGuest {
  name: string;
  context: number;
  /** Host PID of the guest's init. */
  pid: number;
  /** Its start time (clock ticks since boot): with the PID it names the init for sure. */
  pidStart?: number;
  startedAt?: string;
  cgroup: GuestCgroup;
}

/** Guests whose state says they run, on this boot (the named ones must exist and say so). */
function claimedRunning(names: readonly string[]): { name: string; st: GuestState }[] {
  const boot = bootId();
  const wanted = names.length ? [...new Set(names)] : listRunDirs().sort();
  for (const name of names) {
    validateName(name);
    if (!fs.existsSync(paths().guestConfigFile(name)))
      throw new JaulaError('not_found', `There is no guest "${name}" (see "jaula list")`);
  }
  const files = readKernelFiles(wanted.map((n) => `${paths().guestsRun}/${n}/state.json`));
  const out: { name: string; st: GuestState }[] = [];
  wanted.forEach((name, i) => {
    let st: GuestState | undefined;
    try {
      st = JSON.parse(files.text(i) ?? 'null') as GuestState | undefined;
    } catch {
      st = undefined;
    }
    if (st?.status === 'running' && st.pid !== undefined && (st.bootId === undefined || st.bootId === boot))
      out.push({ name, st });
    else if (names.length) throw notRunning(name);
  });
  return out;
}

export function notRunning(name: string): JaulaError {
  return new JaulaError('state', `Guest "${name}" is not running (start it with "jaula start ${name}")`);
}

function toRunning(name: string, st: GuestState, version: 1 | 2): RunningGuest | undefined {
  const pid = st.pid as number;
  const cgroup = openGuestCgroup(pid, st.cgroupsPath, version);
  if (!cgroup) return undefined;
  // A state written before it kept the context: take it from the config (as the builder does,
  // without loading the TOML parser on this hot path).
  const context =
    st.context ??
    Number(/^context\s*=\s*(\d+)/m.exec(readKernelFile(paths().guestConfigFile(name), 'utf8') ?? '')?.[1]);
  if (!Number.isInteger(context)) return undefined;
  const g: RunningGuest = { name, context, pid, cgroup };
  if (st.pidStart !== undefined) g.pidStart = st.pidStart;
  if (st.startedAt) g.startedAt = st.startedAt;
  return g;
}

/**
 * The running guests of this instance (all, or those named: each must exist and run), from
 * their state files and /proc: no config is parsed unless a state predates the context field.
 * `verify: false` leaves checking that the init is still the same process to the caller.
 */
export function runningGuests(
  names: readonly string[] = [],
  opts: { verify?: boolean } = {},
): RunningGuest[] {
  const version = cgroupVersion();
  const out: RunningGuest[] = [];
  for (const { name, st } of claimedRunning(names)) {
    if (opts.verify !== false && !isSameProcess(st.pid, st.pidStart)) {
      if (names.length) throw notRunning(name);
      continue;
    }
    const g = toRunning(name, st, version);
    if (g) out.push(g);
    else if (names.length) throw notRunning(name);
  }
  return out;
}
