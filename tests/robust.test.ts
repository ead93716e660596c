/**
 * Robustness, through the CLI and jaulad as a user meets it: a broken config.toml, a guest whose
 * files are gone, reboot detection, a clone's marks, bridges made by many starts at once, and
 * the small messages of issue 11.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { TestRoot, type GuestStatus, type Jaulad } from './helpers.js';

const t = new TestRoot();
after(() => assert.deepEqual(t.cleanup(), [], 'nothing is left behind'));

interface Row {
  name: string;
  ok: boolean;
  message: string;
}
interface Summary extends GuestStatus {
  error?: string;
  marks: string[];
  hostname: string;
}

const status = (name: string): Summary =>
  JSON.parse(t.jaula(['status', name, '--format', 'json']).stdout) as Summary;
const list = (): Summary[] => JSON.parse(t.ok(['list', '--format', 'json']).stdout) as Summary[];

/** Append a misspelt setting to a guest's config; returns the line it is on. */
function breakConfig(name: string, text = 'colour = "blue"'): number {
  const file = t.path('etc/jaula/guests', name, 'config.toml');
  fs.appendFileSync(file, `${text}\n`);
  return fs.readFileSync(file, 'utf8').split('\n').indexOf(text) + 1;
}

/** A network of this test's own: a /24 no other test (or the host) uses, a bridge named from the tag. */
function makeNetwork(name: string, prefix: string): string {
  for (let i = 0; i < 20; i++) {
    const base = `10.${150 + Math.floor(Math.random() * 40)}.${Math.floor(Math.random() * 250)}`;
    const r = t.jaula([
      'network',
      'create',
      name,
      '--subnet',
      `${base}.1/24`,
      '--bridge',
      `${prefix}${t.tag.slice(0, 6)}`,
    ]);
    if (r.code === 0) return `${prefix}${t.tag.slice(0, 6)}`;
  }
  throw new Error('could not make a network');
}

