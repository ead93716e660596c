import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { JaulaError } from '../common/errors.js';

export type Compression = 'none' | 'gzip' | 'zstd';

/** Detect an archive's compression from its first bytes (not its name). */
export function detectCompression(file: string): Compression {
  const fd = fs.openSync(file, 'r');
  const b = Buffer.alloc(512);
  let n: number;
  try {
    n = fs.readSync(fd, b, 0, 512, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (n >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (n >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (n === 512 && b.subarray(257, 262).toString('latin1') === 'ustar') return 'none';
  throw new JaulaError(
    'invalid',
    `"${file}" is not a .tar, .tar.gz or .tar.zst archive (unknown or damaged header)`,
  );
}

export function tarCompressionFlag(c: Compression): string[] {
  return c === 'gzip' ? ['--gzip'] : c === 'zstd' ? ['--zstd'] : [];
}

/**
 * The archive's bytes, decompressed. `stop()` ends the decompressor when the reader has what it
 * needs (the archive's end marker): zstd may then still be writing the padding after it, and its
 * "Broken pipe" is no fault of the archive.
 */
function decompressed(
  file: string,
  c: Compression,
): { stream: Readable; done: Promise<void>; stop: () => void } {
  const none = (): void => {};
  if (c === 'none')
    return {
      stream: fs.createReadStream(file, { highWaterMark: 1 << 20 }),
      done: Promise.resolve(),
      stop: none,
    };
  if (c === 'gzip')
    return {
      stream: fs.createReadStream(file, { highWaterMark: 1 << 20 }).pipe(createGunzip()),
      done: Promise.resolve(),
      stop: none,
    };
  const child = spawn('zstd', ['-dcq', '--', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let stopped = false;
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (e) =>
      reject(new JaulaError('unsupported', `zstd is not installed, needed for "${file}"`, { cause: e })),
    );
    child.on('close', (code, sig) =>
      code === 0 || sig === 'SIGPIPE' || sig === 'SIGTERM' || (stopped && /Broken pipe/i.test(err))
        ? resolve()
        : reject(new JaulaError('invalid', `"${file}" is not a valid zstd archive: ${err.trim()}`)),
    );
  });
  const stop = (): void => {
    stopped = true;
    child.kill('SIGTERM');
  };
  return { stream: child.stdout, done, stop };
}

export interface TarEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
  size: number;
  linkname: string;
  mode: number;
}

export interface TarLimits {
  maxEntries: number;
  maxBytes: number;
  allowDevices: boolean;
}

/** What a caller of scanTar may watch: each member once checked, every decompressed byte. */
export interface TarHooks {
  onMember?: (e: TarEntry) => void;
  /** Called with every byte of the decompressed archive, padding after its end included. */
  onData?: (b: Buffer) => void;
}

export const DEFAULT_TAR_LIMITS: TarLimits = {
  maxEntries: 2_000_000,
  maxBytes: 64 * 2 ** 30,
  allowDevices: true,
};

function cstr(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z < 0 ? s : s.subarray(0, z)).toString('utf8');
}

function octal(b: Buffer, off: number, len: number): number {
  const f = b.subarray(off, off + len);
  if (f[0] !== undefined && f[0] & 0x80) {
    // base-256 (GNU) for large values
    let v = f[0] & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + (f[i] ?? 0);
    return v;
  }
  const s = cstr(b, off, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function parsePax(data: Buffer): Map<string, string> {
  const m = new Map<string, string>();
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(data.subarray(off, sp).toString());
    if (!len) break;
    const rec = data.subarray(sp + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) m.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return m;
}

/** Normalise an archive member name; throws on absolute paths and "..". */
export function memberPath(name: string, archive: string): string {
  if (name.startsWith('/'))
    throw new JaulaError(
      'invalid',
      `The archive "${archive}" is refused: the member "${name}" has an absolute path`,
    );
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw new JaulaError(
      'invalid',
      `The archive "${archive}" is refused: the member "${name}" contains ".." and would land outside the target`,
    );
  return parts.join('/');
}

/** tar's type flags and the member kinds they make; another flag is refused. */
const TAR_KINDS: Record<string, TarEntry['type']> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '5': 'dir',
  '2': 'symlink',
  '1': 'hardlink',
  '3': 'char',
  '4': 'block',
  '6': 'fifo',
};

/** scanTar's one pass over an archive: headers read as the bytes come, each member checked. */
class TarScan {
  entries = 0;
  bytes = 0;
  ended = false;
  /** Data bytes of the current member still to skip. */
  skip = 0;
  /** Bytes of a header not complete yet. */
  buf: Buffer = Buffer.alloc(0);
  private readonly symlinks = new Set<string>();
  private collect: { kind: 'L' | 'K' | 'x' | 'g'; size: number; parts: Buffer[]; got: number } | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private pax: Map<string, string> | undefined;

  constructor(
    private readonly file: string,
    private readonly limits: TarLimits,
    private readonly onMember?: (e: TarEntry) => void,
  ) {}

  feed(chunk: Buffer): void {
    const { file } = this;
    let buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let off = 0;
    while (!this.ended) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - off);
        const collect = this.collect;
        if (collect) {
          const want = Math.max(0, Math.min(n, collect.size - collect.got));
          collect.parts.push(buf.subarray(off, off + want));
          collect.got += want;
          if (collect.got > 1 << 20)
            throw new JaulaError(
              'invalid',
              `The archive "${file}" is refused: an extended header is larger than 1 MiB`,
            );
        }
        off += n;
        this.skip -= n;
        if (this.skip > 0) break;
        if (collect) {
          const data = Buffer.concat(collect.parts);
          if (collect.kind === 'L') this.longName = cstr(data, 0, data.length);
          else if (collect.kind === 'K') this.longLink = cstr(data, 0, data.length);
          else if (collect.kind === 'x') this.pax = parsePax(data);
          this.collect = undefined;
        }
        continue;
      }
      if (buf.length - off < 512) break;
      this.onHeader(buf.subarray(off, off + 512));
      off += 512;
    }
    buf = buf.subarray(off);
    this.buf = buf;
  }

  /** The symlink the archive made that `p` lies below, if any. */
  private below(p: string): string | undefined {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const pre = parts.slice(0, i).join('/');
      if (this.symlinks.has(pre)) return pre;
    }
    return undefined;
  }

  private onHeader(h: Buffer): void {
    const { file } = this;
    if (h.every((x) => x === 0)) {
      this.ended = true;
      return;
    }
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
    if (sum !== octal(h, 148, 8))
      throw new JaulaError('invalid', `The archive "${file}" is damaged: a header checksum does not match`);
    const type = String.fromCharCode(h[156] ?? 0x30);
    const size = octal(h, 124, 12);
    const padded = Math.ceil(size / 512) * 512;
    if (type === 'L' || type === 'K' || type === 'x' || type === 'g') {
      this.collect = { kind: type, size, parts: [], got: 0 };
      this.skip = padded;
      return;
    }
    const magic = h.subarray(257, 263).toString('latin1');
    const prefix = magic.startsWith('ustar') && magic !== 'ustar ' ? cstr(h, 345, 155) : '';
    const { longName, longLink, pax } = this;
    // A sparse file of the POSIX format lands at GNU.sparse.name (its header names a stand-in).
    let name =
      longName ??
      pax?.get('GNU.sparse.name') ??
      pax?.get('path') ??
      (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
    const link = longLink ?? pax?.get('linkpath') ?? cstr(h, 157, 100);
    this.longName = this.longLink = this.pax = undefined;
    name = memberPath(name, file);
    const kind = TAR_KINDS[type];
    if (!kind)
      throw new JaulaError(
        'invalid',
        `The archive "${file}" is refused: the member "${name}" has an unsupported type "${type}"`,
      );
    const whiteout = kind === 'char' && octal(h, 329, 8) === 0 && octal(h, 337, 8) === 0;
    this.checkMember(name, kind, link, size, whiteout);
    this.onMember?.({ path: name, type: kind, size, linkname: link, mode: octal(h, 100, 8) });
    this.skip = kind === 'file' ? padded : 0;
  }

  /** The limits, and where the member lands: never through a symlink, a device only if allowed. */
  private checkMember(
    name: string,
    kind: TarEntry['type'],
    link: string,
    size: number,
    whiteout: boolean,
  ): void {
    const { file, limits } = this;
    if (++this.entries > limits.maxEntries)
      throw new JaulaError(
        'invalid',
        `The archive "${file}" is refused: more than ${limits.maxEntries} members`,
      );
    this.bytes += size;
    if (this.bytes > limits.maxBytes)
      throw new JaulaError(
        'invalid',
        `The archive "${file}" is refused: it unpacks to more than ${limits.maxBytes} bytes`,
      );
    if (name === '') {
      if (kind !== 'dir')
        throw new JaulaError(
          'invalid',
          `The archive "${file}" is refused: a member that is not a directory names the root`,
        );
    } else {
      const via = this.below(name);
      if (via)
        throw new JaulaError(
          'invalid',
          `The archive "${file}" is refused: the member "${name}" would be written through the symlink "${via}"`,
        );
      if (kind === 'symlink') this.symlinks.add(name);
      else this.symlinks.delete(name);
    }
    if (kind === 'hardlink') {
      const target = memberPath(link, file);
      const via = this.below(target);
      if (!target || via)
        throw new JaulaError(
          'invalid',
          `The archive "${file}" is refused: the hard link "${name}" points at "${link}", through a symlink`,
        );
    }
    // An overlay whiteout (char 0/0) is no device: nothing can be opened through it.
    if ((kind === 'char' || kind === 'block') && !whiteout && !limits.allowDevices)
      throw new JaulaError(
        'invalid',
        `The archive "${file}" is refused: it holds the device node "${name}" (only privileged guests may have device nodes)`,
      );
  }
}

