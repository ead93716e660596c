#!/usr/bin/env node
// Runs the whole test suite: unit tests (dist/src/**/*.test.js) and integration tests with
// real guests (dist/tests/*.test.js). Integration tests need root: they start real guests.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

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
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
