/**
 * Limits of real guests: set live and saved, fair CPU shares, a CPU cap, a fork bomb and a
 * memory hog kept inside their guests, a guest's own view of its limits and uptime, and knobs
 * this host cannot honour refused with the reason.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { totalmem } from 'node:os';
import { after, describe, it } from 'node:test';
import { defaultMemoryLimit } from '../src/cgroups/limits.js';
import { formatLimitBytes } from '../src/common/size.js';
import { TestRoot, buildSkeleton, jaulaBin, writeScript } from './helpers.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
const MB = 2 ** 20;

/** A file of a running guest's cgroup, read from the host (v1: per controller; v2: one dir). */
function cgPath(name: string, ctrl: string, file: string): string {
  const pid = Number(t.state(name)['pid']);
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  if (v2) return `/sys/fs/cgroup${lines.find((l) => l.startsWith('0::'))?.slice(3)}/${file}`;
  const line = lines.find((l) => l.split(':')[1]?.split(',').includes(ctrl));
  assert.ok(line, `guest ${name} is in a ${ctrl} cgroup`);
  return `/sys/fs/cgroup/${ctrl}${line.split(':')[2]}/${file}`;
}
const cg = (name: string, ctrl: string, file: string): string =>
  fs.readFileSync(cgPath(name, ctrl, file), 'utf8').trim();
const cpuUsageNs = (name: string): number =>
  v2
    ? Number(/usage_usec (\d+)/.exec(cg(name, 'cpu', 'cpu.stat'))?.[1]) * 1000
    : Number(cg(name, 'cpuacct', 'cpuacct.usage'));
const memoryMax = (name: string): number | null => {
  const v = v2 ? cg(name, 'memory', 'memory.max') : cg(name, 'memory', 'memory.limit_in_bytes');
  return v === 'max' || Number(v) >= 2 ** 62 ? null : Number(v);
};
const config = (name: string): string =>
  fs.readFileSync(t.path('etc/jaula/guests', name, 'config.toml'), 'utf8');
const DEFAULT_MEMORY = defaultMemoryLimit(totalmem());
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A measurement on a loaded machine: taken again once when it misses the bound. */
async function retryOnce<T>(measure: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const first = await measure();
  return ok(first) ? first : measure();
}
interface StatRow {
  name: string;
  oomKills: number;
  memoryHits: number;
  throttled: number;
  pidsRefused: number;
  processes: number;
}
const stat = (name: string): StatRow => {
  const rows = JSON.parse(t.ok(['stat', name, '--format', 'json']).stdout) as StatRow[];
  assert.equal(rows.length, 1);
  return rows[0] as StatRow;
};

/** A cmd guest whose command is a script written into its tree. */
function scriptGuest(name: string, script: string, extra: string[] = []): void {
  buildSkeleton(t, name, ['--initstyle', 'cmd', '--cmd', '/bin/sh /job', ...extra]);
  writeScript(`${t.guestRoot(name)}/job`, `#!/bin/sh\n${script}\n`);
}

