import * as fs from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { JaulaError, errnoOf, isJaulaError } from '../common/errors.js';
import { validateName } from '../common/names.js';
import { mkdirp, readFileOr, writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { isSameProcess } from '../os/proc.js';
import { parseConfig, serializeConfig, type GuestConfig } from './config.js';
import { DEFAULT_FSTAB, parseFstab, type FstabEntry } from './fstab.js';
import { ConfigIndex } from './confindex.js';
import { readState } from './state.js';

/** A guest whose build is under way has this file in its config dir: "PID STARTTIME". */
export const BUILDING_MARK = '.building';
/** In a guest's config dir: it is another host's guest, kept here as its HA replica (core/ha). */
export const REPLICA_MARK = '.replica';

export function guestExists(name: string): boolean {
  return fs.existsSync(paths().guestConfigFile(name)) || fs.existsSync(paths().guestConf(name));
}

export function loadConfig(name: string): GuestConfig {
  const g = readGuest(name);
  if ('broken' in g) throw g.broken.error;
  return g.cfg;
}

/**
 * A guest whose config.toml does not load (not TOML, an unknown or misspelt setting, a bad
 * value): it is still a guest (listings show it as broken, bulk operations report it as failed,
 * `delete --force` removes it), but nothing can start it until its config is fixed.
 */
export interface BrokenGuest {
  name: string;
  /** What is wrong, where: 'In "FILE", line N: unknown setting "colour"'. */
  reason: string;
  /** The error to show: the reason, and what to do. */
  error: JaulaError;
  /** What could still be read of it (when the file is valid TOML). */
  partial: {
    context?: number;
    hostname?: string;
    marks?: string[];
    depends?: string[];
    privileged?: boolean;
    driver?: string;
  };
}

export type GuestEntry = { name: string; cfg: GuestConfig } | { name: string; broken: BrokenGuest };

/** A guest's config, or what is wrong with it. Throws not_found for no guest (or one being built). */
export function readGuest(name: string): GuestEntry {
  validateName(name);
  const file = paths().guestConfigFile(name);
  const text = readFileOr(file, undefined);
  if (text === undefined || isBuilding(name))
    throw new JaulaError(
      'not_found',
      `There is no guest "${name}" (see "jaula list"; build one with "jaula build ${name} -m skeleton")`,
    );
  try {
    const cfg = parseConfig(text, file);
    if (cfg.name !== name)
      throw new JaulaError(
        'invalid',
        `The config file "${file}" names the guest "${cfg.name}", not "${name}": fix the name there`,
      );
    return { name, cfg };
  } catch (e) {
    if (!isJaulaError(e)) throw e;
    return { name, broken: brokenGuest(name, text, e) };
  }
}

function brokenGuest(name: string, text: string, e: JaulaError): BrokenGuest {
  const error = new JaulaError(
    'invalid',
    `Guest "${name}" is broken: ${e.message}. Fix its config file (see docs/config.md), or delete the guest with "jaula delete --force ${name}"`,
    { cause: e, details: { broken: true, ...(e.details ?? {}) } },
  );
  const partial: BrokenGuest['partial'] = {};
  let t: Record<string, unknown> = {};
  try {
    t = parseToml(text) as Record<string, unknown>;
  } catch {
    /* not TOML at all: nothing can be read */
  }
  const strs = (v: unknown): string[] | undefined =>
    Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  if (typeof t['context'] === 'number') partial.context = t['context'];
  if (typeof t['hostname'] === 'string') partial.hostname = t['hostname'];
  if (typeof t['privileged'] === 'boolean') partial.privileged = t['privileged'];
  const marks = strs(t['marks']);
  const depends = strs(t['depends']);
  if (marks) partial.marks = marks;
  if (depends) partial.depends = depends;
  const st = t['storage'];
  if (typeof st === 'object' && st !== null && typeof (st as Record<string, unknown>)['driver'] === 'string')
    partial.driver = (st as Record<string, unknown>)['driver'] as string;
  return { name, reason: e.message, error, partial };
}

/** Whether an error is the one of a broken guest (readGuest, loadConfig). */
export function isBrokenError(e: unknown): boolean {
  return isJaulaError(e) && e.details?.['broken'] === true;
}

/** The copy of its config a guest was started with (run/jaula/guests/NAME/config.toml). */
export function startedConfigFile(name: string): string {
  return join(paths().guestRun(name), 'config.toml');
}

/**
 * The config to stop or clean up after a guest with: its config, or, when that is broken and
 * the guest has not been settled as stopped, the copy it was started with (so a config broken
 * while the guest runs does not keep jaula from stopping it and removing what its start made).
 */
export function loadConfigForStop(name: string): GuestConfig {
  const g = readGuest(name);
  if ('cfg' in g) return g.cfg;
  const text = readFileOr(startedConfigFile(name), undefined);
  if (text === undefined || readState(name).status === 'stopped') throw g.broken.error;
  try {
    return parseConfig(text, startedConfigFile(name));
  } catch {
    throw g.broken.error;
  }
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

export function isReplica(name: string): boolean {
  return fs.existsSync(join(paths().guestConf(name), REPLICA_MARK));
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

/** Names of all guests whose config exists, sorted; half-built ones and replicas are left out. */
export function listGuestNames(): string[] {
  return guestConfEntries()
    .filter(
      (n) =>
        !n.startsWith('.') &&
        fs.existsSync(paths().guestConfigFile(n)) &&
        !hasBuildingMark(n) &&
        !isReplica(n),
    )
    .sort();
}

export function loadAllConfigs(): GuestConfig[] {
  return loadGuests().configs;
}

/** Every guest: those whose config loads, and the broken ones (see BrokenGuest). */
export function loadGuests(): { configs: GuestConfig[]; broken: BrokenGuest[] } {
  const configs: GuestConfig[] = [];
  const broken: BrokenGuest[] = [];
  for (const n of listGuestNames()) {
    let g: GuestEntry;
    try {
      g = readGuest(n);
    } catch {
      continue; // gone, or its build began meanwhile
    }
    if ('cfg' in g) configs.push(g.cfg);
    else broken.push(g.broken);
  }
  return { configs, broken };
}

/**
 * Every guest config on disk, half-built ones included: address, MAC, context and port
 * allocation must see reservations of builds under way. Unreadable configs are left out. Kept
 * in this process by an inotify-driven index (confindex.ts): a call reads only what changed.
 */
export function loadEveryConfig(): GuestConfig[] {
  const dir = paths().guestsConf;
  if (index?.dir !== dir) {
    index?.close();
    index = new ConfigIndex(dir, cachedConfig, (f) => parsedConfigs.delete(f));
  }
  return index.all();
}

let index: ConfigIndex | undefined;

/**
 * Configs parsed before, by file, with the identity of the file they were parsed from: a
 * config read again (the index saw it change, or it has no watch) is parsed again only when its
 * file's identity changed. Shared: callers do not change them.
 */
const parsedConfigs = new Map<string, { id: string; cfg: GuestConfig | undefined }>();

/**
 * A file changed less than this long ago is read again each time: the kernel's file times move
 * in clock ticks, so a second edit in place within the tick of the first, of the same size,
 * would leave its identity unchanged (git's "racily clean" entries).
 */
const RACY_MS = 2000;

function cachedConfig(file: string): GuestConfig | undefined {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) return undefined;
  // (jaula replaces a config by a rename: a new inode; an edit in place changes mtime and ctime)
  const id = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const hit = parsedConfigs.get(file);
  if (hit?.id === id) return hit.cfg;
  const text = readFileOr(file, undefined);
  let cfg: GuestConfig | undefined;
  try {
    cfg = text === undefined ? undefined : parseConfig(text, file);
  } catch {
    /* reported by commands on that guest */
  }
  if (text === undefined || Date.now() - Math.max(st.mtimeMs, st.ctimeMs) < RACY_MS)
    parsedConfigs.delete(file);
  else parsedConfigs.set(file, { id, cfg });
  return cfg;
}
