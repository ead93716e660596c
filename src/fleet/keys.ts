/**
 * Where the fleet keeps what in etcd (every key under /jaula/):
 *
 *   /jaula/fleet                   the fleet itself: {created, ttl} (made by `jaula fleet init`)
 *   /jaula/hosts/HOST              a host's record (capacity, labels, state), on its lease
 *   /jaula/names/GUEST             the guest's name, reserved: its owner host ({host, context})
 *   /jaula/contexts/N              context N, reserved: the guest's name
 *   /jaula/macs/MAC                a MAC, reserved: the guest's name
 *   /jaula/addrs/NETWORK/IP        an address in a fleet network, reserved: the guest's name
 *   /jaula/guests/HOST/GUEST       a guest as its host last saw it (list --fleet), on its lease
 *   /jaula/spread/GROUP/GUEST      a guest of an anti-affinity group (its mark spread.GROUP)
 *
 * A name's owner changes only by a transaction that compares the old owner (migration, HA);
 * the records on a lease vanish with a host that stops renewing it.
 */
export const ROOT = '/jaula/';
export const FLEET_KEY = `${ROOT}fleet`;
export const HOSTS = `${ROOT}hosts/`;
export const NAMES = `${ROOT}names/`;
export const CONTEXTS = `${ROOT}contexts/`;
export const MACS = `${ROOT}macs/`;
export const ADDRS = `${ROOT}addrs/`;
export const GUESTS = `${ROOT}guests/`;

export const hostKey = (host: string): string => `${HOSTS}${host}`;
export const nameKey = (guest: string): string => `${NAMES}${guest}`;
export const contextKey = (ctx: number): string => `${CONTEXTS}${ctx}`;
export const macKey = (mac: string): string => `${MACS}${mac.toLowerCase()}`;
/** An address without its prefix length, in its network. */
export const addrKey = (network: string, address: string): string =>
  `${ADDRS}${network}/${address.replace(/\/\d+$/, '')}`;
export const guestKey = (host: string, guest: string): string => `${GUESTS}${host}/${guest}`;
export const SPREAD = `${ROOT}spread/`;
export const spreadKey = (group: string, guest: string): string => `${SPREAD}${group}/${guest}`;

/** The owner record of a guest's name. */
export interface OwnerRecord {
  host: string;
  context: number;
}

/** Host names: what a host is called in the fleet (its hostname by default). */
export const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
