import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { JaulaError } from '../../common/errors.js';
import { mkdirp, which } from '../../os/fs.js';
import { unmountBelow } from '../../os/mounts.js';
import { paths } from '../../os/paths.js';
import { run, runOk } from '../../os/spawn.js';
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

function packages(a: DebootstrapArgs): string[] {
  const init = a.init === 'sysvinit' ? ['sysvinit-core'] : a.init === 'systemd' ? ['systemd-sysv'] : [];
  return [...new Set([...init, ...a.include])].sort();
}

/** The cache file of a debootstrap result: one per release, variant, packages and mirror. */
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

/**
 * Fill `rootfs` with Debian: from the cache when this exact debootstrap was done before, else
 * by running debootstrap (its progress is passed on), then caching the result.
 */
export async function buildDebootstrap(
  rootfs: string,
  a: DebootstrapArgs,
  progress: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const arch = await hostArch();
  const cache = debootstrapCacheFile(a, arch);
  if (fs.existsSync(cache)) {
    progress(`Using the cached ${a.suite} tree ${cache}`);
    await extractTemplate(cache, rootfs, signal, undefined, { allowDevices: true }); // jaula made it
    return;
  }
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
  let partial = '';
  try {
    await runOk(argv, {
      what: 'debootstrap',
      dieWithParent: true,
      timeoutMs: 30 * 60_000,
      ...(signal ? { signal } : {}),
      onStdout: (chunk) => {
        partial += chunk;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) if (l.trim()) progress(l.trim());
      },
    });
  } finally {
    await unmountBelow(rootfs);
  }
  progress(`Caching the result in ${cache}`);
  mkdirp(join(cache, '..'));
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
