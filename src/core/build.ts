import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { formatMiB } from '../common/size.js';
import {
  CONTEXT_FIRST_AUTO,
  CONTEXT_MAX,
  HOSTNAME_RE,
  validateContext,
  validateHostname,
  validateName,
} from '../common/names.js';
import { mkdirp, readFileOr, removeTree, tmpSuffix, writeFileAtomic } from '../os/fs.js';
import { HostFiles } from '../os/hostfiles.js';
import { withLock } from '../os/lock.js';
import { paths } from '../os/paths.js';
import { trace } from '../os/trace.js';
import { isSameProcess, readProcStat } from '../os/proc.js';
import type { InterfaceSpec } from '../guest/ifspec.js';
import type { ForwardSpec } from '../guest/forward.js';
import { assignInterfaces } from '../network/assign.js';
import { defaultStorage, storageDriver, type StorageDriver } from '../storage/index.js';
import { layout } from '../storage/layout.js';
import { adaptTree } from './adapt.js';
import {
  validateConfig,
  validateInitStyle,
  type GuestConfig,
  type InitStyle,
  type Profile,
} from '../guest/config.js';
import { DEFAULT_FSTAB } from '../guest/fstab.js';
import { guestLog } from '../guest/log.js';
import { buildDebootstrap, parseDebootstrapArgs } from './methods/debootstrap.js';
import { buildSkeleton } from './methods/skeleton.js';
import { checkTemplateFile, extractTemplate } from './methods/template.js';
import { newIdentity } from './identity.js';
import {
  BUILDING_MARK,
  guestConfEntries,
  isBuilding,
  loadConfig,
  loadEveryConfig,
  saveConfig,
} from '../guest/store.js';
import { Reverter } from './reverter.js';
import { checkTemplateFor } from './templates.js';
import { guestQuotaDefault } from '../storage/pool.js';
import { fleetHeld, reserveInFleet } from './fleet-guard.js';
import * as oci from './image/method.js';
import { copyImageLayers } from './image/flatten.js';

export const BUILD_METHODS = ['skeleton', 'template', 'debootstrap', 'oci'] as const;
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
  /** Limits on the guest's own files (bytes, inodes). */
  quotaBytes?: number;
  quotaInodes?: number;
  /** The command of the "cmd" init style. */
  cmd?: string[];
  forwards?: ForwardSpec[];
  privileged?: boolean;
  profile?: Profile;
  /** The method's own arguments (after "--"). */
  methodArgs?: string[];
  /** Which host paths the caller may name (a template archive): default any, as root. */
  hostFiles?: HostFiles;
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

function parseTemplateArgs(args: string[]): string {
  if (args[0] !== '-t' || args[1] === undefined || args.length !== 2)
    throw new JaulaError(
      'usage',
      'The template method takes an archive or a stored template after "--": jaula build NAME -m template -- -t FILE.tar.zst (or -- -t NAME, see "jaula template list")',
    );
  return args[1];
}

/**
 * A new guest's hostname: the one given, else its name, which must then be a valid hostname
 * (a guest name may hold "_" or be 64 characters long; a hostname may not).
 */
export function hostnameFor(name: string, given: string | undefined): string {
  if (given !== undefined) return validateHostname(given);
  if (HOSTNAME_RE.test(name)) return name;
  const suggestion = name
    .replace(/_/g, '-')
    .replace(/\.+/g, '.')
    .slice(0, 63)
    .replace(/[-.]+$/, '');
  throw new JaulaError(
    'invalid',
    `The guest name "${name}" cannot be its hostname, as it is by default (a hostname has letters, digits and "-" in labels of at most 63 characters): give one with --hostname${HOSTNAME_RE.test(suggestion) ? `, e.g. --hostname ${suggestion}` : ''}`,
  );
}

/** Config dirs being made for a build (renamed to the guest's name once they hold the building mark). */
const STAGING_PREFIX = '.staging-';

/** "-t X" names a stored template when X is a template's name (not a path) and one is stored. */
export function isStoredTemplate(x: string): boolean {
  return (
    !x.includes('/') && !/\.(tar|tgz|tzst|tar\.gz|tar\.zst)$/.test(x) && fs.existsSync(layout.templateMeta(x))
  );
}

/** The storage driver for a build: the one asked for, or the default (overlay where it works). */
export async function buildStorage(name: string | undefined): Promise<StorageDriver> {
  const d = name ? await storageDriver(name) : await defaultStorage();
  const why = d.unavailable();
  if (why) throw new JaulaError('unsupported', `The storage driver "${d.info.name}" cannot be used: ${why}`);
  return d;
}

