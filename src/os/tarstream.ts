import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { JaulaError } from '../common/errors.js';

/**
 * A tree as a zstd-compressed POSIX tar stream (zstd on every core), keeping owners, modes,
 * xattrs (trusted.* and user.* overlay ones too: root reads them), hard links, device nodes,
 * whiteouts and holes. tar follows no symlink of the tree and stays on its filesystem. `done`
 * settles when tar ends: rejected with its stderr if it failed (the stream then ends short).
 * `live`: the tree changes while it is read (a running guest's): a file that changed, shrank or
 * went meanwhile is archived as tar found it (GNU tar's status 1: "some files differ"), not a failure.
 * `files`: only these paths of the tree (relative, "." for its root), each without its entries.
 */
export function tarCreateStream(
  dir: string,
  what: string,
  signal?: AbortSignal,
  live = false,
  files?: readonly string[],
): { stream: Readable; done: Promise<void> } {
  const argv = [
    '-c',
    ...(live
      ? [
          '--ignore-failed-read',
          '--warning=no-file-changed',
          '--warning=no-file-removed',
          '--warning=no-file-shrank',
        ]
      : []),
    // zstd at its default level on every core (tar's --zstd runs it on one).
    '--use-compress-program=zstd -T0 -q',
    '--format=posix',
    '--pax-option=delete=atime,delete=ctime',
    '--numeric-owner',
    '--xattrs',
    '--xattrs-include=*',
    '--sparse',
    '--one-file-system',
    '-f',
    '-',
    '-C',
    dir,
    ...(files ? ['--no-recursion', '--null', '--verbatim-files-from', '-T', '-'] : ['.']),
  ];
  const child = spawn('tar', argv, {
    stdio: [files ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    ...(signal ? { signal } : {}),
  });
  if (files) {
    child.stdin?.on('error', () => {}); // tar's own failure says more
    child.stdin?.end(files.map((f) => (f === '.' ? './\0' : `./${f}\0`)).join(''));
  }
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (e) =>
      reject(new JaulaError('runtime', `${what}: could not run tar: ${e.message}`, { cause: e })),
    );
    child.on('close', (code, sig) =>
      code === 0 || (live && code === 1)
        ? resolve()
        : reject(
            new JaulaError(
              'runtime',
              `${what}: tar ${sig ? `was killed by ${sig}` : `failed with status ${code}`}: ${err.trim().split('\n').slice(-3).join('; ')}`,
            ),
          ),
    );
  });
  return { stream: child.stdout as Readable, done };
}
