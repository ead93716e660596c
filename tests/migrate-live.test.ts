/**
 * Live moves (jaula migrate --mode live) on the multi-host harness (tests/hosts.ts): the guest's
 * processes are checkpointed with CRIU on one host and restored on the other. A busybox guest
 * runs a TCP echo service and a counter; a client in its own namespace keeps one TCP connection
 * open across the moves and checks every line it gets back (none lost, reordered or changed).
 * Needs CRIU 4.1 (./setup criu, which ./setup test runs) and runc.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { needRoot } from './helpers.js';
import { Hosts, waitFor, writeGuestFile, type Host } from './hosts.js';

let hs: Hosts;
let a: Host;
let b: Host;
const CLIENT = join(import.meta.dirname, '../../scripts/criu/echo-client.mjs');

/** What the guest's counter says (its init's loop writes it every 100 ms). */
function counter(h: Host, guest: string): number {
  return Number(h.ok(['exec', guest, '--', 'cat', '/tmp/count']).stdout.trim());
}

/** The client's status line: "connected PORT" or "echoes N gap MS gaps ...". */
function echoes(status: string): number {
  const m = /^echoes (\d+)/.exec(fs.existsSync(status) ? fs.readFileSync(status, 'utf8') : '');
  return m ? Number(m[1]) : 0;
}

/** A busybox guest running `cmd` as its init, at `ip` on the hosts' network. */
function cmdGuest(h: Host, name: string, ip: string, cmd: string): void {
  h.ok(['build', name, '-m', 'skeleton', '-q', '--initstyle', 'cmd', '--cmd', cmd]);
  h.ok(['set', name, '--interface', `eth0=mnet:${ip}/24`]);
}

/** A live move; a failure shows both jaulads' last words (CRIU's errors are in the target's). */
async function moveLive(from: Host, to: Host, guest: string): Promise<string> {
  const r = from.jaula(['migrate', guest, to.name, '--mode', 'live', '-t']);
  if (r.code !== 0) await new Promise((res) => setTimeout(res, 500)); // (the logs come through pipes)
  if (r.code !== 0)
    throw new Error(
      `jaula migrate ${guest} ${to.name} --mode live exited ${r.code}: ${r.stderr}\n[${from.name}] ${from.daemon?.log.slice(-3000)}\n[${to.name}] ${to.daemon?.log.slice(-3000)}`,
    );
  return r.stdout;
}

