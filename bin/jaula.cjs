#!/usr/bin/env node
'use strict';
// jaula's command line: loads the bundle dist/jaula.cjs with a V8 code cache beside it
// (dist/jaula.cjs.cache), because compiling the bundle is the larger part of jaula's own
// start-up. V8 rejects a cache made for other source or another V8, and then a fresh one is
// written once the command has run (so it also holds the functions that command compiled);
// where dist/ is read-only the bundle simply compiles each time. The bundle has no dynamic
// import() (scripts/bundle.mjs turns them into require()), which a vm.Script could not run.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

const file = path.join(__dirname, '../dist/jaula.cjs');
const cacheFile = `${file}.cache`;
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  /* none yet */
}
const script = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8')), { filename: file, cachedData });
if (cachedData === undefined || script.cachedDataRejected)
  process.once('exit', () => {
    try {
      const tmp = `${cacheFile}.${process.pid}`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {
      /* read-only: fine */
    }
  });
const mod = { exports: {}, filename: file, id: file, loaded: false };
script.runInThisContext()(mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
