/**
 * The fence watcher: a small process, apart from jaulad, that stops this host's HA guests when
 * no lease renewal has been answered for nearly the lease's TTL, whatever became of jaulad
 * (killed, hung, stopped for an upgrade). jaulad's agent fences the same way while it runs
 * (fleet/agent.ts); this one covers its absence: once the lease may have expired, the fleet's
 * leader may start those guests elsewhere (failover.ts), so they must not run here any more.
 * Only HA guests: the fleet starts no other guest anywhere but on its host.
 *
 * jaulad writes the heartbeat (the wall-clock time each answered renewal was sent) and starts
 * the watcher when none runs (HaLoop); the watcher exits after fencing, when another watcher
 * has taken its place, or when the host leaves the fleet.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { fleetFile } from '../../fleet/config.js';
import { guestLog } from '../../guest/log.js';
import { initAlive, readState } from '../../guest/state.js';
import { loadAllConfigs } from '../../guest/store.js';
import { readFileOr, writeFileAtomic } from '../../os/fs.js';
import { paths, projectDir } from '../../os/paths.js';
import { isSameProcess } from '../../os/proc.js';
import { signalInit } from '../../runtime/signals.js';
import { freezerOf } from '../migrate/freeze.js';
import { haStateFile } from './replicate.js';

const heartbeatFile = (): string => join(paths().run, 'fleet-heartbeat');
const watcherFile = (): string => join(paths().run, 'fleet-watcher.pid');

/** The host's monotonic clock in ms (CLOCK_MONOTONIC: the same for every process, never stepped). */
const monoMs = (): number => Number(process.hrtime.bigint() / 1_000_000n);

/** jaulad: a renewal sent `agoMs` ago was answered. */
export function heartbeat(agoMs: number): void {
  writeFileAtomic(heartbeatFile(), `${Math.round(monoMs() - agoMs)}\n`, 0o600, { durable: false });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** jaulad: start a watcher unless one runs. */
export function ensureWatcher(ttlMs: number): void {
  const pid = Number(readFileOr(watcherFile(), '0').trim());
  if (pid > 0 && alive(pid) && readFileOr(`/proc/${pid}/cmdline`, '').includes('--fence-watch')) return;
  const child = spawn(
    process.execPath,
    [join(projectDir, 'bin/jaulad.cjs'), '--fence-watch', String(ttlMs)],
    {
      detached: true,
      stdio: 'ignore',
    },
  );
  child.unref();
  if (child.pid) writeFileAtomic(watcherFile(), `${child.pid}\n`, 0o600, { durable: false });
}

/** The guests the fleet may start elsewhere: HA ones, and any replicated from here (its HA state). */
const haGuests = (): string[] =>
  loadAllConfigs()
    .filter((c) => c.ha || fs.existsSync(haStateFile(c.name)))
    .map((c) => c.name);

/**
 * Kill every running HA guest here: SIGKILL to its init (its whole PID namespace dies), with
 * no lock (a hung jaulad may hold it) and again until none runs; its supervisor cleans up.
 */
async function fenceHaGuests(names: string[], why: string): Promise<void> {
  for (const n of names.filter((x) => initAlive(readState(x))))
    guestLog(n, `fenced: ${why}; killed, as the fleet may start it on another host`);
  for (let i = 0; i < 500; i++) {
    const alive = names
      .map((n) => [n, readState(n)] as const)
      .filter(([, st]) => isSameProcess(st.pid, st.pidStart));
    if (!alive.length) return;
    for (const [n, st] of alive) {
      signalInit(st.pid as number, 'SIGKILL');
      // (frozen, by a round or a snapshot its killed jaulad did not end: it dies once thawed)
      try {
        freezerOf(n, st).thaw();
      } catch {
        /* no freezer left: gone */
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The watcher's loop (jaulad --fence-watch TTL_MS): every 100 ms, the heartbeat's age; the
 * HA guests read every 2 s (it exits when there are none: jaulad starts another when needed).
 */
export async function fenceWatch(ttlMs: number): Promise<number> {
  const margin = Math.min(1000, ttlMs / 4);
  let names = haGuests();
  let read = monoMs();
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    if (!fs.existsSync(fleetFile())) return 0;
    if (Number(readFileOr(watcherFile(), '0').trim()) !== process.pid) return 0;
    if (monoMs() - read > 2000) {
      names = haGuests();
      read = monoMs();
      if (!names.length) break;
    }
    const age = monoMs() - Number(readFileOr(heartbeatFile(), '0').trim());
    if (age <= ttlMs - margin) continue;
    await fenceHaGuests(names, `no renewal of the host's lease answered for ${age} ms`);
    break;
  }
  if (Number(readFileOr(watcherFile(), '0').trim()) === process.pid)
    fs.rmSync(watcherFile(), { force: true });
  return 0;
}