/** Remove guests whose build was interrupted (their builder died): no half-made guest stays. */
export async function removeStaleBuilds(): Promise<string[]> {
  const removed: string[] = [];
  for (const n of guestConfEntries()) {
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
  for (const n of guestConfEntries()) {
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
 * Reserve a new guest's name and context (under the build lock) and store its config with a
 * mark saying it is being made; `rev` removes it again if what follows fails. The context is
 * the next free one, the one given (`fixedContext`; 'moved': a guest moved from another host of
 * the fleet, which keeps its reservations), or the one given if free ('prefer'). Addresses and MACs
 * are assigned now and stored: they stay stable.
 */
export async function reserveGuest(
  cfg: GuestConfig,
  rev: Reverter,
  fixedContext: boolean | 'prefer' | 'moved',
): Promise<void> {
  const { name } = cfg;
  await withLock(paths().locks, 'build', 'Building guests', async () => {
    trace('build: locked');
    await removeStaleBuilds();
    trace('build: stale builds looked for');
    if (fs.existsSync(paths().guestConf(name)) || fs.existsSync(paths().guestData(name)))
      throw new JaulaError(
        'exists',
        `A guest named "${name}" already exists (see "jaula list"; choose another name or "jaula delete ${name}")`,
      );
    const used = usedContexts();
    // In a fleet: the contexts and fleet-network addresses other hosts hold are not free here.
    const held = await fleetHeld(fixedContext === 'moved' ? name : undefined);
    for (const [c, n] of held?.contexts ?? []) if (!used.has(c)) used.set(c, n);
    trace('build: contexts read');
    // 'prefer' (a restore): the context it had, unless another guest here has it.
    if (fixedContext === 'prefer' && used.has(cfg.context)) cfg.context = nextFreeContext(used);
    else if (fixedContext) {
      const owner = used.get(cfg.context);
      if (owner)
        throw new JaulaError(
          'exists',
          `The context ID ${cfg.context} is already used by guest "${owner}"${held?.contexts.get(cfg.context) === owner ? ' of the fleet' : ''} (omit --context to get the next free one)`,
        );
    } else cfg.context = nextFreeContext(used);
    const assigned = assignInterfaces(cfg, loadEveryConfig(), held ? { reserved: held.addresses } : {});
    cfg.interfaces = assigned.interfaces;
    trace("build: every guest's config read, addresses assigned");
    await reserveInFleet(cfg, rev, {
      fixedContext,
      nextContext: (fleet) => nextFreeContext(new Map([...usedContexts(), ...fleet])),
    });
    // The config dir appears with its building mark in it (made aside, then renamed): a
    // builder killed at any moment leaves nothing that the next removeStaleBuilds misses.
    const aside = join(paths().guestsConf, `${STAGING_PREFIX}${name}.${tmpSuffix()}`);
    mkdirp(aside);
    const me = readProcStat(process.pid);
    writeFileAtomic(join(aside, BUILDING_MARK), `${process.pid} ${me?.starttime ?? 0}\n`);
    fs.renameSync(aside, paths().guestConf(name));
    rev.add('remove the config dir', () => removeTree(paths().guestConf(name)));
    saveConfig(cfg);
    trace('build: name and context reserved');
  });
}

/** Where a build's tree comes from, checked before anything is made. */
interface BuildSource {
  templateFile?: string;
  stored?: string;
  dbs?: ReturnType<typeof parseDebootstrapArgs>;
  /** -m oci: the image as named (-i REF|FILE). */
  image?: string;
  /** -m oci: the image's layers, bottom first (copied into the tree where storage cannot stack them). */
  imageLayers?: string[];
}

/** Check the method's arguments before anything is made. */
function checkSource(method: BuildMethod, args: string[], hostFiles: HostFiles | undefined): BuildSource {
  if (method === 'template') {
    const t = parseTemplateArgs(args);
    if (isStoredTemplate(t)) return { stored: t };
    const f = (hostFiles ?? HostFiles.any).openFile(t, 'template archive');
    try {
      checkTemplateFile(f.path);
    } finally {
      f.close();
    }
    return { templateFile: t };
  }
  if (method === 'debootstrap') return { dbs: parseDebootstrapArgs(args) };
  if (method === 'oci') return { image: oci.parseOciArgs(args) };
  if (args.length)
    throw new JaulaError(
      'usage',
      `The skeleton method takes no arguments after "--" (got "${args.join(' ')}")`,
    );
  return {};
}

/** Fill the guest's fresh tree by its method. */
async function fillTree(
  tree: string,
  method: BuildMethod,
  { templateFile, stored, dbs, imageLayers }: BuildSource,
  driver: StorageDriver,
  cfg: GuestConfig,
  o: BuildOptions,
  progress: (line: string) => void,
): Promise<void> {
  if (method === 'skeleton') await buildSkeleton(tree);
  else if (method === 'oci' && driver.info.layers)
    progress(`Based on the image's ${cfg.storage.layers?.length ?? 0} layers (no file data copied)`);
  else if (method === 'oci')
    await copyImageLayers(cfg.name, imageLayers ?? [], tree, progress, driver.info.cheapClone);
  else if (stored)
    progress(
      driver.info.cheapClone
        ? `Based on the stored template "${stored}" (no file data copied)`
        : `Copied the stored template "${stored}"`,
    );
  else if (method === 'template') {
    // Opened again, as at the check (beneath --host-files for a client over TCP): tar reads it.
    const f = (o.hostFiles ?? HostFiles.any).openFile(templateFile as string, 'template archive');
    const s = await extractTemplate(f.path, tree, o.signal, progress, {
      allowDevices: cfg.privileged,
    }).finally(() => f.close());
    progress(`Unpacked ${s.entries} files (${formatMiB(s.bytes)}) from ${templateFile}`);
  } else if (dbs) await buildDebootstrap(tree, dbs, progress, o.signal);
}

/** The new guest's config from the build's options, checked (a quota needs a driver that has them). */
function newConfig(
  o: BuildOptions,
  b: {
    name: string;
    method: BuildMethod;
    args: string[];
    initstyle: InitStyle;
    hostname: string;
    stored: string | undefined;
  },
  driver: StorageDriver,
  image?: oci.OciSettings,
): GuestConfig {
  const { name, method, args, initstyle, hostname, stored } = b;
  const quota = o.quotaBytes !== undefined || o.quotaInodes !== undefined;
  if (quota && driver.info.quota === 'none')
    throw new JaulaError(
      'unsupported',
      `The storage driver "${driver.info.name}" cannot limit a guest's space here: use --storage overlay or dir with --quota`,
    );

  // On a storage pool every guest gets a space limit unless it asks for another.
  const poolQuota = quota || driver.info.quota === 'none' ? undefined : guestQuotaDefault();

  return validateConfig({
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
    storage: {
      driver: driver.info.name,
      ...(stored ? { template: stored } : {}),
      ...(stored && driver.info.layers ? { layers: [stored] } : {}),
      ...(image && driver.info.layers ? { layers: image.layers } : {}),
      ...(o.quotaBytes !== undefined ? { quotaBytes: o.quotaBytes } : {}),
      ...(poolQuota !== undefined ? { quotaBytes: poolQuota } : {}),
      ...(o.quotaInodes !== undefined ? { quotaInodes: o.quotaInodes } : {}),
    },
    interfaces: o.interfaces ?? [],
    forwards: o.forwards ?? [],
    build: { method, args, created: new Date().toISOString() },
    ...(image ? oci.ociConfigPart(image) : {}),
  });
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
  const hostname = hostnameFor(name, o.hostname);
  if (o.context !== undefined) validateContext(o.context);
  const args = o.methodArgs ?? [];
  const progress = o.onProgress ?? (() => {});
  const source = checkSource(method, args, o.hostFiles);
  const { stored } = source;
  const driver = await buildStorage(o.storage);
  const image = source.image ? await oci.imageForBuild(source.image, { ...o, progress }) : undefined;
  const ociSet = image && oci.ociSettings(image, { ...o, ...(o.initstyle ? { initstyle } : {}) });
  const cfg = newConfig(o, { name, method, args, initstyle, hostname, stored }, driver, ociSet);
  if (ociSet) source.imageLayers = ociSet.layers;
  if (stored) checkTemplateFor(cfg, stored);
  if (image) oci.checkImageDevices(cfg, image);
  const rev = new Reverter();
  try {
    await reserveGuest(cfg, rev, o.context !== undefined);
    trace('build: reserved');
    rev.add('remove the guest data', () => driver.destroy(name));
    rev.add('unmount the guest data', () => driver.unmount(cfg));
    progress(
      `Building guest "${name}" (context ${cfg.context}) with ${method} on ${driver.info.name} storage`,
    );
    await driver.create(cfg);
    trace('build: storage made');
    await fillTree(driver.treePath(name), method, source, driver, cfg, o, progress);
    o.signal?.throwIfAborted();
    trace('build: tree made');
    const rootfs = (await driver.mount(cfg)).hostView;
    trace('build: mounted');
    if (image && ociSet && oci.finishOciGuest(cfg, rootfs, image, ociSet, progress)) saveConfig(cfg);
    const changes = adaptTree(rootfs, { hostname });
    if (method === 'template') changes.push(...(await newIdentity(rootfs, hostname)));
    trace('build: adapted');
    await driver.unmount(cfg);
    trace('build: unmounted');
    for (const c of changes) guestLog(name, `build: ${c}`);
    progress(`Adapted the tree to run as a guest (${changes.length} changes)`);
    writeFileAtomic(join(paths().guestConf(name), 'fstab'), DEFAULT_FSTAB);
    mkdirp(join(paths().guestConf(name), 'hooks'));
    fs.rmSync(join(paths().guestConf(name), BUILDING_MARK));
    trace('build: complete');
    guestLog(name, `built with ${method}${args.length ? ` ${args.join(' ')}` : ''}, context ${cfg.context}`);
    rev.success();
    return loadConfig(name);
  } catch (e) {
    return rev.fail(e);
  }
}
