import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { GuestConfig } from './config.js';

// This file's own instance: paths() reads JAULA_ROOT once, at its first call (below).
const root = fs.mkdtempSync(join(tmpdir(), 'jaula-store-unit-'));
process.env['JAULA_ROOT'] = root;
const { loadEveryConfig, saveConfig } = await import('./store.js');
const { paths } = await import('../os/paths.js');

const cfg = (name: string, hostname: string): GuestConfig => ({
  name,
  context: name === 'aa' ? 1001 : 1002,
  hostname,
  initstyle: 'plain',
  cmd: [],
  marks: [],
  depends: [],
  runtime: 'auto',
  privileged: false,
  profile: 'default',
  stopTimeout: 30,
  storage: { driver: 'dir' },
  interfaces: [],
  forwards: [],
  build: { method: 'skeleton', args: [], created: '2026-01-01T00:00:00.000Z' },
});

const hostnames = (): Record<string, string> =>
  Object.fromEntries(loadEveryConfig().map((c) => [c.name, c.hostname]));

/** Wait (polling) until the file's last change is older than the cache's racy window (2 s). */
function ageOf(file: string, ms: number): void {
  while (Date.now() - fs.statSync(file).ctimeMs < ms)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
}

describe('loadEveryConfig (parsed once per process, read again when a file changed)', () => {
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('sees a config edited in place (same size), replaced, added and removed since its last call', () => {
    saveConfig(cfg('aa', 'host-a1'));
    saveConfig(cfg('bb', 'host-b1'));
    const fa = paths().guestConfigFile('aa');
    ageOf(fa, 2100);
    ageOf(paths().guestConfigFile('bb'), 2100);
    assert.deepEqual(hostnames(), { aa: 'host-a1', bb: 'host-b1' }); // (parsed, and kept)
    assert.deepEqual(hostnames(), { aa: 'host-a1', bb: 'host-b1' });
    // In place, the same number of bytes: the inode and size stay, the times move.
    const fd = fs.openSync(fa, 'r+');
    const text = fs.readFileSync(fa, 'utf8');
    fs.writeSync(fd, text.replace('host-a1', 'host-a2'), 0, 'utf8');
    fs.closeSync(fd);
    assert.equal(fs.statSync(fa).size, Buffer.byteLength(text));
    saveConfig(cfg('bb', 'host-b2')); // (replaced by a rename, as jaula writes it)
    saveConfig(cfg('cc', 'host-c1'));
    assert.deepEqual(hostnames(), { aa: 'host-a2', bb: 'host-b2', cc: 'host-c1' });
    fs.rmSync(paths().guestConf('bb'), { recursive: true });
    assert.deepEqual(hostnames(), { aa: 'host-a2', cc: 'host-c1' });
  });
});
