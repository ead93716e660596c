import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { GuestConfig } from './config.js';
import { ConfigIndex } from './confindex.js';

const dir = fs.mkdtempSync(join(tmpdir(), 'jaula-confindex-unit-'));

/** A stand-in config: its name and the file's text (the index does not care what it holds). */
const reads: string[] = [];
function read(file: string): GuestConfig | undefined {
  reads.push(file);
  try {
    return { name: file.split('/').at(-2), hostname: fs.readFileSync(file, 'utf8') } as GuestConfig;
  } catch {
    return undefined;
  }
}
const write = (name: string, text: string): void => {
  fs.mkdirSync(join(dir, name), { recursive: true });
  fs.writeFileSync(join(dir, name, 'config.toml.tmp'), text);
  fs.renameSync(join(dir, name, 'config.toml.tmp'), join(dir, name, 'config.toml'));
};
/** What another process does: the index must see it at its next call, not later. */
const elsewhere = (js: string): void => {
  execFileSync(process.execPath, ['-e', js], { cwd: dir });
};

describe('ConfigIndex (every guest config, read again only when inotify says it changed)', () => {
  const ix = new ConfigIndex(dir, read);
  const seen = (): Record<string, string> => Object.fromEntries(ix.all().map((c) => [c.name, c.hostname]));
  after(() => {
    ix.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads every config once, then none that did not change', () => {
    write('aa', 'a1');
    write('bb', 'b1');
    fs.mkdirSync(join(dir, 'cc')); // (a guest being built, no config yet)
    assert.deepEqual(seen(), { aa: 'a1', bb: 'b1' });
    reads.length = 0;
    assert.deepEqual(seen(), { aa: 'a1', bb: 'b1' });
    assert.deepEqual(reads, []);
  });

  it("sees at once what another process changed: an edit in place, a new, a renamed and a removed guest's config", () => {
    reads.length = 0;
    // In place, the same size, within the same clock tick as the last write: no stat would tell.
    elsewhere(`require('fs').writeFileSync('aa/config.toml', 'a2', { flag: 'r+' })`);
    assert.deepEqual(seen(), { aa: 'a2', bb: 'b1' });
    assert.deepEqual(reads, [join(dir, 'aa/config.toml')]);
    elsewhere(`require('fs').writeFileSync('cc/config.toml', 'c1')`);
    assert.deepEqual(seen(), { aa: 'a2', bb: 'b1', cc: 'c1' });
    elsewhere(`require('fs').renameSync('bb', 'dd')`);
    assert.deepEqual(seen(), { aa: 'a2', cc: 'c1', dd: 'b1' });
    // The renamed directory keeps its watch: a change under its new name is seen.
    elsewhere(`require('fs').writeFileSync('dd/config.toml', 'd2')`);
    assert.deepEqual(seen(), { aa: 'a2', cc: 'c1', dd: 'd2' });
    elsewhere(`require('fs').rmSync('aa', { recursive: true })`);
    assert.deepEqual(seen(), { cc: 'c1', dd: 'd2' });
    elsewhere(`require('fs').rmSync('cc/config.toml'); require('fs').writeFileSync('cc/config.toml', 'c2')`);
    assert.deepEqual(seen(), { cc: 'c2', dd: 'd2' });
  });

  it('reads a symlinked config or guest directory every time (their targets change where no watch sees it)', () => {
    const target = join(dir, 'elsewhere.toml');
    fs.writeFileSync(target, 'e1'); // (a file beside the guests' directories: no guest)
    fs.mkdirSync(join(dir, 'ee'));
    fs.symlinkSync(target, join(dir, 'ee/config.toml'));
    const other = fs.mkdtempSync(join(tmpdir(), 'jaula-confindex-link-'));
    fs.writeFileSync(join(other, 'config.toml'), 'g1');
    fs.symlinkSync(other, join(dir, 'gg'));
    assert.equal(seen()['ee'], 'e1');
    assert.equal(seen()['gg'], 'g1');
    assert.equal(seen()['elsewhere.toml'], undefined);
    fs.writeFileSync(target, 'e2');
    fs.writeFileSync(join(other, 'config.toml'), 'g2');
    assert.equal(seen()['ee'], 'e2');
    assert.equal(seen()['gg'], 'g2');
    fs.rmSync(other, { recursive: true });
  });

  it('starts over when the directory itself is replaced', () => {
    elsewhere(`require('fs').renameSync(${JSON.stringify(dir)}, ${JSON.stringify(`${dir}-old`)})`);
    fs.mkdirSync(dir);
    write('ff', 'f1');
    assert.deepEqual(seen(), { ff: 'f1' });
    fs.rmSync(`${dir}-old`, { recursive: true, force: true });
  });
});
