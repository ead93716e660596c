import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ociResources } from './oci.js';
import {
  checkLimitsForVersion,
  formatCpuMax,
  formatLimit,
  limitsFromToml,
  limitsToToml,
  parseAssignment,
  parseCpuList,
  parseCpuMax,
  parseIoMax,
  parseNofile,
  setLimit,
  sharesToWeight,
  weightToShares,
  type Limits,
} from './limits.js';
import { formatBytesCompact, formatLimitBytes, parseLimitBytes } from '../common/size.js';

describe('limit values in human units', () => {
  it('parses and formats sizes (binary units)', () => {
    assert.equal(parseLimitBytes('512M'), 512 * 2 ** 20);
    assert.equal(parseLimitBytes('1.5G'), 1.5 * 2 ** 30);
    assert.equal(parseLimitBytes('64k'), 65536);
    assert.equal(parseLimitBytes('2GiB'), 2 * 2 ** 30);
    assert.equal(parseLimitBytes('1024'), 1024);
    assert.equal(parseLimitBytes('max'), 'max');
    for (const bad of ['', '12X', '-1M', 'lots', '1.5.2G'])
      assert.throws(() => parseLimitBytes(bad), /Invalid size/);
    assert.equal(formatLimitBytes(512 * 2 ** 20), '512M');
    assert.equal(formatLimitBytes(1.5 * 2 ** 30), '1536M');
    assert.equal(formatLimitBytes(1000), '1000');
    assert.equal(formatLimitBytes('max'), 'max');
    assert.equal(formatBytesCompact(1536), '1.5K');
    assert.equal(formatBytesCompact(300 * 2 ** 20), '300M');
  });
  it('takes cpu.max as a share of one CPU, QUOTA/PERIOD or max', () => {
    assert.deepEqual(parseCpuMax('50%'), { quota: 50000, period: 100000 });
    assert.deepEqual(parseCpuMax('150%'), { quota: 150000, period: 100000 });
    assert.deepEqual(parseCpuMax('20000/50000'), { quota: 20000, period: 50000 });
    assert.deepEqual(parseCpuMax('20000 50000'), { quota: 20000, period: 50000 });
    assert.deepEqual(parseCpuMax('max'), { quota: 'max', period: 100000 });
    assert.throws(() => parseCpuMax('0.5%'), /at least 1%/);
    assert.throws(() => parseCpuMax('half'), /Invalid cpu.max/);
    assert.throws(() => parseCpuMax('500/100'), /from 1000/);
    assert.equal(formatCpuMax({ quota: 50000, period: 100000 }), '50%');
    assert.equal(formatCpuMax({ quota: 20000, period: 50000 }), '20000/50000');
  });
  it('takes CPU lists, io.max per device and nofile', () => {
    assert.deepEqual(parseCpuList('0-2,5'), [0, 1, 2, 5]);
    assert.throws(() => parseCpuList('2-1'), /backwards/);
    assert.throws(() => parseCpuList('a'), /Invalid cpuset/);
    assert.deepEqual(parseIoMax('/dev/vda:rbps=10M,wiops=100'), {
      device: '/dev/vda',
      rbps: 10 * 2 ** 20,
      wiops: 100,
    });
    assert.deepEqual(parseIoMax('254:0:wbps=max'), { device: '254:0', wbps: 'max' });
    assert.throws(() => parseIoMax('/dev/vda:speed=1'), /Invalid io.max/);
    assert.throws(() => parseIoMax('vda:rbps=1M'), /under \/dev or MAJOR:MINOR/);
    assert.throws(() => parseIoMax('/dev/vda:rbps=0'), /above 0/);
    assert.deepEqual(parseNofile('4096'), { soft: 4096, hard: 4096 });
    assert.deepEqual(parseNofile('1024:8192'), { soft: 1024, hard: 8192 });
    assert.throws(() => parseNofile('9:3'), /soft limit/);
  });
  it('parses KEY=VALUE and refuses unknown keys and bad values', () => {
    assert.deepEqual(parseAssignment('memory.max=512M'), ['memory.max', '512M']);
    assert.deepEqual(parseAssignment('cpuset='), ['cpuset', '']);
    assert.throws(() => parseAssignment('colour=blue'), /^JaulaError: Unknown limit "colour"/);
    assert.throws(() => parseAssignment('memory.max'), /not KEY=VALUE/);
    const l: Limits = {};
    assert.throws(() => setLimit(l, 'cpu.weight', '0'), /from 1 to 10000/);
    assert.throws(() => setLimit(l, 'memory.max', '100K'), /at least 1M/);
    setLimit(l, 'io.max', '/dev/vda:rbps=1M');
    setLimit(l, 'io.max', '/dev/vda:wbps=2M');
    setLimit(l, 'io.max', '/dev/vdb:riops=5');
    assert.equal(formatLimit(l, 'io.max'), '/dev/vda:rbps=1M,wbps=2M /dev/vdb:riops=5');
  });
  it('maps v2 weights to v1 shares keeping ratios', () => {
    assert.equal(weightToShares(100), 1024);
    assert.equal(weightToShares(300) / weightToShares(100), 3);
    assert.equal(weightToShares(1), 10);
    assert.equal(weightToShares(10000), 102400);
    assert.equal(sharesToWeight(1024), 100);
  });
});

