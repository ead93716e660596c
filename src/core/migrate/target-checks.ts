/**
 * What a target checks before it takes a guest (a move, or an HA replica round): room for its
 * files, the networks it is on, and which of its layers it lacks (by digest).
 */
import * as fs from 'node:fs';
import { JaulaError } from '../../common/errors.js';
import type { GuestConfig } from '../../guest/config.js';
import { networkFor } from '../../network/networks.js';
import { paths } from '../../os/paths.js';
import { layout } from '../../storage/layout.js';
import { listTemplates } from '../templates.js';
import { templateDigest } from './transfer.js';

/** Room kept free besides the guest (staged parts are unpacked, then removed). */
const SPARE = 16 << 20;

export function checkRoom(bytes: number): void {
  fs.mkdirSync(paths().lib, { recursive: true });
  const s = fs.statfsSync(paths().lib);
  const free = s.bavail * s.bsize;
  const need = 2 * bytes + SPARE;
  if (free < need)
    throw new JaulaError(
      'limit',
      `This host is full: ${(free / 2 ** 20).toFixed(1)} MiB free in ${paths().lib}, the guest needs ${(need / 2 ** 20).toFixed(1)} MiB (its files, staged then unpacked): free space there, or move it elsewhere`,
      { details: { full: true, free, need } },
    );
}

/** Local names for the guest's layers: the template with the same digest, else a free name; the digests to send. */
export async function mapLayers(
  layers: { name: string; digest: string }[],
): Promise<{ names: Map<string, string>; need: Record<string, string> }> {
  const byDigest = new Map<string, string>();
  for (const t of listTemplates()) byDigest.set(await templateDigest(t.name), t.name);
  const names = new Map<string, string>();
  const need: Record<string, string> = {};
  for (const l of layers) {
    const have = byDigest.get(l.digest);
    if (have) names.set(l.name, have);
    else {
      const local = fs.existsSync(layout.templateDir(l.name)) ? `${l.name}-${l.digest.slice(0, 8)}` : l.name;
      names.set(l.name, local);
      need[l.digest] = local;
    }
  }
  return { names, need };
}

export function checkNetworks(cfg: GuestConfig): void {
  for (const i of cfg.interfaces)
    if (i.dev && i.mode !== 'macvlan' && i.mode !== 'ipvlan' && !networkFor(i.dev))
      throw new JaulaError(
        'not_found',
        `Guest "${cfg.name}" is on the network "${i.dev}", which this host does not have: create it here with the same subnet first ("jaula network create ${i.dev} --subnet ...")`,
      );
}
