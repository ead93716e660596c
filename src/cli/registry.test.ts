import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bashCompletion } from './commands/completion.js';
import type { Command } from './command.js';
import { COMMANDS } from './registry.js';

const commands = async (): Promise<[string, Command][]> =>
  Promise.all(
    Object.entries(COMMANDS)
      .filter(([n]) => !n.startsWith('__'))
      .map(async ([n, load]) => [n, await load()] as [string, Command]),
  );

/** Commands that print a listing (of guests, results, checks, networks). */
const LISTINGS = [
  'list',
  'status',
  'start',
  'stop',
  'restart',
  'exec',
  'autostart',
  'doctor',
  'network',
  'info',
];

describe('the command table', () => {
  it('gives every command a help with its usage and examples', async () => {
    for (const [name, cmd] of await commands()) {
      assert.match(cmd.help, new RegExp(`^Usage: jaula ${name}\\b`), `${name}: usage first`);
      assert.match(cmd.help, /\nExamples?:\n {2}(jaula|source|openssl|curl) /, `${name}: examples`);
      assert.ok(cmd.summary.length > 10, `${name}: a summary`);
    }
  });

  it('offers --format json on every command that prints a listing', async () => {
    for (const [name, cmd] of await commands())
      if (LISTINGS.includes(name)) {
        assert.equal(cmd.specs['format']?.type, 'string', `${name} takes --format`);
        assert.match(cmd.help, /--format table\|json/, `${name}: its help says so`);
      }
  });
});

describe('the bash completion', () => {
  // A root with two guests (their config files are all `jaula __names` looks at), and `jaula` on PATH.
  const root = fs.mkdtempSync(join(tmpdir(), 'jaula-completion-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const g of ['alpha', 'beta']) {
    fs.mkdirSync(join(root, 'etc/jaula/guests', g), { recursive: true });
    fs.writeFileSync(join(root, 'etc/jaula/guests', g, 'config.toml'), '');
  }
  const bin = join(root, 'bin');
  fs.mkdirSync(bin);
  const cli = join(fileURLToPath(import.meta.url), '../../../../bin/jaula.cjs');
  fs.writeFileSync(join(bin, 'jaula'), `#!/bin/sh\nexec ${process.execPath} ${cli} "$@"\n`, { mode: 0o755 });

  const complete = async (line: string): Promise<string[]> => {
    const words = line.split(' ');
    const script = `${await bashCompletion()}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}
_jaula; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['-c', script], {
      encoding: 'utf8',
      env: { PATH: `${bin}:/usr/bin:/bin`, JAULA_ROOT: root },
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).sort();
  };

  it('is valid bash and knows every command and option', async () => {
    const script = await bashCompletion();
    assert.equal(spawnSync('bash', ['-n'], { input: script }).status, 0);
    for (const [name, cmd] of await commands()) {
      assert.match(script, new RegExp(`\\n {4}${name}\\) opts=`), name);
      for (const k of Object.keys(cmd.specs)) assert.ok(script.includes(`--${k}`), `${name} --${k}`);
    }
  });

  it('completes commands, options, option values and verbs', async () => {
    assert.deepEqual(await complete('jaula res'), ['restart', 'restore']);
    assert.deepEqual(await complete('jaula ren'), ['rename']);
    assert.deepEqual(await complete('jaula stop --ti'), ['--timeout']);
    assert.deepEqual(await complete('jaula list --format '), ['json', 'table']);
    assert.deepEqual(await complete('jaula build x -m t'), ['template']);
    assert.deepEqual(await complete('jaula network c'), ['check', 'create']);
    assert.deepEqual(await complete('jaula exec g -- ls --fo'), [], 'nothing after --');
    assert.deepEqual(await complete('jaula start '), ['alpha', 'beta'], 'guest names');
    assert.deepEqual(await complete('jaula set alpha --depends b'), ['beta']);
    assert.deepEqual(await complete('jaula build '), [], 'a new name: nothing to offer');
  });
});
