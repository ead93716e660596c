/**
 * jaulad's snapshot timer: at start, expired snapshots are deleted (the ticks missed while jaulad
 * was down are not replayed: no snapshot is taken for them); then core's runSnapshotTick runs just
 * after every minute's start. The timer is unref'd (it keeps no process alive) and armed again
 * only when a tick has ended, so ticks never overlap; a tick that ran past a minute covers the
 * minutes it missed (core/snapshot-schedule.ts).
 */
import { messageOf } from '../common/errors.js';
import { runSnapshotTick, type TickContext, type TickReport } from '../core/snapshot-schedule.js';

const MINUTE = 60_000;
/** Past the minute's start, so that the clock's minute is the new one whatever the timer's slack. */
const AFTER_START = 200;

export interface SnapshotTimer {
  /** Stop arming ticks; resolves when a tick under way has finished its current guest. */
  stop(): Promise<void>;
}

function logReport(r: TickReport, log: (line: string) => void): void {
  for (const e of r.expired) log(`snapshot "${e.snapshot}" of ${e.guest} expired (at ${e.expires}): deleted`);
  for (const t of r.taken) log(`scheduled snapshot "${t.snapshot}" of ${t.guest} taken`);
  for (const f of r.failed) log(`snapshots of ${f.guest}: ${f.error}`);
}

export function startSnapshotTimer(log: (line: string) => void): SnapshotTimer {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let last = new Date();
  const run = async (ctx: TickContext, now: Date): Promise<void> => {
    try {
      logReport(await runSnapshotTick({ ...ctx, signal: abort.signal }, now), log);
    } catch (e) {
      log(`snapshot tick: ${messageOf(e)}`);
    }
  };
  const arm = (): void => {
    if (abort.signal.aborted) return;
    timer = setTimeout(tick, MINUTE - (Date.now() % MINUTE) + AFTER_START);
    timer.unref();
  };
  const tick = (): void => {
    const now = new Date();
    running = run({ since: last }, now).then(() => {
      last = now;
      arm();
    });
  };
  running = run({ expireOnly: true }, last).then(arm);
  return {
    async stop() {
      abort.abort();
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
