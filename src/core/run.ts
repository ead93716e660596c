import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { mkdirp, removeTree, tmpSuffix } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { bootId, readProcStat } from '../os/proc.js';
import { trace } from '../os/trace.js';
import { networkDown } from '../network/apply.js';
import { selectRuntime, type Runtime } from '../runtime/driver.js';
import { GUEST_INIT_PATH } from '../runtime/spec.js';
import { guestIdRange } from '../runtime/idmap.js';
import type { Io } from '../runtime/session.js';
import { initPidFile } from '../runtime/supervisor.js';
import { removeUserns } from '../runtime/userns.js';
import { guestBarriers } from '../storage/barrier.js';
import type { StorageDriver } from '../storage/driver.js';
import { storageDriver } from '../storage/index.js';
import { unmountBinds } from './binds.js';
import type { GuestConfig } from '../guest/config.js';
import { guestLog } from '../guest/log.js';
import { limitSpecInput } from './limits.js';
import { settleLocked } from './lifecycle.js';
import { withGuestLock } from '../guest/locks.js';
import { prepareGuest, writeBundle } from './prepare.js';
import { requireGuestFiles } from './running.js';
import { Reverter } from './reverter.js';
import { initAlive, readState, writeState, type GuestState } from '../guest/state.js';
import { loadConfig, loadFstab } from '../guest/store.js';

/** What a one-shot run made, for the run and its cleanup. */
interface Prepared {
  cfg: GuestConfig;
  rt: Runtime;
  storage: StorageDriver;
  st: GuestState;
}

/**
 * One-shot run (like lxc-execute): start the stopped guest with CMD as the only program under
 * jaula-init, stdio connected as `io` says (this process's own by default), and stop it when CMD
 * ends. Returns CMD's exit code.
 */
export async function runOnce(name: string, cmd: string[], io: Io = 'inherit'): Promise<number> {
  if (cmd.length === 0)
    throw new JaulaError('usage', `Give the command to run: jaula run ${name} -- CMD [ARGS...]`);
  const runDir = paths().guestRun(name);
  const instance = tmpSuffix();
  trace('run: begin');
  const { cfg, rt, storage, st } = await withGuestLock(name, () => prepareRun(name, cmd, instance));
  const pidFile = initPidFile(runDir);
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
    code = await rt.run(name, join(runDir, 'bundle'), pidFile, io);
    trace('run: runtime ended');
  } finally {
    clearInterval(watcher);
    await withGuestLock(name, async () => {
      await rt.delete(name).catch(() => {});
      unmountBinds(name);
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

/**
 * Everything a one-shot run of `cmd` needs, made (a failure leaves nothing behind), its bundle
 * and state written. The caller holds the guest lock.
 */
async function prepareRun(name: string, cmd: string[], instance: string): Promise<Prepared> {
  const runDir = paths().guestRun(name);
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
  const storage = await storageDriver(cfg.storage.driver);
  requireGuestFiles(cfg, storage);
  if (prev.status !== 'stopped') await rt.delete(name);
  const idmap = guestIdRange(cfg);
  guestBarriers(name, idmap?.hostId); // behind the barrier (storage/barrier.ts)
  mkdirp(join(runDir, 'bundle'), 0o700);
  for (const f of ['init.pid', 'exit']) removeTree(join(runDir, f));
  // A failure before the run leaves nothing behind (no mount, loop device or namespace).
  const rev = new Reverter();
  try {
    const { mounted, fstab, ...ns } = await prepareGuest(cfg, storage, idmap, rev, loadFstab(name));
    rt.prepareCgroups();
    writeBundle(runDir, {
      cfg,
      rootfs: mounted.root,
      cgroupsPath: rt.cgroupsPath(name),
      fstab,
      ...ns,
      ...(idmap ? { idmap } : {}),
      args: [GUEST_INIT_PATH, '--', ...cmd],
      terminal: false,
      ...limitSpecInput(cfg),
    });
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
}
