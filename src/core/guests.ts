import type { GuestSummary } from '../api/types.js';
import { formatInterfaceSpec } from '../guest/ifspec.js';
import type { GuestConfig } from '../guest/config.js';
import { initAlive, liveStatus, readState } from '../guest/state.js';
import { loadGuests, readGuest, type BrokenGuest } from '../guest/store.js';

/** One guest as listings show it: the API's shape (api/schemas.ts), one definition. */
export type { GuestSummary } from '../api/types.js';

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

/** A broken guest as listings show it: what could be read of it, and the error. */
export function summarizeBroken(b: BrokenGuest): GuestSummary {
  const st = readState(b.name);
  const s: GuestSummary = {
    name: b.name,
    context: b.partial.context ?? 0,
    status: 'broken',
    error: b.error.message,
    hostname: b.partial.hostname ?? '',
    initstyle: '',
    marks: b.partial.marks ?? [],
    depends: b.partial.depends ?? [],
    interfaces: [],
    storage: b.partial.driver ?? '',
    privileged: b.partial.privileged ?? false,
    profile: '',
  };
  // Its config may have been broken while it ran: it still runs, and says so.
  if (initAlive(st)) {
    if (st.pid) s.pid = st.pid;
    if (st.runtime) s.runtime = st.runtime;
    if (st.startedAt) s.startedAt = st.startedAt;
  }
  if (st.lastExit) s.lastExit = st.lastExit;
  return s;
}

export function listGuests(): GuestSummary[] {
  const { configs, broken } = loadGuests();
  return [...configs.map(summarize), ...broken.map(summarizeBroken)].sort((a, b) =>
    a.name.localeCompare(b.name),
  );
}

export function guestStatus(name: string): GuestSummary {
  const g = readGuest(name);
  return 'cfg' in g ? summarize(g.cfg) : summarizeBroken(g.broken);
}
