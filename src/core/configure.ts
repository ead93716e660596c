import { JaulaError } from '../common/errors.js';
import { validateHostname, validateName } from '../common/names.js';
import { assignInterfaces } from '../network/assign.js';
import { formatForward, type ForwardSpec } from '../guest/forward.js';
import type { InterfaceSpec } from '../guest/ifspec.js';
import { withLock } from '../os/lock.js';
import { paths } from '../os/paths.js';
import {
  RUNTIME_CHOICES,
  validateConfig,
  validateInitStyle,
  type GuestConfig,
  type RuntimeChoice,
} from '../guest/config.js';
import { withGuestLock } from '../guest/locks.js';
import { guestLog } from '../guest/log.js';
import { changeHaPolicy } from '../guest/ha-policy.js';
import { changeSnapshotPolicy } from '../guest/snapshot-policy.js';
import { loadConfig, loadEveryConfig, saveConfig } from '../guest/store.js';

/** Changes to a guest's stored config (they apply at its next start). */
export interface ConfigChanges {
  hostname?: string;
  initstyle?: string;
  cmd?: string[];
  marks?: string[];
  depends?: string[];
  stopTimeout?: number;
  /** The OCI runtime it runs under from its next start (runc for live moves). */
  runtime?: string;
  /** Replace all interfaces. */
  interfaces?: InterfaceSpec[];
  addInterfaces?: InterfaceSpec[];
  removeInterfaces?: string[];
  forwards?: ForwardSpec[];
  addForwards?: ForwardSpec[];
  removeForwards?: ForwardSpec[];
  /** Incus' snapshots.* keys and their values ("" removes one): guest/snapshot-policy.ts. */
  snapshots?: Record<string, string>;
  /** ha, ha.standby, ha.interval and their values: guest/ha-policy.ts. */
  ha?: Record<string, string>;
}

/**
 * Change a guest's config under the same lock as builds, so that addresses, MACs and forwards
 * are checked against every other guest (no two guests can take the same one).
 */
export async function configureGuest(name: string, ch: ConfigChanges): Promise<GuestConfig> {
  return withLock(paths().locks, 'build', 'Changing guest configs', async () => {
    const cfg = loadConfig(name);
    const next: GuestConfig = { ...cfg, interfaces: [...cfg.interfaces], forwards: [...cfg.forwards] };
    if (ch.hostname !== undefined) next.hostname = validateHostname(ch.hostname);
    if (ch.initstyle !== undefined) next.initstyle = validateInitStyle(ch.initstyle);
    if (ch.cmd !== undefined) next.cmd = ch.cmd;
    if (ch.marks !== undefined) next.marks = ch.marks.map((m) => validateName(m, 'mark'));
    if (ch.depends !== undefined) next.depends = ch.depends.map((d) => validateName(d, 'dependency'));
    if (ch.stopTimeout !== undefined) next.stopTimeout = ch.stopTimeout;
    if (ch.runtime !== undefined) {
      if (!(RUNTIME_CHOICES as readonly string[]).includes(ch.runtime))
        throw new JaulaError(
          'invalid',
          `Runtime "${ch.runtime}" is not one jaula knows: use ${RUNTIME_CHOICES.join(', ')} (e.g. --runtime runc)`,
        );
      next.runtime = ch.runtime as RuntimeChoice;
    }
    if (ch.interfaces !== undefined) next.interfaces = ch.interfaces;
    for (const n of ch.removeInterfaces ?? []) {
      const at = next.interfaces.findIndex((i) => i.name === n);
      if (at < 0)
        throw new JaulaError(
          'not_found',
          `Guest "${name}" has no interface "${n}" (see "jaula list --format json")`,
        );
      next.interfaces.splice(at, 1);
    }
    next.interfaces.push(...(ch.addInterfaces ?? []));
    if (ch.forwards !== undefined) next.forwards = ch.forwards;
    for (const f of ch.removeForwards ?? []) {
      const at = next.forwards.findIndex((x) => formatForward(x) === formatForward(f));
      if (at < 0) throw new JaulaError('not_found', `Guest "${name}" has no forward ${formatForward(f)}`);
      next.forwards.splice(at, 1);
    }
    next.forwards.push(...(ch.addForwards ?? []));
    if (ch.snapshots !== undefined) {
      const p = changeSnapshotPolicy(cfg.snapshots, ch.snapshots, name);
      if (p) next.snapshots = p;
      else delete next.snapshots;
    }
    if (ch.ha !== undefined) {
      const p = changeHaPolicy(cfg.ha, ch.ha);
      if (p && next.privileged)
        throw new JaulaError(
          'unsupported',
          `Guest "${name}" is privileged: its replica could not be sent over TCP (its root is the host's root), so it cannot be HA`,
        );
      if (p) next.ha = p;
      else delete next.ha;
      // Off: its replica record goes first (the fleet no longer fails it over), then its state here.
      if (!p && cfg.ha) {
        const { haOff } = await import('./ha/replicate.js');
        await withGuestLock(name, () => haOff(name));
      }
    }
    // Unnamed new interfaces get the next free ethN name.
    const used = new Set(next.interfaces.map((i) => i.name).filter(Boolean));
    let k = 0;
    for (const i of next.interfaces) {
      if (i.name) continue;
      while (used.has(`eth${k}`)) k++;
      i.name = `eth${k}`;
      used.add(i.name);
    }
    next.interfaces = assignInterfaces(next, loadEveryConfig()).interfaces;
    validateConfig(next);
    saveConfig(next);
    guestLog(name, 'config changed');
    return next;
  });
}