describe('jaula set', () => {
  it('changes a running guest at once; without --save the change is gone after a restart, with --save it stays', () => {
    buildSkeleton(t, 'l1', ['--initstyle', 'cmd', '--cmd', '/bin/sleep 100000']);
    t.ok(['start', 'l1']);
    assert.equal(memoryMax('l1'), DEFAULT_MEMORY, 'half the host memory by default');
    assert.equal(cg('l1', 'pids', 'pids.max'), '4096', 'a pids limit by default');
    const r = t.ok(['set', 'l1', 'memory.max=100M', 'pids.max=300', 'cpu.weight=200']);
    assert.match(r.stdout, /live only/);
    assert.equal(memoryMax('l1'), 100 * MB);
    assert.equal(cg('l1', 'pids', 'pids.max'), '300');
    assert.equal(v2 ? cg('l1', 'cpu', 'cpu.weight') : cg('l1', 'cpu', 'cpu.shares'), v2 ? '200' : '2048');
    assert.doesNotMatch(config('l1'), /\[limits\]/, 'nothing saved');
    const shown = JSON.parse(t.ok(['set', 'l1', '--format', 'json']).stdout) as {
      limits: { key: string; live?: string; saved: string }[];
    };
    assert.deepEqual(
      shown.limits.find((l) => l.key === 'memory.max'),
      { key: 'memory.max', saved: '', default: formatLimitBytes(DEFAULT_MEMORY), live: '100M' },
    );

    t.ok(['restart', 'l1', '--kill']);
    assert.equal(memoryMax('l1'), DEFAULT_MEMORY, 'a live-only change is gone after a restart');
    assert.equal(cg('l1', 'pids', 'pids.max'), '4096');

    assert.match(t.ok(['set', 'l1', 'memory.max=100M', '--save']).stdout, /saved/);
    assert.equal(memoryMax('l1'), 100 * MB, 'applied at once');
    assert.match(config('l1'), /^\[limits\]\n"memory.max" = "100M"$/m);
    t.ok(['restart', 'l1', '--kill']);
    assert.equal(memoryMax('l1'), 100 * MB, 'and at every start');

    t.ok(['stop', 'l1', '--kill']);
    const refused = t.jaula(['set', 'l1', 'pids.max=50']);
    assert.equal(refused.code, 6);
    assert.match(refused.stderr, /not running.*--save/);
    t.ok(['set', 'l1', 'pids.max=50', 'memory.max=', '--save']);
    assert.doesNotMatch(config('l1'), /memory.max/, 'an empty value goes back to the default');
    t.ok(['start', 'l1']);
    assert.equal(cg('l1', 'pids', 'pids.max'), '50');
    assert.equal(memoryMax('l1'), DEFAULT_MEMORY);
  });

  it('limits block I/O per device and open files per process', () => {
    // A whole disk of this host (loop devices count): throttling takes disks, not partitions.
    const disk = fs.readdirSync('/sys/block').sort()[0] as string;
    const dev = fs.readFileSync(`/sys/block/${disk}/dev`, 'utf8').trim();
    t.ok(['set', 'l1', `io.max=/dev/${disk}:rbps=10M,wiops=200`, 'nofile=2048']);
    if (v2)
      assert.match(
        cg('l1', 'io', 'io.max'),
        new RegExp(`^${dev} rbps=10485760 wbps=max riops=max wiops=200`, 'm'),
      );
    else {
      assert.equal(cg('l1', 'blkio', 'blkio.throttle.read_bps_device'), `${dev} 10485760`);
      assert.equal(cg('l1', 'blkio', 'blkio.throttle.write_iops_device'), `${dev} 200`);
    }
    const pid = Number(t.state('l1')['pid']);
    assert.match(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'), /^Max open files\s+2048\s+2048/m);
    t.ok(['set', 'l1', `io.max=/dev/${disk}:rbps=max,wiops=max`]);
    if (!v2) assert.equal(cg('l1', 'blkio', 'blkio.throttle.read_bps_device'), '', '"max" lifts the limit');
  });

  it('refuses clearly what this host cannot honour, and what is not a limit', () => {
    const hard = Number(
      /^Max open files\s+\S+\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))?.[1],
    );
    const nofile = t.jaula(['set', 'l1', `nofile=${hard + 1}`]);
    assert.equal(nofile.code, 10, nofile.stderr);
    assert.match(nofile.stderr, /above the host's hard limit on open files/);

    const weight = t.jaula(['set', 'l1', 'io.weight=300']);
    if (!v2 && !fs.existsSync('/sys/fs/cgroup/blkio/blkio.weight')) {
      assert.equal(weight.code, 10, weight.stderr);
      assert.match(weight.stderr, /io.weight cannot be honoured on this host: no blkio.weight/);
    } else assert.equal(weight.code, 0, weight.stderr);

    if (!v2) {
      const swap = t.jaula(['set', 'l1', 'memory.max=max', 'memory.swap=64M']);
      assert.equal(swap.code, 10);
      assert.match(swap.stderr, /needs a memory.max on this cgroup v1 host/);
    }
    const cpus = t.jaula(['set', 'l1', 'cpuset=99']);
    assert.equal(cpus.code, 2);
    assert.match(cpus.stderr, /this host has no CPU 99/);
    const unknown = t.jaula(['set', 'l1', 'cpu.turbo=1']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^jaula: Unknown limit "cpu.turbo"/);
    const bad = t.jaula(['set', 'l1', 'memory.max=lots']);
    assert.match(bad.stderr, /Invalid memory.max "lots"/);
    t.ok(['stop', 'l1', '--kill']);

    // A saved limit the host cannot honour stops the start, cleanly, with the reason.
    if (!v2 && !fs.existsSync('/sys/fs/cgroup/blkio/blkio.weight')) {
      fs.appendFileSync(t.path('etc/jaula/guests/l1/config.toml'), '"io.weight" = 300\n');
      const start = t.jaula(['start', 'l1']);
      assert.equal(start.code, 10);
      assert.match(start.stderr, /cannot start with its saved limits: io.weight cannot be honoured/);
      assert.equal(t.jaula(['status', 'l1']).code, 3);
      assert.deepEqual(t.containers(), []);
    }
    // (on v2, and on v1 with blkio.weight, nothing above saved io.weight: the typo is added)
    const typo = config('l1').replace('"io.weight" = 300\n', '') + '"io.wieght" = 300\n';
    fs.writeFileSync(t.path('etc/jaula/guests/l1/config.toml'), typo);
    assert.match(t.jaula(['start', 'l1']).stderr, /\[limits\], line \d+: unknown limit "io.wieght"/);
  });
});

