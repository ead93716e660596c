/**
 * Bulk operations with selectors (--all, --mark, several names) on real guests: starts in
 * dependency order, stops dependents first, exec with a per-guest result table or JSON, the
 * exit status, through this process and through jaulad.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestRoot, type Jaulad } from './helpers.js';

const t = new TestRoot('jaula-bulk-');
let d: Jaulad | undefined;

interface Row {
  name: string;
  ok: boolean;
  message: string;
  code?: number;
  stdout?: string;
}

const local = { JAULA_NO_DAEMON: '1' };

/** Run a bulk command with --format json; returns its exit status and rows. */
function bulk(args: string[], env: NodeJS.ProcessEnv = local): { code: number; rows: Row[] } {
  const dd = args.indexOf('--');
  const withJson =
    dd < 0 ? [...args, '--format', 'json'] : [...args.slice(0, dd), '--format', 'json', ...args.slice(dd)];
  const r = t.jaula(withJson, { env });
  assert.ok(r.code === 0 || r.code === 1, `jaula ${args.join(' ')}: ${r.code} ${r.stderr}`);
  return { code: r.code, rows: JSON.parse(r.stdout) as Row[] };
}

const statusOf = (): Record<string, { status: string; pid?: number; startedAt?: string }> =>
  Object.fromEntries(
    (
      JSON.parse(t.ok(['list', '--format', 'json'], { env: local }).stdout) as {
        name: string;
        status: string;
      }[]
    ).map((g) => [g.name, g]),
  );

before(() => {
  t.buildSleeper('b1', ['--mark', 'web']);
  t.buildSleeper('b2', ['--mark', 'web']);
  t.buildSleeper('b3', ['--mark', 'db']);
  t.buildSleeper('b4', ['--mark', 'db', '--depends', 'b3']);
});

after(async () => {
  await d?.stop();
  assert.deepEqual(t.cleanup(), [], 'nothing is left behind');
});

describe('bulk operations in this process', () => {
  it('starts the guests with a mark, and only them', () => {
    const r = bulk(['start', '--mark', 'web']);
    assert.equal(r.code, 0);
    assert.deepEqual(
      r.rows.map((x) => [x.name, x.ok]),
      [
        ['b1', true],
        ['b2', true],
      ],
    );
    assert.match(r.rows[0]?.message ?? '', /^started \(pid \d+\)$/);
    const s = statusOf();
    assert.deepEqual(
      ['b1', 'b2', 'b3', 'b4'].map((n) => s[n]?.status),
      ['running', 'running', 'stopped', 'stopped'],
    );
  });

  it('starts named guests after what they depend on, one at a time with --parallel 1', () => {
    const r = bulk(['start', 'b4', 'b1', '--parallel', '1']);
    assert.equal(r.code, 0);
    // b3 is pulled in (b4 depends on it) and comes in the first wave, b4 in the second.
    assert.deepEqual(
      r.rows.map((x) => [x.name, x.message.replace(/\d+/, 'N')]),
      [
        ['b1', 'already running'],
        ['b3', 'started (pid N)'],
        ['b4', 'started (pid N)'],
      ],
    );
    const s = statusOf();
    assert.ok(Date.parse(s['b3']?.startedAt ?? '') <= Date.parse(s['b4']?.startedAt ?? ''));
  });

  it('execs in every guest with a result per guest; one failure makes the exit status 1', () => {
    const r = bulk(['exec', '--all', '--', '/bin/sh', '-c', 'hostname; test "$(hostname)" != b2']);
    assert.equal(r.code, 1);
    assert.deepEqual(
      r.rows.map((x) => [x.name, x.ok, x.code, x.stdout]),
      [
        ['b1', true, 0, 'b1\n'],
        ['b2', false, 1, 'b2\n'],
        ['b3', true, 0, 'b3\n'],
        ['b4', true, 0, 'b4\n'],
      ],
    );
    const table = t.jaula(['exec', '--mark', 'web', '--parallel', '2', '--', 'hostname'], { env: local });
    assert.equal(table.code, 0, table.stderr);
    assert.deepEqual(
      table.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/)),
      [
        ['GUEST', 'RESULT', 'EXIT', 'OUTPUT'],
        ['b1', 'ok', '0', 'b1'],
        ['b2', 'ok', '0', 'b2'],
      ],
    );
  });

  it('passes over stopped guests of a selector, but not a stopped guest named', () => {
    t.ok(['stop', 'b2'], { env: local });
    const all = bulk(['exec', '--all', '--', 'true']);
    assert.equal(all.code, 0);
    assert.deepEqual(
      all.rows.map((x) => [x.name, x.ok, x.message]),
      [
        ['b1', true, 'exit 0'],
        ['b2', true, 'skipped: the guest is stopped'],
        ['b3', true, 'exit 0'],
        ['b4', true, 'exit 0'],
      ],
    );
    const named = bulk(['exec', 'b1', 'b2', '--', 'true']);
    assert.equal(named.code, 1);
    assert.deepEqual(
      named.rows.map((x) => [x.name, x.ok]),
      [
        ['b1', true],
        ['b2', false],
      ],
    );
  });

  it('refuses bad selectors with the usage and not-found exit statuses', () => {
    const cases: [string[], number, RegExp][] = [
      [['start', 'nosuch', 'b1'], 4, /There is no guest "nosuch"/],
      [['exec', '--all', 'b1', '--', 'true'], 2, /--all, or --mark and names, not both/],
      [['start', '--all', '--parallel', '0'], 2, /--parallel takes a whole number >= 1/],
      [['exec', '--all'], 2, /Give the command after "--"/],
    ];
    for (const [args, code, msg] of cases) {
      const r = t.jaula(args, { env: local });
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg);
    }
  });
});

describe('bulk operations through jaulad', () => {
  it('restarts the guests with a mark (a stopped one is started)', async () => {
    d = t.daemon(['--no-autostart']);
    await d.ready({ reconciled: true });
    const before = statusOf();
    const r = t.jaula(['restart', '--mark', 'web', '--format', 'json'], { env: { JAULA_TRACE: '1' } });
    assert.match(r.stderr, /engine: jaulad at/);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      (JSON.parse(r.stdout) as Row[]).map((x) => [x.name, x.ok]),
      [
        ['b1', true],
        ['b2', true],
      ],
    );
    const now = statusOf();
    assert.equal(now['b2']?.status, 'running');
    assert.notEqual(now['b1']?.pid, before['b1']?.pid, 'b1 has a new init');
    assert.equal(now['b3']?.pid, before['b3']?.pid, 'b3 was not touched');
  });

  it('stops all guests, dependents first', () => {
    const r = bulk(['stop', '--all', '--parallel', '4'], {});
    assert.equal(r.code, 0);
    const names = r.rows.map((x) => x.name);
    assert.deepEqual([...names].sort(), ['b1', 'b2', 'b3', 'b4']);
    assert.ok(names.indexOf('b4') < names.indexOf('b3'), `b4 before b3: ${names.join(' ')}`);
    assert.ok(r.rows.every((x) => x.ok && /^stopped/.test(x.message)));
    assert.ok(Object.values(statusOf()).every((g) => g.status === 'stopped'));
    const none = t.jaula(['stop', '--all']);
    assert.equal(none.code, 0);
    assert.equal(none.stdout.trim(), 'No guest was running.');
  });
});
