// Shared by snapshot-probe.cjs and snapshot-build.cjs: the text of dist/jaula.cjs turned into a
// function body that defines everything but does not run main. The bundle's last statement
// `void main(process.argv.slice(2)).catch(...).then(code => process.exit(code))` becomes
// `__snap.run = () => void main(...)...` (same chain, run later); every esbuild module
// initialiser (init_X = __esm(...)) is exposed as __snap.inits, and __snap.esm lets the caller
// wrap __esm (the probe records which module's initialiser is running).
'use strict';
const fs = require('node:fs');

const MAIN_CALL = 'void main(process.argv.slice(2))';
const ESM_DEF =
  'var __esm = (fn, res) => function __init() {\n  return fn && (res = (0, fn[__getOwnPropNames(fn)[0]])(fn = 0)), res;\n};';
const BANNER = "const __jaulaUrl = require('node:url').pathToFileURL(__filename).href;";

function snapSource(file) {
  let src = fs.readFileSync(file, 'utf8');
  const must = (what, n) => {
    if (n !== 1) throw new Error(`${file}: expected one ${what}, found ${n}`);
  };
  must('main call', src.split(MAIN_CALL).length - 1);
  must('__esm helper', src.split(ESM_DEF).length - 1);
  must('banner', src.split(BANNER).length - 1);
  const inits = [...src.matchAll(/^var (init_\w+) = __esm\(\{\n {2}"([^"]+)"\(\)/gm)].map((m) => [
    m[1],
    m[2],
  ]);
  src = src.replace(MAIN_CALL, `__snap.run = () => ${MAIN_CALL}`);
  src = src.replace(ESM_DEF, `${ESM_DEF}\nif (__snap.esm) __esm = __snap.esm(__esm, __getOwnPropNames);`);
  // __jaulaUrl from the real path of the bundle, whatever file runs this text.
  src = src.replace(BANNER, "const __jaulaUrl = require('node:url').pathToFileURL(__snap.file).href;");
  src += `\n__snap.inits = { ${inits.map(([i, p]) => `${JSON.stringify(p)}: ${i}`).join(', ')} };\n`;
  // trace.ts reads JAULA_TRACE at module init, which a snapshot would freeze: let the caller redo it.
  src += `__snap.retrace = () => { on = !!process.env["JAULA_TRACE"]; stopFile = on ? process.env["JAULA_TRACE_STOP"] : void 0; };\n`;
  // limits.ts's DEFAULT_TEXT holds the host's memory (os.totalmem()) from module init: a snapshot
  // that preloads it must recompute that (esbuild's names; checked, so a rename fails loudly).
  const mem =
    /^ {6}"memory\.max": (formatLimitBytes\(defaultMemoryLimit\(\(0, import_node_os\d*\.totalmem\)\(\)\)\)),$/m.exec(
      src,
    );
  if (!mem) throw new Error(`${file}: limits.ts DEFAULT_TEXT["memory.max"] not found`);
  src += `__snap.relimit = () => { if (DEFAULT_TEXT) DEFAULT_TEXT["memory.max"] = ${mem[1]}; };\n`;
  return { src, inits };
}

module.exports = { snapSource };
