/**
 * The container of a guest archive (`jaula backup`, migration): a plain POSIX tar stream of
 * regular members, written and read in one pass (no seeking: it goes through pipes and HTTP).
 *
 *   jaula/header.json           what the archive holds (format, version, the guest's config,
 *                               its layers by content digest, which of them are inside)
 *   layer/DIGEST.000000 ...     a layer (stored template) as a zstd tar, cut into members of at
 *                               most 8 MiB (a member's size comes before its data)
 *   own.000000 ...              the guest's own files (zstd tar); unified.*, conf.* likewise
 *   jaula/manifest.json         every member before it: name, size, sha256, in order
 *   jaula/manifest.sha256       the sha256 of manifest.json
 *
 * The reader hashes every member as it comes and checks the manifest against what it read,
 * then the manifest's own digest: a truncated file (no manifest), a flipped byte (a member's
 * digest, a header's checksum, or non-zero padding) or a reordered one is refused, naming
 * the member. The digests guard against damage, not against a forger (nothing is signed):
 * restore checks what it unpacks as it checks any archive (src/os/tar.ts).
 * `tar -xf FILE` unpacks the members with standard tools; `cat own.* | zstd -d | tar -t` lists
 * the guest's files.
 */
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { JaulaError } from '../common/errors.js';

export const ARCHIVE_FORMAT = 'jaula-guest-archive';
export const ARCHIVE_VERSION = 1;
/** The largest member a stream is cut into (the writer holds one in memory). */
export const CHUNK_BYTES = 8 << 20;
const HEADER = 'jaula/header.json';
const MANIFEST = 'jaula/manifest.json';
const MANIFEST_DIGEST = 'jaula/manifest.sha256';
const BLOCK = 512;

export interface MemberRecord {
  name: string;
  size: number;
  sha256: string;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function octalField(h: Buffer, off: number, len: number, v: number): void {
  h.write(`${v.toString(8).padStart(len - 1, '0')}\0`, off, len, 'latin1');
}

function ustarHeader(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 99) throw new Error(`archive member name too long: ${name}`);
  h.write(name, 0, 100, 'utf8');
  octalField(h, 100, 8, 0o600);
  octalField(h, 108, 8, 0);
  octalField(h, 116, 8, 0);
  octalField(h, 124, 12, size);
  octalField(h, 136, 12, mtime);
  h.fill(0x20, 148, 156);
  h[156] = 0x30;
  h.write('ustar\x0000', 257, 8, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

/** Write `b`, waiting until the sink took it (its backpressure is ours). */
function writeAll(sink: Writable, b: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    sink.write(b, (e) => (e ? reject(e) : resolve()));
  });
}

/** Writes one archive into `sink`: members, streams cut into members, then the manifest. */
export class ArchiveWriter {
  readonly members: MemberRecord[] = [];
  bytes = 0;
  private readonly mtime = Math.floor(Date.now() / 1000);

  constructor(private readonly sink: Writable) {}

  async member(name: string, data: Buffer): Promise<void> {
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    await writeAll(this.sink, ustarHeader(name, data.length, this.mtime));
    if (data.length) await writeAll(this.sink, data);
    if (pad) await writeAll(this.sink, Buffer.alloc(pad));
    this.bytes += BLOCK + data.length + pad;
    this.members.push({ name, size: data.length, sha256: sha256(data) });
  }

  /** A stream of unknown length as members NAME.000000, NAME.000001, ...; returns its bytes. */
  async stream(name: string, source: AsyncIterable<Buffer>): Promise<number> {
    let parts: Buffer[] = [];
    let held = 0;
    let n = 0;
    let total = 0;
    const flush = async (): Promise<void> => {
      await this.member(`${name}.${String(n++).padStart(6, '0')}`, Buffer.concat(parts, held));
      parts = [];
      held = 0;
    };
    for await (const chunk of source) {
      const b = chunk as Buffer;
      total += b.length;
      for (let off = 0; off < b.length;) {
        const take = Math.min(CHUNK_BYTES - held, b.length - off);
        parts.push(b.subarray(off, off + take));
        held += take;
        off += take;
        if (held === CHUNK_BYTES) await flush();
      }
    }
    if (held > 0 || n === 0) await flush();
    return total;
  }

