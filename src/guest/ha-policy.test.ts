import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { changeHaPolicy, haPolicyFromToml, haPolicyToToml } from './ha-policy.js';

describe('HA policy (jaula set NAME ha=... ha.standby=... ha.interval=...)', () => {
  it('turns on with defaults, and off', () => {
    const on = changeHaPolicy(undefined, { ha: 'on' });
    assert.deepEqual(on, { standby: 'auto', interval: 60 });
    assert.equal(changeHaPolicy(on, { ha: 'off' }), undefined);
  });

  it('takes a standby and an interval, each turning it on; an empty value is the default', () => {
    assert.deepEqual(changeHaPolicy(undefined, { 'ha.interval': '10' }), { standby: 'auto', interval: 10 });
    const p = changeHaPolicy(undefined, { 'ha.standby': 'h2', 'ha.interval': '5' });
    assert.deepEqual(p, { standby: 'h2', interval: 5 });
    assert.deepEqual(changeHaPolicy(p, { 'ha.standby': '', 'ha.interval': '' }), {
      standby: 'auto',
      interval: 60,
    });
  });

  it('refuses bad values and unknown keys, saying what to give', () => {
    assert.throws(() => changeHaPolicy(undefined, { ha: 'maybe' }), /give on or off/);
    assert.throws(() => changeHaPolicy(undefined, { 'ha.interval': '0' }), /between 1 and 86400/);
    assert.throws(() => changeHaPolicy(undefined, { 'ha.interval': '1.5' }), /whole seconds/);
    assert.throws(() => changeHaPolicy(undefined, { 'ha.standby': 'a b' }), /fleet host's name/);
    assert.throws(
      () => changeHaPolicy(undefined, { 'ha.when': '1' }),
      /the HA keys are ha, ha.standby, ha.interval/,
    );
  });

  it('round-trips through the [ha] table', () => {
    const p = { standby: 'h3', interval: 7 };
    assert.deepEqual(
      haPolicyFromToml(haPolicyToToml(p), {
        file: 'x',
        text: '',
        table: 'ha',
        nth: 0,
        name: ', [ha]',
      } as never),
      p,
    );
    assert.throws(
      () =>
        haPolicyFromToml({ interval: -1 }, {
          file: 'x',
          text: '',
          table: 'ha',
          nth: 0,
          name: ', [ha]',
        } as never),
      /ha.interval/,
    );
  });
});
