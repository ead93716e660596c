/**
 * The record of each move, on both sides (etc/jaula/moves/ID.json, written atomically and
 * durably at each change of phase): what the source and the target know of a move, so that a
 * move interrupted at any point (a network drop, either jaulad killed) is resolved by the next
 * jaulad start or the next look, and so that the next `jaula` command on that host says what
 * happened (`told` false until a command printed it).
 *
 * Source phases: copying (the source owns the guest; the target holds at most a hidden copy) ->
 * handover (the source stopped the guest and asked the target to take it: the outcome is the
 * target's to say) -> done (the target has it; the source's copy is deleted) | back (the move
 * failed; the guest is the source's again, started again if it ran).
 * Target phases: receiving (a hidden, half-made guest) -> placed (the guest is this host's) |
 * aborted (nothing of it is left here). docs/adr/0008-moving-guests.md has the failure table.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { mkdirp, readFileOr, writeFileAtomic } from '../../os/fs.js';
import { paths } from '../../os/paths.js';

export type MovePhase = 'copying' | 'handover' | 'done' | 'back' | 'receiving' | 'placed' | 'aborted';

export interface MoveRecord {
  id: string;
  role: 'source' | 'target';
  guest: string;
  /** The source: the remote's name; the target: the source host's name as it gave it. */
  peer: string;
  /** replica: a round of an HA guest's replication (core/ha), not a move: never listed. */
  mode: 'cold' | 'sync' | 'live' | 'replica';
  /** The guest ran when the move began (the target starts it). */
  running: boolean;
  phase: MovePhase;
  started: string;
  updated: string;
  /** What happened, in a sentence (for the notice). */
  message?: string;
  /** The guest's context on the target (when it was remapped). */
  context?: number;
  /** A `jaula` command printed the outcome. */
  told?: boolean;
  /** The target: the layers it lacked, by digest, and the name each gets here. */
  layers?: Record<string, string>;
  /** The target: its start was tried (reconcile starts a placed guest that ran only once). */
  startTried?: boolean;
  /** The target, in a fleet: the guest's owner host there, which hands it over at the commit. */
  fleetFrom?: string;
  /** A replica round: the replica is made afresh (its base round was not the one here). */
  replicaFull?: boolean;
}

export const ID_PATTERN = /^[a-z0-9]{8,64}$/;

/** The moves this process drives now (a reconcile or a look leaves them alone). */
export const activeMoves = new Set<string>();

export const movesDir = (): string => join(paths().etc, 'moves');
const recordFile = (id: string): string => join(movesDir(), `${id}.json`);
/** Present while some move's outcome is not yet told (a stat per command, no read). */
export const unseenFile = (): string => join(movesDir(), 'unseen');

export function checkMoveId(id: string): string {
  if (!ID_PATTERN.test(id)) throw new JaulaError('invalid', `Bad move ID ${JSON.stringify(id.slice(0, 70))}`);
  return id;
}

export function readMove(id: string): MoveRecord | undefined {
  const text = readFileOr(recordFile(checkMoveId(id)), undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as MoveRecord;
  } catch {
    return undefined;
  }
}

export function writeMove(r: MoveRecord): MoveRecord {
  mkdirp(movesDir(), 0o700);
  r.updated = new Date().toISOString();
  writeFileAtomic(recordFile(r.id), JSON.stringify(r, null, 2) + '\n', 0o600);
  if (!r.told && ['done', 'back', 'placed', 'aborted'].includes(r.phase))
    writeFileAtomic(unseenFile(), '', 0o600, { durable: false });
  return r;
}

export function setPhase(r: MoveRecord, phase: MovePhase, message?: string): MoveRecord {
  r.phase = phase;
  if (message !== undefined) r.message = message;
  r.told = false;
  return writeMove(r);
}

/** Every move's record (with `replicas`, only HA replica rounds'). */
export function listMoveRecords(o: { replicas?: boolean } = {}): MoveRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(movesDir());
  } catch {
    return [];
  }
  const out: MoveRecord[] = [];
  for (const n of names.filter((x) => x.endsWith('.json')).sort()) {
    const r = readMove(n.slice(0, -5));
    if (r && (r.mode === 'replica') === (o.replicas === true)) out.push(r);
  }
  return out.sort((a, b) => a.started.localeCompare(b.started));
}

/** The outcomes no command has printed yet, marked as told now. */
export function takeUnseen(): MoveRecord[] {
  const out: MoveRecord[] = [];
  for (const r of listMoveRecords())
    if (!r.told && ['done', 'back', 'placed', 'aborted'].includes(r.phase)) {
      out.push({ ...r });
      r.told = true;
      writeMove(r);
    }
  fs.rmSync(unseenFile(), { force: true });
  return out;
}

/** One line of what happened to a move. */
export function describeMove(r: MoveRecord): string {
  const what = `move ${r.id} of "${r.guest}"`;
  const msg = r.message ? `: ${r.message}` : '';
  switch (r.phase) {
    case 'done':
      return `${what} to "${r.peer}" is done${msg}`;
    case 'back':
      return `${what} to "${r.peer}" failed; the guest stays here${msg}`;
    case 'placed':
      return `${what} from "${r.peer}" arrived: the guest is this host's${msg}`;
    case 'aborted':
      return `${what} from "${r.peer}" was abandoned; nothing of it stays here${msg}`;
    case 'handover':
      return `${what} to "${r.peer}" is in doubt: the guest waits, stopped, until "${r.peer}" says whether it took it${msg}`;
    default:
      return `${what} ${r.role === 'source' ? `to "${r.peer}"` : `from "${r.peer}"`} is under way (${r.phase})${msg}`;
  }
}
