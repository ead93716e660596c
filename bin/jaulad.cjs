#!/usr/bin/env node
require('../dist/jaulad.cjs').daemonMain(process.argv.slice(2));
