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
import { messageOf } from '../../common/errors.js';
import { fleetFile } from '../../fleet/config.js';
import { guestLog } from '../../guest/log.js';
import { initAlive, readState } from '../../guest/state.js';
import { loadAllConfigs } from '../../guest/store.js';
import { readFileOr, writeFileAtomic } from '../../os/fs.js';
import { paths, projectDir } from '../../os/paths.js';

const heartbeatFile = (): string => join(paths().run, 'fleet-heartbeat');
const watcherFile = (): string => join(paths().run, 'fleet-watcher.pid');

/** jaulad: a renewal sent at `sentAt` (ms since the epoch) was answered. */
export function heartbeat(sentAt: number): void {
  writeFileAtomic(heartbeatFile(), `${Math.round(sentAt)}\n`, 0o600, { durable: false });
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

/** Stop every running HA guest here (kill): the lease may be gone. Their names. */
async function fenceHaGuests(why: string): Promise<string[]> {
  const { stopGuest } = await import('../lifecycle.js');
  const ha = loadAllConfigs().filter((c) => c.ha && initAlive(readState(c.name)));
  await Promise.all(
    ha.map(async (c) => {
      guestLog(c.name, `fenced: ${why}; killed, as the fleet may start it on another host`);
      await stopGuest(c.name, { kill: true }).catch((e: unknown) =>
        guestLog(c.name, `fencing failed: ${messageOf(e)}`),
      );
    }),
  );
  return ha.map((c) => c.name);
}

/** The watcher's loop (jaulad --fence-watch TTL_MS). */
export async function fenceWatch(ttlMs: number): Promise<number> {
  const margin = Math.min(1000, ttlMs / 4);
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    if (!fs.existsSync(fleetFile())) return 0;
    if (Number(readFileOr(watcherFile(), '0').trim()) !== process.pid) return 0;
    const last = Number(readFileOr(heartbeatFile(), '0').trim());
    if (Date.now() - last <= ttlMs - margin) continue;
    await fenceHaGuests(`no renewal of the host's lease answered for ${Date.now() - last} ms`);
    fs.rmSync(watcherFile(), { force: true });
    return 0;
  }
}
