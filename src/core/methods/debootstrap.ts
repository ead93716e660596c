import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { mkdirp, which } from '../../os/fs.js';
import { unmountBelow } from '../../os/mounts.js';
import { paths } from '../../os/paths.js';
import { run, runOk } from '../../os/spawn.js';
import { cacheDir } from '../../storage/barrier.js';
import { extractTemplate } from './template.js';

export interface DebootstrapArgs {
  suite: string;
  mirror: string;
  variant: string;
  include: string[];
  init: 'sysvinit' | 'systemd' | 'none';
}

const SUITE_RE = /^[a-z][a-z0-9-]{1,30}$/;

export function parseDebootstrapArgs(args: string[]): DebootstrapArgs {
  const out: DebootstrapArgs = {
    suite: '',
    mirror: 'http://deb.debian.org/debian',
    variant: 'minbase',
    include: [],
    init: 'sysvinit',
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    const need = (): string => {
      if (v === undefined) throw new JaulaError('usage', `debootstrap option ${a} needs a value`);
      i++;
      return v;
    };
    if (a === '-d' || a === '--dist') out.suite = need();
    else if (a === '-m' || a === '--mirror') out.mirror = need();
    else if (a === '--variant') out.variant = need();
    else if (a === '--include') out.include.push(...need().split(',').filter(Boolean));
    else if (a === '--init') {
      const x = need();
      if (x !== 'sysvinit' && x !== 'systemd' && x !== 'none')
        throw new JaulaError('usage', `--init must be sysvinit, systemd or none, not "${x}"`);
      out.init = x;
    } else
      throw new JaulaError(
        'usage',
        `Unknown debootstrap option "${a}": use -- -d SUITE [-m MIRROR] [--variant V] [--include P1,P2] [--init sysvinit|systemd|none]`,
      );
  }
  if (!out.suite)
    throw new JaulaError(
      'usage',
      'The debootstrap method needs a release: jaula build NAME -m debootstrap -- -d bookworm',
    );
  if (!SUITE_RE.test(out.suite))
    throw new JaulaError('invalid', `"${out.suite}" is not a Debian release name (e.g. bookworm)`);
  if (!/^(https?|file):\/\/[^\s]+$/.test(out.mirror))
    throw new JaulaError('invalid', `The mirror "${out.mirror}" is not an http(s) or file URL`);
  if (!/^[a-z]+$/.test(out.variant))
    throw new JaulaError(
      'invalid',
      `"${out.variant}" is not a debootstrap variant (minbase, buildd, fakechroot)`,
    );
  for (const p of out.include)
    if (!/^[a-z0-9][a-z0-9+.-]*$/.test(p))
      throw new JaulaError('invalid', `"${p}" is not a Debian package name`);
  return out;
}

/** The init's packages: part of the base system (the README's plain form is exactly the base). */
function initPackages(a: DebootstrapArgs): string[] {
  return a.init === 'sysvinit' ? ['sysvinit-core'] : a.init === 'systemd' ? ['systemd-sysv'] : [];
}

function packages(a: DebootstrapArgs): string[] {
  return [...new Set([...initPackages(a), ...a.include])].sort();
}

/**
 * The cache file of a debootstrap result: one per release, variant, packages and mirror. The
 * one without --include is the base that every build of that release, variant, mirror and init
 * shares: a build with extras installs them on top of it (their .debs are then cached in the
 * result), so neither form downloads the base system again.
 */
export function debootstrapCacheFile(a: DebootstrapArgs, arch: string): string {
  const key = createHash('sha256')
    .update(JSON.stringify([a.mirror, packages(a)]))
    .digest('hex')
    .slice(0, 12);
  return join(paths().cache, 'debootstrap', `${a.suite}-${arch}-${a.variant}-${key}.tar.zst`);
}

async function hostArch(): Promise<string> {
  const r = await run(['dpkg', '--print-architecture']);
  return r.code === 0 ? r.stdout.trim() : 'amd64';
}

/** Pass a program's output on as progress lines. */
function lines(progress: (line: string) => void): (chunk: string) => void {
  let partial = '';
  return (chunk) => {
    partial += chunk;
    const ls = partial.split('\n');
    partial = ls.pop() ?? '';
    for (const l of ls) if (l.trim()) progress(l.trim());
  };
}

/**
 * Fill `rootfs` with Debian: from the cache when this exact debootstrap was done before; else
 * from the cached base (debootstrap of the release with its init, run and cached first if it is
 * not there) with the extra packages installed on top; the result is cached too.
 */
export async function buildDebootstrap(
  rootfs: string,
  a: DebootstrapArgs,
  progress: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const arch = await hostArch();
  cacheDir(); // behind the barrier: the cached trees hold setuid programs too
  const cache = debootstrapCacheFile(a, arch);
  if (fs.existsSync(cache)) {
    progress(`Using the cached ${a.suite} tree ${cache}`);
    await extractTemplate(cache, rootfs, signal, undefined, { allowDevices: true }); // jaula made it
    return;
  }
  const baseArgs = { ...a, include: [] };
  const base = debootstrapCacheFile(baseArgs, arch);
  if (fs.existsSync(base)) {
    progress(`Using the cached ${a.suite} base system ${base}`);
    await extractTemplate(base, rootfs, signal, undefined, { allowDevices: true });
  } else {
    await runDebootstrap(rootfs, baseArgs, arch, progress, signal);
    emptyDev(rootfs);
    await cacheTree(rootfs, base, progress);
  }
  const init = initPackages(a);
  const extras = packages(a).filter((p) => !init.includes(p));
  if (!extras.length) return;
  await installPackages(rootfs, extras, progress, signal);
  await cacheTree(rootfs, cache, progress);
}

