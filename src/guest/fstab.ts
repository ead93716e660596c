import { JaulaError } from '../common/errors.js';

/** One line of a guest's fstab (`SOURCE TARGET TYPE OPTIONS [DUMP PASS]`), as in the seed. */
export interface FstabEntry {
  source: string;
  target: string;
  type: string;
  options: string[];
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function isBind(e: FstabEntry): boolean {
  return e.type === 'bind' || e.options.includes('bind') || e.options.includes('rbind');
}

export function parseFstab(text: string, file: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const f = line.split(/\s+/).map(unescape);
    const where = `${file}, line ${i + 1}`;
    if (f.length < 3 || f.length > 6)
      throw new JaulaError(
        'invalid',
        `${where}: expected "SOURCE TARGET TYPE [OPTIONS [DUMP PASS]]", got "${line}"`,
      );
    const [source, target, type, opts] = f as [string, string, string, string | undefined];
    if (!target.startsWith('/'))
      throw new JaulaError(
        'invalid',
        `${where}: the target "${target}" must be an absolute path inside the guest`,
      );
    if (target.split('/').includes('..'))
      throw new JaulaError('invalid', `${where}: the target "${target}" must not contain ".."`);
    const options = !opts || opts === 'defaults' ? [] : opts.split(',').filter((o) => o && o !== 'defaults');
    const e: FstabEntry = { source, target: target.replace(/\/+$/, '') || '/', type, options };
    if (e.target === '/')
      throw new JaulaError('invalid', `${where}: mounting over the guest's root "/" is not allowed`);
    if (isBind(e) && !source.startsWith('/'))
      throw new JaulaError('invalid', `${where}: the bind source "${source}" must be an absolute host path`);
    if (!isBind(e) && (options.includes('idmap') || options.includes('noidmap')))
      throw new JaulaError('invalid', `${where}: "idmap" and "noidmap" apply to bind mounts only`);
    if (options.includes('idmap') && options.includes('noidmap'))
      throw new JaulaError('invalid', `${where}: "idmap" and "noidmap" contradict each other: keep one`);
    out.push(e);
  });
  return out;
}

export const DEFAULT_FSTAB = `# Mounts of this guest, in fstab syntax: SOURCE TARGET TYPE OPTIONS [DUMP PASS]
# /proc, /dev, /dev/pts and a read-only /sys are always mounted; lines here add to them or
# change their options. Host directories are shared with bind mounts, for example:
#   /srv/shared  /srv/shared  none  bind,ro  0 0
# Binds into unprivileged guests are idmapped: the host's root owns them as the guest's root
# does ("noidmap" binds them as they are; see docs/config.md).
none  /proc     proc    defaults                              0 0
none  /dev/pts  devpts  newinstance,ptmxmode=0666,mode=0620,gid=5  0 0
none  /tmp      tmpfs   size=256m,mode=1777,nosuid,nodev      0 0
none  /run      tmpfs   size=64m,mode=0755,nosuid,nodev       0 0
`;
