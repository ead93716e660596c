/**
 * Programs run by posix_spawn (os/fastspawn.ts, native/spawn.c) behave as Node's spawn did for
 * run(): output, input, status, signals, time limits, missing programs, cwd, env, extra fds; and
 * every child is reaped (no zombie), with its signals back to their defaults.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { spawnFast } from './fastspawn.js';
import { native } from './native.js';
import { run } from './spawn.js';

/** This process's children that are zombies (spawned here and not reaped). */
function zombies(): string[] {
  const kids = fs.readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim();
  return kids
    .split(' ')
    .filter(Boolean)
    .filter((p) => / Z /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8')));
}

describe('run() by posix_spawn', () => {
  it("captures stdout and stderr, feeds stdin, and returns the program's status", async () => {
    assert.deepEqual(await run(['sh', '-c', 'cat; echo err >&2; exit 3'], { input: 'in' }), {
      code: 3,
      signal: null,
      stdout: 'in',
      stderr: 'err\n',
    });
  });

  it('tells a signal from a status, and kills at the time limit', async () => {
    const r = await run(['sh', '-c', 'kill -TERM $$']);
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(r.code, 128);
    const t0 = Date.now();
    const slow = await run(['sleep', '30'], { timeoutMs: 100 });
    assert.equal(slow.signal, 'SIGKILL');
    assert.ok(Date.now() - t0 < 10_000);
  });

  it('says a program is missing, by name or by path', async () => {
    await assert.rejects(run(['jaula-no-such-program']), /"jaula-no-such-program" is not installed/);
    await assert.rejects(run(['/nonexistent/prog']), /"\/nonexistent\/prog" is not installed/);
  });

  it('runs in cwd with env, keeps at most maxOutput bytes', async () => {
    const r = await run(['sh', '-c', 'pwd; echo "$JAULA_T"'], {
      cwd: '/usr',
      env: { PATH: '/usr/bin:/bin', JAULA_T: 'x y' },
    });
    assert.equal(r.stdout, '/usr\nx y\n');
    const big = await run(['head', '-c', '100000', '/dev/zero'], { maxOutput: 1000 });
    assert.equal(big.stdout.length, 1000);
    assert.equal(big.dropped?.stdout, 99_000);
  });

  it('gives children default signal dispositions (Node ignores SIGPIPE) and an empty mask', async () => {
    const r = await run(['grep', '-E', '^Sig(Ign|Blk)', '/proc/self/status']);
    const mask = (k: string): bigint =>
      BigInt(`0x${new RegExp(`${k}:\\s+([0-9a-f]+)`).exec(r.stdout)?.[1] ?? 'x'}`);
    assert.equal(mask('SigBlk'), 0n);
    // (glibc's posix_spawn leaves its own two signals, 32 and 33, ignored; the supervisor resets
    // them before the runtime runs: tests/lifecycle.test.ts checks a guest's init)
    assert.equal(mask('SigIgn') & 0x7fffffffn, 0n, 'none of signals 1-31 ignored');
  });

  it('hands the child extra fds in place, /dev/null for ignored ones, a new session when detached', async () => {
    const c = await spawnFast(
      '/bin/sh',
      ['-c', 'echo $$ $(ps -o sid= -p $$) >&3; readlink /proc/self/fd/0'],
      {
        slots: ['ignore', 'out', 'ignore', 'out'],
        detached: true,
      },
    );
    const read = (i: number): Promise<string> =>
      new Promise((resolve) => {
        let t = '';
        c.stdio[i]?.on('data', (b: Buffer) => (t += b.toString()));
        c.stdio[i]?.on('close', () => resolve(t));
      });
    const [fd1, fd3, end] = await Promise.all([read(1), read(3), c.exited]);
    assert.equal(fd1.trim(), '/dev/null');
    const [pid, sid] = fd3.trim().split(/\s+/);
    assert.equal(pid, sid, 'a session leader');
    assert.deepEqual(end, { code: 0, signal: null });
  });

  it('reaps every child, many at once', async () => {
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => run(['sh', '-c', `exit ${i % 7}`])));
    assert.deepEqual(
      rs.map((r) => r.code),
      Array.from({ length: 40 }, (_, i) => i % 7),
    );
    assert.deepEqual(zombies(), []);
  });

  it('lets a process end while exits of its detached children are still being reaped', async () => {
    // The exits arrive from the addon's thread while Node tears the process down: they must be
    // dropped, not handed to the freed callback (which aborted about one run in thirteen).
    const script =
      `import { spawnFast } from ${JSON.stringify(new URL('./fastspawn.js', import.meta.url).href)};\n` +
      `for (let i = 0; i < 16; i++) (await spawnFast('/bin/true', [], { slots: [] })).unref();\n`;
    type End = { code: number; signal: string | null; err: string };
    const once = (): Promise<End> =>
      run([process.execPath, '--input-type=module', '-e', script]).then((r) => ({
        code: r.code,
        signal: r.signal,
        err: r.stderr,
      }));
    const ends: End[] = [];
    for (let round = 0; round < 15; round++)
      ends.push(...(await Promise.all([once(), once(), once(), once()])));
    assert.deepEqual(
      ends.filter((e) => e.code !== 0 || e.err !== ''),
      [],
    );
  });

  it('refuses a relative program path in the addon itself', () => {
    assert.throws(() => native().spawn(['sh'], null, [], 0, null), TypeError);
  });
});
