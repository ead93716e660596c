import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { GuestConfig } from '../core/config.js';
import { projectDir } from '../os/paths.js';
import { buildSpec, GUEST_CAPS, initArgs } from './spec.js';

const cfg: GuestConfig = {
  name: 'vs01',
  context: 1001,
  hostname: 'vs01',
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
  build: { method: 'skeleton', args: [], created: '' },
};
const input = {
  cfg,
  rootfs: '/var/lib/jaula/guests/vs01/rootfs',
  cgroupsPath: 'jaula/vs01',
  initBin: '/opt/jaula/native/out/jaula-init',
  nofileHard: 4096,
  fstab: [
    { source: 'none', target: '/proc', type: 'proc', options: [] },
    { source: 'none', target: '/tmp', type: 'tmpfs', options: ['size=16m', 'mode=1777'] },
    { source: '/srv/share', target: '/srv/share', type: 'none', options: ['bind', 'ro'] },
    { source: 'none', target: '/sys', type: 'sysfs', options: ['rw'] },
  ],
};
const baseline = join(projectDir, 'src/runtime/testdata/config.baseline.json');

describe('OCI spec builder', () => {
  it('is a pure function of the config, matching the committed baseline', () => {
    const spec = buildSpec(input);
    assert.deepEqual(buildSpec(input), spec, 'same input, same output');
    const text = JSON.stringify(spec, null, 2) + '\n';
    if (process.env['UPDATE_BASELINE']) fs.writeFileSync(baseline, text);
    assert.equal(
      text,
      fs.readFileSync(baseline, 'utf8'),
      'run with UPDATE_BASELINE=1 after an intended change',
    );
  });
  it('keeps /sys read-only even when the fstab asks otherwise, and binds read-only as asked', () => {
    const spec = buildSpec(input);
    const sys = spec.mounts.find((m) => m.destination === '/sys');
    assert.ok(sys?.options?.includes('ro'));
    const share = spec.mounts.find((m) => m.destination === '/srv/share');
    assert.deepEqual(share, {
      destination: '/srv/share',
      type: 'bind',
      source: '/srv/share',
      options: ['bind', 'ro'],
    });
  });
  it('uses every namespace but the user one, and keeps dangerous capabilities out', () => {
    const spec = buildSpec(input);
    assert.deepEqual(spec.linux.namespaces.map((n) => n.type).sort(), [
      'cgroup',
      'ipc',
      'mount',
      'network',
      'pid',
      'uts',
    ]);
    for (const c of [
      'CAP_SYS_ADMIN',
      'CAP_SYS_MODULE',
      'CAP_SYS_RAWIO',
      'CAP_SYS_TIME',
      'CAP_SYSLOG',
      'CAP_BPF',
    ])
      assert.ok(!GUEST_CAPS.includes(c), c);
    assert.ok(GUEST_CAPS.includes('CAP_SYS_BOOT'), 'halt and reboot inside need it');
  });
  it('picks the init per style and mounts jaula-init only when used', () => {
    assert.deepEqual(initArgs(cfg), ['/sbin/init']);
    assert.deepEqual(initArgs({ ...cfg, initstyle: 'sysv' }), [
      '/dev/.jaula-init',
      '-k',
      '-s',
      '/etc/init.d/rc',
      '--',
      '/etc/init.d/rc',
      '3',
    ]);
    assert.deepEqual(initArgs({ ...cfg, initstyle: 'cmd', cmd: ['/bin/sleep', '1'] }), [
      '/dev/.jaula-init',
      '--',
      '/bin/sleep',
      '1',
    ]);
    assert.ok(!buildSpec(input).mounts.some((m) => m.destination === '/dev/.jaula-init'));
    assert.ok(
      buildSpec({ ...input, cfg: { ...cfg, initstyle: 'sysv' } }).mounts.some(
        (m) => m.destination === '/dev/.jaula-init',
      ),
    );
  });
});
