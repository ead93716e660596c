import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { JaulaError } from '../common/errors.js';
import { ArchiveWriter, CHUNK_BYTES, readArchive, type ReadHooks } from './archive-format.js';

/** An archive with a header, a stream cut into members, and a small member. */
async function sample(big: Buffer): Promise<Buffer> {
  const sink = new PassThrough();
  const parts: Buffer[] = [];
  sink.on('data', (b: Buffer) => parts.push(b));
  const w = new ArchiveWriter(sink);
  await w.header({ format: 'jaula-guest-archive', version: 1, note: 'x' });
  await w.stream('own', Readable.from([big.subarray(0, 1000), big.subarray(1000)]));
  await w.member('extra.000000', Buffer.from('small\n'));
  await w.finish();
  sink.end();
  return Buffer.concat(parts);
}

/** Read `b` in pieces of `piece` bytes; returns the data each member got and the header. */
async function readBack(b: Buffer, piece = 7777): Promise<{ got: Map<string, Buffer>; header: unknown }> {
  const got = new Map<string, Buffer[]>();
  let header: unknown;
  const hooks: ReadHooks = {
    header: (h) => {
      header = h;
    },
    open: (name) => {
      const into: Buffer[] = [];
      got.set(name, into);
      return { data: (d) => void into.push(Buffer.from(d)) };
    },
  };
  const pieces: Buffer[] = [];
  for (let off = 0; off < b.length; off += piece) pieces.push(b.subarray(off, off + piece));
  await readArchive(Readable.from(pieces), '"test"', hooks);
  return { got: new Map([...got].map(([k, v]) => [k, Buffer.concat(v)])), header };
}

const refused = (re: RegExp) => (e: unknown) =>
  e instanceof JaulaError && e.code === 'invalid' && re.test(e.message);

describe('the guest archive container', () => {
  const big = Buffer.alloc(CHUNK_BYTES + 12345);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);

  it('round-trips a header, a stream cut into members of at most 8 MiB, and a member, read in any pieces', async () => {
    const a = await sample(big);
    for (const piece of [511, 7777, 1 << 20]) {
      const { got, header } = await readBack(a, piece);
      assert.deepEqual([...got.keys()], ['own.000000', 'own.000001', 'extra.000000']);
      assert.equal(got.get('own.000000')?.length, CHUNK_BYTES);
      const own = Buffer.concat([got.get('own.000000') as Buffer, got.get('own.000001') as Buffer]);
      assert.equal(
        createHash('sha256').update(own).digest('hex'),
        createHash('sha256').update(big).digest('hex'),
      );
      assert.equal((header as { note: string }).note, 'x');
    }
  });

  it('refuses a truncated archive, naming where it ends', async () => {
    const a = await sample(big);
    await assert.rejects(
      readBack(a.subarray(0, 5_000_000)),
      refused(/truncated: it ends inside the member "own.000000"/),
    );
    // Cut after the last data member, before the manifest.
    const cut = a.length - 1024 - 3 * 512 - 512 - 512;
    await assert.rejects(readBack(a.subarray(0, cut)), refused(/truncated/));
    await assert.rejects(readBack(Buffer.alloc(0)), refused(/empty or not a jaula guest archive/));
  });

  it('refuses a flipped byte in a member, in a header, and in the padding', async () => {
    const a = await sample(big);
    const flip = (at: number): Buffer => {
      const b = Buffer.from(a);
      b[at] = (b[at] ?? 0) ^ 0x10;
      return b;
    };
    await assert.rejects(readBack(flip(1536 + 100_000)), refused(/"own.000000" does not match its digest/));
    await assert.rejects(readBack(flip(1536 + CHUNK_BYTES + 10)), refused(/checksum|not a member header/));
    // The end of the last own member's data is padded with zeros up to a block.
    const ownEnd = 1536 + CHUNK_BYTES + 512 + 12345; // (the header member takes 1024 bytes)
    await assert.rejects(readBack(flip(ownEnd + 3)), refused(/padding after a member is not zero/));
  });

  it('refuses a file that is no guest archive', async () => {
    await assert.rejects(readBack(Buffer.alloc(4096, 0x41)), refused(/not a jaula guest archive/));
  });
});
