import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../common/errors.js';
import { LOCK_EX, LOCK_NB, LOCK_SH, native } from './native.js';
import { mkdirp } from './fs.js';

/**
 * An flock(2) lock on a file: released by the kernel when the process dies, so a crash never
 * leaves a stale lock. Waiting polls with a non-blocking try, so the event loop keeps running.
 */
export class FileLock {
  private fd: number | undefined;
  /** `shared`: many holders at once (LOCK_SH), none while someone holds it exclusively. */
  constructor(
    readonly path: string,
    readonly shared = false,
  ) {}

  tryAcquire(): boolean {
    const fd = fs.openSync(this.path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    if (native().flock(fd, (this.shared ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
      this.fd = fd;
      return true;
    }
    fs.closeSync(fd);
    return false;
  }

  async acquire(what: string, timeoutMs = 120_000): Promise<this> {
    const deadline = Date.now() + timeoutMs;
    let delay = 5;
    while (!this.tryAcquire()) {
      if (Date.now() > deadline)
        throw new JaulaError(
          'busy',
          `${what} is busy: another jaula operation holds it (waited ${Math.round(timeoutMs / 1000)} s); try again when it ends`,
        );
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 100);
    }
    return this;
  }

  release(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

export async function withLock<T>(dir: string, name: string, what: string, fn: () => Promise<T>): Promise<T> {
  mkdirp(dir, 0o700);
  const lock = await new FileLock(join(dir, `${name}.lock`)).acquire(what);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