describe('CPU', () => {
  it('two CPU-bound guests with weights 1:3 on one CPU get 25% and 75% of it', async () => {
    const cpu = String(
      Math.max(
        0,
        Number(fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim().split(/[-,]/).pop()),
      ),
    );
    for (const [name, w] of [
      ['w1', '100'],
      ['w3', '300'],
    ] as const) {
      scriptGuest(name, 'while :; do :; done');
      t.ok(['set', name, `cpu.weight=${w}`, `cpuset=${cpu}`, '--save']);
      t.ok(['start', name]);
    }
    assert.equal(cg('w1', 'cpuset', 'cpuset.cpus'), cpu);
    // The ordering is what must hold on a loaded machine (w3 gets clearly more); the precise
    // split is bench/limits' figure. Measured over 4 s, once more before failing.
    const ratio = await retryOnce(
      async () => {
        const a0 = cpuUsageNs('w1');
        const b0 = cpuUsageNs('w3');
        await sleep(4000);
        return (cpuUsageNs('w3') - b0) / Math.max(1, cpuUsageNs('w1') - a0);
      },
      (r) => r >= 1.5,
    );
    assert.ok(
      ratio >= 1.5,
      `weight 300 got ${ratio.toFixed(2)}x the CPU of weight 100 (3x aimed, at least 1.5x)`,
    );
    t.ok(['stop', 'w1', '--kill']);
  });

  it('cpu.max caps a guest, and the throttling is counted', async () => {
    t.ok(['set', 'w3', 'cpu.max=20%', 'cpuset=']);
    // The cap is never exceeded (a little slack for the accounting's granularity); what it
    // reaches under load is bench/limits' figure. Measured over 3 s, once more before failing.
    const used = await retryOnce(
      async () => {
        const u0 = cpuUsageNs('w3');
        const t0 = process.hrtime.bigint();
        await sleep(3000);
        return (cpuUsageNs('w3') - u0) / Number(process.hrtime.bigint() - t0);
      },
      (u) => u <= 0.23,
    );
    assert.ok(used <= 0.23, `capped at 20% of a CPU, used ${(used * 100).toFixed(1)}%`);
    assert.ok(stat('w3').throttled > 0, 'throttled periods are counted');
    t.ok(['stop', 'w3', '--kill']);
  });
});

describe('limits keep trouble inside its guest', () => {
  it("a fork bomb stops at its guest's pids limit; a neighbour keeps serving and the host can still fork", async () => {
    buildSkeleton(t, 'web', ['--initstyle', 'cmd', '--cmd', '/usr/sbin/httpd -f -p 8080 -h /www']);
    fs.mkdirSync(`${t.guestRoot('web')}/www`);
    fs.writeFileSync(`${t.guestRoot('web')}/www/index.html`, 'still here\n');
    scriptGuest('bomb', 'sleep 100000');
    t.ok(['set', 'bomb', 'pids.max=64', 'cpu.max=50%', '--save']);
    t.ok(['start', 'web', 'bomb']);
    const bomber = spawn(
      process.execPath,
      [jaulaBin, 'exec', 'bomb', '--', '/bin/sh', '-c', 'b() { b | b & }; b; sleep 30'],
      { env: t.env, stdio: 'ignore' },
    );
    try {
      await t.until('the bomb to hit its limit', () => stat('bomb').pidsRefused > 0, 20_000);
      assert.ok(Number(cg('bomb', 'pids', 'pids.current')) <= 64);
      const answer = t.jaula(['exec', 'web', '--', 'wget', '-q', '-O', '-', 'http://127.0.0.1:8080/']);
      assert.equal(answer.stdout, 'still here\n', answer.stderr);
      assert.equal(spawnSync('/bin/true').status, 0, 'the host can fork');
    } finally {
      t.ok(['stop', 'bomb', '--kill']);
      bomber.kill('SIGKILL');
    }
    assert.equal(t.jaula(['status', 'web']).code, 0);
  });

  it('a memory hog is OOM-killed inside its own guest, and the kill is counted', () => {
    buildSkeleton(t, 'hog', ['--initstyle', 'cmd', '--cmd', '/bin/sleep 100000']);
    t.ok(['set', 'hog', 'memory.max=32M', 'memory.swap=0', '--save']);
    t.ok(['start', 'hog']);
    const r = t.sh('hog', 'awk \'BEGIN { s = "x"; while (1) s = s s }\'');
    assert.equal(r.code, 137, `the hog was killed (SIGKILL): ${r.stderr}`);
    assert.ok(stat('hog').oomKills >= 1, 'the OOM kill is counted');
    const hits = v2 ? cg('hog', 'memory', 'memory.events') : cg('hog', 'memory', 'memory.oom_control');
    assert.match(hits, /oom_kill [1-9]/);
    assert.equal(t.jaula(['status', 'hog']).code, 0, 'its guest still runs');
    assert.equal(t.jaula(['status', 'web']).code, 0, 'and so does the neighbour');
    t.ok(['stop', 'web', '--kill']);
  });
});

