import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseBlkioRecursive,
  parseCgroupMounts,
  parseFlatKeyed,
  parseIoStat,
  parseNetDev,
  parsePasswd,
  parsePidList,
  parseProcCgroup,
  parseV1Limit,
  parseV1Throttle,
  parseV2CpuMax,
  parseV2IoMax,
  parseV2Limit,
} from './parse.js';

// Sample contents as the kernel writes them (Linux 6.x).
const V1_CPU_STAT = 'nr_periods 120\nnr_throttled 37\nthrottled_time 1843000000\nnr_bursts 0\nburst_time 0\n';
const V2_CPU_STAT =
  'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\ncore_sched.force_idle_usec 0\nnr_periods 50\nnr_throttled 12\nthrottled_usec 90000\nnr_bursts 0\nburst_usec 0\n';
const V1_OOM = 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n';
const V2_MEMORY_EVENTS = 'low 0\nhigh 14\nmax 9\noom 1\noom_kill 1\noom_group_kill 0\n';
const PIDS_EVENTS = 'max 31\n';
const V1_BLKIO =
  '254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 12288\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 12288\n7:0 Read 100\n7:0 Write 0\nTotal 12388\n';
const V2_IO_STAT =
  '254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n7:0 rbytes=100 wbytes=0 rios=3 wios=0 dbytes=0 dios=0\n';
const HYBRID_CGROUP =
  '9:name=systemd:/\n8:pids:/a/jaula-x/g1\n4:memory:/a/jaula-x/g1\n3:cpuset:/a/jaula-x/g1\n2:cpuacct:/a/jaula-x/g1\n1:cpu:/a/jaula-x/g1\n0::/\n';
const COMOUNTED_CGROUP = '5:cpu,cpuacct:/jaula/g1\n4:memory:/jaula/g1\n0::/user.slice\n';
const V2_CGROUP = '0::/system.slice/jaula/g1\n';
const HYBRID_MOUNTINFO = [
  '25 23 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '27 25 0:24 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct',
  '29 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '34 25 0:31 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '35 25 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  '40 25 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
].join('\n');
const V2_MOUNTINFO =
  '30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n';

describe('cgroup file parsers (v1 and v2 samples)', () => {
  it('reads flat keyed files of both versions', () => {
    const v1 = parseFlatKeyed(V1_CPU_STAT);
    assert.equal(v1.get('nr_throttled'), 37);
    assert.equal(v1.get('throttled_time'), 1843000000);
    const v2 = parseFlatKeyed(V2_CPU_STAT);
    assert.equal(v2.get('usage_usec'), 2500000);
    assert.equal(v2.get('throttled_usec'), 90000);
    assert.equal(parseFlatKeyed(V1_OOM).get('oom_kill'), 2);
    const ev = parseFlatKeyed(V2_MEMORY_EVENTS);
    assert.equal(ev.get('max'), 9);
    assert.equal(ev.get('oom_kill'), 1);
    assert.equal(parseFlatKeyed(PIDS_EVENTS).get('max'), 31);
  });
  it('reads limits: v1 numbers (huge = none) and v2 "max"', () => {
    assert.equal(parseV1Limit('9223372036854771712\n'), null);
    assert.equal(parseV1Limit('-1\n'), null);
    assert.equal(parseV1Limit('268435456\n'), 268435456);
    assert.equal(parseV2Limit('max\n'), null);
    assert.equal(parseV2Limit('268435456\n'), 268435456);
    assert.deepEqual(parseV2CpuMax('max 100000\n'), { quota: null, period: 100000 });
    assert.deepEqual(parseV2CpuMax('50000 100000\n'), { quota: 50000, period: 100000 });
  });
  it('sums block I/O over devices: v1 blkio.throttle and v2 io.stat', () => {
    assert.deepEqual(parseBlkioRecursive(V1_BLKIO), { read: 4196, write: 8192 });
    assert.deepEqual(parseIoStat(V2_IO_STAT), { readBytes: 4196, writeBytes: 8192, readOps: 4, writeOps: 2 });
  });
  it('reads I/O limits: v1 throttle files and v2 io.max', () => {
    assert.deepEqual([...parseV1Throttle('254:0 1048576\n')], [['254:0', 1048576]]);
    assert.deepEqual(
      [...parseV2IoMax('254:0 rbps=1048576 wbps=max riops=max wiops=100\n')],
      [['254:0', { rbps: 1048576, wbps: null, riops: null, wiops: 100 }]],
    );
  });
  it('finds a process cgroup per controller: hybrid, co-mounted v1, and v2', () => {
    const h = parseProcCgroup(HYBRID_CGROUP);
    assert.equal(h.get('memory'), '/a/jaula-x/g1');
    assert.equal(h.get('name=systemd'), '/');
    assert.equal(h.get(''), '/');
    const c = parseProcCgroup(COMOUNTED_CGROUP);
    assert.equal(c.get('cpu'), '/jaula/g1');
    assert.equal(c.get('cpuacct'), '/jaula/g1');
    assert.equal(parseProcCgroup(V2_CGROUP).get(''), '/system.slice/jaula/g1');
  });
  it('finds where hierarchies are mounted', () => {
    const h = parseCgroupMounts(HYBRID_MOUNTINFO);
    assert.equal(h.get('cpu'), '/sys/fs/cgroup/cpu', 'the first mount of a controller wins');
    assert.equal(h.get('memory'), '/sys/fs/cgroup/memory');
    assert.equal(h.get('name=systemd'), '/sys/fs/cgroup/systemd');
    assert.equal(h.get(''), '/sys/fs/cgroup/unified');
    const v2 = parseCgroupMounts(V2_MOUNTINFO);
    assert.equal(v2.get(''), '/sys/fs/cgroup');
    assert.equal(v2.get('memory'), undefined);
  });
});

describe('/proc parsers', () => {
  it('sums network counters but lo', () => {
    const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
  eth0:    1500      12    0    0    0     0          0         0      900       7    0    0    0     0       0          0
  eth1:     500       3    0    0    0     0          0         0      100       1    0    0    0     0       0          0
`;
    assert.deepEqual(parseNetDev(text), { rxBytes: 2000, rxPackets: 15, txBytes: 1000, txPackets: 8 });
  });
  it('reads passwd and PID lists', () => {
    assert.deepEqual(
      [...parsePasswd('root:x:0:0:root:/root:/bin/sh\n# note\nwww:x:33:33::/var/www:/bin/false\n')],
      [
        [0, 'root'],
        [33, 'www'],
      ],
    );
    assert.deepEqual(parsePidList('1\n23\n456\n'), [1, 23, 456]);
    assert.deepEqual(parsePidList(''), []);
  });
});