describe('a guest whose config.toml is broken', () => {
  it('is listed as broken with the error and its line, refused at start, reported by every bulk operation and doctor, and deleted only with --force', () => {
    t.buildSleeper('bk', ['--mark', 'default']);
    t.buildSleeper('fine', ['--mark', 'default']);
    const line = breakConfig('bk');
    const where = new RegExp(`config\\.toml", \\[build\\], line ${line}: unknown setting "colour"`);

    const bk = list().find((g) => g.name === 'bk');
    assert.equal(bk?.status, 'broken', 'listed, as broken');
    assert.match(bk?.error ?? '', where);
    const table = t.ok(['list']);
    assert.match(table.stdout, /^bk\s+\d+\s+broken\s/m);
    assert.match(table.stderr, where, 'the table says what is wrong');
    const st = t.jaula(['status', 'bk']);
    assert.equal(st.code, 3);
    assert.match(st.stdout, where);

    const start = t.jaula(['start', 'bk']);
    assert.equal(start.code, 2, start.stderr);
    assert.match(start.stderr, where);
    assert.match(start.stderr, /jaula delete --force bk/);
    assert.equal(fs.existsSync(t.path('run/jaula/guests/bk/state.json')), false, 'nothing is made for it');

    // No bulk operation passes over it: each reports it as failed (and does the others).
    for (const [args, others] of [
      [['start', '--all'], 'started'],
      [['autostart'], 'already running'],
      [['restart', '--all'], 'ok'],
      [['exec', '--all', '--format', 'json', '--', 'true'], 'exit 0'],
      [['stop', '--all'], 'stopped'],
      [['start', '--mark', 'default'], 'started'],
      [['stop', 'fine', 'bk'], 'stopped'],
    ] as const) {
      const a: string[] = [...args];
      const r = t.jaula(a.includes('--') ? a : [...a, '--format', 'json']);
      assert.equal(r.code, 1, `jaula ${args.join(' ')}: ${r.stdout} ${r.stderr}`);
      const rows = JSON.parse(r.stdout) as Row[];
      const row = rows.find((x) => x.name === 'bk');
      assert.equal(row?.ok, false, `jaula ${args.join(' ')} reports bk as failed: ${r.stdout}`);
      assert.match(row?.message ?? '', where);
      if (others !== 'ok')
        assert.match(rows.find((x) => x.name === 'fine')?.message ?? '', new RegExp(others));
    }

    const doctor = JSON.parse(t.ok(['doctor', '--format', 'json']).stdout) as {
      area: string;
      name: string;
      status: string;
      detail: string;
    }[];
    const check = doctor.find((c) => c.area === 'guests' && c.name === 'bk');
    assert.equal(check?.status, 'warn');
    assert.match(check?.detail ?? '', where);

    const del = t.jaula(['delete', 'bk']);
    assert.equal(del.code, 6);
    assert.match(del.stderr, /its config is broken .*jaula delete --force bk/);
    assert.ok(fs.existsSync(t.path('etc/jaula/guests/bk/config.toml')), 'refused: nothing removed');
    t.ok(['delete', '--force', 'bk']);
    for (const d of ['etc/jaula/guests/bk', 'var/lib/jaula/guests/bk', 'run/jaula/guests/bk'])
      assert.equal(fs.existsSync(t.path(d)), false, `${d} is gone`);
    assert.deepEqual(
      list().map((g) => g.name),
      ['fine'],
    );
  });

  it('that is not TOML at all is shown with the line and column of the error', () => {
    t.buildSleeper('bk2');
    const file = t.path('etc/jaula/guests/bk2/config.toml');
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const at = lines.findIndex((l) => l.startsWith('hostname ='));
    lines[at] = 'hostname = = "bk2"';
    fs.writeFileSync(file, lines.join('\n'));
    const g = list().find((x) => x.name === 'bk2');
    assert.equal(g?.status, 'broken');
    assert.match(g?.error ?? '', new RegExp(`line ${at + 1}, column \\d+: not valid TOML`));
    // Its marks cannot be read: a --mark selection does not pass over it either.
    const r = t.jaula(['start', '--mark', 'nosuchmark', '--format', 'json']);
    assert.equal(r.code, 1);
    assert.deepEqual(
      (JSON.parse(r.stdout) as Row[]).map((x) => [x.name, x.ok]),
      [['bk2', false]],
    );
    t.ok(['delete', '--force', 'bk2']);
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/bk2')), false);
  });

  it('that breaks while the guest runs: shown with its pid, stopped with the config it started with, nothing left', () => {
    makeNetwork('rn', 'jr');
    t.buildSleeper('bkr', ['--interface', 'eth0=rn:auto']);
    t.ok(['start', 'bkr']);
    const good = fs.readFileSync(t.path('etc/jaula/guests/bkr/config.toml'), 'utf8');
    breakConfig('bkr');
    const g = status('bkr');
    assert.equal(g.status, 'broken');
    assert.ok(g.pid && fs.existsSync(`/proc/${g.pid}`), 'it still runs, and says so');
    assert.ok(
      list().some((x) => x.name === 'bkr'),
      'listed',
    );
    assert.ok(
      (JSON.parse(t.ok(['list', '--running', '--format', 'json']).stdout) as Summary[]).some(
        (x) => x.name === 'bkr',
      ),
      'listed as running',
    );
    t.ok(['stop', 'bkr']);
    assert.equal(status('bkr').pid, undefined);
    assert.deepEqual(t.runLeftovers('bkr'), [], 'its stop removed what its start made');
    assert.deepEqual(t.devices(), []);
    assert.deepEqual(t.firewallElements(), []);
    assert.equal(t.jaula(['start', 'bkr']).code, 2, 'refused while broken');
    // Running again, then broken and deleted with --force: killed, and nothing is left.
    fs.writeFileSync(t.path('etc/jaula/guests/bkr/config.toml'), good);
    t.ok(['start', 'bkr']);
    breakConfig('bkr', 'speed = 3');
    t.ok(['delete', '--force', 'bkr']);
    assert.equal(fs.existsSync(t.path('etc/jaula/guests/bkr')), false);
    assert.deepEqual(t.leftovers(), []);
  });
});

