/**
 * The escape and abuse suite (issue 6, item 6): busybox guests built and started with the jaula
 * CLI run the probe (tests/escape/probe.c, bind-mounted read-only into each guest through its
 * fstab), and every attempt must be blocked on the default profile, except the KNOWN_GAPS of
 * attempts.ts, which must still be open (and are reported loudly). The suite runs once more
 * against a guest started with the test-only JAULA_TEST_WEAKEN=1 profile and must catch most
 * attempts there: proof that it detects failures.
 *
 * Host-side cooperation: a second guest (its uid/gid maps, its init's pid, a SysV segment, POSIX
 * shared memory and a message queue made inside it, a file in its tree), a host process, a host
 * SysV segment and a host file, a canary in the environment of every jaula call, and device nodes
 * planted in the tree of the guests under test as a hostile template would bring them.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestRoot, buildSkeleton, jaulaBin, projectDir } from '../helpers.js';
import { ATTEMPTS, KNOWN_GAPS } from './attempts.js';

interface ProbeResult {
  id: string;
  blocked: boolean;
  errno: string;
  detail: string;
  absent?: boolean;
  inconclusive?: boolean;
}

const PROBE_SRC = join(projectDir, 'tests/escape/probe.c');
const PROBE_HOST = join(projectDir, 'native/out/jaula-escape-probe');
/** Where the probe appears inside the guests (a read-only bind mount of PROBE_HOST). */
const PROBE = '/usr/local/sbin/jaula-escape-probe';
const CANARY = `escape-canary-${randomBytes(8).toString('hex')}`;
/** Share of the attempts the kernel offers that the weakened guest must let through. */
const WEAKENED_MIN_OPEN = 0.7;

