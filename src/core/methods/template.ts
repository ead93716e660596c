import * as fs from 'node:fs';
import { JaulaError } from '../../common/errors.js';
import { tarProgress } from '../../os/copy.js';
import { runOk } from '../../os/spawn.js';
import {
  DEFAULT_TAR_LIMITS,
  detectCompression,
  scanTar,
  TAR_PRESERVE,
  tarCompressionFlag,
} from '../../os/tar.js';

export function checkTemplateFile(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new JaulaError(
      'not_found',
      `The template "${file}" does not exist (give a .tar, .tar.gz or .tar.zst file with -- -t FILE)`,
    );
  }
  if (!st.isFile()) throw new JaulaError('invalid', `The template "${file}" is not a file`);
  detectCompression(file);
}

/**
 * Unpack a template archive into an empty directory: every member is checked first (nothing
 * is written if one is hostile), then GNU tar unpacks it keeping owners, modes, xattrs,
 * hard links and device nodes.
 */
export async function extractTemplate(
  file: string,
  target: string,
  signal?: AbortSignal,
  progress?: (line: string) => void,
  opts: { allowDevices?: boolean } = {},
): Promise<{ entries: number; bytes: number }> {
  checkTemplateFile(file);
  // Device nodes only for privileged guests: an unprivileged one could not make them either.
  const stats = await scanTar(file, { ...DEFAULT_TAR_LIMITS, allowDevices: opts.allowDevices ?? false });
  const c = detectCompression(file);
  const p = tarProgress(progress, 'unpacked', stats.bytes);
  await runOk(['tar', '-x', ...tarCompressionFlag(c), ...TAR_PRESERVE, ...p.args, '-f', file, '-C', target], {
    what: `Unpacking "${file}"`,
    dieWithParent: true,
    ...(signal ? { signal } : {}),
    ...(p.onStderr ? { onStderr: p.onStderr } : {}),
  });
  return stats;
}
