/** JAULA_TRACE=1 prints where time goes: milliseconds since the process started, per phase. */
const on = !!process.env['JAULA_TRACE'];

export function trace(label: string): void {
  if (on) process.stderr.write(`[jaula ${performance.now().toFixed(1)} ms] ${label}\n`);
}
