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

describe('jaula exec: errors of its own', () => {
  before(() => {
    buildSkeleton(t, 'e1', ['--initstyle', 'cmd', '--cmd', '/bin/sleep 100000']);
    t.ok(['start', 'e1']);
  });

  it('a command missing in the guest: "jaula:" and 127; one that cannot be executed: 126', () => {
    const r = t.jaula(['exec', 'e1', '--', 'nosuchcmd', 'arg']);
    assert.equal(r.code, 127, r.stderr);
    assert.match(
      r.stderr,
      /^jaula: No command "nosuchcmd" in guest "e1" \(PATH=[^)]*\/bin[^)]*\): install it/,
    );
    const x = t.jaula(['exec', 'e1', '--', '/etc/passwd']);
    assert.equal(x.code, 126, x.stderr);
    assert.match(x.stderr, /^jaula: "\/etc\/passwd" in guest "e1" cannot be executed: EACCES/);
    const d = t.jaula(['exec', 'e1', '--cwd', '/nonexistent', '--', 'true']);
    assert.equal(d.code, 4, d.stderr);
    assert.match(
      d.stderr,
      /^jaula: The working directory "\/nonexistent" cannot be used in guest "e1": ENOENT/,
    );
  });

  it("keeps the command's own exit status and output apart from jaula's errors", () => {
    const r = t.jaula(['exec', 'e1', '--', 'sh', '-c', 'echo out; echo err >&2; exit 127']);
    assert.equal(r.code, 127);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n', 'no word of jaula: the command ran');
    assert.equal(t.jaula(['exec', 'e1', '--', 'sh', '-c', 'exit 255']).code, 255);
  });

  it('at the guest\'s pids.max: "at its process limit: pids.max N", exit status 12, also through jaulad', async () => {
    t.ok(['set', 'e1', 'pids.max=2']); // jaula-init and its command: full
    try {
      const r = t.jaula(['exec', 'e1', '--', 'true']);
      assert.equal(r.code, 12, r.stderr);
      assert.match(
        r.stderr,
        /^jaula: Guest "e1" is at its process limit: pids\.max 2 \(2 in use\), so "true" could not/,
      );
      assert.match(r.stderr, /jaula set e1 pids\.max=N/);
      const d = t.daemon();
      await d.ready();
      const c = t.jaula(['exec', 'e1', '--', 'true']); // through jaulad's WebSocket
      assert.equal(c.code, 12, `through jaulad: ${c.stderr}`);
      assert.match(c.stderr, /^jaula: Guest "e1" is at its process limit: pids\.max 2/);
      const api = await d.request('POST', '/v1/guests/e1/exec', { cmd: ['true'] });
      assert.equal(api.status, 409, api.text);
      assert.match(api.text, /"code":"limit".*at its process limit: pids\.max 2/);
      const missing = await d.request('POST', '/v1/guests/e1/exec', { cmd: ['nosuchcmd'] });
      assert.equal(missing.status, 404, missing.text);
      assert.match(missing.text, /"code":"no_command"/);
      await d.stop();
    } finally {
      t.ok(['set', 'e1', 'pids.max=4096']);
    }
    t.ok(['set', 'e1', 'pids.max=4']); // with the command and its child: the exec keeps none
    try {
      const r = t.jaula(['exec', 'e1', '--', 'sh', '-c', 'sleep 0 & wait; echo fits']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'fits\n');
    } finally {
      t.ok(['set', 'e1', 'pids.max=4096']);
    }
  });
});

describe("a guest's process list during jaula exec", () => {
  /**
   * A watcher inside the guest lists its processes as fast as it can while the host runs
   * execs into it, and reports any process that is not the guest's own: a runtime's (crun, runc
   * init, its seccomp helper), one of an unmapped host user (nobody), or one whose command line
   * shows the host's paths.
   */
  async function aliens(name: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
    // The host's path reaches the watcher in a file, not on its own command line.
    t.sh(name, 'rm -f /tmp/stop-watch; cat > /tmp/hostroot', t.root);
    const watch = t.jaulaAsync(
      [
        'exec',
        name,
        '--',
        'sh',
        '-c',
        'echo watching; n=0; while [ ! -e /tmp/stop-watch ]; do n=$((n+1)); ps -o user,comm,args | ' +
          `awk 'BEGIN { getline root < "/tmp/hostroot" } ` +
          `NR > 1 && ($1 != "root" || $2 ~ /^(crun|runc|jaula)/ || index($0, root))'; done; echo "rounds $n"`,
      ],
      { env },
    );
    await t.until(
      'the watcher to run',
      () => t.sh(name, 'ps -o args | grep -q "[w]hile \\[ ! -e"').code === 0,
    );
    for (let i = 0; i < 15; i++) {
      const r = t.jaula(['exec', name, '--', 'true'], { env });
      assert.equal(r.code, 0, r.stderr);
    }
    t.sh(name, 'touch /tmp/stop-watch');
    const w = await watch;
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stdout, /rounds \d+/);
    return w.stdout.split('\n').filter((l) => l && l !== 'watching' && !/^rounds /.test(l));
  }

  it('shows only its own processes: nothing of the runtime or of jaula (crun)', async () => {
    buildSkeleton(t, 'w1');
    t.ok(['start', 'w1'], { env: { JAULA_RUNTIME: 'crun' } });
    assert.deepEqual(await aliens('w1'), []);
  });

  it('shows only its own processes (runc)', async () => {
    buildSkeleton(t, 'w2');
    // runc 1.1 cannot bind lxcfs's files into an unprivileged guest here (it remounts them
    // without the flags the host's mount locks): this guest starts without them.
    t.ok(['start', 'w2'], { env: { JAULA_RUNTIME: 'runc', JAULA_LXCFS: 'off' } });
    assert.equal(t.state('w2')['runtime'], 'runc');
    assert.deepEqual(await aliens('w2'), []);
    // The exec'd command has the guest's seccomp filter as runc compiled it.
    assert.notEqual(t.sh('w2', 'unshare -U true').code, 0, 'no user namespace from an exec');
  });
});
