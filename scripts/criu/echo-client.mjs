// A TCP client for the live-migration prototypes: one connection to an echo service, a numbered
// line every INTERVAL ms, each echo checked. It shows that a connection survives a checkpoint and
// restore (the same socket keeps getting its own lines back, in order) and measures the downtime
// as a client sees it: the largest gap between two echoes.
//
//   node echo-client.mjs HOST PORT STATUSFILE [INTERVAL_MS]
//
// It writes "connected PORT" / "echoes N gap MAX-MS gaps MS,MS,..." to STATUSFILE as it goes
// (the scripts poll it),
// runs until SIGTERM, then prints one line of JSON (every gap over 100 ms among them) and exits 0
// if no line was lost, reordered or corrupted and the connection never closed; 1 otherwise.
import net from 'node:net';
import { writeFileSync } from 'node:fs';

const [host, port, statusFile, intervalArg] = process.argv.slice(2);
if (!host || !port || !statusFile) {
  console.error('usage: node echo-client.mjs HOST PORT STATUSFILE [INTERVAL_MS]');
  process.exit(2);
}
const interval = Number(intervalArg ?? 10);
let sent = 0;
let echoed = 0;
let lastEcho = 0;
let maxGap = 0;
/** Every gap between two echoes longer than 100 ms: one per checkpoint and restore. */
const gaps = [];
let problem = '';
let buf = '';
const t0 = performance.now();

const sock = net.connect({ host, port: Number(port) }, () => {
  lastEcho = performance.now();
  writeFileSync(statusFile, `connected ${sock.localPort}\n`);
  setInterval(() => {
    if (!problem) sock.write(`${++sent}\n`);
  }, interval);
});
sock.setNoDelay(true);
sock.on('data', (d) => {
  buf += d.toString();
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    const want = String(echoed + 1);
    if (line !== want && !problem) problem = `expected echo ${want}, got ${JSON.stringify(line)}`;
    echoed++;
    const t = performance.now();
    maxGap = Math.max(maxGap, t - lastEcho);
    if (t - lastEcho > 100) gaps.push(Math.round(t - lastEcho));
    lastEcho = t;
  }
  writeFileSync(statusFile, `echoes ${echoed} gap ${Math.round(maxGap)} gaps ${gaps.join(',')}\n`);
});
sock.on('error', (e) => {
  problem ||= `connection error: ${e.message}`;
});
sock.on('close', () => {
  problem ||= 'the connection was closed';
});
process.on('SIGTERM', () => {
  const ok = !problem && echoed > 0 && echoed >= sent - Math.ceil(1000 / interval);
  console.log(
    JSON.stringify({
      ok,
      sent,
      echoed,
      maxGapMs: Math.round(maxGap),
      gapsMs: gaps,
      seconds: Math.round((performance.now() - t0) / 100) / 10,
      localPort: sock.localPort,
      ...(problem ? { problem } : {}),
    }),
  );
  process.exit(ok ? 0 : 1);
});
