/**
 * Live moves (`jaula migrate GUEST HOST --mode live`): the guest's processes are checkpointed
 * with CRIU on the source and restored on the target, with their memory, open files and TCP
 * connections (docs/adr/0007-live-migration.md has the recipe and why each step is there).
 *
 * A jaula guest's network namespace belongs to its user namespace, and a namespace made before
 * a restore cannot belong to the user namespace CRIU makes during it. So the source dumps the
 * guest without its network (`--empty-ns network`; the netns file is unbound first, so that runc
 * does not name it as external), and the target lets CRIU make both namespaces; at CRIU's
 * "setup-namespaces" stage, before any socket is restored, an action script written here for
 * the guest plumbs the new network namespace from jaula's plan (its veths, MACs, addresses and
 * routes; the host ends down), and at "network-unlock" puts the host ends on their bridges.
 * lxcfs's binds are CRIU's external mounts; the seccomp listener of the guest's sysinfo(2)
 * reaches the supervisor through jaula's CRIU patch 0002 (`seccomp-notify-socket`); the
 * console's new pty master reaches it through runc's console socket.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError, messageOf } from '../../common/errors.js';
import type { GuestConfig } from '../../guest/config.js';
import type { GuestState } from '../../guest/state.js';
import { networkDown, networkForRestore, netnsPath } from '../../network/apply.js';
import type { FstabEntry } from '../../guest/fstab.js';
import { loadEveryConfig } from '../../guest/store.js';
import type { MountedRoot, StorageDriver } from '../../storage/driver.js';
import type { IdRange } from '../../runtime/idmap.js';
import { mountBinds, unmountBinds } from '../binds.js';
import { mountRoot, prepareGuest } from '../prepare.js';
import type { Reverter } from '../reverter.js';
import { writeFileAtomic } from '../../os/fs.js';
import { MS_BIND, native } from '../../os/native.js';
import { paths } from '../../os/paths.js';
import { isSameProcess } from '../../os/proc.js';
import { unmount } from '../../os/mounts.js';
import { trace } from '../../os/trace.js';
import { criuMissing, criuPath, selectRuntime } from '../../runtime/driver.js';
import { run } from '../../os/spawn.js';
import { guestIdRange } from '../../runtime/idmap.js';
import type { OciSpec } from '../../runtime/ocispec.js';
import { LXCFS_FILES } from '../../runtime/spec.js';
import { removeUserns, usernsPath } from '../../runtime/userns.js';
import { freezerOf } from './freeze.js';
import { holdLock, stopKilled } from './kill.js';

/**
 * Where a guest's CRIU files are: its images, CRIU's work files, its config file, the action
 * script. On disk beside jaula's own files (var/lib/jaula-criu/NAME), not on /run, a tmpfs of a
 * tenth of the memory where it is one, which a guest's memory image would fill. Not beneath
 * var/lib/jaula (root's alone, 0700): CRIU reads some images from tasks already in the guest's
 * user namespace, so the way there is open to traverse (0711) and the directory is its root
 * group's (0750). Removed when the guest stops, is deleted, or its move fails.
 */
export function criuDir(name: string): string {
  return join(paths().root, 'var/lib/jaula-criu', name);
}

/** The directory for the images a live move's target receives (made empty, owned as above). */
export function receiveImagesDir(cfg: GuestConfig): string {
  return makeCriuDir(cfg.name, guestIdRange(cfg)?.hostId ?? 0).images;
}

/** CRIU's config file for the guest, named in its spec (annotation org.criu.config). */
export function criuConfigFile(name: string): string {
  return join(criuDir(name), 'criu.conf');
}

/** The spec the guest was started with (a restored guest runs from a restore-time one beside it). */
function fullSpecFile(runDir: string): string {
  return join(runDir, 'bundle', 'spec.json');
}

/**
 * The directory tree for CRIU's images: root's, readable by the guest's root group (CRIU opens
 * some images from tasks already inside the new user namespace), nothing for other host users.
 */
