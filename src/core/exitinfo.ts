/** Why a guest's run ended, from its state and its supervisor's exit record. */
import { bootId } from '../os/proc.js';
import { initEndedBy } from '../runtime/signals.js';
import { readExitRecord, type ExitInfo, type ExitReason, type GuestState } from '../guest/state.js';

export function exitInfoFor(name: string, st: GuestState): ExitInfo {
  const at = new Date().toISOString();
  if (st.bootId !== undefined && st.bootId !== bootId()) return { reason: 'host-reboot', at };
  if (st.status === 'starting' && st.pid === undefined)
    return {
      reason: 'failed',
      at,
      message: 'its start was interrupted (the jaula process starting it ended); what it made was removed',
    };
  const rec = readExitRecord(name);
  if (!rec || rec.pid !== st.pid)
    return {
      reason: st.stopRequested ? 'stopped' : 'lost',
      at,
      message: 'the guest ended without its supervisor recording why',
    };
  const reason: ExitReason = st.stopRequested ? 'stopped' : initEndedBy(rec.signal);
  const info: ExitInfo = { reason, at: new Date(rec.time).toISOString() };
  if (rec.code !== undefined) info.code = rec.code;
  if (rec.signal !== undefined) info.signal = rec.signal;
  return info;
}
