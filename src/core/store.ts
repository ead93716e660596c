import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError, errnoOf } from '../common/errors.js';
import { validateName } from '../common/names.js';
import { mkdirp, readFileOr, writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { isSameProcess } from '../os/proc.js';
import { parseConfig, serializeConfig, type GuestConfig } from './config.js';
import { DEFAULT_FSTAB, parseFstab, type FstabEntry } from './fstab.js';

/** A guest whose build is under way has this file in its config dir: "PID STARTTIME". */
export const BUILDING_MARK = '.building';

export function guestExists(name: string): boolean {
  return fs.existsSync(paths().guestConfigFile(name)) || fs.existsSync(paths().guestConf(name));
}

export function loadConfig(name: string): GuestConfig {
  validateName(name);
  const file = paths().guestConfigFile(name);
  const text = readFileOr(file, undefined);
  if (text === undefined || isBuilding(name))
    throw new JaulaError(
      'not_found',
      `There is no guest "${name}" (see "jaula list"; build one with "jaula build ${name} -m skeleton")`,
    );
  const cfg = parseConfig(text, file);
  if (cfg.name !== name)
    throw new JaulaError(
      'invalid',
      `The config file "${file}" names the guest "${cfg.name}", not "${name}": fix the name there`,
    );
  return cfg;
}

export function saveConfig(cfg: GuestConfig): void {
  mkdirp(paths().guestConf(cfg.name));
  writeFileAtomic(paths().guestConfigFile(cfg.name), serializeConfig(cfg));
}

export function loadFstab(name: string): FstabEntry[] {
  const file = join(paths().guestConf(name), 'fstab');
  return parseFstab(readFileOr(file, DEFAULT_FSTAB), file);
}

/** True while a build of this guest is under way (its builder is alive). */
export function isBuilding(name: string): boolean {
  const mark = readFileOr(join(paths().guestConf(name), BUILDING_MARK), undefined);
  if (mark === undefined) return false;
  const [pid, start] = mark.trim().split(' ').map(Number);
  return isSameProcess(pid, start);
}

export function hasBuildingMark(name: string): boolean {
  return fs.existsSync(join(paths().guestConf(name), BUILDING_MARK));
}

/** Every entry of the guests' config directory (none before the first build). */
export function guestConfEntries(): string[] {
  try {
    return fs.readdirSync(paths().guestsConf);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw e;
  }
}

/** Names of all guests whose config exists, sorted; half-built ones are left out. */
export function listGuestNames(): string[] {
  return guestConfEntries()
    .filter((n) => !n.startsWith('.') && fs.existsSync(paths().guestConfigFile(n)) && !hasBuildingMark(n))
    .sort();
}

export function loadAllConfigs(): GuestConfig[] {
  const out: GuestConfig[] = [];
  for (const n of listGuestNames()) {
    try {
      out.push(loadConfig(n));
    } catch {
      /* a broken config is reported by commands on that guest, not by listings */
    }
  }
  return out;
}

/**
 * Every guest config on disk, half-built ones included: address, MAC, context and port
 * allocation must see reservations of builds under way. Unreadable configs are left out.
 */
export function loadEveryConfig(): GuestConfig[] {
  const out: GuestConfig[] = [];
  for (const n of guestConfEntries()) {
    const file = paths().guestConfigFile(n);
    const text = readFileOr(file, undefined);
    if (text === undefined) continue;
    try {
      out.push(parseConfig(text, file));
    } catch {
      /* reported by commands on that guest */
    }
  }
  return out;
}
