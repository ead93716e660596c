/**
 * The v1 and v2 readers and writers against fake cgroup trees (plain files with the kernel's
 * contents), so that the v2 code is exercised on a v1 host too.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { V1Cgroup } from './v1.js';
import { V2Cgroup } from './v2.js';

const root = fs.mkdtempSync(join(tmpdir(), 'jaula-cgtest-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function tree(dir: string, files: Record<string, string>): void {
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(join(dir, f, '..'), { recursive: true });
    fs.writeFileSync(join(dir, f), text);
  }
}
const read = (p: string): string => fs.readFileSync(p, 'utf8');
const NONE = '9223372036854771712\n';
const MB = 2 ** 20;

describe('v1 guest cgroup', () => {
  const base = join(root, 'v1');
  const ctrls = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio'];
  const dirs = new Map(ctrls.map((c) => [c, join(base, c, 'jaula', 'g1')]));
  const mounts = new Map(ctrls.map((c) => [c, join(base, c)]));
  const d = (c: string, f: string): string => join(dirs.get(c) as string, f);
  tree(base, {
    'cpu/jaula/g1/cpu.shares': '1024\n',
    'cpu/jaula/g1/cpu.cfs_quota_us': '-1\n',
    'cpu/jaula/g1/cpu.cfs_period_us': '100000\n',
    'cpu/jaula/g1/cpu.stat': 'nr_periods 10\nnr_throttled 4\nthrottled_time 5000\n',
    'cpuacct/jaula/g1/cpuacct.usage': '2500000000\n',
    'cpuacct/jaula/g1/cpuacct.stat': 'user 200\nsystem 50\n',
    'cpuset/jaula/g1/cpuset.cpus': '0-1\n',
    'memory/jaula/g1/memory.limit_in_bytes': NONE,
    'memory/jaula/g1/memory.memsw.limit_in_bytes': NONE,
    'memory/jaula/g1/memory.soft_limit_in_bytes': NONE,
    'memory/jaula/g1/memory.usage_in_bytes': String(3 * MB),
    'memory/jaula/g1/memory.failcnt': '7\n',
    'memory/jaula/g1/memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
    'memory/jaula/g1/memory.stat': 'cache 0\nrss 0\ntotal_cache 1048576\ntotal_rss 2097152\n',
    'pids/jaula/g1/pids.max': 'max\n',
    'pids/jaula/g1/pids.current': '3\n',
    'pids/jaula/g1/pids.events': 'max 5\n',
    'pids/jaula/g1/cgroup.procs': '10\n11\n',
    'pids/jaula/g1/sub/cgroup.procs': '12\n',
    'blkio/jaula/g1/blkio.throttle.io_service_bytes_recursive':
      '254:0 Read 4096\n254:0 Write 512\nTotal 4608\n',
    'blkio/jaula/g1/blkio.throttle.io_serviced_recursive': '254:0 Read 1\n254:0 Write 2\nTotal 3\n',
    'blkio/jaula/g1/blkio.throttle.read_bps_device': '',
    'blkio/jaula/g1/blkio.throttle.write_bps_device': '',
    'blkio/jaula/g1/blkio.throttle.read_iops_device': '',
    'blkio/jaula/g1/blkio.throttle.write_iops_device': '',
    'cpu/cpu.cfs_quota_us': '-1\n',
    'blkio/blkio.throttle.read_bps_device': '',
  });
  const cg = new V1Cgroup(dirs, mounts);

  it('lists processes of the cgroup and below', () => {
    assert.deepEqual(cg.procs()?.sort(), [10, 11, 12]);
  });
  it('reads counters and limit hits', () => {
    const s = cg.stats({ detail: true });
    assert.equal(s.cpu.usageNs, 2.5e9);
    assert.equal(s.cpu.userNs, 2e9);
    assert.equal(s.cpu.throttled, 4);
    assert.equal(s.memory.current, 3 * MB);
    assert.equal(s.memory.limit, null);
    assert.equal(s.memory.limitHits, 7);
    assert.equal(s.memory.oomKills, 2);
    assert.equal(s.memory.file, MB);
    assert.deepEqual(s.pids, { current: 3, limit: null, refusals: 5 });
    assert.deepEqual(s.io, { readBytes: 4096, writeBytes: 512, readOps: 1, writeOps: 2 });
  });
  it('names the files it reads, and reads them through the caller when asked', () => {
    const paths = cg.statsPaths();
    assert.ok(paths.includes(d('cpuacct', 'cpuacct.usage')));
    assert.ok(!paths.includes(d('memory', 'memory.stat')), 'details only on request');
    assert.ok(cg.statsPaths({ detail: true }).includes(d('memory', 'memory.stat')));
    const asked: string[] = [];
    const s = cg.stats({ read: (p) => (asked.push(p), p.endsWith('pids.current') ? '9\n' : undefined) });
    assert.equal(s.pids.current, 9);
    assert.deepEqual(asked.sort(), [...paths].sort());
  });
  it('writes the v1 counterparts of the v2 knobs', () => {
    cg.apply(
      {
        'cpu.weight': 300,
        'cpu.max': { quota: 50000, period: 100000 },
        cpuset: '1',
        'memory.max': 256 * MB,
        'memory.swap': 64 * MB,
        'memory.high': 200 * MB,
        'pids.max': 100,
        'io.max': [{ device: '/dev/vda', rbps: MB, wbps: 'max' }],
      },
      { '/dev/vda': { major: 254, minor: 0 } },
    );
    assert.equal(read(d('cpu', 'cpu.shares')), '3072');
    assert.equal(read(d('cpu', 'cpu.cfs_quota_us')), '50000');
    assert.equal(read(d('cpuset', 'cpuset.cpus')), '1');
    assert.equal(read(d('memory', 'memory.limit_in_bytes')), String(256 * MB));
    assert.equal(
      read(d('memory', 'memory.memsw.limit_in_bytes')),
      String(320 * MB),
      'memsw = memory.max + swap',
    );
    assert.equal(
      read(d('memory', 'memory.soft_limit_in_bytes')),
      String(200 * MB),
      'memory.high is the soft limit',
    );
    assert.equal(read(d('pids', 'pids.max')), '100');
    assert.equal(read(d('blkio', 'blkio.throttle.read_bps_device')), '254:0 1048576');
    assert.equal(read(d('blkio', 'blkio.throttle.write_bps_device')), '254:0 0', '"max" removes the v1 rule');
    const live = cg.readLimits();
    assert.equal(live['cpu.weight'], '300');
    assert.equal(live['cpu.max'], '50%');
    assert.equal(live['memory.swap'], '64M');
  });
  it('keeps the swap amount when only memory.max changes', () => {
    cg.apply({ 'memory.max': 128 * MB }, {});
    assert.equal(read(d('memory', 'memory.memsw.limit_in_bytes')), String(192 * MB));
    cg.apply({ 'memory.max': 'max' }, {});
    assert.equal(read(d('memory', 'memory.limit_in_bytes')), '-1');
    assert.equal(read(d('memory', 'memory.memsw.limit_in_bytes')), '-1');
    assert.throws(
      () => cg.apply({ 'memory.swap': 64 * MB }, {}),
      /needs a memory.max on this cgroup v1 host/,
    );
  });
  it('names what the host lacks and why', () => {
    const m = cg.missing(['io.weight', 'cpu.max', 'pids.max']);
    assert.deepEqual(
      m.map((x) => x.file),
      ['blkio.weight'],
    );
    assert.match(m[0]?.why ?? '', /CFQ .* gone since Linux 5.0/);
    const noPids = new V1Cgroup(
      new Map([...dirs].filter(([c]) => c !== 'pids')),
      new Map([...mounts].filter(([c]) => c !== 'pids')),
    );
    assert.match(noPids.missing(['pids.max'])[0]?.why ?? '', /pids controller is not mounted/);
  });
});

describe('v2 guest cgroup', () => {
  const dir = join(root, 'v2', 'jaula', 'g1');
  tree(dir, {
    'cgroup.procs': '20\n21\n',
    'cpu.stat':
      'usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\nnr_periods 8\nnr_throttled 3\nthrottled_usec 1500\n',
    'cpu.weight': '100\n',
    'cpu.max': 'max 100000\n',
    'cpuset.cpus': '\n',
    'memory.current': String(5 * MB),
    'memory.max': 'max\n',
    'memory.high': 'max\n',
    'memory.swap.max': 'max\n',
    'memory.events': 'low 0\nhigh 2\nmax 6\noom 1\noom_kill 1\n',
    'memory.stat': 'anon 4194304\nfile 1048576\n',
    'pids.current': '2\n',
    'pids.max': '4096\n',
    'pids.events': 'max 0\n',
    'io.stat': '254:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n',
    'io.max': '',
  });
  const cg = new V2Cgroup(dir);
  it('reads counters and limit hits', () => {
    const s = cg.stats({ detail: true });
    assert.equal(s.cpu.usageNs, 3e9);
    assert.equal(s.cpu.systemNs, 1e9);
    assert.equal(s.cpu.throttledNs, 1.5e6);
    assert.equal(s.memory.limitHits, 6);
    assert.equal(s.memory.oomKills, 1);
    assert.equal(s.memory.anon, 4 * MB);
    assert.deepEqual(s.pids, { current: 2, limit: 4096, refusals: 0 });
    assert.deepEqual(s.io, { readBytes: 100, writeBytes: 200, readOps: 1, writeOps: 2 });
    assert.deepEqual(cg.procs(), [20, 21]);
  });
  it('writes the v2 files by their own names', () => {
    cg.apply(
      {
        'cpu.weight': 300,
        'cpu.max': { quota: 50000, period: 100000 },
        'memory.max': 256 * MB,
        'memory.high': 200 * MB,
        'memory.swap': 64 * MB,
        'io.max': [{ device: '254:0', rbps: MB, wiops: 'max' }],
      },
      { '254:0': { major: 254, minor: 0 } },
    );
    assert.equal(read(join(dir, 'cpu.weight')), '300');
    assert.equal(read(join(dir, 'cpu.max')), '50000 100000');
    assert.equal(read(join(dir, 'memory.high')), String(200 * MB));
    assert.equal(read(join(dir, 'memory.swap.max')), String(64 * MB), 'v2 swap is the swap alone');
    assert.equal(read(join(dir, 'io.max')), '254:0 rbps=1048576 wiops=max');
    const live = cg.readLimits();
    assert.equal(live['memory.max'], '256M');
    assert.equal(live['cpu.max'], '50%');
  });
  it('names a knob whose controller is not enabled', () => {
    const m = cg.missing(['io.weight', 'cpuset', 'pids.max']);
    assert.deepEqual(
      m.map((x) => x.file),
      ['io.weight'],
    );
  });
});
