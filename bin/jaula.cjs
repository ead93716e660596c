#!/usr/bin/env node
require('../dist/jaula.cjs');
