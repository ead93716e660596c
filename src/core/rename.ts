/**
 * `jaula rename OLD NEW` of a stopped guest: everything jaula keys by the guest's name moves
 * with it, each by one rename(2): its config directory (config, fstab, hooks), its files
 * (tree or layers, the storage pool's subvolume with its quota group, a quota image), its run
 * directory (state, console log), its lifecycle log, its running mark, hashify's index and the
 * reflink pool's tree; the name in its config, and in the depends of other guests. Its context, addresses,
 * MACs and host-side device names do not derive from its name and stay; so does its hostname.
 *
 * A journal (etc/jaula/renames/OLD, holding NEW) is written first and removed last; every step
 * is done only if its source is still there and its target is not, so a rename interrupted at
 * any point is finished by the next reconcile (jaulad's start) or rename.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { validateName } from '../common/names.js';
import { mkdirp, readFileOr, writeFileAtomic } from '../os/fs.js';
import { withLock } from '../os/lock.js';
import { mountsBelow } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import { layout } from '../storage/layout.js';
import { unmountBinds } from './binds.js';
import { parseConfig, type GuestConfig } from '../guest/config.js';
import { settleLocked } from './lifecycle.js';
import { guestLog, guestLogFile } from '../guest/log.js';
import { withStoppedGuest } from './running.js';
import { runningMarkFile } from '../guest/state.js';
import { refuseInFleet } from './fleet-guard.js';
import { guestExists, listGuestNames, loadConfig, saveConfig } from '../guest/store.js';

const journalDir = (): string => join(paths().etc, 'renames');

function moves(from: string, to: string): [string, string][] {
  const p = paths();
  return [
    [p.guestData(from), p.guestData(to)],
    [layout.poolGuest(from), layout.poolGuest(to)],
    [layout.index(from), layout.index(to)],
    [p.guestRun(from), p.guestRun(to)],
    [guestLogFile(from), guestLogFile(to)],
    [runningMarkFile(from), runningMarkFile(to)], // (a guest that crashed: autostarted after a reboot)
    [p.guestConf(from), p.guestConf(to)], // last: the guest appears under its new name
  ];
}

/** Do (or finish) the rename the journal records; idempotent. */
function finishRename(from: string, to: string): void {
  for (const [a, b] of moves(from, to))
    if (fs.existsSync(a) && !fs.existsSync(b)) {
      mkdirp(join(b, '..'), 0o700);
      fs.renameSync(a, b);
    }
  const file = paths().guestConfigFile(to);
  const text = readFileOr(file, undefined);
  if (text !== undefined) {
    const cfg = parseConfig(text, file);
    if (cfg.name === from) saveConfig({ ...cfg, name: to });
  }
  for (const n of listGuestNames()) {
    let cfg: GuestConfig;
    try {
      cfg = loadConfig(n);
    } catch {
      continue; // (a broken config is reported by the commands on it)
    }
    if (cfg.depends.includes(from))
      saveConfig({ ...cfg, depends: cfg.depends.map((d) => (d === from ? to : d)) });
  }
  // hashify knows its unified layer again after one walk (its paths were the old name's).
  fs.rmSync(layout.unifiedStamp(to), { force: true });
  fs.rmSync(join(journalDir(), from), { force: true });
}

/** Renames an interruption left half done (run by reconcile); returns "OLD -> NEW" of each. */
export function finishRenames(): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(journalDir());
  } catch {
    return [];
  }
  const done: string[] = [];
  for (const from of entries) {
    const to = readFileOr(join(journalDir(), from), '').trim();
    if (!to) continue;
    finishRename(from, to);
    guestLog(to, `renamed from "${from}" (an interrupted rename, finished)`);
    done.push(`${from} -> ${to}`);
  }
  return done;
}

export async function renameGuest(from: string, to: string): Promise<GuestConfig> {
  validateName(to);
  if (from === to) throw new JaulaError('invalid', `Guest "${from}" already has that name`);
  refuseInFleet(`rename guest "${from}"`);
  return withStoppedGuest(from, `then rename it ("jaula stop ${from}")`, async (cfg0, driver) => {
    await settleLocked(cfg0);
    // (the build lock: no build or clone reserves the new name meanwhile)
    return withLock(paths().locks, 'build', 'Building guests', async () => {
      if (guestExists(to) || fs.existsSync(paths().guestData(to)))
        throw new JaulaError(
          'exists',
          `A guest named "${to}" already exists (see "jaula list"; choose another name)`,
        );
      await driver.unmount(cfg0);
      unmountBinds(from);
      const left = [...mountsBelow(paths().guestData(from)), ...mountsBelow(paths().guestRun(from))];
      if (left.length)
        throw new JaulaError(
          'state',
          `Cannot rename guest "${from}": something is still mounted in its tree (${left.join(', ')}); unmount it first`,
        );
      mkdirp(journalDir(), 0o700);
      writeFileAtomic(join(journalDir(), from), `${to}\n`, 0o600);
      finishRename(from, to);
      guestLog(to, `renamed from "${from}"`);
      return loadConfig(to);
    });
  });
}
