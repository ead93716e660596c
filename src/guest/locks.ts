import { withLock } from '../os/lock.js';
import { paths } from '../os/paths.js';

/** Serialise all operations on one guest (across processes: the lock is an flock). */
export function withGuestLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  return withLock(paths().locks, `guest-${name}`, `Guest "${name}"`, fn);
}
