import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { JaulaError } from '../common/errors.js';
import type { OciSpec } from './spec.js';
import {
  applyTestWeakening,
  testWeakeningRequested,
  TEST_WEAKEN_ENV,
  WEAKENED_ANNOTATION,
} from './testweaken.js';

/** A hardened spec as the hardening work may make it: user namespace, seccomp, limits. */
function hardened(): OciSpec {
  const spec = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/sbin/init'],
      env: ['PATH=/bin'],
      cwd: '/',
      capabilities: { bounding: ['CAP_CHOWN'], effective: ['CAP_CHOWN'], permitted: ['CAP_CHOWN'] },
      rlimits: [{ type: 'RLIMIT_CORE', soft: 0, hard: 0 }],
      noNewPrivileges: true,
      apparmorProfile: 'jaula-default',
    },
    root: { path: '/srv/rootfs', readonly: true },
    hostname: 'g1',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nodev'] },
    ],
    annotations: { 'org.jaula.guest': 'g1' },
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'user' }, { type: 'mount' }],
      uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
      seccomp: { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] },
      cgroupsPath: 'jaula/g1',
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        pids: { limit: 4096 },
        memory: { limit: 1 << 30 },
      },
      maskedPaths: ['/proc/kcore'],
      readonlyPaths: ['/proc/sys'],
    },
  };
  return spec as unknown as OciSpec;
}

describe('test-only weakened profile (JAULA_TEST_WEAKEN)', () => {
  it('leaves the spec alone when the variable is not set', () => {
    const spec = hardened();
    for (const env of [{}, { [TEST_WEAKEN_ENV]: '' }, { [TEST_WEAKEN_ENV]: '0' }])
      assert.equal(applyTestWeakening(spec, env, '/tmp/jaula-test'), spec);
  });

  it("is refused for the host's real instance, and for any value but 1", () => {
    assert.throws(
      () => applyTestWeakening(hardened(), { [TEST_WEAKEN_ENV]: '1' }, '/'),
      (e: unknown) => e instanceof JaulaError && e.code === 'invalid' && /test suite only/.test(e.message),
    );
    assert.throws(
      () => applyTestWeakening(hardened(), { [TEST_WEAKEN_ENV]: 'yes' }, '/tmp/jaula-test'),
      JaulaError,
    );
  });

  describe("compares the instance with the host's by device and inode, not by name", () => {
    const base = fs.mkdtempSync(join(tmpdir(), 'jaula-weaken-'));
    after(() => fs.rmSync(base, { recursive: true, force: true }));
    const on = { [TEST_WEAKEN_ENV]: '1' };
    const refused = (e: unknown): boolean =>
      e instanceof JaulaError && e.code === 'invalid' && /refused for the host's real guests/.test(e.message);

    it('refuses a JAULA_ROOT that is a symlink to /', () => {
      fs.symlinkSync('/', join(base, 'slash'));
      assert.throws(() => testWeakeningRequested(on, join(base, 'slash')), refused);
      assert.throws(() => applyTestWeakening(hardened(), on, join(base, 'slash')), refused);
    });

    it("refuses a root whose guests' configs, data or state are the host instance's own directories", () => {
      // A stand-in for the host's instance (its real one may hold no guests on this machine).
      const host = join(base, 'host');
      for (const d of ['etc/jaula/guests', 'var/lib/jaula/guests', 'run/jaula/guests'])
        fs.mkdirSync(join(host, d), { recursive: true });
      const mine = join(base, 'mine');
      fs.mkdirSync(mine);
      assert.equal(testWeakeningRequested(on, mine, host), true, 'an empty root of its own is a test root');
      for (const [link, to] of [
        ['etc', join(host, 'etc')],
        ['var', join(host, 'var')],
        ['run', join(host, 'run')],
      ] as const) {
        const root = join(base, `via-${link}`);
        fs.mkdirSync(root);
        fs.symlinkSync(to, join(root, link));
        assert.throws(() => testWeakeningRequested(on, root, host), refused, link);
      }
      const deep = join(base, 'deep');
      fs.mkdirSync(join(deep, 'etc/jaula'), { recursive: true });
      fs.symlinkSync(join(host, 'etc/jaula/guests'), join(deep, 'etc/jaula/guests'));
      assert.throws(() => testWeakeningRequested(on, deep, host), refused, 'etc/jaula/guests');
    });
  });

  it('makes a privileged-like spec in a test root, whatever hardening it carried', () => {
    const spec = hardened();
    const weak = applyTestWeakening(spec, { [TEST_WEAKEN_ENV]: '1' }, '/tmp/jaula-test');
    assert.notEqual(weak, spec, 'a copy');
    assert.deepEqual(spec, hardened(), 'the input is not changed');
    const raw = weak as unknown as { linux: Record<string, unknown>; process: Record<string, unknown> };
    assert.ok(weak.process.capabilities.bounding.includes('CAP_CHOWN'));
    assert.ok(weak.process.capabilities.bounding.length > 20, 'every capability jaula holds');
    assert.equal(weak.process.noNewPrivileges, false);
    assert.equal(raw.process['apparmorProfile'], undefined);
    assert.equal(weak.root.readonly, false);
    assert.deepEqual(
      weak.linux.namespaces.map((n) => n.type),
      ['pid', 'mount'],
    );
    for (const k of ['uidMappings', 'gidMappings', 'seccomp']) assert.equal(raw.linux[k], undefined, k);
    assert.deepEqual(weak.linux.maskedPaths, []);
    assert.deepEqual(weak.linux.readonlyPaths, []);
    assert.deepEqual(weak.linux.resources, { devices: [{ allow: true, access: 'rwm' }] });
    for (const m of weak.mounts.filter((x) => x.destination.startsWith('/sys')))
      assert.ok(!m.options?.includes('ro') && m.options?.includes('rw'), m.destination);
    assert.equal(weak.annotations[WEAKENED_ANNOTATION], 'true');
  });
});