describe('a guest whose files are missing', () => {
  for (const storage of ['overlay', 'dir'])
    it(`(${storage} storage) gets a clear error from start, run, clone and template save, and nothing is made`, () => {
      const name = `mf-${storage}`;
      t.buildSleeper(name, ['--storage', storage]);
      const data = t.path('var/lib/jaula/guests', name);
      const aside = t.path(`moved-${name}`);
      fs.renameSync(data, aside);
      const runDir = t.path('run/jaula/guests', name);
      const what = (): string[] =>
        [data, runDir].flatMap((d) =>
          fs.existsSync(d) ? [d, ...fs.readdirSync(d, { recursive: true }).map(String)] : [],
        );
      const before = what();
      for (const args of [
        ['start', name],
        ['run', name, '--', 'true'],
        ['clone', name, `${name}-c`],
        ['template', 'save', name, `${name}-t`],
      ]) {
        const r = t.jaula(args);
        assert.equal(r.code, 4, `jaula ${args.join(' ')}: ${r.stderr}`);
        assert.match(
          r.stderr,
          new RegExp(
            `^jaula: Guest "${name}" has no files: its directory ".*${name}" is missing \\(moved or deleted\\?\\)`,
          ),
        );
        assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, 'no stack trace');
        assert.deepEqual(what(), before, `jaula ${args.join(' ')} made nothing`);
      }
      assert.equal(status(name).status, 'stopped');
      fs.renameSync(aside, data);
      t.ok(['start', name]);
      t.ok(['delete', '--force', name]);
    });
});

describe('through jaulad', () => {
  let d: Jaulad;
  it('lists a broken guest, and refuses to start it or a guest without files, with the same messages', async () => {
    t.buildSleeper('jb');
    t.buildSleeper('jm');
    d = t.daemon(['--no-autostart']);
    await d.ready({ reconciled: true });
    const line = breakConfig('jb');
    const where = new RegExp(`line ${line}: unknown setting "colour"`);
    await t.until('jaulad to see it broken', () => status('jb').status === 'broken');
    const guests = (await d.request('GET', '/v1/guests')).json as Summary[];
    assert.match(guests.find((g) => g.name === 'jb')?.error ?? '', where);
    const api = await d.request('POST', '/v1/guests/jb/start');
    assert.equal(api.status, 400);
    assert.match((api.json as { error: { message: string } }).error.message, where);
    const cli = t.jaula(['start', 'jb']);
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, where);

    fs.renameSync(t.path('var/lib/jaula/guests/jm'), t.path('moved-jm'));
    const r = await d.request('POST', '/v1/guests/jm/start');
    assert.equal(r.status, 404);
    assert.match(
      (r.json as { error: { message: string } }).error.message,
      /^Guest "jm" has no files: its directory .* is missing/,
    );
    const c = t.jaula(['start', 'jm']);
    assert.equal(c.code, 4);
    assert.match(c.stderr, /^jaula: Guest "jm" has no files/);
    assert.equal(fs.existsSync(t.path('var/lib/jaula/guests/jm')), false, 'nothing made');
    fs.renameSync(t.path('moved-jm'), t.path('var/lib/jaula/guests/jm'));
    t.ok(['delete', '--force', 'jb']);
    t.ok(['delete', 'jm']);
    await d.stop();
  });
});

