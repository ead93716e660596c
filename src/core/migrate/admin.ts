/**
 * The operations around moves that are not the move itself: adding a remote (its certificate
 * shown and pinned, its token checked with one request), listing moves, and jaulad's reconcile of
 * moves that an interruption left unfinished, on either side.
 */
import * as fs from 'node:fs';
import type { AddRemoteRequest, MoveInfo } from '../../api/types.js';
import { JaulaError, messageOf } from '../../common/errors.js';
import { validateName } from '../../common/names.js';
import { clearMoving } from '../../guest/moving.js';
import { initAlive, readState } from '../../guest/state.js';
import { guestExists } from '../../guest/store.js';
import { connectPeer, peerRequest } from './peer.js';
import {
  activeMoves,
  describeMove,
  listMoveRecords,
  setPhase,
  takeUnseen,
  writeMove,
  type MoveRecord,
} from './records.js';
import { listRemotes, parseRemoteUrl, storeRemote, type Remote } from './remotes.js';
import { freezerOf } from './freeze.js';

export async function addRemote(r: AddRemoteRequest): Promise<Remote> {
  validateName(r.name, 'remote');
  if (listRemotes().some((x) => x.name === r.name))
    throw new JaulaError(
      'exists',
      `A remote named "${r.name}" exists already (see "jaula remote list"; "jaula remote remove ${r.name}" first)`,
    );
  const u = parseRemoteUrl(r.url);
  const url = `${u.tls ? 'https' : 'http'}://${u.host.includes(':') ? `[${u.host}]` : u.host}:${u.port}`;
  let token: string;
  try {
    token = fs.readFileSync(r.tokenFile, 'utf8').trim();
  } catch (e) {
    throw new JaulaError('not_found', `Cannot read the token file "${r.tokenFile}": ${messageOf(e)}`);
  }
  if (token.length < 16)
    throw new JaulaError(
      'invalid',
      `The token in "${r.tokenFile}" is too short: give the file the remote's jaulad reads with --token-file`,
    );
  const { sock, fingerprint } = await connectPeer({ name: r.name, url, fingerprint: '' }, false);
  sock.destroy();
  const given = r.fingerprint?.replace(/^SHA256:/i, '').toUpperCase();
  if (u.tls && given !== undefined && `SHA256:${given}` !== fingerprint)
    throw new JaulaError(
      'denied',
      `The certificate of ${url} has the fingerprint ${fingerprint}, not the one given (SHA256:${given}): refused`,
    );
  if (u.tls && given === undefined && r.acceptCertificate !== true)
    throw new JaulaError(
      'invalid',
      `The certificate of ${url} has the fingerprint ${fingerprint}. Check it on that host ("openssl x509 -noout -fingerprint -sha256 -in CERT"), then add the remote again with --accept-certificate (or --fingerprint ${fingerprint})`,
      { details: { fingerprint } },
    );
  const peer = { name: r.name, url, fingerprint, token };
  await peerRequest(peer, 'GET', '/v1/info');
  return storeRemote({ name: r.name, url, fingerprint }, token);
}

const wire = (r: MoveRecord): MoveInfo => {
  const m: MoveInfo = {
    id: r.id,
    role: r.role,
    guest: r.guest,
    peer: r.peer,
    mode: r.mode === 'replica' ? 'sync' : r.mode, // (replica rounds are never listed)
    running: r.running,
    phase: r.phase,
    started: r.started,
    updated: r.updated,
    description: describeMove(r),
  };
  if (r.message !== undefined) m.message = r.message;
  if (r.context !== undefined) m.context = r.context;
  return m;
};

export async function listMoves(unseen: boolean): Promise<MoveInfo[]> {
  if (unseen) return takeUnseen().map(wire);
  await reconcileSourceMoves(
    listMoveRecords().filter((r) => r.phase === 'handover' && r.role === 'source' && !activeMoves.has(r.id)),
  );
  return listMoveRecords().map(wire);
}

/** A source move cut before its handover: the guest is given back (thawed, started again if it ran). */
async function giveBackCut(rec: MoveRecord): Promise<string> {
  const peer = listRemotes().find((x) => x.name === rec.peer);
  if (peer)
    await import('./peer.js')
      .then(({ peerOf }) =>
        peerRequest(peerOf(peer), 'DELETE', `/v1/peer/moves/${rec.id}`, {
          json: { why: 'the source jaulad stopped' },
        }),
      )
      .catch(() => {});
  if (!guestExists(rec.guest)) {
    setPhase(rec, 'back', 'the guest is no longer here');
    return `move ${rec.id}: "${rec.guest}" is gone`;
  }
  const st = readState(rec.guest);
  if (initAlive(st))
    try {
      freezerOf(rec.guest, st).thaw();
    } catch {
      /* not frozen, or no freezer */
    }
  clearMoving(rec.guest);
  let started = '';
  if (rec.running && !initAlive(readState(rec.guest))) {
    const { startGuest } = await import('../lifecycle.js');
    started = await startGuest(rec.guest).then(
      () => ', started again',
      (e: unknown) => `; starting it again failed: ${messageOf(e)}`,
    );
  }
  setPhase(rec, 'back', `the move was cut (jaulad stopped while copying)${started}`);
  return `move ${rec.id}: "${rec.guest}" given back${started}`;
}

/** Source moves in handover: asks the target what it did (done, back, or still in doubt). */
export async function reconcileSourceMoves(list: MoveRecord[]): Promise<string[]> {
  const out: string[] = [];
  const { finishDone, resolveHandover } = await import('./source.js');
  for (const rec of list) {
    const outcome = await resolveHandover(rec);
    if (outcome === 'done') {
      await finishDone(rec, `"${rec.peer}" had taken the guest (found after the handover's answer was lost)`);
      out.push(`move ${rec.id}: "${rec.guest}" is on "${rec.peer}"; the copy here removed`);
    } else if (outcome === 'back') {
      rec.phase = 'copying';
      writeMove(rec);
      out.push(await giveBackCut(rec));
    } else out.push(`move ${rec.id}: "${rec.guest}" still in doubt ("${rec.peer}" does not answer)`);
  }
  return out;
}

/** At jaulad's start: every move an interruption left unfinished, on either side. */
export async function reconcileMoves(): Promise<string[]> {
  const all = listMoveRecords();
  const out: string[] = [];
  for (const rec of all.filter((r) => r.role === 'source' && r.phase === 'copying'))
    out.push(await giveBackCut(rec));
  out.push(...(await (await import('./target.js')).reconcileTargetMoves(all)));
  out.push(...(await reconcileSourceMoves(all.filter((r) => r.role === 'source' && r.phase === 'handover'))));
  return out;
}
