/**
 * `jaula logs`: what a guest's console showed (run/jaula/guests/NAME/console.log, which the
 * supervisor writes from the start of every run and rotates once at 1 MiB to console.log.1)
 * and jaula's own events for it (var/log/jaula/NAME.log: starts, stops and why, hooks).
 * Reads are by byte offsets, so that a follower (-f, also through jaulad) asks only for what
 * is new since its last read.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { GuestLogs, GuestLogsRequest } from '../api/types.js';
import { paths } from '../os/paths.js';
import { guestLogFile } from '../guest/log.js';
import { loadConfig } from '../guest/store.js';

/** At most this much of each log in one answer (the console keeps 2 MiB at most). */
const MAX_READ = 4 << 20;

function size(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function readRange(file: string, from: number, to: number): Buffer {
  if (to <= from) return Buffer.alloc(0);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const buf = Buffer.allocUnsafe(Math.min(to - from, MAX_READ));
    const n = fs.readSync(fd, buf, 0, buf.length, Math.max(from, to - MAX_READ));
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** The end of `b` without a UTF-8 sequence cut short (it comes with the next read). */
function wholeChars(b: Buffer): Buffer {
  for (let back = 1; back <= Math.min(3, b.length); back++) {
    const c = b[b.length - back] as number;
    if ((c & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return len > back ? b.subarray(0, b.length - back) : b;
  }
  return b;
}

function lastLines(b: Buffer, lines: number | undefined): Buffer {
  if (lines === undefined) return b;
  let at = b.length;
  if (at && b[at - 1] === 0x0a) at--;
  for (let n = 0; n < lines && at > 0; n++) at = b.lastIndexOf(0x0a, at - 1);
  return lines === 0 ? Buffer.alloc(0) : b.subarray(at <= 0 ? 0 : at + 1);
}

/**
 * One log from `offset` (undefined: from its start); a log that became shorter than the offset
 * was rotated (`previous` holds what it had) or replaced.
 */
function readLog(
  file: string,
  previous: string | undefined,
  offset: number | undefined,
  lines: number | undefined,
): { text: string; offset: number } {
  const end = size(file);
  let data: Buffer;
  if (offset === undefined) {
    const before = previous ? readRange(previous, 0, size(previous)) : Buffer.alloc(0);
    data = lastLines(Buffer.concat([before, readRange(file, 0, end)]), lines);
  } else if (offset <= end) data = readRange(file, offset, end);
  else {
    const rest =
      previous && size(previous) >= offset ? readRange(previous, offset, size(previous)) : Buffer.alloc(0);
    data = Buffer.concat([rest, readRange(file, 0, end)]);
  }
  const whole = wholeChars(data);
  return { text: whole.toString('utf8'), offset: end - (data.length - whole.length) };
}

export function guestLogs(r: GuestLogsRequest): GuestLogs {
  loadConfig(r.name); // (the guest must exist)
  const run = paths().guestRun(r.name);
  const events = readLog(guestLogFile(r.name), undefined, r.eventsOffset, r.lines);
  const con = readLog(join(run, 'console.log'), join(run, 'console.log.1'), r.consoleOffset, r.lines);
  return {
    name: r.name,
    events: events.text,
    eventsOffset: events.offset,
    console: con.text,
    consoleOffset: con.offset,
  };
}
