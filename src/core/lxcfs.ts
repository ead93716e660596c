/**
 * lxcfs, the FUSE file system that gives each guest its own view of /proc/meminfo, cpuinfo,
 * stat, loadavg, uptime, swaps, diskstats and /sys/devices/system/cpu/online: the values of the
 * cgroup of the reading process's PID-namespace init, that is of its guest (it reads the v1
 * controllers on a hybrid host, the unified hierarchy on v2).
 *
 * One daemon per jaula instance, started on demand when a guest starts and stopped when the
 * last guest of the instance stops. With JAULA_ROOT=/ it is the standard /var/lib/lxcfs, and a
 * daemon already mounted there (Debian's lxcfs.service) is used and never stopped by jaula.
 *
 * Starts hold a shared lock on locks/lxcfs.lock from "is it running?" until their guest's
 * container exists; the stop takes it exclusively without waiting, so it never pulls lxcfs
 * from under a guest being created.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { errnoOf, JaulaError, messageOf } from '../common/errors.js';
import { mkdirp, readFileOr, which, writeFileAtomic } from '../os/fs.js';
import { readKernelFile } from '../os/kernfs.js';
import { FileLock, withLock } from '../os/lock.js';
import { unmount } from '../os/mounts.js';
import { paths } from '../os/paths.js';
import { isSameProcess, readProcStat } from '../os/proc.js';
import { listRunDirs, liveStatus, readState } from '../guest/state.js';

export function lxcfsDir(): string {
  return paths().root === '/' ? '/var/lib/lxcfs' : join(paths().run, 'lxcfs');
}
const ownerFile = (): string => join(paths().run, 'lxcfs.owner');
const lockFile = (): string => join(paths().locks, 'lxcfs.lock');

type MountState = 'ok' | 'dead' | 'none';

const FUSE_SUPER_MAGIC = 0x65735546;

/**
 * Whether a FUSE file system is mounted on `dir` and answers. Asked of the kernel about `dir`
 * alone (statfs, stat), not by reading every mount: /proc/self/mountinfo grows with every
 * running guest, and every start asks this.
 */
function mountState(dir: string): MountState {
  let type: number;
  try {
    type = fs.statfsSync(dir).type;
  } catch (e) {
    return errnoOf(e) === 'ENOTCONN' ? 'dead' : 'none'; // (a FUSE mount whose daemon is gone)
  }
  if (type !== FUSE_SUPER_MAGIC) return 'none';
  try {
    if (fs.statSync(dir).dev === fs.statSync(dirname(dir)).dev) return 'none'; // (inside one, not on dir)
  } catch (e) {
    return errnoOf(e) === 'ENOTCONN' ? 'dead' : 'none';
  }
  return readKernelFile(join(dir, 'proc/uptime')) === undefined ? 'dead' : 'ok';
}

export interface LxcfsLease {
  /** The lxcfs mount, or undefined when guests start without it (see `note`). */
  dir: string | undefined;
  note?: string;
  release(): void;
}

/**
 * The daemon of this instance's that this process last found mounted and answering (its owner
 * record): the next start only asks whether that process still lives, not lxcfs itself
 * through FUSE, which blocks this process until lxcfs is scheduled (lxcfs ends when its mount
 * goes, so while it lives it serves).
 */
let serving: { dir: string; owner: string } | undefined;

function stillServing(dir: string): boolean {
  if (serving?.dir !== dir || readFileOr(ownerFile(), undefined) !== serving.owner) return false;
  const [pid, start] = serving.owner.trim().split(' ').map(Number);
  return isSameProcess(pid, start);
}

/**
 * Make sure lxcfs serves this instance, and keep it from being stopped until release().
 * Without the lxcfs program (or with JAULA_LXCFS=off) guests start without it, with a note.
 */
export async function acquireLxcfs(): Promise<LxcfsLease> {
  const none = (note: string): LxcfsLease => ({ dir: undefined, note, release: () => {} });
  if (process.env['JAULA_LXCFS'] === 'off') return none('JAULA_LXCFS=off');
  const bin = which('lxcfs');
  if (!bin)
    return none(
      "lxcfs is not installed: the guest sees the host's /proc/meminfo, cpuinfo and uptime (apt-get install lxcfs, or run the README's setup command)",
    );
  mkdirp(paths().locks, 0o700);
  const lock = await new FileLock(lockFile(), true).acquire('lxcfs');
  try {
    const dir = lxcfsDir();
    if (!stillServing(dir)) {
      if (mountState(dir) !== 'ok')
        await withLock(paths().locks, 'lxcfs-spawn', 'starting lxcfs', () => startDaemon(bin, dir));
      const owner = readFileOr(ownerFile(), undefined);
      serving = owner === undefined ? undefined : { dir, owner };
    }
    return { dir, release: () => lock.release() };
  } catch (e) {
    lock.release();
    throw e;
  }
}

/** lxcfs processes serving `dir` (its last argument), whoever started them. */
function lxcfsPids(dir: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const argv = (readKernelFile(`/proc/${p}/cmdline`) ?? '').split('\0').filter(Boolean);
    if (argv.length > 1 && /(^|\/)lxcfs$/.test(argv[0] ?? '') && argv[argv.length - 1] === dir)
      if (readProcStat(Number(p))?.state !== 'Z') out.push(Number(p));
  }
  return out;
}

