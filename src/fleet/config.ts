/**
 * This host's membership of a fleet: etc/jaula/fleet.json (the etcd endpoints, the name it has
 * in the fleet, its labels, the lease's TTL, which networks are the fleet's). Written by
 * `jaula fleet init|join`, removed by `leave`; jaulad reads it at start and holds the lease.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { readFileOr, writeFileAtomic } from '../os/fs.js';
import { paths } from '../os/paths.js';
import { Etcd } from './etcd.js';

export interface FleetConfig {
  endpoints: string[];
  host: string;
  labels: Record<string, string>;
  /** The lease's TTL in seconds: a host silent this long is gone, and fences itself. */
  ttl: number;
  /** Networks whose addresses are unique across the fleet (reserved in etcd). */
  networks: string[];
  /** Where this host's jaulad answers the other hosts (https://ADDR:PORT), if it does. */
  address?: string;
}

export const DEFAULT_TTL = 5;

export function fleetFile(): string {
  return join(paths().etc, 'fleet.json');
}

/** This host's fleet membership, or undefined when it is in no fleet. */
export function readFleetConfig(): FleetConfig | undefined {
  const text = readFileOr(fleetFile(), undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as FleetConfig;
  } catch (e) {
    throw new JaulaError(
      'invalid',
      `${fleetFile()} is not valid JSON (${(e as Error).message}): fix it, or remove it and run "jaula fleet join" again`,
    );
  }
}

export function writeFleetConfig(c: FleetConfig): void {
  fs.mkdirSync(paths().etc, { recursive: true });
  writeFileAtomic(fleetFile(), `${JSON.stringify(c, null, 2)}\n`, 0o600);
}

export function removeFleetConfig(): void {
  fs.rmSync(fleetFile(), { force: true });
}

/** The etcd client of this host's fleet (undefined outside a fleet). */
export function fleetEtcd(c: FleetConfig | undefined = readFleetConfig()): Etcd | undefined {
  return c ? new Etcd({ endpoints: c.endpoints }) : undefined;
}