describe('reboot detection', () => {
  it("jaulad's first run starts nothing; after a real reboot it starts the guests marked default that ran when the host went down, never one stopped on purpose", async () => {
    for (const n of ['r1', 'r2', 'r3']) t.buildSleeper(n, ['--mark', 'default']);
    t.buildSleeper('r4');
    t.ok(['start', 'r1']);
    t.ok(['stop', 'r1']); // on purpose
    t.ok(['start', 'r3']);
    t.ok(['start', 'r4']);
    // jaulad's first run on this host: no boot recorded before it.
    fs.rmSync(t.path('var/lib/jaula/boot_id'), { force: true });
    let d = t.daemon([]);
    await d.ready({ reconciled: true });
    type Info = { daemon: { reconcile: { hostRebooted: boolean; autostarted: string[] } } };
    let info = (await d.request('GET', '/v1/info')).json as Info;
    assert.equal(info.daemon.reconcile.hostRebooted, false, d.log);
    assert.deepEqual(info.daemon.reconcile.autostarted, []);
    assert.doesNotMatch(d.log, /new boot/);
    assert.deepEqual(
      ['r1', 'r2', 'r3', 'r4'].map((n) => status(n).status),
      ['stopped', 'stopped', 'running', 'running'],
    );
    const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    assert.equal(fs.readFileSync(t.path('var/lib/jaula/boot_id'), 'utf8').trim(), boot, 'recorded');
    await d.stop();

    // The host goes down with r3 and r4 running (their inits die; no one stops them), and comes
    // back as another boot.
    for (const n of ['r3', 'r4']) process.kill(status(n).pid as number, 'SIGKILL');
    await t.until(
      'r3 and r4 to end',
      () => status('r3').status === 'stopped' && status('r4').status === 'stopped',
    );
    fs.writeFileSync(t.path('var/lib/jaula/boot_id'), 'a-boot-before\n');
    for (const n of ['r3', 'r4']) {
      assert.equal(fs.readFileSync(t.path('var/lib/jaula/running', n), 'utf8').trim(), boot);
      fs.writeFileSync(t.path('var/lib/jaula/running', n), 'a-boot-before\n');
    }
    assert.equal(fs.existsSync(t.path('var/lib/jaula/running/r1')), false, 'r1 was stopped on purpose');
    d = t.daemon([]);
    await d.ready({ reconciled: true });
    info = (await d.request('GET', '/v1/info')).json as Info;
    assert.equal(info.daemon.reconcile.hostRebooted, true, d.log);
    assert.deepEqual(info.daemon.reconcile.autostarted, ['r3'], d.log);
    assert.match(d.log, /new boot: r3, r4 ran when the host went down/);
    assert.deepEqual(
      ['r1', 'r2', 'r3', 'r4'].map((n) => status(n).status),
      ['stopped', 'stopped', 'running', 'stopped'],
    );
    assert.equal(fs.readFileSync(t.path('var/lib/jaula/running/r3'), 'utf8').trim(), boot);
    assert.equal(fs.existsSync(t.path('var/lib/jaula/running/r4')), false, "the last boot's marks are spent");
    await d.stop();
    for (const n of ['r1', 'r2', 'r3', 'r4']) t.ok(['delete', '--force', n]);
  });
});

describe('a clone', () => {
  it("keeps its source's marks, and says so", () => {
    t.buildSleeper('cs', ['--mark', 'default', '--mark', 'web']);
    const r = t.ok(['clone', 'cs', 'cc']);
    assert.match(
      r.stdout,
      /Note: "cc" has the marks of "cs" \(default, web\), so "jaula autostart" starts it too.*jaula set cc --mark M \(or --no-marks\)/,
    );
    assert.deepEqual(status('cc').marks, ['default', 'web']);
    t.ok(['set', 'cc', '--no-marks']);
    assert.doesNotMatch(t.ok(['clone', 'cc', 'cc2']).stdout, /Note/, 'nothing to say without marks');
    for (const n of ['cs', 'cc', 'cc2']) t.ok(['delete', n]);
  });
});