describe('live moves with CRIU', { skip: needRoot, timeout: 600_000 }, () => {
  let client: ChildProcess | undefined;
  let status = '';
  before(async () => {
    hs = new Hosts({ count: 2 });
    await hs.up();
    a = hs.host('a');
    b = hs.host('b');
    status = a.t.path('client.status');
  });
  after(async () => {
    client?.kill('SIGKILL');
    const left = hs ? await hs.cleanup() : [];
    assert.deepEqual(left, [], 'nothing is left behind');
  });

  it('refuses a guest under crun with what to do, and leaves it running', async () => {
    const ip = `${hs.prefix}.30`;
    cmdGuest(a, 'lc1', ip, 'sleep 100000');
    a.ok(['set', 'lc1', '--runtime', 'crun']);
    a.ok(['start', 'lc1']);
    const r = a.jaula(['migrate', 'lc1', 'b', '--mode', 'live']);
    assert.equal(r.code, 10, r.stderr);
    assert.match(r.stderr, /cannot move live: it runs under crun.*--runtime runc/);
    assert.equal(a.status('lc1'), 'running');
    assert.equal(b.status('lc1'), 'absent');
    a.ok(['delete', '--force', 'lc1']);
  });

  it('moves a running guest live: its processes go on, its TCP connection is kept, at the same address', async () => {
    const ip = `${hs.prefix}.31`;
    cmdGuest(a, 'live1', ip, '/bin/sh /srv/run.sh');
    writeGuestFile(
      a,
      'live1',
      'srv/run.sh',
      // (free: sysinfo(2), which jaula's supervisor answers with the guest's memory limit)
      // (and "tick N" on its console every 10 rounds)
      '#!/bin/sh\nnc -ll -p 7000 -e /bin/cat &\ni=0\nwhile :; do i=$((i+1)); echo $i >/tmp/count\n' +
        '[ $((i % 10)) = 0 ] && echo "tick $i"\n' +
        'echo "$i $(free | awk \'/Mem:/ { print $2 }\')" >/tmp/free.new; mv /tmp/free.new /tmp/free; sleep 0.1; done\n',
      0o755,
    );
    a.ok(['set', 'live1', '--runtime', 'runc']);
    a.ok(['set', 'live1', 'memory.max=256M', '--save']);
    a.ok(['start', 'live1']);
    await waitFor('the guest counting', () => counter(a, 'live1') > 3);
    client = spawn(
      'nsenter',
      [`--net=/run/netns/${hs.client}`, process.execPath, CLIENT, ip, '7000', status, '10'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    client.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    /**
     * Until the client has 20 more echoes than `n`. Its TCP retransmits on its own backed-off
     * timer (RTO doubling from at least 200 ms, from RTTs a loaded host inflates), which can be
     * long after the guest is back: up to 3 minutes. A timeout says what the client's socket,
     * the client and the target's restore saw.
     */
    const echoesAfter = async (what: string, n: number): Promise<void> => {
      const deadline = Date.now() + 180_000;
      while (echoes(status) <= n + 20) {
        if (Date.now() > deadline) {
          const ss = spawnSync('nsenter', [`--net=/run/netns/${hs.client}`, 'ss', '-tnio'], {
            encoding: 'utf8',
          });
          const fdb = spawnSync('ip', ['netns', 'exec', hs.hub, 'bridge', 'fdb', 'show', 'br', 'br0'], {
            encoding: 'utf8',
          });
          client?.kill('SIGTERM');
          await new Promise((res) => setTimeout(res, 500));
          throw new Error(
            `no echoes for 3 minutes after ${what}: client ${fs.readFileSync(status, 'utf8')} ${out}\nclient's sockets: ${ss.stdout}\nthe segment's bridge: ${fdb.stdout}\n[a] ${a.daemon?.log.slice(-2000)}\n[b] ${b.daemon?.log.slice(-2000)}`,
          );
        }
        await new Promise((res) => setTimeout(res, 50));
      }
    };
    await waitFor('echoes before the move', () => echoes(status) > 20);
    const before = counter(a, 'live1');
    const moved = await moveLive(a, b, 'live1');
    assert.match(moved, /Moved "live1" to "b" \(live\): it is running there/);
    assert.match(moved, /^checkpoint\s+\d+\.\d{3} s$/m);
    assert.equal(a.status('live1'), 'absent');
    assert.equal(b.status('live1'), 'running');
    // The same processes: the counter goes on from where it was (a fresh start counts from 1).
    const after1 = counter(b, 'live1');
    assert.ok(after1 >= before, `the counter went on (${before} before, ${after1} after)`);
    // The same connection: more echoes come back on it.
    const n = echoes(status);
    await echoesAfter('the move', n);
    // Its console goes on there: the supervisor on b holds the restored console (a new pty).
    await waitFor('a console line from b', () =>
      b
        .ok(['logs', 'live1', '--console'])
        .stdout.split('\n')
        .some((l) => Number(/^tick (\d+)/.exec(l.trim())?.[1]) > after1),
    );
    // The guest's own processes' sysinfo(2) is answered there too (the listener relayed by
    // CRIU to the new supervisor): free, run by the restored loop, sees the guest's 256 MiB.
    await waitFor(
      'free run after the move',
      () => Number(b.ok(['exec', 'live1', '--', 'cat', '/tmp/free']).stdout.split(' ')[0]) > after1,
    );
    assert.equal(
      b.ok(['exec', 'live1', '--', 'cat', '/tmp/free']).stdout.trim().split(' ')[1],
      String(256 * 1024),
    );
    // Its context taken on the target: a live move (which keeps the guest's user IDs) is
    // refused before anything is sent, and the guest runs on where it is.
    const ctx = (JSON.parse(b.ok(['status', 'live1', '--format', 'json']).stdout) as { context: number })
      .context;
    a.ok(['build', 'taken', '-m', 'skeleton', '-q', '--context', String(ctx)]);
    const refused = b.jaula(['migrate', 'live1', 'a', '--mode', 'live']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /keeps the guest's context and user ID range.*--mode sync/);
    assert.equal(b.status('live1'), 'running');
    assert.equal(a.status('live1'), 'absent');
    a.ok(['delete', 'taken']);
    // And back again: a restored guest checkpoints too.
    await moveLive(b, a, 'live1');
    assert.equal(a.status('live1'), 'running');
    const m = echoes(status);
    await echoesAfter('the move back', m);
    assert.ok(counter(a, 'live1') >= after1);
    client.kill('SIGTERM');
    await new Promise((res) => client?.on('exit', res));
    client = undefined;
    const verdict = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { ok?: boolean; problem?: string };
    assert.equal(verdict.ok, true, `the client's connection: ${out}`);
    a.ok(['delete', '--force', 'live1']);
  });

  it('gives a guest whose restore fails on the target back to the source, running again', async () => {
    cmdGuest(a, 'live2', `${hs.prefix}.32`, 'sleep 100000');
    a.ok(['set', 'live2', '--runtime', 'runc']);
    a.ok(['start', 'live2']);
    // The target's CRIU fails (a stand-in that exits 1): its restore fails after the checkpoint.
    const fake = b.t.path('criu-fails');
    fs.writeFileSync(fake, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    await b.daemon?.stop();
    await b.start({ JAULA_CRIU: fake });
    try {
      const r = a.jaula(['migrate', 'live2', 'b', '--mode', 'live']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /could not start on this host.*The guest stays on this host and runs again/s);
      assert.equal(a.status('live2'), 'running');
      assert.equal(b.status('live2'), 'absent');
      assert.match(a.ok(['migrate', '--status', '--format', 'json']).stdout, /"phase": "back"/);
    } finally {
      await b.daemon?.stop();
      await b.start({});
    }
    a.ok(['delete', '--force', 'live2']);
  });
});
