/**
 * Moves that go wrong, on the multi-host harness (tests/hosts.ts): a target that is full, layers
 * the target has or lacks (only what it lacks is sent), and either jaulad killed (kill -9) at
 * spread moments of a move, held there by its JAULA_TRACE mark (JAULA_TRACE_STOP, as the crash
 * tests do). After each kill the killed jaulad starts again (its reconcile runs), and then
 * exactly one copy of the guest exists, running as it ran before, and a command on the hosts
 * says what became of the move.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { needRoot, skeletonTemplate, type Result } from './helpers.js';
import { Hosts, waitFor, writeGuestFile, type Host } from './hosts.js';

const STOP_FILE = `/tmp/jaula-migf-stop-${process.pid}`;
let hs: Hosts;
let a: Host;
let b: Host;
let c: Host;
let n = 0;

function webGuest(h: Host, name: string, extra: string[] = []): string {
  const address = `${hs.prefix}.${40 + n++}`;
  h.ok([
    'build',
    name,
    '-q',
    '--initstyle',
    'cmd',
    '--cmd',
    '/bin/sh /srv/run.sh',
    '--interface',
    `eth0=mnet:${address}/24`,
    ...(extra.length ? extra : ['-m', 'skeleton']),
  ]);
  writeGuestFile(h, name, 'srv/run.sh', '#!/bin/sh\nhttpd -p 8080 -h /www\nexec sleep 100000\n', 0o755);
  writeGuestFile(h, name, 'www/index.html', `hello from ${name}\n`);
  return address;
}

/** Where the guest is: its status on each host that has it. */
function whereIs(guest: string): string[] {
  return [a, b].flatMap((h) => {
    const s = h.status(guest);
    return s === 'absent' ? [] : [`${h.name}:${s}`];
  });
}

describe('moves that go wrong', { skip: needRoot, timeout: 1_500_000 }, () => {
  before(async () => {
    hs = new Hosts({ count: 3 });
    // c's files are on a small tmpfs: a host too full for a guest.
    c = hs.host('c');
    const lib = c.t.path('var/lib/jaula');
    fs.mkdirSync(lib, { recursive: true });
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', `jmig${hs.tag}`, lib]).status, 0);
    c.t.onCleanup(() => spawnSync('umount', [lib]));
    await hs.up({ JAULA_TRACE: '1', JAULA_TRACE_STOP: STOP_FILE });
    a = hs.host('a');
    b = hs.host('b');
  });
  after(async () => {
    fs.rmSync(STOP_FILE, { force: true });
    const left = hs ? await hs.cleanup() : [];
    assert.deepEqual(left, [], 'nothing is left behind');
  });

  it('refuses a target that is full with a clear error, and the guest runs on here', async () => {
    const ip = webGuest(a, 'full1');
    writeGuestFile(a, 'full1', 'data/big', 'x'.repeat(4 << 20));
    a.ok(['start', 'full1']);
    const r = a.jaula(['migrate', 'full1', 'c']);
    assert.equal(r.code, 12, r.stderr);
    assert.match(
      r.stderr,
      /This host is full: .* MiB free .* the guest needs .* MiB.*The guest stays on this host/,
    );
    assert.deepEqual(whereIs('full1'), ['a:running']);
    assert.equal(c.status('full1'), 'absent');
    await waitFor('full1 serving', () => hs.fetch(ip) === 'hello from full1\n');
    a.ok(['stop', 'full1', '--kill']);
    a.ok(['delete', 'full1']);
  });

  it('sends a layer only to a target that lacks it', () => {
    const archive = skeletonTemplate(a.t);
    a.ok(['template', 'import', archive, 'tpl']);
    webGuest(a, 'lay1', ['-m', 'template', '--', '-t', 'tpl']);
    webGuest(a, 'lay2', ['-m', 'template', '--', '-t', 'tpl']);
    const r1 = a.jaula(['migrate', 'lay1', 'b']);
    assert.equal(r1.code, 0, `${r1.stderr}\n${b.daemon?.log ?? ''}`);
    assert.match(r1.stdout, /1 layer\(s\) sent, 0 already there/);
    const r2 = a.ok(['migrate', 'lay2', 'b']);
    assert.match(r2.stdout, /0 layer\(s\) sent, 1 already there/);
    const mib = (s: string): number => Number(/([\d.]+) MiB sent/.exec(s)?.[1]);
    assert.ok(mib(r2.stdout) < mib(r1.stdout) / 2, `${r1.stdout} ${r2.stdout}`);
    assert.deepEqual(
      JSON.parse(b.ok(['template', 'list', '--format', 'json']).stdout).map((t: { name: string }) => t.name),
      ['tpl'],
    );
    b.ok(['start', 'lay2']);
    assert.equal(b.jaula(['exec', 'lay2', '--', 'cat', '/www/index.html']).stdout, 'hello from lay2\n');
    b.ok(['stop', 'lay2', '--kill']);
  });

  // Either jaulad killed at spread moments: [which host is killed, at which mark, the mode]. In
  // a live move the guest runs under runc; killed after its checkpoint (dead here) or during
  // its restore there, it runs again (started afresh: its processes' state is what is lost).
  const KILLS: [string, string, string][] = [
    ['a', 'migrate: begin', 'sync'],
    ['b', 'migrate-target: applied own', 'sync'],
    ['a', 'migrate: first pass', 'sync'],
    ['a', 'migrate: handover', 'sync'],
    ['b', 'migrate-target: placed', 'sync'],
    ['a', 'migrate: start on target', 'sync'],
    ['a', 'live: checkpointed', 'live'],
    ['b', 'live: prepared', 'live'],
  ];
  for (const [who, mark, mode] of KILLS)
    it(`leaves exactly one copy, running, when ${who === 'a' ? 'the source' : 'the target'}'s jaulad is killed at "${mark}"`, async () => {
      const name = `k${n}`;
      // (a live move keeps the context: one no earlier guest, on either host, has)
      const ip = webGuest(a, name, mode === 'live' ? ['-m', 'skeleton', '--context', String(900 + n)] : []);
      if (mode === 'live') a.ok(['set', name, '--runtime', 'runc']);
      a.ok(['start', name]);
      await waitFor(`${name} serving`, () => hs.fetch(ip) === `hello from ${name}\n`);
      const killed = hs.host(who);
      fs.writeFileSync(STOP_FILE, mark);
      const moving = a.jaulaAsync(['migrate', name, 'b', '--mode', mode]);
      let ended: Result | undefined;
      void moving.then((x) => (ended = x));
      await waitFor(`${who}'s jaulad held at "${mark}"`, () => {
        if (ended) throw new Error(`the move ended before "${mark}": ${ended.stdout}${ended.stderr}`);
        return killed.daemon?.held === true;
      });
      fs.rmSync(STOP_FILE);
      await killed.daemon?.kill9();
      await killed.start();
      const r = await moving;
      // Both sides settle: the source asks the target what it did (jaulad does at its start).
      const status = a.jaula(['migrate', '--status']);
      await waitFor(`one copy of ${name} running`, () => {
        const at = whereIs(name);
        return at.length === 1 && at[0]?.endsWith(':running') === true;
      });
      const notes = `${r.stdout}${r.stderr}${status.stderr}${a.jaula(['list']).stderr}${b.jaula(['list']).stderr}`;
      assert.match(notes, new RegExp(`${name}`), 'a command says what became of the move');
      await waitFor(`${name} answering`, () => hs.fetch(ip) === `hello from ${name}\n`);
      const [host] = whereIs(name);
      hs.host((host as string).split(':')[0] as string).ok(['stop', name, '--kill']);
    });
});
