/**
 * What a start and a one-shot run make before the runtime runs the guest: its root mounted, its
 * user namespace and network, its fstab's binds, and its bundle (the OCI spec, built by the pure
 * runtime/spec.ts from what is read of the host here).
 */
import * as fs from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { mkdirp, writeFileAtomic } from '../os/fs.js';
import { initBin, paths } from '../os/paths.js';
import { nofileHardLimit } from '../os/proc.js';
import { trace } from '../os/trace.js';
import { networkDown, networkUp } from '../network/apply.js';
import type { IdRange } from '../runtime/idmap.js';
import { buildSpec, type OciSpec, type SpecInput } from '../runtime/spec.js';
import { testWeakening, warnWeakened } from '../runtime/testweaken.js';
import { createUserns, removeUserns } from '../runtime/userns.js';
import type { MountedRoot, StorageDriver } from '../storage/driver.js';
import { sanitizeMountPoints } from './adapt.js';
import { mountBinds, unmountBinds } from './binds.js';
import type { GuestConfig } from '../guest/config.js';
import type { FstabEntry } from '../guest/fstab.js';
import type { Reverter } from './reverter.js';
import { loadEveryConfig } from '../guest/store.js';

/**
 * The guest's root, mounted, and its user namespace (unprivileged guests) and network, made for
 * a start or a one-shot run. The mount and the namespaces are made side by side (the network
 * writes its files into the root last, once mounted); their removal is registered on `rev`,
 * and on a failure this returns only when both sides have ended.
 */
export async function prepareGuest(
  cfg: GuestConfig,
  storage: StorageDriver,
  idmap: IdRange | undefined,
  rev: Reverter,
  fstab: FstabEntry[],
): Promise<{ mounted: MountedRoot; fstab: FstabEntry[]; netns: string; userns?: string }> {
  const mounting = mountRoot(cfg, storage, idmap, rev);
  mounting.catch(() => {}); // (awaited below, and by the network only if it has files to write)
  const namespaces = (async () => {
    const userns = idmap ? await createUserns(cfg.name, idmap) : undefined;
    if (userns) rev.add('remove the user namespace', () => removeUserns(cfg.name));
    trace('start: user namespace made');
    rev.add('remove the network', () => networkDown(cfg));
    const all = loadEveryConfig();
    trace(`start: every guest's config read (${all.length})`);
    const netns = await networkUp(cfg, all, mounting, userns ? { userns } : {});
    trace('start: namespaces made');
    return { netns, ...(userns ? { userns } : {}) };
  })();
  // The idmapped views of its fstab binds (core/binds.ts) meanwhile.
  rev.add('unmount the idmapped binds', () => unmountBinds(cfg.name));
  const binding = mountBinds(cfg.name, fstab, idmap);
  const [m, n, b] = await Promise.allSettled([mounting, namespaces, binding]);
  if (m.status === 'rejected') throw m.reason;
  if (n.status === 'rejected') throw n.reason;
  if (b.status === 'rejected') throw b.reason;
  return { mounted: m.value, fstab: b.value, ...n.value };
}

/** The guest's root, mounted (idmapped for an unprivileged guest), its unmount registered on `rev`. */
export async function mountRoot(
  cfg: GuestConfig,
  storage: StorageDriver,
  idmap: IdRange | undefined,
  rev: Reverter,
): Promise<MountedRoot> {
  const m = await storage.mount(cfg, idmap ? { idmap } : {});
  rev.add('unmount the root', () => storage.unmount(cfg));
  // A hostile tree's symlinked /proc, /sys, /dev or /dev/console replaced before any use.
  sanitizeMountPoints(m.hostView, m.hostShift);
  trace('start: root mounted');
  return m;
}

/** The sources of the guest's fstab binds must exist on the host: refused before anything is made. */
export function requireBindSources(name: string, fstab: FstabEntry[]): void {
  for (const e of fstab) {
    if (e.type === 'bind' || e.options.includes('bind') || e.options.includes('rbind')) {
      if (!fs.existsSync(e.source))
        throw new JaulaError(
          'not_found',
          `Guest "${name}": the bind mount source "${e.source}" (for ${e.target}) does not exist on the host; create it or fix ${join(paths().guestConf(name), 'fstab')}`,
        );
    }
  }
}

/**
 * The guest's OCI spec (runtime/spec.ts, pure) from `input` and what of the host it needs (its
 * memory, its nofile limit, jaula-init, the escape suite's test-only weakening asked for in this
 * process's environment), written to the bundle in `runDir` that the runtime runs.
 */
export function writeBundle(
  runDir: string,
  input: Omit<SpecInput, 'initBin' | 'nofileHard' | 'hostMemory' | 'weaken'>,
): OciSpec {
  const weaken = testWeakening(process.env, paths().root);
  const spec = buildSpec({
    ...input,
    initBin,
    nofileHard: nofileHardLimit(),
    hostMemory: totalmem(),
    ...(weaken ? { weaken } : {}),
  });
  if (weaken) warnWeakened(spec);
  mkdirp(join(runDir, 'bundle'), 0o700);
  writeFileAtomic(join(runDir, 'bundle/config.json'), JSON.stringify(spec), 0o600, { durable: false });
  return spec;
}
