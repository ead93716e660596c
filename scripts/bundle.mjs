// Bundles the CLI into one CommonJS file, dist/jaula.cjs: one file to load instead of dozens
// of ESM modules, and node: built-ins required only by the commands that use them. This keeps
// `jaula` close to `node -e 0` in start-up time (measured in bench/start).
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: 'dist/jaula.cjs',
  logLevel: 'warning',
  define: { 'import.meta.url': '__jaulaUrl' },
  // import() of built-ins becomes require(): bin/jaula.cjs runs the bundle as a vm.Script (for
  // its code cache), where a dynamic import would need an experimental loader.
  supported: { 'dynamic-import': false },
  banner: { js: "const __jaulaUrl = require('node:url').pathToFileURL(__filename).href;" },
});