describe("a guest's own view", () => {
  it('free, nproc and uptime show its limits and uptime; /proc files come from lxcfs; /proc/kmsg is empty', async () => {
    t.ok(['set', 'hog', 'memory.max=256M', 'cpuset=0']);
    const hostUptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    await sleep(1100);
    const free = t.sh('hog', 'free').stdout;
    assert.match(free, /^Mem:\s+262144\s/m, `free shows the 256M limit:\n${free}`);
    assert.equal(t.sh('hog', 'nproc').stdout.trim(), '1');
    const up = t.sh('hog', 'cat /proc/uptime').stdout;
    const guestUptime = Number(up.split(' ')[0]);
    assert.ok(
      guestUptime > 0 && guestUptime < 120 && guestUptime < hostUptime,
      `guest uptime ${guestUptime} s`,
    );
    assert.match(
      t.sh('hog', 'uptime').stdout,
      /up\s+(0 min|[0-9]+ min|00:0[0-2])/,
      'busybox uptime (sysinfo) too',
    );
    assert.match(t.sh('hog', 'grep MemTotal /proc/meminfo').stdout, /MemTotal:\s+262144 kB/);
    assert.equal(t.sh('hog', 'grep -c ^processor /proc/cpuinfo').stdout.trim(), '1');
    assert.equal(t.sh('hog', 'cat /sys/devices/system/cpu/online').stdout.trim(), '0');
    assert.match(t.sh('hog', 'cat /proc/loadavg').stdout.trim(), /^\d+\.\d+ \d+\.\d+ \d+\.\d+ \d+\/\d+ \d+$/);
    assert.doesNotMatch(t.sh('hog', 'cat /proc/stat').stdout, /^cpu1 /m, 'only its CPU in /proc/stat');
    assert.equal(t.sh('hog', 'head -c 64 /proc/kmsg').stdout, '', 'no kernel log in /proc/kmsg');
    const lxcfs = t.path('run/jaula/lxcfs');
    assert.ok(t.mounts().includes(lxcfs), 'one lxcfs for this instance');
    t.ok(['stop', 'hog', '--kill']);
    await t.until('lxcfs to stop with the last guest', () => !t.mounts().includes(lxcfs), 10_000);
  });

  it('lxcfs daemons a crashed start left (unrecorded, stacked) go with the last guest too', async () => {
    t.ok(['start', 'hog']);
    const lxcfs = t.path('run/jaula/lxcfs');
    // As if jaula had died right after spawning it, before recording whose daemon it is.
    fs.rmSync(t.path('run/jaula/lxcfs.owner'));
    const extra = spawn('lxcfs', ['-f', lxcfs], { stdio: 'ignore', detached: true });
    try {
      await t.until(
        'the second lxcfs to mount',
        () => t.mounts().filter((m) => m === lxcfs).length === 2,
        10_000,
      );
      t.ok(['stop', 'hog', '--kill']);
      await t.until('every lxcfs mount to go', () => !t.mounts().includes(lxcfs), 10_000);
      await t.until(
        'the second daemon to end',
        () => extra.exitCode !== null || extra.signalCode !== null,
        5000,
      );
    } finally {
      extra.kill('SIGKILL');
    }
  });
});