  /** The manifest, its digest and tar's end: the archive is complete only with these. */
  async finish(): Promise<void> {
    const manifest = Buffer.from(JSON.stringify({ members: this.members }) + '\n');
    await this.member(MANIFEST, manifest);
    await this.member(MANIFEST_DIGEST, Buffer.from(`${sha256(manifest)}\n`));
    await writeAll(this.sink, Buffer.alloc(2 * BLOCK));
    this.bytes += 2 * BLOCK;
  }

  /** The header member (first). */
  header(h: object): Promise<void> {
    return this.member(HEADER, Buffer.from(JSON.stringify(h, null, 1) + '\n'));
  }
}

/** What the reader does with a member's data: called with each piece, then with `end`. */
export interface MemberSink {
  data(b: Buffer): void | Promise<void>;
}

export interface ReadHooks {
  /** The header (parsed, not yet checked against the manifest): may refuse early. */
  header(h: Record<string, unknown>): void | Promise<void>;
  /** Where a member's data goes (throw to refuse an unexpected member). */
  open(name: string): MemberSink;
}

function cstr(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z < 0 ? s : s.subarray(0, z)).toString('utf8');
}

/** The one-pass reader's state: where in the stream, what was read, what is owed. */
class ReadState {
  readonly read: MemberRecord[] = [];
  buf = Buffer.alloc(0);
  cur:
    | {
        name: string;
        size: number;
        got: number;
        hash: ReturnType<typeof createHash>;
        sink: MemberSink;
        small?: Buffer[];
      }
    | undefined;
  pad = 0;
  headerSeen = false;
  manifest: Buffer | undefined;
  verified = false;
  ended = false;
  offset = 0;

  constructor(readonly what: string) {}

  bad(why: string): JaulaError {
    return new JaulaError('invalid', `The archive ${this.what} is refused: ${why}`);
  }
}

function parseHeader(s: ReadState, h: Buffer): { name: string; size: number } | undefined {
  if (h.every((x) => x === 0)) return undefined;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
  const magic = h.subarray(257, 263).toString('latin1');
  if (magic !== 'ustar\0')
    throw s.headerSeen
      ? s.bad(`it is damaged at byte ${s.offset} (not a member header there)`)
      : new JaulaError('invalid', `${s.what} is not a jaula guest archive (made by "jaula backup")`);
  if (sum !== parseInt(cstr(h, 148, 8).trim(), 8))
    throw s.bad(`it is damaged: the header at byte ${s.offset} fails its checksum`);
  if (h[156] !== 0x30) throw s.bad(`the member at byte ${s.offset} is not a plain file`);
  return { name: cstr(h, 0, 100), size: parseInt(cstr(h, 124, 12).trim(), 8) };
}

/** A member's data is complete: check it, keep its record, act on the archive's own members. */
async function endMember(s: ReadState, hooks: ReadHooks): Promise<void> {
  const c = s.cur;
  if (!c) return;
  s.cur = undefined;
  const rec = { name: c.name, size: c.size, sha256: c.hash.digest('hex') };
  const small = c.small ? Buffer.concat(c.small) : undefined;
  if (c.name === HEADER && small) {
    let h: unknown;
    try {
      h = JSON.parse(small.toString('utf8'));
    } catch {
      throw s.bad('its header is not JSON (damaged)');
    }
    if (typeof h !== 'object' || h === null || (h as Record<string, unknown>)['format'] !== ARCHIVE_FORMAT)
      throw new JaulaError('invalid', `${s.what} is not a jaula guest archive (made by "jaula backup")`);
    await hooks.header(h as Record<string, unknown>);
  } else if (c.name === MANIFEST && small) {
    s.manifest = small;
    checkManifest(s, small);
  } else if (c.name === MANIFEST_DIGEST && small) {
    if (!s.manifest) throw s.bad('its manifest digest comes before its manifest');
    if (small.toString('latin1').trim() !== sha256(s.manifest))
      throw s.bad('its manifest does not match its digest (damaged)');
    s.verified = true;
  }
  s.read.push(rec);
}

