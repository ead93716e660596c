/**
 * The everyday admin path inside a guest (issue 11), through the CLI from inside the guest:
 * ping to the gateway of a network this test makes (never any other address), and what
 * `jaula exec` says and shows: its errors, and a process list with the guest's own processes only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestRoot, buildSkeleton, makeNetwork } from './helpers.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

let gw = '';

describe('ping from inside a guest', () => {
  before(() => {
    gw = makeNetwork(t, 'pn');
    buildSkeleton(t, 'p1', ['--interface', 'eth0=pn:auto']);
    t.ok(['start', 'p1']);
  });

  // What stays refused (raw sockets of other protocols, IP_HDRINCL, AF_PACKET, AF_XDP) is the
  // escape suite's net.raw_inet and net.af_packet.
  it("busybox ping (a raw ICMP socket) reaches the gateway as the guest's root", () => {
    const r = t.jaula(['exec', 'p1', '--', 'ping', '-c', '1', '-W', '10', gw]);
    assert.equal(r.code, 0, `ping ${gw} from inside: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 packets transmitted, 1 packets received/);
    const r6 = t.jaula(['exec', 'p1', '--', 'ping', '-6', '-c', '1', '-W', '10', '::1']);
    assert.equal(r6.code, 0, `ICMPv6 raw socket, to the guest's own loopback: ${r6.stdout}${r6.stderr}`);
  });
});
