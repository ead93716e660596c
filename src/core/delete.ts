import { JaulaError } from '../common/errors.js';
import { removeTree } from '../os/fs.js';
import { mountsBelow } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import { storageDriver } from '../storage/index.js';
import { settleLocked, stopGuest } from './lifecycle.js';
import { withGuestLock } from './locks.js';
import { guestLog, guestLogFile } from './log.js';
import { initAlive, readState } from './state.js';
import { loadConfig } from './store.js';

export interface DeleteOptions {
  force?: boolean;
}

/** Delete a guest: config, data, runtime state and log. A running guest needs --force. */
export async function deleteGuest(name: string, opts: DeleteOptions = {}): Promise<void> {
  const cfg = loadConfig(name);
  if (initAlive(readState(name))) {
    if (!opts.force)
      throw new JaulaError(
        'state',
        `Cannot delete guest "${name}": it is running (stop it first, or use --force)`,
      );
    await stopGuest(name, { kill: true });
  }
  await withGuestLock(name, async () => {
    await settleLocked(cfg);
    if (initAlive(readState(name)))
      throw new JaulaError('state', `Cannot delete guest "${name}": it was started again meanwhile`);
    const storage = await storageDriver(cfg.storage.driver);
    await storage.unmount(cfg);
    const left = mountsBelow(paths().guestData(name));
    if (left.length && !opts.force)
      throw new JaulaError(
        'state',
        `Cannot delete guest "${name}": something is still mounted in its tree (${left.join(', ')}); unmount it or use --force`,
      );
    await storage.destroy(name);
    removeTree(paths().guestConf(name));
    removeTree(paths().guestRun(name));
    guestLog(name, 'deleted');
    removeTree(guestLogFile(name));
  });
}
