import { formatInterfaceSpec } from '../network/ifspec.js';
import type { GuestConfig } from './config.js';
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
  /** True for a privileged guest (no user namespace: its root is the host's root). */
  privileged: boolean;
  profile: string;
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
    privileged: cfg.privileged,
    profile: cfg.profile,
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
