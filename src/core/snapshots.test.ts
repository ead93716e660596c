import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextSnapshotName } from './snapshots.js';

describe('nextSnapshotName', () => {
  it('names snapshots as Incus does: snap0, then one more than the highest snapN', () => {
    assert.equal(nextSnapshotName([]), 'snap0');
    assert.equal(nextSnapshotName(['snap0', 'snap1']), 'snap2');
    assert.equal(nextSnapshotName(['snap3', 'before-upgrade']), 'snap4');
    assert.equal(nextSnapshotName(['snapx', 'snap', 'my-snap7']), 'snap0');
  });
});
