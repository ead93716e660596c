import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseCgroupMounts, parseCpuStat, parseProcCgroup, readUsage, usageFiles } from './usage.js';

const HYBRID_MOUNTS = `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`;
const HYBRID_PROC = `9:name=systemd:/jaula-1/g
4:memory:/process_api/x/jaula-1/g
2:cpu,cpuacct:/process_api/x/jaula-1/g
0::/jaula-1/g
`;
const V2_MOUNTS = `cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n`;
const V2_PROC = `0::/system.slice/jaulad.service/jaula/web1\n`;

describe('cgroup usage readers', () => {
  it('find v1 counters on a hybrid host (not the empty cgroup2 mount)', () => {
    const f = usageFiles(parseProcCgroup(HYBRID_PROC), parseCgroupMounts(HYBRID_MOUNTS));
    assert.deepEqual(f, {
      cpu: { file: '/sys/fs/cgroup/cpu,cpuacct/process_api/x/jaula-1/g/cpuacct.usage', kind: 'v1' },
      memory: '/sys/fs/cgroup/memory/process_api/x/jaula-1/g/memory.usage_in_bytes',
    });
  });
  it('find v2 counters on a unified host', () => {
    const f = usageFiles(parseProcCgroup(V2_PROC), parseCgroupMounts(V2_MOUNTS));
    assert.deepEqual(f, {
      cpu: { file: '/sys/fs/cgroup/system.slice/jaulad.service/jaula/web1/cpu.stat', kind: 'v2' },
      memory: '/sys/fs/cgroup/system.slice/jaulad.service/jaula/web1/memory.current',
    });
  });
  it('parse cpu.stat into nanoseconds', () => {
    assert.equal(parseCpuStat('usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n'), 1_234_000);
    assert.equal(parseCpuStat('nr_periods 0\n'), undefined);
  });
  it('read the counter files, and nothing when the cgroup is gone', () => {
    const d = fs.mkdtempSync(join(tmpdir(), 'jaula-usage-'));
    try {
      fs.writeFileSync(join(d, 'cpu.stat'), 'usage_usec 5\n');
      fs.writeFileSync(join(d, 'memory.current'), '4096\n');
      assert.deepEqual(
        readUsage({ cpu: { file: join(d, 'cpu.stat'), kind: 'v2' }, memory: join(d, 'memory.current') }),
        {
          cpuNs: 5000,
          memoryBytes: 4096,
        },
      );
      fs.writeFileSync(join(d, 'cpuacct.usage'), '777\n');
      assert.deepEqual(readUsage({ cpu: { file: join(d, 'cpuacct.usage'), kind: 'v1' } }), {
        cpuNs: 777,
        memoryBytes: 0,
      });
      assert.equal(
        readUsage({ cpu: { file: join(d, 'gone'), kind: 'v1' }, memory: join(d, 'gone2') }),
        undefined,
      );
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
