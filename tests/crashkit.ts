/**
 * Kill campaigns for the crash tests. An operation is killed once per round, at a moment aimed
 * at one of its phases: the phases are its JAULA_TRACE marks (before the first, then after each),
 * timed in that same round by one uninterrupted run of the operation (so the aim follows the
 * machine's load and the round's own work), or the process is held at one of the marks
 * (JAULA_TRACE_STOP) and killed there. The phase a kill really interrupted is read from
 * what the killed process had printed by then (all of it is in once it is dead), and every
 * campaign must land its kills in a number of distinct phases.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { TraceMark } from './helpers.js';

/** One uninterrupted run: each mark's time after the operation was asked for, and its end. */
export interface Timeline {
  marks: { label: string; ms: number }[];
  endMs: number;
}

export const BEFORE = 'before its first step';

/** The marks of an operation among a process's traces (those from index `from`, with a prefix). */
export function marksOf(traces: TraceMark[], from: number, prefixes: string[]): TraceMark[] {
  return traces.slice(from).filter((m) => prefixes.some((p) => m.label.startsWith(p)));
}

/** The timeline of a run asked for at `t0` and seen ending at `t1` (performance.now()). */
export function timelineOf(marks: TraceMark[], t0: number, t1: number): Timeline {
  return { marks: marks.map((m) => ({ label: m.label, ms: m.at - t0 })), endMs: t1 - t0 };
}

/** The moment (ms after asking) in the middle of phase `i` of `tl`, cycling through them. */
export function aimAt(tl: Timeline, i: number): { ms: number; phase: string } {
  const n = tl.marks.length + 1;
  const k = i % n;
  const last = tl.marks.at(-1)?.ms ?? 0;
  const bounds = [0, ...tl.marks.map((m) => m.ms), Math.max(tl.endMs, last + 2)];
  return {
    ms: ((bounds[k] as number) + (bounds[k + 1] as number)) / 2,
    phase: k === 0 ? BEFORE : `after ${tl.marks[k - 1]?.label}`,
  };
}

/** The phase a kill interrupted: after the last mark the killed process printed. */
export function phaseReached(marks: { label: string }[]): string {
  const last = marks.at(-1);
  return last ? `after ${last.label}` : BEFORE;
}

/** The kills of one operation: where each was aimed, where it landed, and what came of it. */
export class Campaign {
  readonly rounds: { aimed: string; landed: string; outcome: string }[] = [];
  constructor(readonly op: string) {}

  add(aimed: string, landed: string, outcome: string): void {
    this.rounds.push({ aimed, landed, outcome });
  }

  phases(): string[] {
    return [...new Set(this.rounds.map((r) => r.landed))];
  }

  summary(): string {
    const by = new Map<string, string[]>();
    for (const r of this.rounds) by.set(r.landed, [...(by.get(r.landed) ?? []), r.outcome]);
    return `${this.op}: ${[...by].map(([p, o]) => `${p} x${o.length} (${o.join(', ')})`).join('; ')}`;
  }

  /** The kills landed in at least `k` distinct phases. */
  assertSpread(k: number): void {
    assert.ok(
      this.phases().length >= k,
      `${this.op}: the kills landed in ${this.phases().length} distinct phases, at least ${k} wanted: ${this.summary()}`,
    );
  }
}

/** Whether round `i` kills at a timed moment (and so calibrates first); the others hold the process at a mark. */
export const timedRound = (i: number): boolean => i % 3 === 0;

/**
 * How round `i` of `rounds` kills: rounds 0, 3, ... at a moment aimed by that round's
 * calibration (anywhere in a phase, e.g. in the middle of unpacking), the others with the
 * process held at one of the marks (JAULA_TRACE_STOP: it stops itself there), spread over all of
 * them, so that the kills cover the operation's phases whatever the machine's load does to the
 * timing.
 */
export function plan(
  tl: Timeline,
  i: number,
  rounds: number,
): { ms: number; stopAt?: string; aimed: string } {
  if (timedRound(i) || tl.marks.length === 0) {
    const a = aimAt(tl, i / 3);
    return { ms: a.ms, aimed: a.phase };
  }
  const held = Array.from({ length: rounds }, (_, k) => k).filter((k) => !timedRound(k));
  const j = held.indexOf(i);
  const label =
    tl.marks[Math.min(tl.marks.length - 1, Math.floor((j * tl.marks.length) / held.length))]?.label;
  return { ms: 0, stopAt: label as string, aimed: `held after ${label}` };
}

/** Wait until process `pid` is stopped (SIGSTOP: state T), at most `ms`; false if it never was. */
export async function waitStopped(pid: number, ms = 30_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    let state = '';
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      return false;
    }
    if (state === 'T') return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
}
