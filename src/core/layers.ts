import type { LayerRow } from '../api/types.js';
import { JaulaError } from '../common/errors.js';
import { validateName } from '../common/names.js';
import { withLock } from '../os/lock.js';
import { paths } from '../os/paths.js';
import { storageDriver } from '../storage/index.js';
import { storedTemplateTree } from '../storage/tree.js';
import type { GuestConfig } from '../guest/config.js';
import { guestLog } from '../guest/log.js';
import { checkTemplateFor } from './templates.js';
import { liveStatus, readState } from '../guest/state.js';
import { loadConfig, saveConfig } from '../guest/store.js';

/** One layer of a guest's root (the API's shape): its own changes, hashify's unified layer, or a layer. */
export type { LayerRow } from '../api/types.js';

async function layered(name: string): Promise<GuestConfig> {
  const cfg = loadConfig(name);
  const d = await storageDriver(cfg.storage.driver);
  if (!d.info.layers)
    throw new JaulaError(
      'unsupported',
      `Guest "${name}" uses ${d.info.name} storage, which cannot stack layers (build it with --storage overlay)`,
    );
  return cfg;
}

/** The guest's root, top first. */
export async function listLayers(name: string): Promise<LayerRow[]> {
  const cfg = await layered(name);
  const d = await storageDriver(cfg.storage.driver);
  const [unified, ...rest] = d.lowerDirs(cfg);
  const layers = [...(cfg.storage.layers ?? [])].reverse();
  return [
    { what: 'own', name: '(its own changes)', path: d.treePath(name) },
    ...(unified ? [{ what: 'unified' as const, name: '(hashify)', path: unified }] : []),
    ...layers.map((l, i) => ({ what: 'layer' as const, name: l, path: rest[i] ?? '' })),
  ];
}

/**
 * Put a stored template on top of the guest's layers (under its own changes), or take one
 * away. Applied at the next start; a file the guest changed stays its own (copy-up), and a file
 * it deleted stays deleted (its whiteout hides the same path in every layer).
 */
export async function changeLayers(
  name: string,
  add: string | undefined,
  remove: string | undefined,
): Promise<GuestConfig> {
  return withLock(paths().locks, 'build', 'Changing guest configs', async () => {
    const cfg = await layered(name);
    const layers = [...(cfg.storage.layers ?? [])];
    if (add !== undefined) {
      validateName(add, 'template');
      storedTemplateTree(add);
      checkTemplateFor(cfg, add);
      if (layers.includes(add))
        throw new JaulaError(
          'exists',
          `Guest "${name}" already has the layer "${add}" (see "jaula layer list ${name}")`,
        );
      layers.push(add);
    }
    if (remove !== undefined) {
      const at = layers.indexOf(remove);
      if (at < 0)
        throw new JaulaError(
          'not_found',
          `Guest "${name}" has no layer "${remove}" (see "jaula layer list ${name}")`,
        );
      layers.splice(at, 1);
    }
    const next: GuestConfig = { ...cfg, storage: { ...cfg.storage } };
    if (layers.length) next.storage.layers = layers;
    else delete next.storage.layers;
    saveConfig(next);
    guestLog(name, add ? `layer "${add}" added` : `layer "${remove}" removed`);
    return next;
  });
}

export function appliesAtNextStart(name: string): boolean {
  return liveStatus(readState(name)) !== 'stopped';
}
