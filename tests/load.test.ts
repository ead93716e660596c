/**
 * Load: 50 concurrent API clients doing lifecycle operations (start, stop, kill, restart, exec,
 * status) on 20 guests through one jaulad, while ten more race to build the same guest. Every
 * answer is a success or the state conflict the operation may meet (never a server error or a
 * lock timeout); at the end every guest is consistent, none is lost or duplicated, the runtime
 * holds exactly the running guests, and the event stream's view equals the list.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventStream, TestRoot, type GuestStatus, type Jaulad } from './helpers.js';

const GUESTS = 20;
const CLIENTS = 50;
const OPS_PER_CLIENT = 6;
const t = new TestRoot('jaula-load-');
const names = Array.from({ length: GUESTS }, (_, i) => `lg${String(i).padStart(2, '0')}`);
let d: Jaulad;

/** A small deterministic generator (mulberry32): the same load every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const OPS: { op: string; method: string; path: (n: string) => string; body?: unknown; conflict: boolean }[] =
  [
    { op: 'start', method: 'POST', path: (n) => `/v1/guests/${n}/start`, conflict: true },
    { op: 'stop', method: 'POST', path: (n) => `/v1/guests/${n}/stop`, body: { timeout: 5 }, conflict: true },
    { op: 'kill', method: 'POST', path: (n) => `/v1/guests/${n}/stop`, body: { kill: true }, conflict: true },
    {
      op: 'restart',
      method: 'POST',
      path: (n) => `/v1/guests/${n}/restart`,
      body: { timeout: 5 },
      conflict: false,
    },
    {
      op: 'exec',
      method: 'POST',
      path: (n) => `/v1/guests/${n}/exec`,
      body: { cmd: ['/bin/sh', '-c', 'hostname'] },
      conflict: true,
    },
    { op: 'status', method: 'GET', path: (n) => `/v1/guests/${n}`, conflict: false },
  ];

before(async () => {
  for (const n of names) t.buildSleeper(n, [], { JAULA_NO_DAEMON: '1' });
  d = t.daemon(['--no-autostart']);
  await d.ready({ reconciled: true });
});

after(async () => {
  await d?.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

describe(`${CLIENTS} concurrent API clients on ${GUESTS} guests`, () => {
  it('end with every guest consistent, none lost or duplicated', async (ctx) => {
    const es = new EventStream(d.socket);
    const unexpected: string[] = [];
    const counts: Record<string, number> = {};
    const execCodes: Record<number, number> = {};
    const client = async (c: number): Promise<void> => {
      const next = rng(c + 1);
      for (let i = 0; i < OPS_PER_CLIENT; i++) {
        const o = OPS[Math.floor(next() * OPS.length)] as (typeof OPS)[number];
        const name = names[Math.floor(next() * names.length)] as string;
        const r = await d.request(o.method, o.path(name), o.body);
        const key = `${o.op} ${r.status}`;
        counts[key] = (counts[key] ?? 0) + 1;
        const fine = r.status === 200 || (o.conflict && r.status === 409);
        if (!fine) unexpected.push(`${o.op} ${name}: ${r.status} ${r.text}`);
        // An exec that completed must have run in the right guest. One that a concurrent stop
        // or kill of its guest cut short ends with a signal's code, or (the runtime could no
        // longer enter the guest: "setns `mnt`: Bad file descriptor") never ran: either way it
        // printed nothing but, at most, its own guest's name.
        const ran = r.json as { code: number; stdout: string; stderr: string };
        if (o.op === 'exec' && r.status === 200) {
          execCodes[ran.code] = (execCodes[ran.code] ?? 0) + 1;
          if (ran.code === 0) assert.equal(ran.stdout, `${name}\n`, 'exec ran in the right guest');
          else
            assert.ok(
              ['', `${name}\n`].includes(ran.stdout),
              `exec in ${name}: code ${ran.code}: ${ran.stdout} ${ran.stderr}`,
            );
        }
      }
    };
    // Ten more clients race to build one guest: exactly one build may succeed.
    const racer = async (): Promise<{ state: string; error?: { code: string } }> => {
      const r = await d.request('POST', '/v1/guests', {
        name: 'dup',
        method: 'skeleton',
        initstyle: 'cmd',
        cmd: ['/bin/sleep', '100000'],
      });
      assert.equal(r.status, 202, r.text);
      const id = (r.json as { id: string }).id;
      for (;;) {
        const j = (await d.request('GET', `/v1/jobs/${id}`)).json as {
          state: string;
          error?: { code: string };
        };
        if (j.state !== 'running') return j;
        await new Promise((res) => setTimeout(res, 20));
      }
    };
    const [, builds] = await Promise.all([
      Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c))),
      Promise.all(Array.from({ length: 10 }, racer)),
    ]);
    ctx.diagnostic(`answers: ${JSON.stringify(counts)}; exec exit codes: ${JSON.stringify(execCodes)}`);
    try {
      assert.ok(
        (execCodes[0] ?? 0) > 0,
        `some execs completed (and their output was checked): ${JSON.stringify(execCodes)}`,
      );
      assert.deepEqual(unexpected, [], `answers: ${JSON.stringify(counts)}`);
      assert.equal(builds.filter((b) => b.state === 'succeeded').length, 1, JSON.stringify(builds));
      assert.ok(
        builds.every((b) => b.state === 'succeeded' || b.error?.code === 'exists'),
        JSON.stringify(builds),
      );

      const list = JSON.parse(t.ok(['list', '--format', 'json']).stdout) as GuestStatus[];
      assert.deepEqual(
        list.map((g) => g.name),
        [...names, 'dup'].sort(),
        'no guest lost or duplicated',
      );
      assert.equal(new Set(list.map((g) => g.context)).size, list.length, 'contexts are unique');
      const running = list.filter((g) => t.assertConsistent(g.name, 'after the load').status === 'running');
      assert.deepEqual(
        t
          .containers()
          .map((c) => c.split(':')[1])
          .sort(),
        running.map((g) => g.name),
        'the runtime holds exactly the running guests',
      );
      // The one event stream saw every change: its last word on each guest is the list's.
      const seen = new Map<string, string>();
      const view = (): string =>
        JSON.stringify(
          [...seen.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([n, s]) => `${n}:${s}`),
        );
      const want = JSON.stringify(list.map((g) => `${g.name}:${g.status}`));
      await t.until(`the event stream to agree with the list (${want})`, () => {
        seen.clear();
        for (const e of es.events) {
          if (e['type'] === 'hello') for (const g of e['guests'] as GuestStatus[]) seen.set(g.name, g.status);
          if (e['type'] === 'guest') {
            const g = e['guest'] as GuestStatus;
            seen.set(g.name, g.status);
          }
          if (e['type'] === 'guest-removed') seen.delete(e['name'] as string);
        }
        return view() === want;
      });
    } finally {
      es.close();
    }
  });
});
