/**
 * The runtime's sealed copy (runtime/sealed.ts): a memfd with the program's bytes that nothing
 * can change, made once per file, made again when the file changes; run() executes it.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { run } from '../os/spawn.js';
import { sealedRuntime } from './sealed.js';

const dir = fs.mkdtempSync(join(tmpdir(), 'jaula-sealed-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('sealedRuntime', () => {
  it('is a sealed memfd with the program, the same one while the file stays the same', () => {
    const prog = join(dir, 'readlink');
    fs.copyFileSync('/bin/readlink', prog);
    const fd = sealedRuntime(prog);
    assert.equal(typeof fd, 'number');
    assert.equal(fs.readlinkSync(`/proc/self/fd/${fd}`), '/memfd:readlink (deleted)');
    assert.deepEqual(fs.readFileSync(`/proc/self/fd/${fd}`), fs.readFileSync(prog));
    assert.throws(() => fs.writeSync(fd as number, 'x', 0), { code: 'EPERM' }, 'sealed against writes');
    assert.throws(() => fs.ftruncateSync(fd as number, 0), { code: 'EPERM' }, 'sealed against shrinking');
    const flags = /flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0';
    assert.ok(Number.parseInt(flags, 8) & 0o2000000, 'close-on-exec in this process');
    assert.equal(sealedRuntime(prog), fd);
    const other = join(dir, 'true');
    fs.copyFileSync('/bin/true', other);
    assert.notEqual(sealedRuntime(other), fd);
    assert.equal(sealedRuntime(prog), fd, 'one copy per program: another does not replace it');
    fs.appendFileSync(prog, 'x');
    const again = sealedRuntime(prog);
    assert.notEqual(again, fd, 'a changed file gets a new copy');
    assert.equal(fs.fstatSync(again as number).size, fs.statSync(prog).size);
  });

  it('is executed by run() as the program, under its own name', async () => {
    const prog = join(dir, 'readlink2');
    fs.copyFileSync('/bin/readlink', prog);
    const fd = sealedRuntime(prog) as number;
    const r = await run([prog, '/proc/self/exe'], { fds: [fd], exe: '/proc/self/fd/3' });
    assert.deepEqual([r.code, r.stdout], [0, '/memfd:readlink2 (deleted)\n']);
    // (with an abort signal, Node's spawn runs it: the same)
    const signal = new AbortController().signal;
    const r2 = await run([prog, '/proc/self/exe'], { fds: [fd], exe: '/proc/self/fd/3', signal });
    assert.deepEqual([r2.code, r2.stdout], [0, '/memfd:readlink2 (deleted)\n']);
  });

  it('is none for a missing program', () => {
    assert.equal(sealedRuntime(join(dir, 'nothing')), undefined);
  });
});
