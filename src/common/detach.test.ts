import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DetachScanner } from './detach.js';

const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));
const text = (u: Uint8Array): string => Buffer.from(u).toString('latin1');

describe('the console escape keys', () => {
  it('pass ordinary input through and detach on Ctrl-a q, dropping what follows', () => {
    const d = new DetachScanner();
    assert.deepEqual(d.feed(bytes('ls\n')), { data: bytes('ls\n'), detach: false });
    const r = d.feed(bytes('x\x01qrest'));
    assert.equal(text(r.data), 'x');
    assert.equal(r.detach, true);
  });

  it('type Ctrl-a for Ctrl-a Ctrl-a and Ctrl-a a, and both keys for any other', () => {
    const d = new DetachScanner();
    assert.equal(text(d.feed(bytes('\x01\x01\x01a\x01z')).data), '\x01\x01\x01z');
  });

  it('keep the escape across reads (Ctrl-a, then q in the next read)', () => {
    const d = new DetachScanner();
    assert.deepEqual(d.feed(bytes('\x01')), { data: bytes(''), detach: false });
    assert.equal(d.feed(bytes('q')).detach, true);
  });
});
