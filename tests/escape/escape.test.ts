/**
 * The escape and abuse suite (issue 6, item 6): busybox guests built and started with the jaula
 * CLI run the probe (tests/escape/probe.c, bind-mounted read-only into each guest through its
 * fstab), and every attempt must be blocked on the default profile, except the KNOWN_GAPS of
 * attempts.ts, which must still be open (and are reported loudly); the same on a full-os guest
 * with its own KNOWN_GAPS_FULL_OS. The suite runs once more against a guest started with the
 * test-only JAULA_TEST_WEAKEN=1 profile, where every attempt has its expected verdict
 * (WEAKENED_BLOCKS): those the weakened guest still blocks are then each run in a positive
 * control that opens exactly that hole, and must report it. Every detector must have fired
 * somewhere, except on features this kernel lacks.
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
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  TestRoot,
  buildSkeleton,
  escapeProbe,
  jaulaBin,
  probeResults,
  projectDir,
  type ProbeResult,
} from '../helpers.js';
import { ATTEMPTS, KNOWN_GAPS, KNOWN_GAPS_FULL_OS, WEAKENED_BLOCKS, type Control } from './attempts.js';

const PROBE_HOST = join(projectDir, 'native/out/jaula-escape-probe');
/** Where the probe appears inside the guests (a read-only bind mount of PROBE_HOST). */
const PROBE = '/usr/local/sbin/jaula-escape-probe';
const CANARY = `escape-canary-${randomBytes(8).toString('hex')}`;

