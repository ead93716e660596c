import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JaulaError } from '../common/errors.js';
import { changeSnapshotPolicy } from './snapshot-policy.js';

const invalid = (re: RegExp) => (e: unknown) =>
  e instanceof JaulaError && e.code === 'invalid' && re.test(e.message);

describe("a guest's snapshot keys (jaula set NAME snapshots.KEY=VALUE)", () => {
  it('sets, changes and removes keys (an empty value: back to the default)', () => {
    const p = changeSnapshotPolicy(
      undefined,
      { 'snapshots.schedule': ' @daily ', 'snapshots.expiry': '2w' },
      'web1',
    );
    assert.deepEqual(p, { schedule: '@daily', expiry: '2w' });
    const q = changeSnapshotPolicy(
      p,
      { 'snapshots.schedule.stopped': 'TRUE', 'snapshots.pattern': 'auto%d' },
      'web1',
    );
    assert.deepEqual(q, { schedule: '@daily', expiry: '2w', stopped: true, pattern: 'auto%d' });
    assert.deepEqual(
      changeSnapshotPolicy(q, { 'snapshots.schedule.stopped': 'off' }, 'web1')?.stopped,
      false,
    );
    assert.equal(
      changeSnapshotPolicy(
        q,
        {
          'snapshots.schedule': '',
          'snapshots.expiry': '',
          'snapshots.pattern': '',
          'snapshots.schedule.stopped': '',
        },
        'web1',
      ),
      undefined,
      'nothing left: no table',
    );
    assert.deepEqual(p, { schedule: '@daily', expiry: '2w' }, 'the policy given is not changed');
  });

  it('refuses unknown keys and bad values, naming the key with an example', () => {
    assert.throws(
      () => changeSnapshotPolicy(undefined, { 'snapshots.keep': '3' }, 'g'),
      invalid(
        /Unknown key "snapshots.keep": the snapshot keys are snapshots.schedule, snapshots.schedule.stopped, snapshots.expiry, snapshots.pattern/,
      ),
    );
    assert.throws(
      () => changeSnapshotPolicy(undefined, { 'snapshots.schedule': '0 3 * *' }, 'g'),
      invalid(/Invalid snapshots.schedule "0 3 \* \*": .*has 4 fields.*\(e\.g\. "0 3 \* \* \*"/),
    );
    assert.throws(
      () => changeSnapshotPolicy(undefined, { 'snapshots.expiry': '2 days' }, 'g'),
      invalid(/Invalid snapshots.expiry "2 days"/),
    );
    assert.throws(
      () => changeSnapshotPolicy(undefined, { 'snapshots.schedule.stopped': 'sometimes' }, 'g'),
      invalid(/Invalid snapshots.schedule.stopped "sometimes": give true or false/),
    );
    assert.throws(
      () => changeSnapshotPolicy(undefined, { 'snapshots.pattern': 'a b%d' }, 'g'),
      invalid(/Invalid snapshots.pattern "a b%d"/),
    );
  });
});
