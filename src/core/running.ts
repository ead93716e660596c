import { JaulaError } from '../common/errors.js';
import { selectRuntime, type Runtime } from '../runtime/oci.js';
import type { GuestConfig } from './config.js';
import { liveStatus, readState, type GuestState } from './state.js';
import { loadConfig } from './store.js';

/** The guest must be running; returns its state and runtime. */
export function requireRunning(name: string): { cfg: GuestConfig; st: GuestState; rt: Runtime } {
  const cfg = loadConfig(name);
  const st = readState(name);
  if (liveStatus(st) !== 'running')
    throw new JaulaError('state', `Guest "${name}" is not running (start it with "jaula start ${name}")`);
  return { cfg, st, rt: selectRuntime(st.runtime ?? cfg.runtime) };
}