/**
 * The tree's /dev emptied of what debootstrap made there (device nodes): a guest's /dev is a
 * tmpfs, and the tree is then the same as one from the cache (which leaves /dev's content out),
 * so a template saved from it has no device nodes either. debootstrap just made the tree.
 */
function emptyDev(rootfs: string): void {
  const dev = join(rootfs, 'dev');
  if (!fs.lstatSync(dev, { throwIfNoEntry: false })?.isDirectory()) return;
  for (const e of fs.readdirSync(dev)) fs.rmSync(join(dev, e), { recursive: true, force: true });
}

/**
 * debootstrap makes device nodes and runs the tree's programs: on jaula's storage (a pool or a
 * quota image, mounted nosuid,nodev for the host) it refuses such a target ("cannot create
 * test-dev-null"), and its chroot could not open /dev/null. So it runs in a private mount
 * namespace where the target is bound onto itself with dev and suid: the host's view of the
 * storage keeps nosuid,nodev, and the bind goes with the namespace, even if this process is
 * killed. The script is fixed; the target and debootstrap's argv are arguments.
 */
const DEV_VIEW = `set -e
r=$1; shift
mkdir -p "$r"
mount --bind "$r" "$r"
mount -o remount,bind,dev,suid,exec "$r"
exec "$@"
`;

async function runDebootstrap(
  rootfs: string,
  a: DebootstrapArgs,
  arch: string,
  progress: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  if (!which('debootstrap'))
    throw new JaulaError('unsupported', 'debootstrap is not installed: apt-get install debootstrap');
  const pk = packages(a);
  const argv = [
    'debootstrap',
    `--variant=${a.variant}`,
    `--arch=${arch}`,
    ...(pk.length ? [`--include=${pk.join(',')}`] : []),
    a.suite,
    rootfs,
    a.mirror,
  ];
  progress(`Running ${argv.join(' ')}`);
  try {
    await runOk(
      ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', DEV_VIEW, 'sh', rootfs, ...argv],
      {
        what: 'debootstrap',
        dieWithParent: true,
        timeoutMs: 30 * 60_000,
        ...(signal ? { signal } : {}),
        onStdout: lines(progress),
      },
    );
  } finally {
    await unmountBelow(rootfs);
  }
}

/**
 * Install packages into a debootstrapped tree with its own apt, chrooted, in a private mount
 * namespace (its /proc and /dev go with it, even if this process is killed). The base's package
 * lists and .debs serve what they can; the rest is downloaded from its mirror (after an
 * "apt-get update" if the lists are too old for it). Services are not started (policy-rc.d).
 * The script is fixed; the tree and the package names (checked: Debian names) are arguments.
 */
const INSTALL_SCRIPT = `set -e
r=$1; shift
mount -t proc proc "$r/proc"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$r/dev"
mknod -m 666 "$r/dev/null" c 1 3; mknod -m 666 "$r/dev/zero" c 1 5; mknod -m 666 "$r/dev/full" c 1 7
mknod -m 666 "$r/dev/random" c 1 8; mknod -m 666 "$r/dev/urandom" c 1 9; mknod -m 666 "$r/dev/tty" c 5 0
mkdir "$r/dev/pts" "$r/dev/shm"; ln -s /proc/self/fd "$r/dev/fd"
p="$r/usr/sbin/policy-rc.d"
printf '#!/bin/sh\\nexit 101\\n' >"$p"; chmod 755 "$p"
trap 'rm -f "$p"' EXIT
add() { chroot "$r" apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "$@"; }
add "$@" || { chroot "$r" apt-get update -q && add "$@"; }
rm -f "$r"/var/cache/apt/*.bin # (apt remakes these caches of its lists when it needs them)
`;

async function installPackages(
  rootfs: string,
  pkgs: string[],
  progress: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  progress(`Installing ${pkgs.join(', ')} on top of the base system`);
  await runOk(
    ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', INSTALL_SCRIPT, 'sh', rootfs, ...pkgs],
    {
      what: `Installing ${pkgs.join(', ')}`,
      dieWithParent: true,
      timeoutMs: 30 * 60_000,
      env: {
        ...process.env,
        DEBIAN_FRONTEND: 'noninteractive',
        LC_ALL: 'C',
        PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      },
      ...(signal ? { signal } : {}),
      onStdout: lines(progress),
    },
  );
}

/** Cache a tree (atomically: written aside, then renamed); a failure is said and passed over. */
async function cacheTree(rootfs: string, cache: string, progress: (line: string) => void): Promise<void> {
  progress(`Caching the result in ${cache}`);
  mkdirp(join(cache, '..'), 0o700);
  const tmp = `${cache}.tmp-${process.pid}`;
  try {
    await runOk(
      [
        'tar',
        '-c',
        '--zstd',
        '--numeric-owner',
        '--xattrs',
        '--xattrs-include=*',
        '--exclude=./dev/*', // /dev is a tmpfs in every guest: no device nodes in the cache
        '-f',
        tmp,
        '-C',
        rootfs,
        '.',
      ],
      { what: 'Caching the debootstrap tree' },
    );
    fs.renameSync(tmp, cache);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    progress(`Could not cache the tree (${(e as Error).message}); continuing`);
  }
}
