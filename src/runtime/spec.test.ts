import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { GuestConfig } from '../guest/config.js';
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
  it('applies limits in the terms of the host cgroup version, with a pids limit by default', () => {
    assert.deepEqual(buildSpec(input).linux.resources.pids, { limit: 4096 });
    const limited = {
      ...cfg,
      limits: { 'cpu.weight': 300, 'memory.max': 2 ** 28, nofile: { soft: 512, hard: 2048 } },
    };
    const v1 = buildSpec({ ...input, cfg: limited, cgroupVersion: 1 }).linux.resources;
    assert.deepEqual(v1.cpu, { shares: 3072 });
    assert.deepEqual(v1.memory, { limit: 2 ** 28 });
    assert.equal(v1.unified, undefined);
    const v2 = buildSpec({ ...input, cfg: limited, cgroupVersion: 2 });
    assert.deepEqual(v2.linux.resources.unified, { 'cpu.weight': '300', 'memory.max': String(2 ** 28) });
    assert.deepEqual(v2.process.rlimits[0], { type: 'RLIMIT_NOFILE', soft: 512, hard: 2048 });
  });
  it("binds lxcfs's files over /proc and /sys, and sends sysinfo(2) to the supervisor", () => {
    const spec = buildSpec({ ...input, lxcfs: '/run/jaula/lxcfs', sysinfoListener: '/run/x/seccomp.sock' });
    const meminfo = spec.mounts.find((m) => m.destination === '/proc/meminfo');
    assert.deepEqual(meminfo, {
      destination: '/proc/meminfo',
      type: 'bind',
      source: '/run/jaula/lxcfs/proc/meminfo',
      // (nosuid,nodev: runc must keep lxcfs's locked flags on the read-only remount)
      options: ['bind', 'ro', 'nosuid', 'nodev'],
    });
    const proc = spec.mounts.findIndex((m) => m.destination === '/proc');
    assert.ok(spec.mounts.indexOf(meminfo) > proc, "over the guest's /proc, not under it");
    assert.ok(spec.mounts.some((m) => m.destination === '/sys/devices/system/cpu/online'));
    const sc = spec.linux.seccomp;
    assert.equal(sc?.listenerPath, '/run/x/seccomp.sock');
    assert.equal(spec.annotations['org.criu.config'], undefined);
    const c = buildSpec({ ...input, criuConfig: '/run/jaula/criu/g/criu.conf' });
    assert.equal(c.annotations['org.criu.config'], '/run/jaula/criu/g/criu.conf');
    assert.deepEqual(
      sc?.syscalls.filter((r) => r.names.includes('sysinfo')),
      [{ names: ['sysinfo'], action: 'SCMP_ACT_NOTIFY' }],
    );
    assert.ok(
      sc?.syscalls.some((r) => r.names.includes('kexec_load') && r.action === 'SCMP_ACT_ERRNO'),
      "the profile's refusals stay",
    );
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
