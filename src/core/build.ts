import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import {
  CONTEXT_FIRST_AUTO,
  CONTEXT_MAX,
  validateContext,
  validateHostname,
  validateName,
} from '../common/names.js';
import { mkdirp, readFileOr, removeTree, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { withLock } from '../os/lock.js';
import { paths } from '../os/paths.js';
import { isSameProcess, readProcStat } from '../os/proc.js';
import type { InterfaceSpec } from '../network/ifspec.js';
import type { ForwardSpec } from '../network/forward.js';
import { assignInterfaces } from '../network/assign.js';
import { storageDriver } from '../storage/index.js';
import { adaptTree } from './adapt.js';
import {
  validateConfig,
  validateInitStyle,
  type GuestConfig,
  type InitStyle,
  type Profile,
} from './config.js';
import { DEFAULT_FSTAB } from './fstab.js';
import { guestLog } from './log.js';
import { buildDebootstrap, parseDebootstrapArgs } from './methods/debootstrap.js';
import { buildSkeleton } from './methods/skeleton.js';
import { checkTemplateFile, extractTemplate } from './methods/template.js';
import { BUILDING_MARK, isBuilding, loadConfig, loadEveryConfig, saveConfig } from './store.js';
import { Reverter } from './reverter.js';

export const BUILD_METHODS = ['skeleton', 'template', 'debootstrap'] as const;
export type BuildMethod = (typeof BUILD_METHODS)[number];

export interface BuildOptions {
  name: string;
  method: string;
  hostname?: string;
  context?: number;
  interfaces?: InterfaceSpec[];
  initstyle?: string;
  marks?: string[];
  depends?: string[];
  storage?: string;
  /** The command of the "cmd" init style. */
  cmd?: string[];
  forwards?: ForwardSpec[];
  privileged?: boolean;
  profile?: Profile;
  /** The method's own arguments (after "--"). */
  methodArgs?: string[];
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

function parseTemplateArgs(args: string[]): string {
  if (args[0] !== '-t' || args[1] === undefined || args.length !== 2)
    throw new JaulaError(
      'usage',
      'The template method takes the archive after "--": jaula build NAME -m template -- -t FILE.tar.zst',
    );
  return args[1];
}

/** Config dirs being made for a build (renamed to the guest's name once they hold the building mark). */
const STAGING_PREFIX = '.staging-';

/** Remove guests whose build was interrupted (their builder died): no half-made guest stays. */
export async function removeStaleBuilds(): Promise<string[]> {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(paths().guestsConf);
  } catch {
    return removed;
  }
  for (const n of names) {
    if (n.startsWith(STAGING_PREFIX)) {
      if (!isBuilding(n)) removeTree(join(paths().guestsConf, n));
      continue;
    }
    // One read of the mark: a builder that just finished removes it, and must not be taken
    // for a dead one between two looks.
    const mark = readFileOr(join(paths().guestConf(n), BUILDING_MARK), undefined);
    if (mark === undefined) continue;
    const [pid, start] = mark.trim().split(' ').map(Number);
    if (!isSameProcess(pid, start)) {
      const cfgText = readFileOr(paths().guestConfigFile(n), '');
      const driver = /driver = "([a-z]+)"/.exec(cfgText)?.[1] ?? 'dir';
      await (await storageDriver(driver)).destroy(n).catch(() => removeTree(paths().guestData(n)));
      removeTree(paths().guestConf(n));
      removed.push(n);
    }
  }
  return removed;
}

function usedContexts(except?: string): Map<number, string> {
  const used = new Map<number, string>();
  let names: string[] = [];
  try {
    names = fs.readdirSync(paths().guestsConf);
  } catch {
    return used;
  }
  for (const n of names) {
    if (n === except || n.startsWith('.')) continue;
    const text = readFileOr(paths().guestConfigFile(n), undefined);
    const m = text === undefined ? undefined : /^context\s*=\s*(\d+)/m.exec(text);
    if (m?.[1]) used.set(Number(m[1]), n);
  }
  return used;
}

export function nextFreeContext(used: Map<number, string>): number {
  for (let c = CONTEXT_FIRST_AUTO; c <= CONTEXT_MAX; c++) if (!used.has(c)) return c;
  throw new JaulaError('exists', `All context IDs from ${CONTEXT_FIRST_AUTO} to ${CONTEXT_MAX} are in use`);
}

/**
 * Build a guest. The name and context are reserved first (under the build lock), the tree is
 * filled and adapted, and the guest appears in listings only when all is done; a failure or an
 * interruption removes everything the build made.
 */
export async function buildGuest(o: BuildOptions): Promise<GuestConfig> {
  const name = validateName(o.name);
  if (!(BUILD_METHODS as readonly string[]).includes(o.method))
    throw new JaulaError('usage', `Unknown build method "${o.method}": use -m ${BUILD_METHODS.join('|')}`);
  const method = o.method as BuildMethod;
  const initstyle: InitStyle = validateInitStyle(o.initstyle ?? 'plain');
  const hostname = validateHostname(o.hostname ?? name);
  if (o.context !== undefined) validateContext(o.context);
  const args = o.methodArgs ?? [];
  const progress = o.onProgress ?? (() => {});
  // Check the method's arguments before anything is made.
  let templateFile: string | undefined;
  let dbs: ReturnType<typeof parseDebootstrapArgs> | undefined;
  if (method === 'template') {
    templateFile = parseTemplateArgs(args);
    checkTemplateFile(templateFile);
  } else if (method === 'debootstrap') dbs = parseDebootstrapArgs(args);
  else if (args.length)
    throw new JaulaError(
      'usage',
      `The skeleton method takes no arguments after "--" (got "${args.join(' ')}")`,
    );
  const driver = await storageDriver(o.storage ?? 'dir');

  const cfg: GuestConfig = validateConfig({
    name,
    context: o.context ?? CONTEXT_FIRST_AUTO,
    hostname,
    initstyle,
    cmd: o.cmd ?? [],
    marks: o.marks ?? [],
    depends: o.depends ?? [],
    runtime: 'auto',
    privileged: o.privileged ?? false,
    profile: o.profile ?? 'default',
    stopTimeout: 30,
    storage: { driver: driver.info.name },
    interfaces: o.interfaces ?? [],
    forwards: o.forwards ?? [],
    build: { method, args, created: new Date().toISOString() },
  });

  const rev = new Reverter();
  try {
    await withLock(paths().locks, 'build', 'Building guests', async () => {
      await removeStaleBuilds();
      if (fs.existsSync(paths().guestConf(name)) || fs.existsSync(paths().guestData(name)))
        throw new JaulaError(
          'exists',
          `A guest named "${name}" already exists (see "jaula list"; choose another name or "jaula delete ${name}")`,
        );
      const used = usedContexts();
      if (o.context !== undefined) {
        const owner = used.get(o.context);
        if (owner)
          throw new JaulaError(
            'exists',
            `The context ID ${o.context} is already used by guest "${owner}" (omit --context to get the next free one)`,
          );
      } else cfg.context = nextFreeContext(used);
      // Addresses and MACs are assigned now, under the build lock, and stored: they stay stable.
      const assigned = assignInterfaces(cfg, loadEveryConfig());
      cfg.interfaces = assigned.interfaces;
      // The config dir appears with its building mark in it (made aside, then renamed): a
      // builder killed at any moment leaves nothing that the next removeStaleBuilds misses.
      const aside = join(paths().guestsConf, `${STAGING_PREFIX}${name}.${tmpSuffix()}`);
      mkdirp(aside);
      const me = readProcStat(process.pid);
      writeFileAtomic(join(aside, BUILDING_MARK), `${process.pid} ${me?.starttime ?? 0}\n`);
      fs.renameSync(aside, paths().guestConf(name));
      rev.add('remove the config dir', () => removeTree(paths().guestConf(name)));
      saveConfig(cfg);
    });
    rev.add('remove the guest data', () => driver.destroy(name));
    const rootfs = driver.treePath(name);
    mkdirp(rootfs);
    progress(`Building guest "${name}" (context ${cfg.context}) with ${method}`);
    if (method === 'skeleton') await buildSkeleton(rootfs);
    else if (method === 'template') {
      const s = await extractTemplate(templateFile as string, rootfs, o.signal, {
        allowDevices: cfg.privileged,
      });
      progress(`Unpacked ${s.entries} files (${(s.bytes / 2 ** 20).toFixed(1)} MiB) from ${templateFile}`);
    } else if (dbs) await buildDebootstrap(rootfs, dbs, progress, o.signal);
    o.signal?.throwIfAborted();
    const changes = adaptTree(rootfs, { hostname });
    for (const c of changes) guestLog(name, `build: ${c}`);
    progress(`Adapted the tree to run as a guest (${changes.length} changes)`);
    writeFileAtomic(join(paths().guestConf(name), 'fstab'), DEFAULT_FSTAB);
    mkdirp(join(paths().guestConf(name), 'hooks'));
    fs.rmSync(join(paths().guestConf(name), BUILDING_MARK));
    guestLog(name, `built with ${method}${args.length ? ` ${args.join(' ')}` : ''}, context ${cfg.context}`);
    rev.success();
    return loadConfig(name);
  } catch (e) {
    const failed = await rev.revert();
    if (failed.length)
      throw new JaulaError(
        'runtime',
        `${(e as Error).message}; and cleaning up failed: ${failed.join('; ')}`,
        { cause: e },
      );
    throw e;
  }
}
