import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vethFields, type IfPlan, type NetPlan } from './plan.js';

const veth = (name: string, extra: Partial<IfPlan> = {}): IfPlan => ({
  name,
  mode: 'bridge',
  mac: '02:00:00:00:00:01',
  hostIf: `jv1.${name}`,
  bridge: 'jb0',
  address: '10.0.0.2/24',
  gateway: '10.0.0.1',
  isolated: false,
  ...extra,
});
const plan = (interfaces: IfPlan[]): NetPlan => ({ interfaces, forwards: [], networks: [], dns: [] });

describe('vethFields: what native/netlink.c makes instead of the ip batches', () => {
  it('gives nine strings a veth, the default route of each family through the first with a gateway', () => {
    const f = vethFields(plan([veth('eth0', { address6: 'fd00::2/64', gateway6: 'fd00::1' }), veth('eth1')]));
    assert.deepEqual(f, [
      ...[
        'eth0',
        '02:00:00:00:00:01',
        'jv1.eth0',
        'jb0',
        '10.0.0.2/24',
        'fd00::2/64',
        '10.0.0.1',
        'fd00::1',
        '',
      ],
      ...['eth1', '02:00:00:00:00:01', 'jv1.eth1', 'jb0', '10.0.0.2/24', '', '', '', ''],
    ]);
  });

  it('leaves routed, macvlan and egress-limited interfaces to the ip batches', () => {
    assert.equal(vethFields(plan([veth('eth0', { mode: 'routed', bridge: undefined as never })])), undefined);
    assert.equal(vethFields(plan([veth('eth0'), veth('eth1', { mode: 'macvlan' })])), undefined);
    assert.equal(vethFields(plan([veth('eth0', { ifb: 'ji1.0' })])), undefined);
    assert.equal(vethFields(plan([])), undefined);
  });
});
