#!/usr/bin/env node
// Runs the whole test suite: unit tests (dist/src/**/*.test.js) and integration tests with
// real guests (dist/tests/*.test.js). Integration tests need root: they start real guests.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

if (process.getuid() !== 0) {
  console.error('The test suite starts real guests: run it as root (sudo ./setup test).');
  process.exit(2);
}
const find = (dir, out = []) => {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) find(p, out);
    else if (p.endsWith('.test.js')) out.push(p);
  }
  return out;
};
const only = process.argv.slice(2);
const files = [...find('dist/src'), ...find('dist/tests')]
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
// Every test root of the run is written to a ledger (tests/helpers.ts), and checked at the end:
// the suite fails on anything one left behind, even when its file could not say so itself.
const ledgerDir = mkdtempSync(join(tmpdir(), 'jaula-ledger-'));
const ledger = join(ledgerDir, 'roots');
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, JAULA_TEST_LEDGER: ledger },
});
let roots = [];
try {
  roots = readFileSync(ledger, 'utf8').split('\n').filter(Boolean);
} catch {
  /* no integration test ran */
}
rmSync(ledgerDir, { recursive: true, force: true });
let status = r.status ?? 1;
if (roots.length) {
  const { instanceLeftovers, cleanupLeftRoot } = await import(
    pathToFileURL(resolve('dist/tests/helpers.js')).href
  );
  const left = [];
  for (const root of roots) {
    const here = instanceLeftovers(root);
    left.push(...here.map((l) => `${root}: ${l}`));
    // Reported, then removed: one broken run must not break the next.
    if (here.length) cleanupLeftRoot(root);
  }
  if (left.length) {
    console.error(
      `\n✖ left behind by the run's ${roots.length} test roots:\n${left.map((l) => `  ${l}`).join('\n')}`,
    );
    status = status || 1;
  } else console.log(`\n✔ nothing left behind by the run's ${roots.length} test roots`);
}
process.exit(status);
