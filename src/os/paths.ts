import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fnv1a } from '../common/hash.js';

/**
 * Every path jaula uses derives from one root, JAULA_ROOT (default "/"), so tests and several
 * instances can run side by side:
 *
 *   $ROOT/etc/jaula/guests/NAME/config.toml   the guest's config (plus fstab, hooks/)
 *   $ROOT/var/lib/jaula/guests/NAME/           the guest's data: rootfs/ (or its layers)
 *   $ROOT/var/lib/jaula/templates/NAME/        templates
 *   $ROOT/var/cache/jaula/                      caches (debootstrap results), or JAULA_CACHE_DIR
 *   $ROOT/var/log/jaula/                        logs
 *   $ROOT/run/jaula/guests/NAME/                runtime state of a running guest (state.json, bundle/)
 *   $ROOT/run/jaula/runtime/                    the OCI runtime's own state (--root)
 */
export interface Paths {
  readonly root: string;
  readonly etc: string;
  readonly guestsConf: string;
  readonly lib: string;
  readonly guestsData: string;
  readonly templates: string;
  readonly cache: string;
  readonly log: string;
  readonly run: string;
  readonly guestsRun: string;
  readonly locks: string;
  readonly runtimeRoot: string;
  /** jaulad's unix socket (the default of its --socket). */
  readonly jauladSocket: string;
  /** A short tag that keeps this instance's cgroups and runtime IDs apart from other instances. */
  readonly instanceTag: string;
  guestConf(name: string): string;
  guestConfigFile(name: string): string;
  guestData(name: string): string;
  guestRun(name: string): string;
}

export function makePaths(rootArg?: string): Paths {
  const root = resolve(rootArg ?? process.env['JAULA_ROOT'] ?? '/');
  const etc = join(root, 'etc/jaula');
  const lib = join(root, 'var/lib/jaula');
  const run = join(root, 'run/jaula');
  const guestsConf = join(etc, 'guests');
  const guestsData = join(lib, 'guests');
  const guestsRun = join(run, 'guests');
  const instanceTag = root === '/' ? '' : fnv1a(root);
  return {
    root,
    etc,
    guestsConf,
    lib,
    guestsData,
    templates: join(lib, 'templates'),
    cache: process.env['JAULA_CACHE_DIR']
      ? resolve(process.env['JAULA_CACHE_DIR'])
      : join(root, 'var/cache/jaula'),
    log: join(root, 'var/log/jaula'),
    run,
    guestsRun,
    locks: join(run, 'locks'),
    runtimeRoot: join(run, 'runtime'),
    jauladSocket: join(run, 'jaulad.sock'),
    instanceTag,
    guestConf: (name) => join(guestsConf, name),
    guestConfigFile: (name) => join(guestsConf, name, 'config.toml'),
    guestData: (name) => join(guestsData, name),
    guestRun: (name) => join(guestsRun, name),
  };
}

let cached: Paths | undefined;
/** The paths of this process's instance (JAULA_ROOT read once). */
export function paths(): Paths {
  cached ??= makePaths();
  return cached;
}

/**
 * The installed project's own directory (where dist/, native/out and build/ live): the nearest
 * directory above this file with jaula's package.json (this file may be bundled or not).
 */
export const projectDir = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (dir !== '/' && !existsSync(join(dir, 'binding.gyp'))) dir = dirname(dir);
  return dir;
})();
export const helperBin = join(projectDir, 'native/out/jaula-helper');
export const initBin = join(projectDir, 'native/out/jaula-init');
/** Runs a command in a running guest (jaula exec, enter, jaulad's attach): native/jaula-exec.c. */
export const execBin = join(projectDir, 'native/out/jaula-exec');
export const cliEntry = join(projectDir, 'dist/jaula.cjs');
