import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseQgroups, qgroupNumber } from './qgroup.js';

// `btrfs qgroup show -pcre --raw` of a pool with one guest, its group and two snapshots
// (btrfs-progs 6.2), one of them being dropped.
const SHOW = `Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive Parent   Child         Path 
--------    ----------    ---------  --------------  ------------- ------   -----         ---- 
0/5              16384        16384            none           none -        -             <toplevel>
0/256         20987904        16384            none           none 1/256    -             guests/g/vol
0/257         20987904     20987904            none           none 1/256    -             guests/g/snapshots/snap0/vol
0/258             4096         4096            none           none 1/256    -             <stale>
1/256         41975808     41975808       104857600           none -        0/256,0/257,0/258   <0 member qgroups>
`;

describe('parseQgroups', () => {
  it('reads each group: usage, limit, parents, children and path', () => {
    const rows = parseQgroups(SHOW);
    assert.deepEqual(
      rows.map((r) => r.id),
      ['0/5', '0/256', '0/257', '0/258', '1/256'],
    );
    assert.deepEqual(rows[1], {
      id: '0/256',
      rfer: 20987904,
      excl: 16384,
      maxRfer: 0,
      parents: ['1/256'],
      children: [],
      path: 'guests/g/vol',
    });
    assert.deepEqual(rows[4]?.children, ['0/256', '0/257', '0/258']);
    assert.equal(rows[4]?.maxRfer, 104857600);
    assert.equal(rows[4]?.path, '<0 member qgroups>');
  });
});

describe('qgroupNumber', () => {
  it("is the kernel's level << 48 | id", () => {
    assert.equal(qgroupNumber('0/5'), 5);
    assert.equal(qgroupNumber('1/256'), 2 ** 48 + 256);
    assert.throws(() => qgroupNumber('1-256'), /not a quota group/);
  });
});
