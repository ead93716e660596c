import * as fs from 'node:fs';
import { JaulaError } from '../common/errors.js';
import { formatMiB } from '../common/size.js';
import { runOk } from './spawn.js';

export type Reflink = 'never' | 'auto' | 'always';

/** Bytes used on the filesystem holding `dir` (for progress while something writes there). */
export function fsUsedBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

/**
 * Copy the contents of `src` into the existing directory `dst`, keeping owners, modes,
 * timestamps, hard links, device nodes, xattrs (failures to keep them are errors) and holes.
 * cp never follows a symlink inside the tree (-d, -R without -L). With reflink "always" no file
 * data is copied (FICLONE); "auto" clones where the filesystem can.
 */
export async function copyTree(
  src: string,
  dst: string,
  o: {
    reflink?: Reflink;
    /** Hard-link the files instead of copying them (for read-only layers of shared objects). */
    link?: boolean;
    progress?: (line: string, fraction?: number) => void;
    totalBytes?: number;
    what?: string;
  } = {},
): Promise<void> {
  const argv = [
    'cp',
    '-dR',
    ...(o.link ? ['--link'] : []),
    '--preserve=mode,ownership,timestamps,links,xattr',
    '--sparse=auto',
    ...(o.link ? [] : [`--reflink=${o.reflink ?? 'auto'}`]),
    '--no-target-directory',
    `${src}/.`,
    `${dst}/.`,
  ];
  let timer: NodeJS.Timeout | undefined;
  if (o.progress && o.reflink !== 'always' && !o.link) {
    const base = fsUsedBytes(dst);
    const total = o.totalBytes;
    const report = o.progress;
    timer = setInterval(() => {
      const done = Math.max(0, fsUsedBytes(dst) - base);
      report(
        `copied ${formatMiB(done)}${total ? ` of ${formatMiB(total)}` : ''}`,
        total ? Math.min(1, done / total) : undefined,
      );
    }, 1000);
  }
  try {
    // cp dies with this process: nothing may write into a copy that a crash recovery removes.
    await runOk(argv, { what: o.what ?? `Copying "${src}" to "${dst}"`, dieWithParent: true });
  } finally {
    if (timer) clearInterval(timer);
  }
}

/** The compression an archive's name asks for. */
export function compressionOfName(file: string): 'none' | 'gzip' | 'zstd' {
  if (/\.tar$/.test(file)) return 'none';
  if (/\.(tar\.gz|tgz)$/.test(file)) return 'gzip';
  if (/\.(tar\.zst|tzst)$/.test(file)) return 'zstd';
  throw new JaulaError(
    'usage',
    `"${file}" does not end in .tar, .tar.gz or .tar.zst: the name chooses the format`,
  );
}

/** Progress lines from tar's checkpoints: one each CHECKPOINT records of 10 KiB. */
export const TAR_CHECKPOINT = 1024;
export function tarProgress(
  progress: ((line: string, fraction?: number) => void) | undefined,
  verb: string,
  totalBytes?: number,
): { args: string[]; onStderr?: (chunk: string) => void } {
  if (!progress) return { args: [] };
  let last = 0;
  return {
    args: [`--checkpoint=${TAR_CHECKPOINT}`, '--checkpoint-action=echo=%u'],
    onStderr: (chunk) => {
      for (const m of chunk.matchAll(/tar: (\d+)/g)) {
        const bytes = Number(m[1]) * 10240;
        if (bytes - last < 2 ** 20) continue;
        last = bytes;
        progress(
          `${verb} ${formatMiB(bytes)}${totalBytes ? ` of ${formatMiB(totalBytes)}` : ''}`,
          totalBytes ? Math.min(1, bytes / totalBytes) : undefined,
        );
      }
    },
  };
}
