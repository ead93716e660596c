/**
 * Moving guests between hosts (jaula remote, jaula migrate), on the multi-host harness
 * (tests/hosts.ts): two jaula instances, each with its jaulad in a network namespace of its own,
 * on one segment with a client namespace. A guest runs busybox httpd on its address; the client
 * must get the same answer from the same address before and after a move.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { needRoot } from './helpers.js';
import { Hosts, manifest, waitFor, writeGuestFile, type Host, type HostDaemon } from './hosts.js';

const STOP_FILE = `/tmp/jaula-mig-stop-${process.pid}`;
let hs: Hosts;
let a: Host;
let b: Host;
let n = 0;

/** A busybox guest on "mnet" serving /www on port 8080 (and running `extra` after httpd starts). */
function webGuest(h: Host, name: string, extra = 'exec sleep 100000'): string {
  const address = `${hs.prefix}.${20 + n++}`;
  h.ok([
    'build',
    name,
    '-m',
    'skeleton',
    '-q',
    '--initstyle',
    'cmd',
    '--cmd',
    '/bin/sh /srv/run.sh',
    '--interface',
    `eth0=mnet:${address}/24`,
  ]);
  writeGuestFile(h, name, 'srv/run.sh', `#!/bin/sh\nhttpd -p 8080 -h /www\n${extra}\n`, 0o755);
  writeGuestFile(h, name, 'www/index.html', `hello from ${name}\n`);
  return address;
}