describe('small messages', () => {
  it('set: marks apply at once, the hostname at the next start; limit errors have one prefix', () => {
    t.ok(['start', 'fine']);
    const marks = t.ok(['set', 'fine', '--mark', 'web']);
    assert.doesNotMatch(marks.stdout, /next start/, marks.stdout);
    assert.match(
      t.ok(['set', 'fine', '--hostname', 'fine2']).stdout,
      /the new hostname applies at its next start/,
    );
    const bad = t.jaula(['set', 'fine', 'foo.bar=1']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^jaula: Unknown limit "foo\.bar"/);
    assert.doesNotMatch(bad.stderr, /jaula: jaula/);
    t.ok(['stop', 'fine']);
  });

  it('template save --changes gives the size with its unit', () => {
    t.ok(['template', 'save', 'fine', 'sm-base']);
    t.ok(['build', 'sm1', '-m', 'template', '-q', '--', '-t', 'sm-base']);
    const r = t.ok(['template', 'save', 'sm1', 'sm-changes', '--changes']);
    assert.match(r.stdout, /\(\d+ files?, \d+(\.\d)?[BKMGT]\)/, r.stdout);
    t.ok(['delete', 'sm1']);
    for (const n of ['sm-changes', 'sm-base']) t.ok(['template', 'delete', n]);
  });

  it('a name that cannot be a hostname needs --hostname, and the error says so', () => {
    const long = `${'a'.repeat(60)}_bcd`;
    for (const [args, hint] of [
      [['build', long, '-m', 'skeleton', '-q'], /give one with --hostname/],
      [['build', 'ab_c', '-m', 'skeleton', '-q'], /give one with --hostname, e\.g\. --hostname ab-c/],
      [['clone', 'fine', 'x_y'], /give one with --hostname, e\.g\. --hostname x-y/],
    ] as const) {
      const r = t.jaula([...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, hint);
    }
    t.ok(['build', long, '-m', 'skeleton', '-q', '--hostname', 'long1']);
    assert.equal(status(long).hostname, 'long1');
    t.ok(['delete', long]);
  });
});

describe('networks made by many starts at once', () => {
  it('starts in separate processes (and in one) all succeed when the bridge does not exist yet, with every guest in the firewall', async () => {
    const bridge = makeNetwork('pn', 'jp');
    const names = Array.from({ length: 8 }, (_, i) => `p${i}`);
    for (const n of names) t.buildSleeper(n, ['--interface', 'eth0=pn:auto']);
    const ports = (): string =>
      spawnSync('nft', ['list', 'set', 'bridge', `jaula_${t.tag}`, 'ports'], { encoding: 'utf8' }).stdout;
    const reset = (): void => {
      t.ok(['stop', ...names]);
      // As at boot: no bridge, no firewall tables.
      spawnSync('ip', ['link', 'del', bridge]);
      for (const fam of ['bridge', 'ip']) spawnSync('nft', ['delete', 'table', fam, `jaula_${t.tag}`]);
      fs.rmSync(t.path(`run/jaula/net/firewall.${t.tag}`), { force: true });
      assert.equal(fs.existsSync(`/sys/class/net/${bridge}`), false);
    };
    for (let round = 0; round < 3; round++) {
      const rs = await Promise.all(names.map((n) => t.jaulaAsync(['start', n])));
      rs.forEach((r, i) => assert.equal(r.code, 0, `round ${round}: jaula start ${names[i]}: ${r.stderr}`));
      assert.ok(fs.existsSync(`/sys/class/net/${bridge}/bridge`), 'the bridge is there');
      const set = ports();
      const st = names.map((n) => t.state(n));
      assert.equal(st.filter((s) => s['status'] === 'running').length, names.length);
      // Every guest's port is in the firewall: no start's tables were defined over another's.
      const veths = t.devices().filter((x) => x.startsWith('jv'));
      assert.equal(veths.length, names.length);
      for (const v of veths)
        assert.ok(set.includes(`"${v}"`), `round ${round}: ${v} is in the firewall: ${set}`);
      reset();
    }
    const one = t.jaula(['start', ...names, '--format', 'json']);
    assert.equal(one.code, 0, one.stdout + one.stderr);
    t.ok(['stop', ...names]);
    for (const n of names) t.ok(['delete', n]);
  });
});
