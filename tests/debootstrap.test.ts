/**
 * The debootstrap cache shares the base system (release, variant, mirror and init): a build with
 * extra packages installs them on top of the cached base instead of running debootstrap again,
 * and the README's plain form uses the base whatever builds came before, without the network.
 * The base comes from the test cache (JAULA_TEST_CACHE, as in debian.test.ts: made there once
 * when absent); the builds here use a cache of their own, starting with that base only.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { debootstrapCacheFile, parseDebootstrapArgs } from '../src/core/methods/debootstrap.js';
import { TestRoot } from './helpers.js';

const shared = process.env['JAULA_TEST_CACHE'] ?? '/var/cache/jaula-test';
const t = new TestRoot();
const cache = t.path('cache');
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

/** The network is out of reach: debootstrap (wget) and apt would fail to download anything. */
const offline = {
  http_proxy: 'http://127.0.0.1:9',
  https_proxy: 'http://127.0.0.1:9',
  HTTP_PROXY: 'http://127.0.0.1:9',
};
const build = (name: string, extra: string[], env: NodeJS.ProcessEnv = {}) =>
  t.jaula(['build', name, '-m', 'debootstrap', '--', '-d', 'bookworm', ...extra], {
    env: { JAULA_CACHE_DIR: cache, ...env },
    timeoutMs: 20 * 60_000,
  });
const cached = (): string[] =>
  fs.readdirSync(join(cache, 'debootstrap')).filter((f) => f.endsWith('.tar.zst'));

describe('the debootstrap cache', () => {
  before(() => {
    // The base system of bookworm (minbase, sysvinit, Debian's mirror) in the test cache: the
    // plain form's cache file.
    const seed = new TestRoot('jaula-test-', { JAULA_CACHE_DIR: shared });
    try {
      const r = seed.ok(['build', 'seed', '-m', 'debootstrap', '-q', '--', '-d', 'bookworm'], {
        timeoutMs: 20 * 60_000,
      });
      assert.match(r.stdout, /Built guest "seed"/);
    } finally {
      assert.deepEqual(seed.cleanup(), []);
    }
    const arch = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim() || 'amd64';
    const file = basename(debootstrapCacheFile(parseDebootstrapArgs(['-d', 'bookworm']), arch));
    const base = join(shared, 'debootstrap', file);
    fs.mkdirSync(join(cache, 'debootstrap'), { recursive: true });
    fs.copyFileSync(base, join(cache, 'debootstrap', file));
  });

  it('installs extra packages on top of the cached base system, without running debootstrap again', () => {
    const r = build('extra', ['--include', 'sudo']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Using the cached bookworm base system/);
    assert.doesNotMatch(r.stderr, /Running debootstrap/);
    assert.match(r.stderr, /Installing sudo on top of the base system/);
    assert.ok(fs.existsSync(join(t.guestRoot('extra'), 'usr/bin/sudo')), 'sudo is installed');
    assert.ok(fs.existsSync(join(t.guestRoot('extra'), 'sbin/init')), 'with the init of the base');
    assert.equal(cached().length, 2, 'the base, and the base with sudo');
  });

  it("gives the README's plain form the base, without the network", () => {
    const plain = build('plain', [], offline);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stderr, /Using the cached bookworm tree/);
    assert.doesNotMatch(plain.stderr, /Running debootstrap|Installing/);
    assert.equal(fs.existsSync(join(t.guestRoot('plain'), 'usr/bin/sudo')), false, 'the base has no sudo');
    assert.ok(fs.existsSync(join(t.guestRoot('plain'), 'sbin/init')));
    for (const n of ['extra', 'plain']) t.ok(['delete', n]);
  });
});