/**
 * Read a whole archive and check every member before anything is written: no absolute paths,
 * no "..", no member below a symlink the archive made (a write through a link), no hard link
 * to outside the tree, no unknown member types; bounded entry count and size.
 */
export async function scanTar(
  file: string,
  limits: TarLimits = DEFAULT_TAR_LIMITS,
  hooks: TarHooks = {},
): Promise<{ entries: number; bytes: number }> {
  const c = detectCompression(file);
  const { stream, done, stop } = decompressed(file, c);
  const scan = new TarScan(file, limits, hooks.onMember);
  try {
    for await (const chunk of stream) {
      hooks.onData?.(chunk as Buffer);
      if (!scan.ended) scan.feed(chunk as Buffer);
      if (scan.ended && !hooks.onData) break;
    }
  } catch (e) {
    stop();
    stream.destroy();
    done.catch(() => {});
    if (e instanceof JaulaError) throw e;
    throw new JaulaError('invalid', `"${file}" could not be read as an archive: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (scan.ended && !hooks.onData) stop(); // (what follows the end marker is padding)
  stream.destroy();
  await done;
  if (!scan.ended && scan.entries === 0)
    throw new JaulaError('invalid', `"${file}" holds no archive members (empty or damaged)`);
  if (scan.skip > 0 || (!scan.ended && scan.buf.length > 0))
    throw new JaulaError('invalid', `The archive "${file}" is truncated`);
  return { entries: scan.entries, bytes: scan.bytes };
}

/** GNU tar's flags that keep owners, modes, xattrs, hard links and device nodes as they are. */
export const TAR_PRESERVE = [
  '--numeric-owner',
  '--same-owner',
  '--same-permissions',
  '--xattrs',
  '--xattrs-include=*',
];
