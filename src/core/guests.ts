import { JaulaError } from '../common/errors.js';
import { formatInterfaceSpec } from '../network/ifspec.js';
import { removeTree } from '../os/fs.js';
import { mountsBelow } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import { storageDriver } from '../storage/index.js';
import type { GuestConfig } from './config.js';
import { stopGuest, withGuestLock } from './lifecycle.js';
import { guestLogFile, guestLog } from './log.js';
import { liveStatus, readState, type ExitInfo, type GuestStatus } from './state.js';
import { loadAllConfigs, loadConfig } from './store.js';

/** One guest as listings show it. */
export interface GuestSummary {
  name: string;
  context: number;
  status: GuestStatus;
  hostname: string;
  initstyle: string;
  marks: string[];
  depends: string[];
  interfaces: string[];
  storage: string;
  pid?: number;
  runtime?: string;
  startedAt?: string;
  lastExit?: ExitInfo;
}

export function summarize(cfg: GuestConfig): GuestSummary {
  const st = readState(cfg.name);
  const status = liveStatus(st);
  const s: GuestSummary = {
    name: cfg.name,
    context: cfg.context,
    status,
    hostname: cfg.hostname,
    initstyle: cfg.initstyle,
    marks: cfg.marks,
    depends: cfg.depends,
    interfaces: cfg.interfaces.map(formatInterfaceSpec),
    storage: cfg.storage.driver,
  };
  if (status !== 'stopped') {
    if (st.pid) s.pid = st.pid;
    if (st.runtime) s.runtime = st.runtime;
    if (st.startedAt) s.startedAt = st.startedAt;
  }
  if (st.lastExit) s.lastExit = st.lastExit;
  return s;
}

export function listGuests(): GuestSummary[] {
  return loadAllConfigs().map(summarize);
}

export function guestStatus(name: string): GuestSummary {
  return summarize(loadConfig(name));
}

export interface DeleteOptions {
  force?: boolean;
}

/** Delete a guest: config, data, runtime state and log. A running guest needs --force. */
export async function deleteGuest(name: string, opts: DeleteOptions = {}): Promise<void> {
  const cfg = loadConfig(name);
  if (liveStatus(readState(name)) !== 'stopped') {
    if (!opts.force)
      throw new JaulaError(
        'state',
        `Cannot delete guest "${name}": it is running (stop it first, or use --force)`,
      );
    await stopGuest(name, { kill: true });
  }
  await withGuestLock(name, async () => {
    if (liveStatus(readState(name)) !== 'stopped')
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
