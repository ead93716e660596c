/**
 * A guest's high availability in a fleet (`jaula set NAME ha=on`, `jaula build --ha`): kept in
 * the [ha] table of its config.toml. Its owner host's jaulad sends it to a standby host every
 * `interval` seconds (core/ha/replicate.ts); when the owner's lease expires, the fleet's leader
 * starts it there from that replica (core/ha/failover.ts).
 */
import { JaulaError } from '../common/errors.js';
import { noneLeft, take, type Toml, type Where } from './toml.js';

export interface HaPolicy {
  /** The standby host (a fleet host's name), or "auto": the up host owning the fewest guests. */
  standby: string;
  /** Seconds between two replications. */
  interval: number;
}

export interface HaSettings {
  ha?: HaPolicy;
}

export const HA_DEFAULT_INTERVAL = 60;
export const HA_KEYS = ['ha', 'ha.standby', 'ha.interval'] as const;

export const isHaKey = (k: string): boolean => (HA_KEYS as readonly string[]).includes(k);

export function validateHaPolicy(p: HaPolicy): void {
  // (a fleet host's name: fleet/keys.ts's HOST_RE, which this floor may not import)
  if (p.standby !== 'auto' && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(p.standby))
    throw new JaulaError(
      'invalid',
      `Invalid ha.standby "${p.standby}": give a fleet host's name (see "jaula fleet hosts") or auto`,
    );
  if (!Number.isInteger(p.interval) || p.interval < 1 || p.interval > 86_400)
    throw new JaulaError(
      'invalid',
      `Invalid ha.interval "${p.interval}": give whole seconds between 1 and 86400 (e.g. ha.interval=60)`,
    );
}

function onOff(v: string): boolean {
  const s = v.trim().toLowerCase();
  if (['on', 'true', '1', 'yes'].includes(s)) return true;
  if (['off', 'false', '0', 'no', ''].includes(s)) return false;
  throw new JaulaError('invalid', `Invalid ha "${v}": give on or off (e.g. ha=on)`);
}

/**
 * A policy with `KEY=VALUE` changes applied (`jaula set`): `ha=on|off`, `ha.standby=HOST|auto`,
 * `ha.interval=SECONDS` (each of the last two also turns it on; `ha.interval=` is the default).
 */
export function changeHaPolicy(
  p: HaPolicy | undefined,
  changes: Readonly<Record<string, string>>,
): HaPolicy | undefined {
  let next: HaPolicy | undefined = p ? { ...p } : undefined;
  const on = (): HaPolicy => (next ??= { standby: 'auto', interval: HA_DEFAULT_INTERVAL });
  for (const [key, value] of Object.entries(changes)) {
    if (!isHaKey(key))
      throw new JaulaError('invalid', `Unknown key "${key}": the HA keys are ${HA_KEYS.join(', ')}`);
    const v = value.trim();
    if (key === 'ha') {
      if (onOff(v)) on();
      else next = undefined;
    } else if (key === 'ha.standby') on().standby = v || 'auto';
    else {
      const n = v === '' ? HA_DEFAULT_INTERVAL : Number(v);
      if (!/^\d*$/.test(v))
        throw new JaulaError(
          'invalid',
          `Invalid ha.interval "${v}": give whole seconds (e.g. ha.interval=60)`,
        );
      on().interval = n;
    }
  }
  if (next) validateHaPolicy(next);
  return next;
}

/** The [ha] table of a config. */
export function haPolicyFromToml(t: Toml | undefined, where: Where): HaPolicy | undefined {
  if (!t) return undefined;
  const standby = take<string>(t, 'standby', 'string', where) ?? 'auto';
  const interval = take<number>(t, 'interval', 'number', where) ?? HA_DEFAULT_INTERVAL;
  noneLeft(t, where);
  const p = { standby, interval };
  validateHaPolicy(p);
  return p;
}

export function haPolicyToToml(p: HaPolicy | undefined): Toml | undefined {
  return p ? { standby: p.standby, interval: p.interval } : undefined;
}
