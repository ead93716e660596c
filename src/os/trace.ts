/** JAULA_TRACE=1 prints where time goes: milliseconds since the process started, per phase. */
import { readFileSync } from 'node:fs';

const on = !!process.env['JAULA_TRACE'];
/**
 * JAULA_TRACE_STOP=FILE (with JAULA_TRACE): the process stops itself (SIGSTOP) right after
 * printing the mark whose label FILE holds, so that a test (or a debugger) can act while it is
 * held at that phase; the crash tests kill it there. Read at each mark, only when set.
 */
const stopFile = on ? process.env['JAULA_TRACE_STOP'] : undefined;

export function trace(label: string): void {
  if (!on) return;
  process.stderr.write(`[jaula ${performance.now().toFixed(1)} ms] ${label}\n`);
  if (stopFile === undefined) return;
  let want = '';
  try {
    want = readFileSync(stopFile, 'utf8').trim();
  } catch {
    return;
  }
  if (want === label) process.kill(process.pid, 'SIGSTOP');
}
