// Bundles the CLI into one CommonJS file, dist/jaula.cjs: one file to load instead of dozens
// of ESM modules, and node: built-ins required only by the commands that use them. This keeps
// `jaula` close to `node -e 0` in start-up time (measured in bench/start). jaulad is a bundle
// of its own (dist/jaulad.cjs), and the web dashboard one for browsers (web/dist/app.js).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
  // ws's optional native speed-ups: not installed, ws works without them.
  external: ['bufferutil', 'utf-8-validate'],
  define: { 'import.meta.url': '__jaulaUrl' },
  // import() of built-ins becomes require(): bin/jaula.cjs runs the bundle as a vm.Script (for
  // its code cache), where a dynamic import would need an experimental loader.
  supported: { 'dynamic-import': false },
  banner: { js: "const __jaulaUrl = require('node:url').pathToFileURL(__filename).href;" },
};
// ws (exec through jaulad) is loaded from node_modules when used, not parsed at every start.
await build({ ...node, entryPoints: ['src/cli/main.ts'], outfile: 'dist/jaula.cjs', external: [...node.external, 'ws'] });
await build({ ...node, entryPoints: ['src/daemon/entry.ts'], outfile: 'dist/jaulad.cjs' });
await build({
  entryPoints: ['web/src/app.ts'],
  bundle: true,
  platform: 'browser',
  target: 'chrome110',
  format: 'iife',
  minify: true,
  outfile: 'web/dist/app.js',
  logLevel: 'warning',
});
// Everything jaulad serves comes from web/dist: the page, its style, xterm's style (no CDN).
mkdirSync('web/dist', { recursive: true });
copyFileSync('node_modules/@xterm/xterm/css/xterm.css', 'web/dist/xterm.css');
copyFileSync('web/index.html', 'web/dist/index.html');
copyFileSync('web/app.css', 'web/dist/app.css');