async function startDaemon(bin: string, dir: string): Promise<void> {
  const state = mountState(dir);
  if (state === 'ok') return;
  // A daemon started by a jaula process that died before it mounted (kill -9 of jaulad during a
  // start) still mounts: wait for it rather than stack a second one on the same directory.
  if (state === 'none' && lxcfsPids(dir).length) {
    const deadline = Date.now() + 5000;
    while (mountState(dir) !== 'ok' && lxcfsPids(dir).length && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    if (mountState(dir) === 'ok') return;
    for (const pid of lxcfsPids(dir)) process.kill(pid, 'SIGKILL');
  }
  if (mountState(dir) === 'dead') unmount(dir); // its daemon died
  mkdirp(dir, 0o755);
  mkdirp(paths().log, 0o700);
  const logPath = join(paths().log, 'lxcfs.log');
  const log = fs.openSync(logPath, 'a', 0o600);
  // -l: per-guest load averages; --enable-cfs: the CPU count shown follows cpu.max too.
  const child = spawn(bin, ['-f', '-l', '--enable-cfs', '-p', join(paths().run, 'lxcfs.pid'), dir], {
    detached: true,
    stdio: ['ignore', log, log],
    cwd: '/',
  });
  fs.closeSync(log);
  let ended: string | undefined;
  child.on('exit', (code, sig) => (ended = sig ?? String(code)));
  child.on('error', (e) => (ended = e.message));
  child.unref();
  // Recorded at once: if this process dies while lxcfs mounts, the next stopLxcfsIfIdle (a
  // guest's stop, or jaulad's reconcile) still knows whose daemon it is.
  const st = child.pid ? readProcStat(child.pid) : undefined;
  if (child.pid && st)
    writeFileAtomic(ownerFile(), `${child.pid} ${st.starttime}\n`, 0o600, { durable: false });
  const deadline = Date.now() + 10_000;
  while (mountState(dir) !== 'ok') {
    const fail = (why: string): JaulaError =>
      new JaulaError(
        'runtime',
        `lxcfs could not be started (${why}; see ${logPath}): guests need it for their own /proc views; fix it, or set JAULA_LXCFS=off to start guests without it`,
      );
    if (ended !== undefined) throw fail(`it ended: ${ended}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw fail('it did not mount within 10 s');
    }
    await new Promise((r) => setTimeout(r, 3));
  }
}

/**
 * The guests of the last listing not yet seen stopped, the next to look at last: stopping every
 * guest one after another would otherwise read, at each stop, the state of every guest already
 * stopped (quadratic). A name leaves the list once it is seen inactive, and the guests are
 * listed again only when the list is empty, so "none is active" is still the answer of a look
 * at every guest, and each state is read about once per listing.
 */
const activeHint = { root: '', names: [] as string[] };

function anyGuestActive(): boolean {
  const active = (n: string): boolean => liveStatus(readState(n)) !== 'stopped';
  for (let fresh = false; ; fresh = true) {
    const hint = activeHint.root === paths().root ? activeHint.names : [];
    while (hint.length) {
      if (active(hint[hint.length - 1] as string)) return true;
      hint.pop();
    }
    if (fresh) return false;
    activeHint.root = paths().root;
    activeHint.names = listRunDirs().reverse();
  }
}

/**
 * Stop the lxcfs daemon this instance started, when no guest of the instance runs or starts.
 * Problems are returned as text for the caller's log, never thrown: a guest's stop succeeds.
 */
export async function stopLxcfsIfIdle(): Promise<string | undefined> {
  const owner = readFileOr(ownerFile(), undefined);
  // Without the owner's record (a crash right after the spawn) a daemon on an instance's own
  // directory is still this instance's; the host's /var/lib/lxcfs is jaula's only if recorded.
  if (owner === undefined && (paths().root === '/' || mountState(lxcfsDir()) === 'none')) return undefined;
  const lock = new FileLock(lockFile());
  try {
    // Another stop may hold the lock, having seen this guest still active: wait for it and look
    // again (two last guests stopping together left lxcfs running). A start holds the lock
    // shared until its guest runs, which then keeps lxcfs; waiting is bounded either way.
    try {
      await lock.acquire('lxcfs', 10_000);
    } catch {
      return undefined;
    }
    if (anyGuestActive()) return undefined;
    const [pid, start] = (owner ?? '').trim().split(' ').map(Number);
    const dir = lxcfsDir();
    // No guest uses it (the lock is ours): unmount, then end the daemon. It keeps nothing worth
    // saving, and SIGTERM would wait up to 5 s for its load-average thread (-l) to notice.
    // (Every mount there, and every daemon serving it: a start cut short by a crash may have
    // left a second one.)
    for (let i = 0; i < 8 && mountState(dir) !== 'none'; i++) if (!unmount(dir, false)) unmount(dir);
    const pids = lxcfsPids(dir);
    if (pid && isSameProcess(pid, start) && !pids.includes(pid)) pids.push(pid);
    for (const p of pids) process.kill(p, 'SIGKILL');
    const alive = (p: number): boolean => {
      const s = readProcStat(p);
      return s !== undefined && s.state !== 'Z';
    };
    const deadline = Date.now() + 2000;
    while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 8 && mountState(dir) !== 'none'; i++) unmount(dir);
    fs.rmSync(ownerFile(), { force: true });
    try {
      fs.rmdirSync(dir);
    } catch {
      /* not empty or gone: leave it */
    }
    return undefined;
  } catch (e) {
    return `lxcfs could not be stopped: ${messageOf(e)}`;
  } finally {
    lock.release();
  }
}

/** For `jaula doctor` and tests: whether this instance's lxcfs is mounted and answers. */
export function lxcfsStatus(): { dir: string; state: MountState; ownedByJaula: boolean } {
  const dir = lxcfsDir();
  return { dir, state: mountState(dir), ownedByJaula: fs.existsSync(ownerFile()) };
}
