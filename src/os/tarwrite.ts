/**
 * A small ustar writer (POSIX pax headers for long names and xattrs), for the members jaula
 * makes itself: overlayfs whiteouts as an image layer's char devices 0/0 when a layer is
 * unpacked, and an image layer's ".wh." entries when a guest's changes are published.
 */
export interface TarHeader {
  path: string;
  type: 'file' | 'dir' | 'char' | 'symlink';
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  linkname?: string;
  xattrs?: Record<string, string>;
}

const TYPE_FLAG: Record<TarHeader['type'], string> = { file: '0', dir: '5', char: '3', symlink: '2' };

function block(fields: (h: Buffer) => void): Buffer {
  const h = Buffer.alloc(512);
  fields(h);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function octal(h: Buffer, off: number, len: number, v: number): void {
  h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

function paxRecord(k: string, v: string): string {
  const body = ` ${k}=${v}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function padded(b: Buffer): Buffer[] {
  const pad = (512 - (b.length % 512)) % 512;
  return pad ? [b, Buffer.alloc(pad)] : [b];
}

/** One member's header blocks (a pax header first when the name is long or it has xattrs). */
export function tarHeader(m: TarHeader): Buffer {
  const out: Buffer[] = [];
  const pax: string[] = [];
  if (Buffer.byteLength(m.path) > 100) pax.push(paxRecord('path', m.path));
  if (m.linkname && Buffer.byteLength(m.linkname) > 100) pax.push(paxRecord('linkpath', m.linkname));
  for (const [k, v] of Object.entries(m.xattrs ?? {})) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const base = (h: Buffer, name: string, type: string, size: number): void => {
    h.write(name, 0, 100, 'utf8');
    octal(h, 100, 8, m.mode ?? 0o644);
    octal(h, 108, 8, m.uid ?? 0);
    octal(h, 116, 8, m.gid ?? 0);
    octal(h, 124, 12, size);
    octal(h, 136, 12, m.mtime ?? 0);
    h.write(type, 156, 1, 'latin1');
    h.write('ustar\0', 257, 6, 'latin1');
    h.write('00', 263, 2, 'latin1');
    octal(h, 329, 8, 0);
    octal(h, 337, 8, 0);
  };
  if (pax.length) {
    const data = Buffer.from(pax.join(''));
    out.push(
      block((h) => base(h, 'PaxHeader', 'x', data.length)),
      ...padded(data),
    );
  }
  out.push(
    block((h) => {
      base(h, m.path.slice(0, 100), TYPE_FLAG[m.type], m.type === 'file' ? (m.size ?? 0) : 0);
      if (m.linkname) h.write(m.linkname.slice(0, 100), 157, 100, 'utf8');
    }),
  );
  return Buffer.concat(out);
}

/** The two zero blocks that end an archive. */
export const TAR_END = Buffer.alloc(1024);