describe('moving guests between hosts', { skip: needRoot, timeout: 900_000 }, () => {
  before(async () => {
    hs = new Hosts({ count: 2 });
    await hs.up({ JAULA_TRACE: '1', JAULA_TRACE_STOP: STOP_FILE });
    a = hs.host('a');
    b = hs.host('b');
  });
  after(async () => {
    fs.rmSync(STOP_FILE, { force: true });
    const left = hs ? await hs.cleanup() : [];
    assert.deepEqual(left, [], 'nothing is left behind');
  });

  it('knows remotes by name, with their certificate pinned and their token root-only', () => {
    const list = JSON.parse(a.ok(['remote', 'list', '--format', 'json']).stdout) as {
      name: string;
      url: string;
      fingerprint: string;
    }[];
    assert.deepEqual(
      list.map((r) => [r.name, r.url]),
      [['b', b.url]],
    );
    assert.match(list[0]?.fingerprint ?? '', /^SHA256:([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const tok = fs.statSync(a.t.path('etc/jaula/remotes/b.token'));
    assert.equal(tok.mode & 0o777, 0o600);
    // Without accepting the certificate: it is only shown.
    const r = a.jaula(['remote', 'add', 'b2', b.url, '--token', b.tokenFile]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /has the fingerprint SHA256:.*--accept-certificate/);
    // A wrong fingerprint, a wrong token: refused, nothing stored.
    const f = a.jaula([
      'remote',
      'add',
      'b2',
      b.url,
      '--token',
      b.tokenFile,
      '--fingerprint',
      `SHA256:${'00:'.repeat(31)}00`,
    ]);
    assert.equal(f.code, 13, f.stderr);
    assert.match(f.stderr, /not the one given/);
    const bad = a.t.path('bad.token');
    fs.writeFileSync(bad, 'x'.repeat(40), { mode: 0o600 });
    const w = a.jaula(['remote', 'add', 'b2', b.url, '--token', bad, '--accept-certificate']);
    assert.equal(w.code, 13, w.stderr);
    assert.match(w.stderr, /refused its token/);
    assert.equal(JSON.parse(a.ok(['remote', 'list', '--format', 'json']).stdout).length, 1);
    a.ok(['remote', 'add', 'b2', b.url, '--token', b.tokenFile, '--accept-certificate']);
    a.ok(['remote', 'remove', 'b2']);
    assert.equal(fs.existsSync(a.t.path('etc/jaula/remotes/b2.token')), false);
    const u = a.jaula(['remote', 'remove', 'b2']);
    assert.equal(u.code, 4);
    assert.match(u.stderr, /no remote "b2"/);
  });

  it('moves a running guest cold: it answers at the same address on the target', async () => {
    const ip = webGuest(a, 'cold1');
    a.ok(['start', 'cold1']);
    await waitFor('cold1 serving', () => hs.fetch(ip) === 'hello from cold1\n');
    const r = a.ok(['migrate', 'cold1', 'b', '--mode', 'cold', '-t']);
    assert.match(r.stdout, /Moved "cold1" to "b" \(cold\): it is running there/);
    assert.match(r.stdout, /^stop\s+\d+\.\d{3} s$/m);
    assert.match(r.stdout, /^total\s+\d+\.\d{3} s$/m);
    assert.equal(a.status('cold1'), 'absent');
    assert.equal(b.status('cold1'), 'running');
    await waitFor('cold1 serving from b', () => hs.fetch(ip) === 'hello from cold1\n');
    const st = JSON.parse(b.ok(['status', 'cold1', '--format', 'json']).stdout) as { context: number };
    assert.ok(st.context > 0);
    assert.match(a.ok(['migrate', '--status', '--format', 'json']).stdout, /"phase": "done"/);
    assert.match(b.ok(['migrate', '--status', '--format', 'json']).stdout, /"phase": "placed"/);
  });

  it('moves a stopped guest: it stays stopped there, its files, owners and settings kept, its context remapped where taken', () => {
    webGuest(a, 'still1');
    a.ok(['set', 'still1', '--mark', 'web']);
    writeGuestFile(a, 'still1', 'data/owned', 'x\n', 0o640);
    fs.chownSync(`${a.t.guestRoot('still1')}/data/owned`, 1000, 1001);
    const before = manifest(a.t.guestRoot('still1'));
    const cfgA = JSON.parse(a.jaula(['status', 'still1', '--format', 'json']).stdout) as Record<
      string,
      unknown
    >;
    a.ok(['migrate', 'still1', 'b']);
    // The next command on the target says what arrived.
    const sb = b.jaula(['status', 'still1', '--format', 'json']);
    assert.match(sb.stderr, /note: move \S+ of "still1" from .* arrived/);
    assert.doesNotMatch(b.jaula(['list']).stderr, /note:/);
    const cfgB = JSON.parse(sb.stdout) as Record<string, unknown>;
    assert.equal(a.status('still1'), 'absent');
    assert.equal(b.status('still1'), 'stopped');
    assert.deepEqual(manifest(b.t.guestRoot('still1')), before);
    for (const k of ['marks', 'interfaces', 'hostname', 'initstyle']) assert.deepEqual(cfgB[k], cfgA[k], k);
    // Its context was free on the target, or taken there (by cold1, moved before): then it got another.
    const taken = b
      .jaula(['list', '--format', 'json'])
      .stdout.includes(`"context": ${String(cfgA['context'])},`);
    assert.equal(cfgB['context'] !== cfgA['context'], taken);
    if (taken) assert.match(sb.stderr, /context \d+ here \(its own was taken\)/);
  });

  it('moves a running guest in sync mode while it writes: no write is lost, every file, owner, mode and xattr kept', async () => {
    const writer =
      'i=0; while :; do echo $i > /data/f$((i % 40)); echo $i >> /data/log; i=$((i + 1)); usleep 2000; done';
    const ip = webGuest(a, 'sync1', writer);
    writeGuestFile(a, 'sync1', 'data/keep', 'kept\n', 0o600);
    fs.chownSync(`${a.t.guestRoot('sync1')}/data/keep`, 33, 44);
    assert.equal(
      spawnSync('setfattr', ['-n', 'user.tag', '-v', 'moved', `${a.t.guestRoot('sync1')}/data/keep`]).status,
      0,
    );
    a.ok(['start', 'sync1']);
    await waitFor('sync1 serving', () => hs.fetch(ip) === 'hello from sync1\n');
    // The target is held once the guest is placed, before it starts there: the source's tree is
    // final then (its guest was stopped before the handover), and the target's as it received it.
    fs.writeFileSync(STOP_FILE, 'migrate-target: placed');
    const moving = a.jaulaAsync(['migrate', 'sync1', 'b', '-t']);
    const d = b.daemon as HostDaemon;
    await waitFor('the target held once the guest is placed', () => d.held, 120_000);
    const source = manifest(a.t.guestRoot('sync1'));
    const target = manifest(b.t.guestRoot('sync1'));
    const log = fs
      .readFileSync(`${b.t.guestRoot('sync1')}/data/log`, 'utf8')
      .trim()
      .split('\n');
    fs.rmSync(STOP_FILE);
    process.kill(d.pid, 'SIGCONT');
    const r = await moving;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(target, source);
    assert.ok(
      source.some((l) => /^data\/keep f 600 33:44 5 .* user.tag="moved"$/.test(l)),
      source.join('\n'),
    );
    assert.deepEqual(
      log,
      log.map((_, i) => String(i)),
      'the log is whole: every write, in order',
    );
    assert.match(r.stdout, /Moved "sync1" to "b" \(sync\): it is running there \(down \d+ ms\)/);
    for (const ph of ['first pass', 'freeze', 'last pass', 'stop', 'start on target', 'total'])
      assert.match(r.stdout, new RegExp(`^${ph}\\s+\\d+\\.\\d{3} s$`, 'm'));
    const changed = Number(/last pass: (\d+) changed/.exec(r.stderr)?.[1]);
    assert.ok(changed > 0, `the guest wrote during the first pass: ${r.stderr}`);
    assert.equal(b.status('sync1'), 'running');
    await waitFor('sync1 serving from b', () => hs.fetch(ip) === 'hello from sync1\n');
  });

  it('in sync mode silences the source at once: its killed guest answers no neighbour while the target starts it', async () => {
    const ip = webGuest(a, 'quiet1');
    a.ok(['start', 'quiet1']);
    await waitFor('quiet1 serving', () => hs.fetch(ip) === 'hello from quiet1\n');
    assert.equal(hs.fromClient(['ping', '-c', '1', '-W', '2', ip]).status, 0, 'it answers pings before');
    // The source is held right after its stop phase: the guest killed, its clean-up not done
    // (its network namespace is still there), the target not yet asked to start it.
    fs.writeFileSync(STOP_FILE, 'migrate: stop');
    const moving = a.jaulaAsync(['migrate', 'quiet1', 'b']);
    const d = a.daemon as HostDaemon;
    await waitFor('the source held after its stop', () => d.held, 120_000);
    const ping = hs.fromClient(['ping', '-c', '2', '-W', '1', ip]);
    fs.rmSync(STOP_FILE);
    process.kill(d.pid, 'SIGCONT');
    const r = await moving;
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(ping.status, 0, `the killed guest still answered: ${ping.stdout}`);
    assert.match(r.stdout, /Moved "quiet1" to "b" \(sync\)/);
    await waitFor('quiet1 serving from b', () => hs.fetch(ip) === 'hello from quiet1\n');
    assert.equal(a.status('quiet1'), 'absent');
  });

  it('refuses bad input with a clear error, and the guest stays where it is', () => {
    webGuest(a, 'bad1');
    const r1 = a.jaula(['migrate', 'bad1', 'nowhere']);
    assert.equal(r1.code, 4);
    assert.match(r1.stderr, /no remote "nowhere"/);
    const r2 = a.jaula(['migrate', 'nosuch', 'b']);
    assert.equal(r2.code, 4);
    assert.match(r2.stderr, /no guest "nosuch"/);
    webGuest(b, 'bad1');
    const r3 = a.jaula(['migrate', 'bad1', 'b']);
    assert.equal(r3.code, 5, r3.stderr);
    assert.match(r3.stderr, /A guest named "bad1" exists on this host already.*The guest stays on this host/);
    assert.equal(a.status('bad1'), 'stopped');
    assert.equal(JSON.parse(a.jaula(['status', 'bad1', '--format', 'json']).stdout).name, 'bad1');
    const r4 = a.jaula(['migrate', 'bad1', 'b', '--mode', 'hot']);
    assert.equal(r4.code, 2);
    assert.match(r4.stderr, /--mode is cold, sync or live, not "hot"/);
    a.ok(['start', 'bad1']); // (no moving mark left behind)
    a.ok(['stop', 'bad1', '--kill']);
  });
});
