import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { freezerAt, within, withFrozen, type Freezer } from './freeze.js';

/** A freezer that records what was asked of it; frozen after `after` polls. */
function fake(after = 0): Freezer & { log: string[] } {
  const log: string[] = [];
  let polls = 0;
  return {
    log,
    file: '/fake/freezer.state',
    freeze: () => log.push('freeze'),
    thaw: () => log.push('thaw'),
    frozen: () => ++polls > after,
  };
}

describe('withFrozen', () => {
  it('runs the work only once the cgroup is frozen, then thaws it', async () => {
    const f = fake(3);
    const r = await withFrozen(f, async () => {
      f.log.push('work');
      return 42;
    });
    assert.equal(r, 42);
    assert.deepEqual(f.log, ['freeze', 'work', 'thaw']);
  });

  it('thaws when the work fails, and passes the error on', async () => {
    const f = fake();
    await assert.rejects(
      withFrozen(f, async () => {
        throw new Error('snapshot failed');
      }),
      /snapshot failed/,
    );
    assert.deepEqual(f.log, ['freeze', 'thaw']);
  });

  it('keeps the result when the guest ended meanwhile (its cgroup gone: nothing to thaw)', async () => {
    const f = fake();
    f.thaw = () => {
      throw Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' });
    };
    assert.equal(await withFrozen(f, async () => 'taken'), 'taken');
  });

  it('gives up, thawed, when the freeze does not complete in time', async () => {
    const f = fake(Infinity);
    await assert.rejects(
      withFrozen(f, async () => f.log.push('work'), 20),
      /did not freeze within 20 ms .*try again, or stop it first/,
    );
    assert.deepEqual(f.log, ['freeze', 'thaw']);
  });
});

describe('freezerAt', () => {
  it('writes and reads v1 freezer.state and v2 cgroup.freeze / cgroup.events', () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'jaula-freeze-'));
    try {
      // (kernel files exist already: they are written, never made)
      const reset = (f: string): void => fs.writeFileSync(join(dir, f), '');
      reset('freezer.state');
      reset('cgroup.freeze');
      const v1 = freezerAt(dir, 1);
      v1.freeze();
      assert.equal(fs.readFileSync(join(dir, 'freezer.state'), 'utf8'), 'FROZEN');
      assert.equal(v1.frozen(), true);
      fs.writeFileSync(join(dir, 'freezer.state'), 'FREEZING\n');
      assert.equal(v1.frozen(), false);
      reset('freezer.state');
      v1.thaw();
      assert.equal(fs.readFileSync(join(dir, 'freezer.state'), 'utf8'), 'THAWED');
      const v2 = freezerAt(dir, 2);
      v2.freeze();
      assert.equal(fs.readFileSync(join(dir, 'cgroup.freeze'), 'utf8'), '1');
      fs.writeFileSync(join(dir, 'cgroup.events'), 'populated 1\nfrozen 0\n');
      assert.equal(v2.frozen(), false);
      fs.writeFileSync(join(dir, 'cgroup.events'), 'populated 1\nfrozen 1\n');
      assert.equal(v2.frozen(), true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('within', () => {
  it("tells a cgroup holding jaula's own (never frozen) from one beside it", () => {
    assert.equal(within('/a/b', '/a'), true);
    assert.equal(within('/a', '/a'), true);
    assert.equal(within('/anything', '/'), true);
    assert.equal(within('/a', '/a/b'), false);
    assert.equal(within('/ab', '/a'), false);
  });
});
