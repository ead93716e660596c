/** A tiny ustar writer for tests: builds archives, hostile ones included, byte by byte. */
import { gzipSync } from 'node:zlib';

export interface TarMember {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink';
  data?: string;
  linkname?: string;
  mode?: number;
}

function header(m: TarMember): Buffer {
  const h = Buffer.alloc(512);
  const put = (off: number, len: number, s: string): void => {
    h.write(s, off, Math.min(len, Buffer.byteLength(s)), 'utf8');
  };
  const octal = (off: number, len: number, v: number): void =>
    put(off, len, v.toString(8).padStart(len - 1, '0') + '\0');
  const type = m.type ?? 'file';
  const size = type === 'file' ? Buffer.byteLength(m.data ?? '') : 0;
  put(0, 100, m.name);
  octal(100, 8, m.mode ?? (type === 'dir' ? 0o755 : 0o644));
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 1_700_000_000);
  h.fill(0x20, 148, 156);
  put(156, 1, { file: '0', dir: '5', symlink: '2', hardlink: '1' }[type]);
  put(157, 100, m.linkname ?? '');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(265, 32, 'root');
  put(297, 32, 'root');
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

export function makeTar(members: TarMember[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    parts.push(header(m));
    if ((m.type ?? 'file') === 'file' && m.data) {
      const d = Buffer.from(m.data);
      parts.push(d, Buffer.alloc((512 - (d.length % 512)) % 512));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function makeTarGz(members: TarMember[]): Buffer {
  return gzipSync(makeTar(members));
}