describe('the [limits] table', () => {
  it('round-trips, with dotted keys quoted or as nested tables', () => {
    const l = limitsFromToml(
      {
        'cpu.weight': 300,
        'memory.max': '512M',
        'io.max': ['/dev/vda:rbps=10M'],
        pids: { max: 'max' },
        nofile: 4096,
      },
      'f',
    );
    assert.deepEqual(l, {
      'cpu.weight': 300,
      'memory.max': 512 * 2 ** 20,
      'io.max': [{ device: '/dev/vda', rbps: 10 * 2 ** 20 }],
      'pids.max': 'max',
      nofile: { soft: 4096, hard: 4096 },
    });
    assert.deepEqual(limitsToToml(l), {
      'cpu.weight': 300,
      'memory.max': '512M',
      'pids.max': 'max',
      'io.max': ['/dev/vda:rbps=10M'],
      nofile: 4096,
    });
    assert.deepEqual(limitsFromToml(limitsToToml(l) as Record<string, unknown>, 'f'), l);
  });
  it('refuses unknown keys and bad values, naming where', () => {
    assert.throws(
      () => limitsFromToml({ 'cpu.speed': 3 }, 'In "x", [limits]'),
      /In "x", \[limits\]: unknown limit "cpu.speed"/,
    );
    assert.throws(() => limitsFromToml({ 'memory.max': 'lots' }, 'W'), /W: Invalid memory.max "lots"/);
    assert.throws(() => limitsFromToml({ 'io.max': '/dev/vda:rbps=1M' }, 'W'), /must be a list/);
    assert.throws(() => limitsFromToml({ cpuset: true }, 'W'), /string or a number/);
  });
});

describe('limits as OCI linux.resources', () => {
  const l: Limits = {
    'cpu.weight': 300,
    'cpu.max': { quota: 50000, period: 100000 },
    cpuset: '1',
    'memory.max': 256 * 2 ** 20,
    'memory.high': 200 * 2 ** 20,
    'memory.swap': 64 * 2 ** 20,
    'pids.max': 100,
    'io.weight': 200,
    'io.max': [{ device: '/dev/vda', rbps: 1048576, wiops: 'max' }],
  };
  const devices = { '/dev/vda': { major: 254, minor: 0 } };
  it('uses the classic fields on v1: shares, soft limit, memory+swap', () => {
    assert.deepEqual(ociResources(l, 1, devices), {
      pids: { limit: 100 },
      cpu: { shares: 3072, quota: 50000, period: 100000, cpus: '1' },
      memory: { limit: 268435456, reservation: 209715200, swap: 268435456 + 67108864 },
      blockIO: { weight: 200, throttleReadBpsDevice: [{ major: 254, minor: 0, rate: 1048576 }] },
    });
  });
  it('writes the v2 files verbatim through unified on v2', () => {
    assert.deepEqual(ociResources(l, 2, devices), {
      pids: { limit: 100 },
      cpu: { cpus: '1' },
      blockIO: { throttleReadBpsDevice: [{ major: 254, minor: 0, rate: 1048576 }] },
      unified: {
        'cpu.weight': '300',
        'cpu.max': '50000 100000',
        'memory.max': '268435456',
        'memory.high': '209715200',
        'memory.swap.max': '67108864',
        'io.weight': 'default 200',
      },
    });
  });
  it('defaults to a pids limit only; "max" lifts it', () => {
    assert.deepEqual(ociResources({}, 1), { pids: { limit: 4096 } });
    assert.deepEqual(ociResources({ 'pids.max': 'max' }, 2), { pids: { limit: -1 } });
  });
  it('refuses a swap limit without memory.max on v1 only', () => {
    assert.throws(
      () => checkLimitsForVersion({ 'memory.swap': 1024 }, 1),
      /needs a memory.max on this cgroup v1 host/,
    );
    checkLimitsForVersion({ 'memory.swap': 1024 }, 2);
    checkLimitsForVersion({ 'memory.swap': 1024, 'memory.max': 4096 }, 1);
  });
});