/** Build the probe when it is missing or older than its source (npm run build makes it too). */
function ensureProbe(): void {
  const fresh =
    fs.existsSync(PROBE_HOST) && fs.statSync(PROBE_HOST).mtimeMs >= fs.statSync(PROBE_SRC).mtimeMs;
  if (fresh) return;
  const r = spawnSync('make', ['-s', '-C', join(projectDir, 'native'), 'out/jaula-escape-probe'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `building the probe failed: ${r.stderr}`);
}

function parseResults(text: string): ProbeResult[] {
  const out: ProbeResult[] = [];
  for (const line of text.split('\n')) {
    const m = /\{"id":.*\}/.exec(line);
    if (m) out.push(JSON.parse(m[0]) as ProbeResult);
  }
  return out;
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** A device number as major:minor (glibc's encoding). */
function majorMinor(dev: bigint): [bigint, bigint] {
  return [((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn), (dev & 0xffn) | ((dev >> 12n) & ~0xffn)];
}

function startTime(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

/** With ESCAPE_REPORT=FILE, both runs' results are written there as JSON (for the docs' table). */
function report(profile: string, results: Map<string, ProbeResult>): void {
  const file = process.env['ESCAPE_REPORT'];
  if (!file) return;
  const all = fs.existsSync(file)
    ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>)
    : {};
  all[profile] = Object.fromEntries(results);
  fs.writeFileSync(file, JSON.stringify(all, null, 2) + '\n');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('escape and abuse attempts from inside a guest', () => {
  const t = new TestRoot('jaula-escape-', { JAULA_ESCAPE_CANARY: CANARY, ESCAPE_HOST_SECRET: CANARY });
  let hostSleeper: ChildProcess | undefined;
  let hostShmId: string | undefined;
  let ctxArgs: string[] = [];

  /** The probe's context: what the attempts against other guests and the host aim at. */
  function context(): string[] {
    const other = Number(t.state('esc2')['pid']);
    const map = (f: string): string =>
      fs.readFileSync(`/proc/${other}/${f}`, 'utf8').trim().split('\n').join(';');
    const hostKey = `0x${randomBytes(3).toString('hex')}5a`;
    const made = spawnSync(PROBE_HOST, ['helper', 'shm-create', hostKey], { encoding: 'utf8' });
    assert.equal(made.status, 0, `a host SysV segment: ${made.stderr}`);
    hostShmId = made.stdout.trim();
    const otherKey = `0x${randomBytes(3).toString('hex')}5b`;
    const otherId = t.ok(['exec', 'esc2', '--', PROBE, 'helper', 'shm-create', otherKey]).stdout.trim();
    t.ok(['exec', 'esc2', '--', PROBE, 'helper', 'posix-shm-create', 'jaula-escape-secret']);
    t.ok(['exec', 'esc2', '--', PROBE, 'helper', 'mq-create', 'jaula-escape-mq']);
    hostSleeper = spawn('sleep', ['3600'], { stdio: 'ignore' });
    const sleeperPid = hostSleeper.pid as number;
    const sets: Record<string, string> = {
      'other-uid-map': map('uid_map'),
      'other-gid-map': map('gid_map'),
      'foreign-pids': `${other}:${startTime(other)},${sleeperPid}:${startTime(sleeperPid)}`,
      'host-shm-id': hostShmId,
      'host-shm-key': hostKey,
      'other-shm-id': otherId,
      'other-shm-key': otherKey,
      'other-posix-shm': 'jaula-escape-secret',
      'other-mq': 'jaula-escape-mq',
      'foreign-files': `${t.guestRoot('esc2')}/secret-of-esc2,${t.path('host-secret')}`,
      canary: CANARY,
      'host-fs-bytes': String(
        (() => {
          const s = fs.statfsSync(t.root);
          return s.blocks * s.bsize;
        })(),
      ),
      // More than a guest's default limit in the pool (64 MiB): the limit must stop the writes.
      'disk-bound-mb': '96',
      // The guest's /proc/meminfo and sysinfo(2) show its own limit (lxcfs, the supervisor).
      'host-mem-bytes': String(os.totalmem()),
    };
    return Object.entries(sets).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  }

  before(() => {
    ensureProbe();
    fs.writeFileSync(t.path('host-secret'), 'a host file no guest may open\n');
    const [maj, min] = majorMinor(fs.statSync(t.root, { bigint: true }).dev);
    // As "./setup demo" installs jaula: a storage pool, so that every guest has a disk limit.
    t.pool(512, 64);
    // Plain trees (--storage dir): the "shocker" attempt needs file handles on the guest's /,
    // which an overlayfs root (the default storage) does not give at all.
    buildSkeleton(t, 'esc1', ['--context', '3101', '--storage', 'dir']);
    buildSkeleton(t, 'escw', ['--context', '3102', '--storage', 'dir']);
    buildSkeleton(t, 'esc2', [
      '--context',
      '3103',
      '--storage',
      'dir',
      '--initstyle',
      'cmd',
      '--cmd',
      '/bin/sleep 1000000',
    ]);
    for (const g of ['esc1', 'escw', 'esc2'])
      fs.appendFileSync(t.path('etc/jaula/guests', g, 'fstab'), `${PROBE_HOST} ${PROBE} none bind,ro 0 0\n`);
    for (const g of ['esc1', 'escw']) {
      // What a hostile template could carry: the host's disk and the kernel log as device nodes.
      const disk = spawnSync('mknod', [`${t.guestRoot(g)}/var/.planted-disk`, 'b', String(maj), String(min)]);
      const kmsg = spawnSync('mknod', [`${t.guestRoot(g)}/var/.planted-kmsg`, 'c', '1', '11']);
      assert.equal(disk.status, 0, 'planting a block device node');
      assert.equal(kmsg.status, 0, 'planting a char device node');
    }
    fs.writeFileSync(`${t.guestRoot('esc2')}/secret-of-esc2`, 'esc2 only\n');
    t.ok(['start', 'esc2']);
    t.ok(['start', 'esc1']);
    t.ok(['start', 'escw'], { env: { JAULA_TEST_WEAKEN: '1' } });
    ctxArgs = context();
  });

  after(async () => {
    hostSleeper?.kill('SIGKILL');
    if (hostShmId !== undefined) spawnSync('ipcrm', ['-m', hostShmId]);
    const left = t.cleanup();
    // A deleted guest's supervisor may still run its exit command (`jaula __exited`), which takes
    // the guest's lock and so recreates run/jaula/locks under the removed root: wait for them.
    const busy = (): boolean =>
      fs.readdirSync('/proc').some((p) => {
        try {
          if (!/^\d+$/.test(p) || Number(p) === process.pid) return false;
          const env = fs.readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
          return (
            env.includes(`JAULA_ROOT=${t.root}`) ||
            fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(t.root)
          );
        } catch {
          return false;
        }
      });
    await t.until('the supervisors of the deleted guests ended', () => !busy(), 15_000).catch(() => {});
    fs.rmSync(t.root, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing is left behind');
  });

  /** Every attempt, each the way it must run; one result per attempt. */
  async function runAll(guest: string): Promise<Map<string, ProbeResult>> {
    const results = new Map<string, ProbeResult>();
    const add = (rs: ProbeResult[], from: string): void => {
      for (const r of rs) results.set(r.id, r);
      assert.ok(rs.length > 0, `no result from ${from}`);
    };
    const batch = ATTEMPTS.filter((a) => a.via === 'exec').map((a) => a.id);
    const r = t.jaula(['exec', guest, '--', PROBE, ...ctxArgs, ...batch], { timeoutMs: 600_000 });
    assert.equal(r.code, 0, `the probe failed in ${guest}: ${r.stderr}`);
    add(parseResults(r.stdout), `the batch in ${guest}`);

    for (const a of ATTEMPTS.filter((x) => x.via === 'enter')) {
      const e = spawnSync('script', ['-qec', `${process.execPath} ${jaulaBin} enter ${guest}`, '/dev/null'], {
        input: `${PROBE} ${a.id}; exit\n`,
        env: t.env,
        encoding: 'utf8',
        timeout: 60_000,
      });
      add(parseResults(e.stdout), `jaula enter ${guest}: ${e.stdout} ${e.stderr}`);
    }
    for (const a of ATTEMPTS.filter((x) => x.via === 'exec-from-terminal')) {
      // The probe learns that jaula exec was run from a terminal: no terminal on its side then
      // means jaula gave the command pipes of its own.
      const cmd = [
        process.execPath,
        jaulaBin,
        'exec',
        guest,
        '--',
        PROBE,
        '--set',
        'caller-has-terminal=1',
        a.id,
      ]
        .map(shq)
        .join(' ');
      const e = spawnSync('script', ['-qec', cmd, '/dev/null'], {
        input: '',
        env: t.env,
        encoding: 'utf8',
        timeout: 60_000,
      });
      add(parseResults(e.stdout), `jaula exec ${guest} from a terminal: ${e.stdout} ${e.stderr}`);
    }
    for (const a of ATTEMPTS.filter((x) => x.via === 'exec-concurrent')) {
      // The runtime entering the guest, also through the CVE-2019-5736 vectors: a script whose
      // interpreter is /proc/self/exe and a symlink to it as the command.
      t.ok([
        'exec',
        guest,
        '--',
        '/bin/sh',
        '-c',
        "printf '#!/proc/self/exe\\n' > /run/.selfexe && chmod 755 /run/.selfexe && ln -sf /proc/self/exe /run/.selfexe-link",
      ]);
      const watcher = t.jaulaAsync(['exec', guest, '--', PROBE, '--set', 'watch-ms=5000', a.id]);
      await sleep(500);
      const until = Date.now() + 4000;
      while (Date.now() < until) {
        await t.jaulaAsync(['exec', guest, '--', '/run/.selfexe']);
        await t.jaulaAsync(['exec', guest, '--', '/run/.selfexe-link', '--version']);
        await t.jaulaAsync(['exec', guest, '--', '/bin/true']);
      }
      const w = await watcher;
      assert.equal(w.code, 0, `the watcher failed: ${w.stderr}`);
      add(parseResults(w.stdout), `the concurrent exec watcher in ${guest}`);
      t.ok(['exec', guest, '--', '/bin/rm', '-f', '/run/.selfexe', '/run/.selfexe-link']);
    }
    return results;
  }

  const say = (lines: string[]): void => {
    process.stderr.write(lines.map((l) => `# escape: ${l}\n`).join(''));
  };

  it('the probe and attempts.ts list the same attempts, documented in docs/security', () => {
    ensureProbe();
    const listed = spawnSync(PROBE_HOST, ['--list'], { encoding: 'utf8' }).stdout.trim().split('\n');
    assert.deepEqual(
      listed,
      ATTEMPTS.map((a) => a.id),
    );
    assert.ok(ATTEMPTS.length >= 30, `at least 30 attempts, got ${ATTEMPTS.length}`);
    for (const id of Object.keys(KNOWN_GAPS))
      assert.ok(
        ATTEMPTS.some((a) => a.id === id),
        `KNOWN_GAPS names "${id}", which is no attempt`,
      );
    const doc = fs.readFileSync(join(projectDir, 'docs/security/escape-attempts.md'), 'utf8');
    for (const a of ATTEMPTS)
      assert.ok(doc.includes(`\`${a.id}\``), `docs/security/escape-attempts.md does not describe ${a.id}`);
  });

  describe('default profile: every attempt is blocked (except the listed KNOWN_GAPS)', () => {
    let results = new Map<string, ProbeResult>();
    before(async () => {
      results = await runAll('esc1');
      report('default', results);
      const gaps = ATTEMPTS.filter((a) => results.get(a.id)?.blocked === false);
      say([
        `default profile: ${ATTEMPTS.length - gaps.length} of ${ATTEMPTS.length} attempts blocked; NOT blocked:`,
        ...gaps.map((a) => `  NOT BLOCKED ${a.id}: ${results.get(a.id)?.detail}`),
      ]);
    });

    for (const a of ATTEMPTS)
      it(`${a.id}: ${a.what}`, (ctx) => {
        const r = results.get(a.id);
        assert.ok(r, `${a.id}: the probe reported nothing`);
        assert.ok(!r.inconclusive, `${a.id} could not run: ${r.detail}`);
        const gap = KNOWN_GAPS[a.id];
        if (gap !== undefined) {
          ctx.diagnostic(
            `KNOWN GAP, NOT BLOCKED: ${a.id}: ${r.detail}. Expected ${a.expect} (${a.layer}); closes with: ${gap}`,
          );
          assert.equal(
            r.blocked,
            false,
            `${a.id} is listed in KNOWN_GAPS but is blocked now (${r.errno || 'no errno'}: ${r.detail}): remove it from KNOWN_GAPS in tests/escape/attempts.ts and mark it blocked in docs/security/escape-attempts.md`,
          );
          return;
        }
        if (r.absent)
          ctx.diagnostic(
            `${a.id}: this kernel lacks the feature (${r.errno}); ${a.layer} must stop it where it exists`,
          );
        assert.equal(
          r.blocked,
          true,
          `escape attempt ${a.id} (${a.what}) was NOT blocked: ${r.detail} (errno ${r.errno || 'none'}); expected ${a.expect}, stopped by ${a.layer}`,
        );
        // The guest's own limit stopped the writes (its subvolume's quota group), not only a
        // pool smaller than the host's filesystem.
        if (a.id === 'dos.disk') assert.equal(r.errno, 'EDQUOT', r.detail);
      });

    it('leaves no file of the probe behind in the guest', () => {
      const root = t.guestRoot('esc1');
      const left = ['', 'var/tmp', 'root', 'tmp']
        .flatMap((d) =>
          fs.existsSync(join(root, d)) ? fs.readdirSync(join(root, d)).map((f) => join(d, f)) : [],
        )
        .filter((f) => f.includes('.jaula-probe'));
      assert.deepEqual(left, []);
    });
  });

  describe('weakened profile (JAULA_TEST_WEAKEN=1): the suite catches it', () => {
    let results = new Map<string, ProbeResult>();
    before(async () => {
      results = await runAll('escw');
      report('weakened', results);
    });

    it('runs with the weakened profile, and only that guest', () => {
      const spec = (g: string): { annotations: Record<string, string> } =>
        JSON.parse(fs.readFileSync(t.path('run/jaula/guests', g, 'bundle/config.json'), 'utf8')) as {
          annotations: Record<string, string>;
        };
      assert.equal(spec('escw').annotations['org.jaula.test-weakened'], 'true');
      assert.equal(spec('esc1').annotations['org.jaula.test-weakened'], undefined);
      assert.equal(spec('esc2').annotations['org.jaula.test-weakened'], undefined);
    });

    it(`lets through at least ${WEAKENED_MIN_OPEN * 100}% of the attempts this kernel offers`, () => {
      for (const a of ATTEMPTS) {
        const r = results.get(a.id);
        assert.ok(r, `${a.id}: the probe reported nothing on the weakened guest`);
        assert.ok(!r.inconclusive, `${a.id} could not run on the weakened guest: ${r.detail}`);
      }
      const offered = ATTEMPTS.filter((a) => !results.get(a.id)?.absent);
      const open = offered.filter((a) => results.get(a.id)?.blocked === false);
      const held = offered.filter((a) => results.get(a.id)?.blocked === true);
      say([
        `weakened profile: ${open.length} of ${offered.length} attempts the kernel offers got through (${Math.round((100 * open.length) / offered.length)}%); ${ATTEMPTS.length - offered.length} absent from this kernel`,
        ...open.map((a) => `  CAUGHT (not blocked) ${a.id}`),
        ...held.map((a) => `  still blocked ${a.id} (${a.layer}): ${results.get(a.id)?.detail}`),
      ]);
      assert.ok(
        open.length >= WEAKENED_MIN_OPEN * offered.length,
        `only ${open.length} of ${offered.length} attempts got through on the weakened guest: the suite does not detect a weakened profile`,
      );
    });

    it('lets through every attempt that is a known gap of the default profile', () => {
      for (const id of Object.keys(KNOWN_GAPS))
        assert.equal(
          results.get(id)?.blocked,
          false,
          `${id}: open on the default profile, blocked when weakened?`,
        );
    });
  });

  it('JAULA_TEST_WEAKEN cannot be set from inside a guest: a guest that reboots itself comes back hardened', async () => {
    const before0 = Number(t.state('esc2')['pid']);
    t.jaula(['exec', 'esc2', '--env', 'JAULA_TEST_WEAKEN=1', '--', '/bin/sh', '-c', 'reboot -f']);
    await t.until(
      'esc2 restarted',
      () => {
        const st = t.state('esc2');
        return st['status'] === 'running' && Number(st['pid']) !== before0;
      },
      30_000,
    );
    const spec = JSON.parse(fs.readFileSync(t.path('run/jaula/guests/esc2/bundle/config.json'), 'utf8')) as {
      annotations: Record<string, string>;
      process: { capabilities: { bounding: string[] } };
    };
    assert.equal(spec.annotations['org.jaula.test-weakened'], undefined);
    assert.ok(!spec.process.capabilities.bounding.includes('CAP_SYS_ADMIN'));
    const r = t.ok(['exec', 'esc2', '--', PROBE, 'caps.raise', 'mount.proc']);
    for (const res of parseResults(r.stdout)) assert.equal(res.blocked, true, `${res.id}: ${res.detail}`);
  });
});