/** The manifest must list exactly the members read so far, with their sizes and digests. */
function checkManifest(s: ReadState, m: Buffer): void {
  let list: MemberRecord[];
  try {
    list = (JSON.parse(m.toString('utf8')) as { members: MemberRecord[] }).members;
    if (!Array.isArray(list)) throw new Error('no list');
  } catch {
    throw s.bad('its manifest is not readable (damaged)');
  }
  const read = s.read;
  for (let i = 0; i < Math.max(list.length, read.length); i++) {
    const want = list[i];
    const got = read[i];
    if (!want) throw s.bad(`the member "${got?.name}" is not in its manifest (added?)`);
    if (!got) throw s.bad(`the member "${want.name}" of its manifest is missing`);
    if (want.name !== got.name)
      throw s.bad(`its manifest lists "${want.name}" where the archive has "${got.name}"`);
    if (want.size !== got.size || want.sha256 !== got.sha256)
      throw s.bad(`the member "${got.name}" does not match its digest in the manifest (damaged or altered)`);
  }
}

async function onBlock(s: ReadState, h: Buffer, hooks: ReadHooks): Promise<void> {
  const m = parseHeader(s, h);
  if (!m) {
    s.ended = true;
    return;
  }
  if (s.verified) throw s.bad(`the member "${m.name}" follows its manifest (added?)`);
  if (!s.headerSeen && m.name !== HEADER)
    throw new JaulaError('invalid', `${s.what} is not a jaula guest archive (made by "jaula backup")`);
  const own = m.name === HEADER || m.name === MANIFEST || m.name === MANIFEST_DIGEST;
  if (own && m.size > 16 << 20) throw s.bad(`its member "${m.name}" is too large`);
  if (m.name === HEADER && s.headerSeen) throw s.bad('it has two headers');
  s.headerSeen = true;
  const sink: MemberSink = own ? { data: () => {} } : hooks.open(m.name);
  s.cur = { ...m, got: 0, hash: createHash('sha256'), sink, ...(own ? { small: [] } : {}) };
  s.pad = (BLOCK - (m.size % BLOCK)) % BLOCK;
  if (m.size === 0) await endMember(s, hooks);
}

/** Feed one piece of the stream through the state machine. */
async function feed(s: ReadState, chunk: Buffer, hooks: ReadHooks): Promise<void> {
  let b = s.buf.length ? Buffer.concat([s.buf, chunk]) : chunk;
  while (b.length && !s.ended) {
    const c = s.cur;
    if (c && c.got < c.size) {
      const piece = b.subarray(0, Math.min(c.size - c.got, b.length));
      c.hash.update(piece);
      c.small?.push(Buffer.from(piece));
      await c.sink.data(piece);
      c.got += piece.length;
      s.offset += piece.length;
      b = b.subarray(piece.length);
      if (c.got === c.size) await endMember(s, hooks);
      continue;
    }
    if (s.pad > 0) {
      const n = Math.min(s.pad, b.length);
      if (!b.subarray(0, n).every((x) => x === 0))
        throw s.bad(`it is damaged at byte ${s.offset} (padding after a member is not zero)`);
      s.pad -= n;
      s.offset += n;
      b = b.subarray(n);
      continue;
    }
    if (b.length < BLOCK) break;
    await onBlock(s, b.subarray(0, BLOCK), hooks);
    s.offset += BLOCK;
    b = b.subarray(BLOCK);
  }
  s.buf = Buffer.from(b);
}

/**
 * Read a whole archive from `source`, handing each member's data to `hooks.open(name)`; resolves
 * only when every member matched the manifest and the manifest its digest (until then nothing
 * read may be trusted: callers keep it aside). Returns the members read.
 */
export async function readArchive(
  source: AsyncIterable<Buffer | string>,
  what: string,
  hooks: ReadHooks,
): Promise<MemberRecord[]> {
  const s = new ReadState(what);
  for await (const chunk of source) {
    await feed(s, typeof chunk === 'string' ? Buffer.from(chunk) : chunk, hooks);
    if (s.ended) break;
  }
  if (!s.headerSeen) throw new JaulaError('invalid', `${what} is empty or not a jaula guest archive`);
  if (!s.verified) {
    const last = s.cur ?? s.read[s.read.length - 1];
    const where = s.cur ? `inside the member "${s.cur.name}"` : `after the member "${last?.name}"`;
    throw s.bad(`it is truncated: it ends ${where}, before its manifest was read and checked`);
  }
  return s.read;
}
