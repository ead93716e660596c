import * as fs from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { mkdirp, removeTree, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { initBin, paths } from '../os/paths.js';
import { bootId, nofileHardLimit, readProcStat } from '../os/proc.js';
import { trace } from '../os/trace.js';
import { networkDown } from '../network/apply.js';
import { buildSpec, GUEST_INIT_PATH } from '../runtime/spec.js';
import { testWeakening, warnWeakened } from '../runtime/testweaken.js';
import { runtimeDelete, selectRuntime } from '../runtime/oci.js';
import { guestIdRange } from '../runtime/idmap.js';
import { removeUserns } from '../runtime/userns.js';
import { guestBarriers } from '../storage/barrier.js';
import { storageDriver } from '../storage/index.js';
import { waitChild } from './exec.js';
import { unmountBinds } from './binds.js';
import { guestLog } from '../guest/log.js';
import { limitSpecInput } from './limits.js';
import { prepareGuest, settleLocked } from './lifecycle.js';
import { withGuestLock } from '../guest/locks.js';
import { requireGuestFiles } from './running.js';
import { Reverter } from './reverter.js';
import { initAlive, readState, writeState, type GuestState } from '../guest/state.js';
import { loadConfig, loadFstab } from '../guest/store.js';

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
    const storage = await storageDriver(cfg.storage.driver);
    requireGuestFiles(cfg, storage);
    if (prev.status !== 'stopped') await runtimeDelete(rt, name);
    const idmap = guestIdRange(cfg);
    guestBarriers(name, idmap?.hostId); // behind the barrier (storage/barrier.ts)
    mkdirp(join(runDir, 'bundle'), 0o700);
    for (const f of ['init.pid', 'exit']) removeTree(join(runDir, f));
    // A failure before the run leaves nothing behind (no mount, loop device or namespace).
    const rev = new Reverter();
    try {
      const { mounted, fstab, ...ns } = await prepareGuest(cfg, storage, idmap, rev, loadFstab(name));
      rt.prepareCgroups();
      const weaken = testWeakening(process.env, paths().root);
      const spec = buildSpec({
        cfg,
        rootfs: mounted.root,
        cgroupsPath: rt.cgroupsPath(name),
        initBin,
        fstab,
        nofileHard: nofileHardLimit(),
        hostMemory: totalmem(),
        ...ns,
        ...(idmap ? { idmap } : {}),
        args: [GUEST_INIT_PATH, '--', ...cmd],
        terminal: false,
        ...limitSpecInput(cfg),
        ...(weaken ? { weaken } : {}),
      });
      if (weaken) warnWeakened(spec);
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
