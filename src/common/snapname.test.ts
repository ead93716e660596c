import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JaulaError } from './errors.js';
import { snapshotName, validatePattern } from './snapname.js';

const t = new Date(2024, 4, 6, 3, 7);
const invalid = (re: RegExp) => (e: unknown) =>
  e instanceof JaulaError && e.code === 'invalid' && re.test(e.message);

describe('snapshot names from a pattern', () => {
  it('numbers "%d" one more than the highest the pattern gave, as Incus', () => {
    assert.equal(snapshotName('snap%d', [], t), 'snap0');
    assert.equal(snapshotName('snap%d', ['snap0', 'snap1'], t), 'snap2');
    assert.equal(snapshotName('snap%d', ['snap3', 'before-upgrade'], t), 'snap4');
    assert.equal(snapshotName('snap%d', ['snapx', 'snap', 'my-snap7', 'snap1.old'], t), 'snap0');
    assert.equal(snapshotName('a.%d.b', ['a.5.b', 'aX5Xb'], t), 'a.6.b', 'a dot is no wildcard');
  });

  it('fills in the local time, and numbers a name taken already with "-N"', () => {
    assert.equal(snapshotName('auto-{YYYY}{MM}{DD}-{hh}{mm}', [], t), 'auto-20240506-0307');
    assert.equal(snapshotName('auto-{YYYY}{MM}{DD}', ['auto-20240506'], t), 'auto-20240506-0');
    assert.equal(
      snapshotName('auto-{YYYY}{MM}{DD}', ['auto-20240506', 'auto-20240506-0'], t),
      'auto-20240506-1',
    );
    assert.equal(
      snapshotName('d{DD}-%d', ['d06-4', 'd05-9'], t),
      'd06-5',
      'the number counts within the day',
    );
  });

  it('refuses a pattern that cannot name a snapshot', () => {
    assert.equal(validatePattern('snap%d'), 'snap%d');
    assert.equal(validatePattern('auto-{YYYY}{MM}{DD}-{hh}{mm}'), 'auto-{YYYY}{MM}{DD}-{hh}{mm}');
    const cases: [string, RegExp][] = [
      ['s%d-%d', /"%d" may stand once/],
      ['snap%s', /"%" stands only in "%d"/],
      ['x{date}', /"\{date\}" is not one of \{YYYY\}/],
      ['a/%d', /the name "a\/0" contains "\/"/],
      ['', /the name is empty|The snapshot name is empty/],
      ['-%d', /not valid/],
      ['..%d', /contains "\.\."/],
    ];
    for (const [p, re] of cases) {
      assert.throws(() => validatePattern(p), invalid(re), p);
      assert.throws(() => validatePattern(p), /Invalid snapshots\.pattern ".*": .*\(e\.g\. "snap%d"/, p);
    }
  });
});