function makeCriuDir(name: string, gid: number): { images: string; work: string } {
  const dir = criuDir(name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(join(dir, '..'), { recursive: true, mode: 0o711 });
  const images = join(dir, 'images');
  const work = join(dir, 'work');
  for (const d of [dir, images, work]) {
    fs.mkdirSync(d, { mode: 0o750 });
    fs.chownSync(d, 0, gid);
    fs.chmodSync(d, 0o750);
  }
  return { images, work };
}

/** Why this guest cannot move live from here (undefined: it can). */
export function liveRefusal(cfg: GuestConfig, st: GuestState): string | undefined {
  if ((st.runtime ?? 'crun') !== 'runc')
    return `it runs under ${st.runtime ?? 'crun'}, and only runc checkpoints with CRIU here: "jaula set ${cfg.name} --runtime runc", restart it, then move it live (or move it with --mode sync)`;
  const missing = criuMissing();
  if (missing) return `${missing} (or move it with --mode sync)`;
  const odd = cfg.interfaces.find((i) => i.mode === 'macvlan' || i.mode === 'ipvlan');
  if (odd) return `its ${odd.mode} interface cannot be re-plumbed by a restore: move it with --mode sync`;
  return undefined;
}

/** The lxcfs files bound in the guest's spec, as CRIU external mounts (`dest`: dump; else restore). */
function lxcfsExternals(spec: OciSpec, how: 'dump' | 'restore'): string[] {
  return spec.mounts
    .filter((m) => m.type === 'bind' && LXCFS_FILES.includes(m.destination))
    .map((m) => `external mnt[${m.destination}]:${how === 'dump' ? m.destination : m.source}`);
}

function readSpec(file: string): OciSpec {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as OciSpec;
}

/**
 * Checkpoint the running guest (the source of a live move): CRIU freezes it, dumps it into its
 * images and kills it. Its lock is held from here until `release` (its clean-up here waits for
 * the target). On a failure the guest goes on running here, as it was.
 */
export async function checkpointGuest(
  cfg: GuestConfig,
  st: GuestState,
): Promise<{ images: string; release: () => Promise<number> }> {
  const { name } = cfg;
  const why = liveRefusal(cfg, st);
  if (why) throw new JaulaError('unsupported', `Guest "${name}" cannot move live: ${why}`);
  const unlock = await holdLock(name);
  const runDir = paths().guestRun(name);
  try {
    const { images, work } = makeCriuDir(name, guestIdRange(cfg)?.hostId ?? 0);
    const specFile = fs.existsSync(fullSpecFile(runDir))
      ? fullSpecFile(runDir)
      : join(runDir, 'bundle', 'config.json');
    // (a guest restored here runs from a restore-time spec: its lxcfs binds are named again)
    fs.writeFileSync(criuConfigFile(name), lxcfsExternals(readSpec(specFile), 'dump').join('\n') + '\n');
    // Unbound, the netns file no longer names the guest's namespace: runc would pass it as
    // external ("expect it back"), and the restore could not make a new one.
    const ns = netnsPath(name);
    unmount(ns);
    trace('live: checkpointing');
    try {
      await selectRuntime('runc').checkpoint(name, images, work);
    } catch (e) {
      // CRIU resumes a guest whose dump failed: it runs here again, with its netns bound back
      // (and thawed, should runc have been killed at its timeout while CRIU had it frozen).
      if (st.pid && isSameProcess(st.pid, st.pidStart)) {
        native().mount(`/proc/${st.pid}/ns/net`, ns, null, MS_BIND, null);
        try {
          freezerOf(name, st).thaw();
        } catch {
          /* (no freezer left: nothing frozen) */
        }
      }
      throw e;
    }
    trace('live: checkpointed');
  } catch (e) {
    removeCriuFiles(name);
    await unlock();
    throw e;
  }
  // Its processes are gone; its veths' host ends go at once (the old namespace lingers while a
  // peer still sends to its sockets, and would answer ARP for its addresses).
  const down = networkDown(cfg).catch(() => {});
  return {
    images: join(criuDir(name), 'images'),
    release: async () => {
      await down;
      await unlock();
      const t = performance.now();
      await stopKilled(cfg);
      removeCriuFiles(name);
      return Math.round(performance.now() - t);
    },
  };
}

/** The received images of a live move's target, where the restore reads them, if they came. */
export function receivedImages(name: string): { images: string; work: string } | undefined {
  const images = join(criuDir(name), 'images');
  return fs.existsSync(images) ? { images, work: join(criuDir(name), 'work') } : undefined;
}

/** A guest's CRIU files, gone (its images hold its memory: never left behind). */
export function removeCriuFiles(name: string): void {
  fs.rmSync(criuDir(name), { recursive: true, force: true });
}

const sh = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;

/**
 * The action script CRIU runs during the guest's restore (CRIU runs it twice per stage: it
 * reads its config file twice; each stage's work is done once).
 */
function hookScript(name: string, dir: string, privileged: boolean): string {
  const userns = usernsPath(name);
  const netns = netnsPath(name);
  const ping = privileged ? '0 2147483647' : '0 65535';
  return `#!/bin/sh
# Written by jaula for restoring guest "${name}" (core/migrate/live.ts). CRIU runs it with
# CRTOOLS_SCRIPT_ACTION and CRTOOLS_INIT_PID (the restored init, as the host sees it).
set -eu
d=${sh(dir)}
# (CRIU runs it without stdin: ip's netlink socket would take fd 0, and -batch FILE reopens it)
exec </dev/null >/dev/null 2>>"$d/hook.log"
pid=\${CRTOOLS_INIT_PID:-}
case "\${CRTOOLS_SCRIPT_ACTION:-}" in
setup-namespaces)
  [ -e "$d/plumbed" ] && exit 0
  nsenter --net="/proc/$pid/ns/net" ip -batch - <"$d/guest.batch"
  # ICMP echo sockets for the guest's gids, as read inside its own user namespace
  nsenter ${privileged ? '' : '--user="/proc/$pid/ns/user" '}--net="/proc/$pid/ns/net" sh -c 'echo "${ping}" >/proc/sys/net/ipv4/ping_group_range'
  mount --bind "/proc/$pid/ns/net" ${sh(netns)}
  ${privileged ? ':' : `mount --bind "/proc/$pid/ns/user" ${sh(userns)}`}
  : >"$d/plumbed"
  ;;
network-unlock)
  [ -e "$d/unlocked" ] && exit 0
  [ -s "$d/host.batch" ] && ip -batch - <"$d/host.batch"
  : >"$d/unlocked"
  ;;
esac
exit 0
`;
}

/**
 * The restore's bundle (the target of a live move), from the guest's spec as a start would run
 * it: kept as spec.json (the next checkpoint reads it); config.json gets the user and network
 * namespaces without paths (CRIU makes both, the network's inside the user one) and no lxcfs
 * binds (CRIU binds them, as external mounts, once the guest's /proc is mounted), and CRIU's
 * config file names the action script, those binds and the supervisor's seccomp socket.
 */
export function writeRestoreBundle(
  cfg: GuestConfig,
  runDir: string,
  spec: OciSpec,
  net: { guest: string; host: string },
): void {
  const { name } = cfg;
  const dir = criuDir(name);
  const bundle = join(runDir, 'bundle');
  writeFileAtomic(fullSpecFile(runDir), JSON.stringify(spec), 0o600, { durable: false });
  const restore: OciSpec = {
    ...spec,
    mounts: spec.mounts.filter((m) => !(m.type === 'bind' && LXCFS_FILES.includes(m.destination))),
    linux: {
      ...spec.linux,
      namespaces: spec.linux.namespaces.map((n) =>
        n.type === 'user' || n.type === 'network' ? { type: n.type } : n,
      ),
    },
  };
  writeFileAtomic(join(bundle, 'config.json'), JSON.stringify(restore), 0o600, { durable: false });
  fs.writeFileSync(join(dir, 'guest.batch'), net.guest, { mode: 0o600 });
  fs.writeFileSync(join(dir, 'host.batch'), net.host, { mode: 0o600 });
  const hook = join(dir, 'restore-hook.sh');
  fs.writeFileSync(hook, hookScript(name, dir, !guestIdRange(cfg)), { mode: 0o700 });
  fs.writeFileSync(
    criuConfigFile(name),
    [
      `action-script ${hook}`,
      ...lxcfsExternals(spec, 'restore'),
      `seccomp-notify-socket ${join(runDir, 'seccomp.sock')}`,
      '',
    ].join('\n'),
  );
  for (const f of [netnsPath(name), ...(guestIdRange(cfg) ? [usernsPath(name)] : [])]) {
    fs.mkdirSync(join(f, '..'), { recursive: true, mode: 0o711 });
    fs.writeFileSync(f, '');
  }
}

/** CRIU's logs of a failed restore, for the error. */
export function restoreLogTail(name: string): string {
  try {
    const log = fs
      .readFileSync(join(criuDir(name), 'work', 'restore.log'), 'utf8')
      .trim()
      .split('\n');
    const hook = fs.existsSync(join(criuDir(name), 'hook.log'))
      ? fs
          .readFileSync(join(criuDir(name), 'hook.log'), 'utf8')
          .trim()
          .split('\n')
          .slice(-4)
      : [];
    return [...log.filter((l) => /Error|error|fail/.test(l)).slice(-3), ...hook].join(' | ');
  } catch (e) {
    return `no restore log (${messageOf(e)})`;
  }
}

/**
 * What a restore makes before CRIU runs (instead of prepareGuest's namespaces and network): the
 * root mounted and idmapped as for a start, the fstab's binds, what of the network lives on the
 * host, and the files the action script binds the new namespaces to. Undo registered on `rev`;
 * on a failure this returns only when every part has ended.
 */
export async function prepareRestore(
  cfg: GuestConfig,
  storage: StorageDriver,
  idmap: IdRange | undefined,
  rev: Reverter,
  fstab: FstabEntry[],
): Promise<{
  mounted: MountedRoot;
  fstab: FstabEntry[];
  netns: string;
  userns?: string;
  net: Awaited<ReturnType<typeof networkForRestore>> | undefined;
}> {
  rev.add('remove the network', () => networkDown(cfg));
  if (idmap) rev.add('remove the user namespace', () => removeUserns(cfg.name));
  rev.add('unmount the idmapped binds', () => unmountBinds(cfg.name));
  const [m, b, n] = await Promise.allSettled([
    mountRoot(cfg, storage, idmap, rev),
    mountBinds(cfg.name, fstab, idmap),
    networkForRestore(cfg, loadEveryConfig()),
  ]);
  if (m.status === 'rejected') throw m.reason;
  if (b.status === 'rejected') throw b.reason;
  if (n.status === 'rejected') throw n.reason;
  trace('live: prepared');
  return {
    mounted: m.value,
    fstab: b.value,
    netns: netnsPath(cfg.name),
    ...(idmap ? { userns: usernsPath(cfg.name) } : {}),
    net: n.value,
  };
}

/** What a start makes before the runtime runs (prepareGuest), or a restore (prepareRestore). */
export async function prepareFor(
  cfg: GuestConfig,
  storage: StorageDriver,
  idmap: IdRange | undefined,
  rev: Reverter,
  fstab: FstabEntry[],
  restoring: boolean,
): ReturnType<typeof prepareRestore> {
  if (restoring) return prepareRestore(cfg, storage, idmap, rev, fstab);
  return { ...(await prepareGuest(cfg, storage, idmap, rev, fstab)), net: undefined };
}

/**
 * Whether guests can move live from and to here (jaula migrate --mode live): runc, and jaula's
 * CRIU answering `criu check`; what pre-copy and post-copy would need of the kernel.
 */
export async function liveMoveCheck(): Promise<{ status: 'ok' | 'warn'; detail: string }> {
  const criu = criuPath();
  const missing = criuMissing();
  if (missing) return { status: 'warn', detail: `not possible: ${missing}; cold and sync moves work` };
  const [r, d] = await Promise.all([
    run([criu, 'check'], { timeoutMs: 30_000 }).catch(() => undefined),
    run([criu, 'check', '--feature', 'mem_dirty_track'], { timeoutMs: 30_000 }).catch(() => undefined),
  ]);
  const ok = r?.code === 0;
  const dirty = d?.code === 0;
  return {
    status: ok ? 'ok' : 'warn',
    detail: ok
      ? `possible for guests under runc (CRIU ${criu}: "criu check" passes); ${dirty ? 'soft-dirty tracking: iterative pre-copy possible' : "no soft-dirty tracking in this kernel: no iterative pre-copy (the guest's memory is sent while it is frozen)"}`
      : `not possible: "${criu} check" fails: ${(r?.stderr ?? 'it did not run').trim().split('\n').slice(-1)[0]}`,
  };
}
