import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../guest/config.js';
import { haltSignal, initEndedBy, signalNumber, type InitKind } from './signals.js';
import { buildSpec } from './spec.js';
import { TEST_WEAKEN_ENV, WEAKENED_ANNOTATION } from './testweaken.js';

/** A guest with every default: only its name and context given. */
const cfg = parseConfig('name = "p1"\ncontext = 1001\n', 'p1/config.toml');
const input = { cfg, rootfs: '/r', cgroupsPath: 'jaula/p1', initBin: '/i', fstab: [] };

describe('the spec builder reads nothing of the host', () => {
  it("ignores this process's environment: the test-only weakening comes only as input", () => {
    const before = process.env[TEST_WEAKEN_ENV];
    process.env[TEST_WEAKEN_ENV] = '1';
    try {
      const spec = buildSpec(input);
      assert.equal(spec.annotations[WEAKENED_ANNOTATION], undefined);
      assert.ok(spec.linux.seccomp, 'still filtered');
      const weak = buildSpec({ ...input, weaken: { caps: ['CAP_CHOWN', 'CAP_SYS_ADMIN'] } });
      assert.equal(weak.annotations[WEAKENED_ANNOTATION], 'true');
      assert.deepEqual(weak.process.capabilities.bounding, ['CAP_CHOWN', 'CAP_SYS_ADMIN']);
      assert.equal(weak.linux.seccomp, undefined);
    } finally {
      if (before === undefined) delete process.env[TEST_WEAKEN_ENV];
      else process.env[TEST_WEAKEN_ENV] = before;
    }
  });
});

describe('signals and halt tables', () => {
  const never = (): InitKind => assert.fail('the init is looked at only when its signal depends on it');

  it('asks each kind of init to halt the way it understands', () => {
    const plain = { ...cfg, initstyle: 'plain' as const };
    const kinds: [InitKind, number][] = [
      ['busybox', 12],
      ['systemd', 37],
      ['sysvinit', 30],
      ['other', 15],
    ];
    for (const [kind, sig] of kinds)
      assert.equal(
        haltSignal(plain, () => kind),
        sig,
        kind,
      );
    assert.equal(haltSignal({ ...cfg, initstyle: 'cmd' }, never), 30, 'jaula-init: SIGPWR');
    assert.equal(haltSignal({ ...cfg, stopSignal: 'RTMIN+4' }, never), 38, 'stop_signal wins');
    assert.throws(() => haltSignal(plain, () => 'missing'), /has no \/sbin\/init/);
  });

  it('names signals as jaula knows them, and refuses others', () => {
    assert.equal(signalNumber('SIGTERM'), 15);
    assert.equal(signalNumber('pwr'), 30);
    assert.equal(signalNumber('9'), 9);
    assert.throws(() => signalNumber('SIGNOPE'), /not a signal jaula knows/);
    assert.throws(() => signalNumber('65'), /not a signal jaula knows/);
  });

  it('reads the end of an init: SIGHUP a reboot, SIGINT a halt, another signal a kill', () => {
    assert.equal(initEndedBy(1), 'reboot');
    assert.equal(initEndedBy(2), 'halt');
    assert.equal(initEndedBy(9), 'killed');
    assert.equal(initEndedBy(undefined), 'exited');
  });
});
