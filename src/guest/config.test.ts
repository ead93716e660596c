import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig, serializeConfig, type GuestConfig } from './config.js';
import { parseFstab } from './fstab.js';

const cfg: GuestConfig = {
  name: 'vs01',
  context: 1001,
  hostname: 'vs01.example',
  initstyle: 'plain',
  cmd: [],
  marks: ['default'],
  depends: ['db'],
  runtime: 'auto',
  privileged: false,
  profile: 'default',
  stopTimeout: 30,
  storage: { driver: 'dir' },
  interfaces: [{ name: 'vs01', dev: 'eth1', address: '192.168.39.1/24' }],
  forwards: [],
  build: { method: 'skeleton', args: [], created: '2026-01-01T00:00:00.000Z' },
};

describe('guest config (TOML)', () => {
  it('round-trips', () => {
    const text = serializeConfig(cfg);
    assert.match(text, /^context = 1001$/m);
    assert.deepEqual(parseConfig(text, 'x'), cfg);
  });
  it('refuses unknown settings, wrong types and invalid values, naming the file', () => {
    const text = serializeConfig(cfg);
    assert.throws(
      () => parseConfig('colour = "blue"\n' + text, '/etc/x.toml'),
      /In "\/etc\/x.toml", line 1: unknown setting "colour"/,
    );
    assert.throws(
      () => parseConfig(text + 'speed = 3\n', '/etc/x.toml'),
      new RegExp(`In "/etc/x.toml", interface 1, line ${text.split('\n').length}: unknown setting "speed"`),
    );
    assert.throws(
      () => parseConfig(text.replace('context = 1001', 'context = "1001"'), 'f'),
      /"context" must be a number/,
    );
    assert.throws(
      () => parseConfig(text.replace('initstyle = "plain"', 'initstyle = "upstart"'), 'f'),
      /Unknown init style/,
    );
    assert.throws(() => parseConfig(text.replace('context = 1001', 'context = 1'), 'f'), /out of range/);
    assert.throws(() => parseConfig('name = ', 'f'), /In "f", line 1, column \d+: not valid TOML/);
    assert.throws(
      () => parseConfig(text.replace('depends = [ "db" ]', 'depends = [ "vs01" ]'), 'f'),
      /cannot depend on itself/,
    );
  });
  it('keeps resource limits in a [limits] table, refusing unknown ones', () => {
    const withLimits: GuestConfig = {
      ...cfg,
      limits: {
        'cpu.weight': 300,
        'memory.max': 512 * 2 ** 20,
        'io.max': [{ device: '/dev/vda', rbps: 2 ** 20 }],
      },
    };
    const text = serializeConfig(withLimits);
    assert.match(text, /^\[limits\]$/m);
    assert.match(text, /^"memory.max" = "512M"$/m);
    assert.deepEqual(parseConfig(text, 'x'), withLimits);
    assert.deepEqual(parseConfig(serializeConfig(cfg) + '\n[limits]\ncpu.weight = 50\n', 'x').limits, {
      'cpu.weight': 50,
    });
    assert.throws(
      () => parseConfig(text + '"cpu.turbo" = 1\n', '/etc/x.toml'),
      /In "\/etc\/x.toml", \[limits\], line \d+: unknown limit "cpu.turbo"/,
    );
    assert.throws(() => parseConfig(text.replace('"512M"', '"512Q"'), 'f'), /Invalid memory.max "512Q"/);
  });
  it('keeps automatic snapshots in a [snapshots] table, refusing unknown settings and bad values', () => {
    const withSnaps: GuestConfig = {
      ...cfg,
      snapshots: {
        schedule: '0 3 * * *, @weekly',
        stopped: true,
        expiry: '1w 3d',
        pattern: 'auto-{YYYY}{MM}{DD}',
      },
    };
    const text = serializeConfig(withSnaps);
    assert.match(text, /^\[snapshots\]$/m);
    assert.match(text, /^schedule_stopped = true$/m);
    assert.deepEqual(parseConfig(text, 'x'), withSnaps);
    assert.equal(parseConfig(serializeConfig(cfg) + '\n[snapshots]\n', 'x').snapshots, undefined);
    assert.throws(
      () => parseConfig(text + 'keep = 3\n', '/etc/x.toml'),
      /In "\/etc\/x.toml", \[snapshots\], line \d+: unknown setting "keep"/,
    );
    assert.throws(
      () => parseConfig(text.replace('schedule_stopped = true', 'schedule_stopped = "yes"'), 'f'),
      /\[snapshots\], line \d+: "schedule_stopped" must be a boolean/,
    );
    assert.throws(
      () => parseConfig(text.replace('0 3 * * *', '0 24 * * *'), 'f'),
      /Invalid snapshots.schedule "0 24 \* \* \*, @weekly": the hour field has 24/,
    );
    assert.throws(
      () => parseConfig(text.replace('1w 3d', '10 days'), 'f'),
      /Invalid snapshots.expiry "10 days"/,
    );
  });
});

describe('per-guest fstab', () => {
  it("parses the seed's syntax, escapes and bind options", () => {
    const e = parseFstab(
      '# comment\nnone /proc proc defaults 0 0\n/srv/a\\040b /mnt/x none bind,ro 0 0\n\n',
      'fstab',
    );
    assert.deepEqual(e, [
      { source: 'none', target: '/proc', type: 'proc', options: [] },
      { source: '/srv/a b', target: '/mnt/x', type: 'none', options: ['bind', 'ro'] },
    ]);
  });
  it('refuses relative targets, dot-dot, the root and relative bind sources', () => {
    assert.throws(() => parseFstab('none tmp tmpfs defaults', 'f'), /absolute path/);
    assert.throws(() => parseFstab('none /a/../../etc tmpfs defaults', 'f'), /must not contain "\.\."/);
    assert.throws(() => parseFstab('none / tmpfs defaults', 'f'), /root/);
    assert.throws(() => parseFstab('rel /mnt none bind', 'f'), /absolute host path/);
    assert.throws(() => parseFstab('justone', 'f'), /line 1/);
  });
});