/** Build the probe when it is missing or older than its source (npm run build makes it too). */
function ensureProbe(): void {
  assert.equal(escapeProbe(), PROBE_HOST);
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

describe('escape and abuse attempts from inside a guest', () => {
  const t = new TestRoot('jaula-escape-', { JAULA_ESCAPE_CANARY: CANARY, ESCAPE_HOST_SECRET: CANARY });
  let hostSleeper: ChildProcess | undefined;
  let hostShmId: string | undefined;
  let ctxArgs: string[] = [];
  /** A host API the test serves on a unix socket, bound into escc (the sock.host-api control). */
  const hostSocket = t.path('host-api.sock');
  let hostApi: net.Server | undefined;
  let hostApiConnections = 0;
  /** Results per profile and control, for the check that every detector fired. */
  const seen = new Map<string, Map<string, ProbeResult>>();

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

  before(async () => {
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
    buildSkeleton(t, 'escf', ['--context', '3104', '--storage', 'dir', '--profile', 'full-os']);
    // The controls' default-profile guest, with the host's API socket bound in.
    buildSkeleton(t, 'escc', ['--context', '3105', '--storage', 'dir']);
    for (const g of ['esc1', 'escw', 'esc2', 'escf', 'escc'])
      fs.appendFileSync(t.path('etc/jaula/guests', g, 'fstab'), `${PROBE_HOST} ${PROBE} none bind,ro 0 0\n`);
    fs.appendFileSync(
      t.path('etc/jaula/guests/escc/fstab'),
      `${hostSocket} /run/host-api.sock none bind 0 0\n`,
    );
    for (const g of ['esc1', 'escw', 'escf']) {
      // What a hostile template could carry: the host's disk and the kernel log as device nodes.
      const disk = spawnSync('mknod', [`${t.guestRoot(g)}/var/.planted-disk`, 'b', String(maj), String(min)]);
      const kmsg = spawnSync('mknod', [`${t.guestRoot(g)}/var/.planted-kmsg`, 'c', '1', '11']);
      assert.equal(disk.status, 0, 'planting a block device node');
      assert.equal(kmsg.status, 0, 'planting a char device node');
    }
    fs.writeFileSync(`${t.guestRoot('esc2')}/secret-of-esc2`, 'esc2 only\n');
    hostApi = net.createServer((c) => {
      hostApiConnections++;
      c.destroy();
    });
    await new Promise<void>((r) => hostApi?.listen(hostSocket, r));
    // Open to everyone, as many daemons' sockets are (D-Bus's system bus, for one).
    fs.chmodSync(hostSocket, 0o666);
    t.ok(['start', 'esc2']);
    t.ok(['start', 'esc1']);
    t.ok(['start', 'escf']);
    t.ok(['start', 'escc']);
    t.ok(['start', 'escw'], { env: { JAULA_TEST_WEAKEN: '1' } });
    ctxArgs = context();
  });

  after(async () => {
    hostSleeper?.kill('SIGKILL');
    if (hostShmId !== undefined) spawnSync('ipcrm', ['-m', hostShmId]);
    await new Promise((r) => (hostApi ? hostApi.close(r) : r(undefined)));
    assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
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
    add(probeResults(r.stdout), `the batch in ${guest}`);

    for (const a of ATTEMPTS.filter((x) => x.via === 'enter')) {
      const e = spawnSync('script', ['-qec', `${process.execPath} ${jaulaBin} enter ${guest}`, '/dev/null'], {
        input: `${PROBE} ${a.id}; exit\n`,
        env: t.env,
        encoding: 'utf8',
        timeout: 60_000,
      });
      add(probeResults(e.stdout), `jaula enter ${guest}: ${e.stdout} ${e.stderr}`);
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
      add(probeResults(e.stdout), `jaula exec ${guest} from a terminal: ${e.stdout} ${e.stderr}`);
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
      await watching(guest);
      const until = Date.now() + 4000;
      while (Date.now() < until) {
        await t.jaulaAsync(['exec', guest, '--', '/run/.selfexe']);
        await t.jaulaAsync(['exec', guest, '--', '/run/.selfexe-link', '--version']);
        await t.jaulaAsync(['exec', guest, '--', '/bin/true']);
      }
      const w = await watcher;
      assert.equal(w.code, 0, `the watcher failed: ${w.stderr}`);
      add(probeResults(w.stdout), `the concurrent exec watcher in ${guest}`);
      t.ok(['exec', guest, '--', '/bin/rm', '-f', '/run/.selfexe', '/run/.selfexe-link']);
    }
    return results;
  }

  /** Wait until the exec.runtime-exe watcher runs in `guest` (its probe is in the guest's PID namespace). */
  async function watching(guest: string): Promise<void> {
    const ns = fs.readlinkSync(`/proc/${Number(t.state(guest)['pid'])}/ns/pid`);
    await t.until(`the watcher in ${guest}`, () =>
      fs.readdirSync('/proc').some((p) => {
        try {
          return (
            /^\d+$/.test(p) &&
            fs.readlinkSync(`/proc/${p}/ns/pid`) === ns &&
            fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('exec.runtime-exe')
          );
        } catch {
          return false;
        }
      }),
    );
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
    for (const [list, ids] of [
      ['KNOWN_GAPS', Object.keys(KNOWN_GAPS)],
      ['KNOWN_GAPS_FULL_OS', Object.keys(KNOWN_GAPS_FULL_OS)],
      ['WEAKENED_BLOCKS', Object.keys(WEAKENED_BLOCKS)],
    ] as const)
      for (const id of ids)
        assert.ok(
          ATTEMPTS.some((a) => a.id === id),
          `${list} names "${id}", which is no attempt`,
        );
    const doc = fs.readFileSync(join(projectDir, 'docs/security/escape-attempts.md'), 'utf8');
    for (const a of ATTEMPTS)
      assert.ok(doc.includes(`\`${a.id}\``), `docs/security/escape-attempts.md does not describe ${a.id}`);
  });

  /** Every attempt is blocked on `guest`'s profile, except its known gaps, which must still get through. */
  function profileSuite(profile: string, guest: string, gaps: Readonly<Record<string, string>>): void {
    let results = new Map<string, ProbeResult>();
    before(async () => {
      results = await runAll(guest);
      seen.set(profile, results);
      report(profile, results);
      const open = ATTEMPTS.filter((a) => results.get(a.id)?.blocked === false);
      say([
        `${profile} profile: ${ATTEMPTS.length - open.length} of ${ATTEMPTS.length} attempts blocked; NOT blocked:`,
        ...open.map((a) => `  NOT BLOCKED ${a.id}: ${results.get(a.id)?.detail}`),
      ]);
    });

    for (const a of ATTEMPTS)
      it(`${a.id}: ${a.what}`, (ctx) => {
        const r = results.get(a.id);
        assert.ok(r, `${a.id}: the probe reported nothing`);
        assert.ok(!r.inconclusive, `${a.id} could not run: ${r.detail}`);
        const gap = gaps[a.id];
        if (gap !== undefined) {
          ctx.diagnostic(
            `KNOWN GAP, NOT BLOCKED: ${a.id}: ${r.detail}. Expected ${a.expect} (${a.layer}); accepted: ${gap}`,
          );
          assert.equal(
            r.blocked,
            false,
            `${a.id} is listed as a known gap of the ${profile} profile but is blocked now (${r.errno || 'no errno'}: ${r.detail}): remove it from the list in tests/escape/attempts.ts and from docs/security/escape-attempts.md`,
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
          `escape attempt ${a.id} (${a.what}) was NOT blocked on the ${profile} profile: ${r.detail} (errno ${r.errno || 'none'}); expected ${a.expect}, stopped by ${a.layer}`,
        );
        // The guest's own limit stopped the writes (its subvolume's quota group), not only a
        // pool smaller than the host's filesystem.
        if (a.id === 'dos.disk') assert.equal(r.errno, 'EDQUOT', r.detail);
      });
  }

  describe('default profile: every attempt is blocked (except the listed KNOWN_GAPS)', () => {
    profileSuite('default', 'esc1', KNOWN_GAPS);

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

  describe('full-os profile: every attempt is blocked (except the listed KNOWN_GAPS_FULL_OS)', () => {
    profileSuite('full-os', 'escf', KNOWN_GAPS_FULL_OS);

    it("binfmt_misc mounted in the full-os guest is an instance of its own, not the host's", () => {
      // Both mounted at once: the same instance would show the same (anonymous) device.
      const inGuest = t
        .ok([
          'exec',
          'escf',
          '--',
          '/bin/sh',
          '-c',
          'mkdir -p /run/.bm && mount -t binfmt_misc none /run/.bm && stat -c %d /run/.bm/register',
        ])
        .stdout.trim();
      const host = t.path('binfmt');
      fs.mkdirSync(host);
      const m = spawnSync('mount', ['-t', 'binfmt_misc', 'none', host], { encoding: 'utf8' });
      assert.equal(m.status, 0, m.stderr);
      try {
        assert.match(inGuest, /^\d+$/);
        assert.notEqual(String(fs.statSync(join(host, 'register')).dev), inGuest);
      } finally {
        spawnSync('umount', [host]);
        t.jaula(['exec', 'escf', '--', '/bin/umount', '/run/.bm']);
      }
    });
  });

  describe('weakened profile (JAULA_TEST_WEAKEN=1): every attempt meets its expected verdict', () => {
    let results = new Map<string, ProbeResult>();
    before(async () => {
      results = await runAll('escw');
      seen.set('weakened', results);
      report('weakened', results);
      const offered = ATTEMPTS.filter((a) => !results.get(a.id)?.absent);
      const open = offered.filter((a) => results.get(a.id)?.blocked === false);
      say([
        `weakened profile: ${open.length} of ${offered.length} attempts the kernel offers got through; ${ATTEMPTS.length - offered.length} absent from this kernel`,
        ...offered
          .filter((a) => results.get(a.id)?.blocked)
          .map(
            (a) => `  still blocked ${a.id} (${WEAKENED_BLOCKS[a.id]?.kept}): ${results.get(a.id)?.detail}`,
          ),
      ]);
    });

    it('runs with the weakened profile, and only that guest', () => {
      const spec = (g: string): { annotations: Record<string, string> } =>
        JSON.parse(fs.readFileSync(t.path('run/jaula/guests', g, 'bundle/config.json'), 'utf8')) as {
          annotations: Record<string, string>;
        };
      assert.equal(spec('escw').annotations['org.jaula.test-weakened'], 'true');
      for (const g of ['esc1', 'esc2', 'escf', 'escc'])
        assert.equal(spec(g).annotations['org.jaula.test-weakened'], undefined, g);
    });

    for (const a of ATTEMPTS) {
      const held = WEAKENED_BLOCKS[a.id];
      it(`${a.id}: ${held ? `still blocked (${held.kept})` : 'gets through'}`, (ctx) => {
        const r = results.get(a.id);
        assert.ok(r, `${a.id}: the probe reported nothing on the weakened guest`);
        assert.ok(!r.inconclusive, `${a.id} could not run on the weakened guest: ${r.detail}`);
        if (held)
          assert.equal(
            r.blocked,
            true,
            `${a.id} got through on the weakened guest: ${r.detail}; is "${held.kept}" gone?`,
          );
        else if (r.absent) ctx.diagnostic(`${a.id}: absent from this kernel (${r.errno}): ${r.detail}`);
        else
          assert.equal(
            r.blocked,
            false,
            `${a.id} is blocked on the weakened guest (${r.errno}: ${r.detail}): the attempt does not detect what it must`,
          );
      });
    }

    it('an attempt absent on a hardened profile is absent on the weakened guest too (never a disguised block)', () => {
      for (const profile of ['default', 'full-os']) {
        const res = seen.get(profile);
        assert.ok(res, `the ${profile} profile ran`);
        for (const a of ATTEMPTS)
          if (res.get(a.id)?.absent)
            assert.equal(
              results.get(a.id)?.absent,
              true,
              `${a.id} reads as absent on the ${profile} profile but not on the weakened guest: ${results.get(a.id)?.detail}`,
            );
      }
    });

    it("every known gap, of either profile, is an attempt the weakened guest lets through (the lists' own check)", () => {
      const gaps = { ...KNOWN_GAPS, ...KNOWN_GAPS_FULL_OS };
      assert.ok(Object.keys(gaps).length > 0, 'the lists are checked against something');
      for (const id of Object.keys(gaps)) {
        assert.equal(
          WEAKENED_BLOCKS[id],
          undefined,
          `${id}: a known gap that the weakened guest still blocks?`,
        );
        assert.equal(
          results.get(id)?.blocked,
          false,
          `${id}: open on a hardened profile, blocked when weakened?`,
        );
      }
    });
  });

  describe('positive controls: each hole the weakened guest keeps closed, opened on purpose, is reported', () => {
    const escw = (): number => Number(t.state('escw')['pid']);
    const esc2 = (): number => Number(t.state('esc2')['pid']);
    /** The probe run with nsenter into some namespaces (`probe`: its path there). */
    const nsenter = (nsArgs: string[], probe: string, ids: string[]): ProbeResult[] => {
      const r = spawnSync('nsenter', [...nsArgs, '--', probe, ...ctxArgs, ...ids], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(r.status, 0, `nsenter ${nsArgs.join(' ')}: ${r.stderr}`);
      return probeResults(r.stdout);
    };
    const controls: Record<Control, () => Promise<ProbeResult[]> | ProbeResult[]> = {
      'host-socket-in-fstab': async () => {
        const before = hostApiConnections;
        const r = t.ok(['exec', 'escc', '--', PROBE, ...ctxArgs, 'sock.host-api']);
        const res = probeResults(r.stdout);
        await t.until(
          "the host's socket to see the probe connect",
          () => hostApiConnections > before,
          10_000,
        );
        return res;
      },
      'host-fd-as-stdin': () => {
        const fd = fs.openSync(t.path('host-secret'), 'r');
        try {
          const r = spawnSync(process.execPath, [jaulaBin, 'exec', 'escc', '--', PROBE, 'fd.leaked'], {
            stdio: [fd, 'pipe', 'pipe'],
            env: t.env,
            encoding: 'utf8',
          });
          assert.equal(r.status, 0, r.stderr);
          return probeResults(r.stdout);
        } finally {
          fs.closeSync(fd);
        }
      },
      'secret-in-env': () =>
        probeResults(
          t.ok(['exec', 'escc', '--env', `LEAKED=${CANARY}`, '--', PROBE, ...ctxArgs, 'env.secrets']).stdout,
        ),
      'host-terminal': () => {
        const cmd = [
          'nsenter',
          '-t',
          String(escw()),
          '-m',
          '-p',
          '--',
          PROBE,
          '--set',
          'caller-has-terminal=1',
        ]
          .concat('tty.host-terminal')
          .map(shq)
          .join(' ');
        const e = spawnSync('script', ['-qec', cmd, '/dev/null'], {
          input: '',
          encoding: 'utf8',
          timeout: 60_000,
        });
        return probeResults(e.stdout);
      },
      'chroot-root': () => {
        // The probe on the host's filesystem, under chroot(2) alone: no pivot_root, no mount
        // namespace, no storage pool.
        const dir = t.path('chroot');
        fs.mkdirSync(join(dir, 'tmp'), { recursive: true });
        fs.copyFileSync(PROBE_HOST, join(dir, 'probe'));
        fs.chmodSync(join(dir, 'probe'), 0o755);
        const r = spawnSync('chroot', [dir, '/probe', ...ctxArgs, 'chroot.double', 'dos.disk'], {
          encoding: 'utf8',
          timeout: 120_000,
        });
        assert.equal(r.status, 0, r.stderr);
        return probeResults(r.stdout);
      },
      'foreign-binary-in-pid-ns': async () => {
        // A host process whose binary is a writable host file, inside the weakened guest's PID
        // namespace for a moment (as a runtime entering it is): the watcher must catch it and
        // reopen its binary for writing once it ended.
        const bin = t.path('foreign-bin/sleep');
        fs.mkdirSync(t.path('foreign-bin'));
        fs.copyFileSync('/bin/sleep', bin);
        fs.chmodSync(bin, 0o755);
        const watcher = t.jaulaAsync([
          'exec',
          'escw',
          '--',
          PROBE,
          '--set',
          'watch-ms=4000',
          'exec.runtime-exe',
        ]);
        await watching('escw');
        const s = spawnSync('nsenter', ['-t', String(escw()), '-p', '--', bin, '1'], { encoding: 'utf8' });
        assert.equal(s.status, 0, s.stderr);
        const w = await watcher;
        assert.equal(w.code, 0, w.stderr);
        return probeResults(w.stdout);
      },
      'host-pid-ns': () =>
        nsenter(['-t', String(escw()), '-i', '-n', '-u'], PROBE_HOST, ['guest.kill', 'guest.ptrace']),
      'host-ipc-ns': () =>
        nsenter(['-t', String(escw()), '-m', '-p', '-n', '-u'], PROBE, ['ipc.host-sysv-shm']),
      'other-guest-ipc-ns': () =>
        nsenter(['-t', String(escw()), '-m', '-p', '-n', '-u', `--ipc=/proc/${esc2()}/ns/ipc`], PROBE, [
          'ipc.guest-sysv-shm',
          'ipc.guest-mqueue',
        ]),
      'other-guest-mount-ns': () => nsenter(['-t', String(esc2()), '-m'], PROBE, ['ipc.guest-posix-shm']),
      'host-mount-ns': () =>
        nsenter(['-t', String(escw()), '-p', '-i', '-n', '-u'], PROBE_HOST, ['guest.files']),
      'host-cgroup-ns': () =>
        nsenter(['-t', String(escw()), '-m', '-p', '-i', '-n', '-u'], PROBE, ['cgroup.release_agent']),
    };

    it('every attempt the weakened guest still blocks has a control, or the reason none can exist', () => {
      for (const [id, held] of Object.entries(WEAKENED_BLOCKS))
        assert.ok(held.control !== null || held.kept.length > 80, `${id}: no control and no reason`);
      const used = new Set(Object.values(WEAKENED_BLOCKS).map((h) => h.control));
      for (const c of Object.keys(controls)) assert.ok(used.has(c as Control), `control ${c} opens nothing`);
    });

    for (const control of Object.keys(controls) as Control[]) {
      const ids = Object.entries(WEAKENED_BLOCKS)
        .filter(([, h]) => h.control === control)
        .map(([id]) => id);
      it(`${control}: ${ids.join(', ')} ${ids.length > 1 ? 'get' : 'gets'} through`, async () => {
        const res = new Map((await controls[control]()).map((r) => [r.id, r]));
        const all = seen.get('controls') ?? new Map<string, ProbeResult>();
        seen.set('controls', all);
        for (const id of ids) {
          const r = res.get(id);
          assert.ok(r, `${id}: the probe reported nothing in the control`);
          assert.ok(!r.inconclusive, `${id} could not run in the control: ${r.detail}`);
          assert.equal(
            r.blocked,
            false,
            `${id}: the hole is open, yet the attempt reports it blocked: ${r.detail}`,
          );
          all.set(id, r);
        }
      });
    }
  });

  it('every detector has fired: each attempt got through somewhere, unless this kernel lacks its feature', () => {
    const weak = seen.get('weakened');
    assert.ok(weak, 'the weakened guest ran');
    const fired = new Set<string>();
    for (const res of seen.values())
      for (const [id, r] of res) if (!r.blocked && !r.inconclusive) fired.add(id);
    report('controls', seen.get('controls') ?? new Map());
    const silent = ATTEMPTS.filter((a) => !fired.has(a.id));
    const excused = (id: string): boolean =>
      weak.get(id)?.absent === true ||
      (WEAKENED_BLOCKS[id] !== undefined && WEAKENED_BLOCKS[id]?.control === null);
    say([
      `${fired.size} of ${ATTEMPTS.length} detectors fired; silent: ${silent.map((a) => `${a.id} (${weak.get(a.id)?.absent ? 'absent from this kernel' : WEAKENED_BLOCKS[a.id]?.kept})`).join(', ')}`,
    ]);
    assert.deepEqual(
      silent.filter((a) => !excused(a.id)).map((a) => a.id),
      [],
      'attempts whose detector was never seen to fire',
    );
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
    for (const res of probeResults(r.stdout)) assert.equal(res.blocked, true, `${res.id}: ${res.detail}`);
  });
});
