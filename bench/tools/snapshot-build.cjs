// Builds a V8 user-land startup snapshot of jaula's CLI bundle (experiment, Node 20):
//   node --snapshot-blob dist/jaula.snap.blob --build-snapshot bench/tools/snapshot-build.cjs
//   node --snapshot-blob dist/jaula.snap.blob list          # = jaula list
// The bundle's code is evaluated here without running main (see snapshot-src.cjs); main runs in
// the deserialize main function. JAULA_SNAP_PRELOAD=all also runs every module initialiser at
// build time (all 236 modules; the commands' code then needs no init at start-up), after which
// the two module-init values that depend on the host are recomputed at start-up: trace.ts's
// JAULA_TRACE (also without preload: trace.ts is initialised with main's imports) and limits.ts's
// os.totalmem(). paths.ts's projectDir (found from the bundle's path) stays frozen: the blob is
// for this checkout. JAULA_SNAP_BUNDLE picks the bundle (default dist/jaula.cjs beside this tree).
// A builder may require built-ins only; other modules (ws, the native addon) are required at run
// time through a require made then (Module.createRequire of the bundle's path).
'use strict';
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');
const Module = require('node:module');
// A builder's require takes built-ins only, and a user module loaded through a require made with
// Module.createRequire makes the snapshot fail at start-up (ERR_INTERNAL_ASSERTION in
// setupUserModules: !hasLoadedAnyUserCJSModule): the helper is compiled here instead.
const helper = { exports: {} };
vm.compileFunction(require('node:fs').readFileSync(path.join(__dirname, 'snapshot-src.cjs'), 'utf8'), [
  'require',
  'module',
  'exports',
])(require, helper, helper.exports);
const { snapSource } = helper.exports;

const file = path.resolve(process.env.JAULA_SNAP_BUNDLE ?? path.join(__dirname, '../../dist/jaula.cjs'));
const preload = process.env.JAULA_SNAP_PRELOAD === 'all';
const { src } = snapSource(file);

// Built-ins that cannot be in a Node 20 snapshot: node:http fails to load in a builder
// (`methods.toSorted is not a function`: ES2023 array methods are missing while building) and,
// loaded anyway, its HTTPParser binding aborts CreateBlob ("global handle not serialized").
// node:https is deferred with it (it loads http's client internals; not tried alone in a blob).
// A module whose initialiser requires one is left for start-up (its init runs then, as now).
const NOT_AT_BUILD = new Set((process.env.JAULA_SNAP_DEFER ?? 'node:http,node:https,http,https').split(','));
class Deferred extends Error {}
let userRequire;
const req = (id) => {
  if (v8.startupSnapshot.isBuildingSnapshot() && NOT_AT_BUILD.has(id)) throw new Deferred(id);
  if (Module.isBuiltin(id)) return require(id);
  if (!v8.startupSnapshot.isBuildingSnapshot()) return (userRequire ??= Module.createRequire(file))(id);
  throw new Error(`snapshot build: ${id} required while building`);
};
// esbuild's __esm marks a module initialised before running its body; here a body that throws
// (Deferred) leaves the module uninitialised, to be initialised at start-up instead.
const esm = () => (fn, res) =>
  function __init() {
    if (fn) {
      const f = fn;
      fn = 0;
      try {
        res = f[Object.getOwnPropertyNames(f)[0]]();
      } catch (e) {
        fn = f;
        throw e;
      }
    }
    return res;
  };
const __snap = { file, esm: preload ? esm : undefined };
const body = vm.runInThisContext(
  `(function (exports, require, module, __filename, __dirname, __snap) {${src}\n})`,
  {
    filename: file,
  },
);
const mod = { exports: {}, filename: file, id: file, loaded: false };
body(mod.exports, req, mod, file, path.dirname(file), __snap);
const deferred = [];
if (preload)
  for (const [name, init] of Object.entries(__snap.inits))
    try {
      init();
    } catch (e) {
      if (!(e instanceof Deferred)) throw e;
      deferred.push(`${name} (${e.message})`);
    }
if (preload)
  process.stderr.write(
    `snapshot: ${Object.keys(__snap.inits).length - deferred.length} of ${Object.keys(__snap.inits).length} modules initialised; left for start-up: ${deferred.join(', ')}\n`,
  );

v8.startupSnapshot.setDeserializeMainFunction(() => {
  // From a snapshot, process.argv is [node, ...args]: make it [node, bundle, ...args] for main.
  process.argv.splice(1, 0, file);
  __snap.retrace();
  if (preload) __snap.relimit();
  __snap.run();
});
