import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { liveStatus, readState } from '../guest/state.js';
import { loadAllConfigs, loadEveryConfig } from '../guest/store.js';
import { withLock } from '../os/lock.js';
import { paths } from '../os/paths.js';
import { hostAddresses, hostDevices } from '../network/assign.js';
import { bridgeExists, netnsDir, networkDown, removeBridge, removeFirewall } from '../network/apply.js';
import {
  deleteNetworkConfig,
  hostRoutes,
  listNetworks,
  loadNetwork,
  saveNetwork,
  subnetsOverlap,
  validateNetwork,
  type NetworkConfig,
} from '../network/networks.js';

export async function createNetwork(n: NetworkConfig): Promise<NetworkConfig> {
  validateNetwork(n);
  return withLock(paths().locks, 'build', 'Changing networks', async () => {
    if (loadNetwork(n.name))
      throw new JaulaError('exists', `A network named "${n.name}" already exists (see "jaula network list")`);
    for (const other of listNetworks()) {
      if (other.bridge === n.bridge)
        throw new JaulaError('exists', `The bridge "${n.bridge}" already belongs to network "${other.name}"`);
      if (subnetsOverlap(other.subnet, n.subnet))
        throw new JaulaError(
          'exists',
          `The subnet ${n.subnet} overlaps network "${other.name}" (${other.subnet})`,
        );
      if (n.subnet6 && other.subnet6 && subnetsOverlap(other.subnet6, n.subnet6))
        throw new JaulaError(
          'exists',
          `The subnet ${n.subnet6} overlaps network "${other.name}" (${other.subnet6})`,
        );
    }
    if (hostDevices().has(n.bridge))
      throw new JaulaError(
        'exists',
        `The host already has a device named "${n.bridge}": choose another bridge name`,
      );
    const gw = n.subnet.split('/')[0] as string;
    if (hostAddresses().has(gw))
      throw new JaulaError('exists', `The gateway address ${gw} is already an address of this host`);
    for (const r of hostRoutes())
      if (subnetsOverlap(r, n.subnet))
        throw new JaulaError(
          'exists',
          `The subnet ${n.subnet} overlaps the host's route to ${r}: choose a free subnet`,
        );
    saveNetwork(n);
    return n;
  });
}

export async function deleteNetwork(name: string): Promise<void> {
  await withLock(paths().locks, 'build', 'Changing networks', async () => {
    const n = loadNetwork(name);
    if (!n) throw new JaulaError('not_found', `There is no network "${name}" (see "jaula network list")`);
    const users = loadEveryConfig().filter((g) => g.interfaces.some((i) => i.dev === name));
    if (users.length)
      throw new JaulaError(
        'state',
        `Network "${name}" is used by guest${users.length > 1 ? 's' : ''} ${users.map((u) => `"${u.name}"`).join(', ')}: remove their interfaces first (jaula set NAME --remove-interface IF)`,
      );
    await removeBridge(n);
    deleteNetworkConfig(name);
    if (listNetworks().length === 0) await removeFirewall();
  });
}

export interface NetworkSummary extends NetworkConfig {
  up: boolean;
  guests: string[];
}

export function networkSummaries(): NetworkSummary[] {
  const all = loadAllConfigs();
  return listNetworks().map((n) => ({
    ...n,
    up: bridgeExists(n),
    guests: all.filter((g) => g.interfaces.some((i) => i.dev === n.name)).map((g) => g.name),
  }));
}

/** Remove network leftovers of guests that are not running (after a crash of jaula). */
export async function networkGc(): Promise<string[]> {
  const removed: string[] = [];
  let files: string[] = [];
  try {
    files = fs.readdirSync(netnsDir());
  } catch {
    /* none */
  }
  const byName = new Map(loadEveryConfig().map((c) => [c.name, c]));
  for (const f of files) {
    const cfg = byName.get(f);
    if (cfg && liveStatus(readState(f)) !== 'stopped') continue;
    if (cfg) await networkDown(cfg);
    else {
      fs.rmSync(`${netnsDir()}/${f}`, { force: true });
    }
    removed.push(f);
  }
  return removed;
}
