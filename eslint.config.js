import js from '@eslint/js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

const ROOT = path.dirname(fileURLToPath(import.meta.url));
const SRC = path.join(ROOT, 'src');

/**
 * The floors of src/ (docs/architecture.md), bottom first. A folder imports its own files and
 * the folders on floors below its own, never one on its floor or above: imports point down.
 */
const FLOORS = [
  ['common'], // small pure helpers, errors; no node:*
  ['api'], // the wire contract: types, routes, schemas; no node:*
  ['os'], // the only code that touches the host
  ['cgroups'], // the cgroup driver: limits (pure), v1/v2 readers and writers; knows no guest
  ['guest'], // the guest's record: config, fstab, interfaces, forwards, store, state, locks, log
  ['runtime'], // drivers: each knows guests only by their record, never core
  ['storage'],
  ['network', 'unify', 'fleet'], // fleet: this host's part of a fleet on etcd; knows no core
  ['core'], // operations over guests; implements api's Engine
  ['daemon', 'client'],
  ['cli'],
];

/** Folders that may import less than every floor below them (a folder, or one file "dir/file"). */
const NARROWER = {
  os: ['common'],
  guest: ['common', 'os', 'cgroups/limits'], // a guest's limits are part of its record
  client: ['common', 'api'],
  cli: ['common', 'api'], // cli reaches the engine only through cli/engine.ts (FILES below)
};

/** Files allowed more than their folder (targets as "dir" or "dir/file", without extension). */
const FILES = {
  'cli/engine.ts': ['os/paths', 'os/trace', 'client', 'core/local-engine'],
  // This process's terminal on a console (jaula console through jaulad).
  'client/remote-engine.ts': ['os/terminal'],
  'cli/main.ts': ['os/trace'],
  'cli/commands/completion.ts': ['network/networks', 'guest/store'],
  'cli/commands/daemon.ts': ['os/paths'],
  'cli/commands/hashify.ts': ['unify/hashify'],
  'cli/commands/lifecycle.ts': ['core/lxcfs', 'core/lifecycle'],
  'cli/commands/monitor.ts': ['core/monitor'],
  'cli/commands/metrics.ts': ['core/monitor'],
};

/** web/ (the dashboard) sees only the API's wire types. */
const WEB_MAY_IMPORT = ['src/api/types'];

const floorOf = new Map(FLOORS.flatMap((folders, i) => folders.map((f) => [f, i])));
const fits = (target, allowed) => allowed.some((a) => target === a || target.startsWith(`${a}/`));

/** Why `from` (a path under src/, e.g. "storage/overlay.ts") may not import `to` ("core/lifecycle"), or undefined. */
function floorProblem(from, to) {
  const [fromDir] = from.split('/');
  const [toDir] = to.split('/');
  if (fromDir === toDir) return undefined;
  if (!floorOf.has(fromDir)) return `src/${fromDir}/ is on no floor: add it to FLOORS in eslint.config.js`;
  if (!floorOf.has(toDir)) return `src/${toDir}/ is on no floor: add it to FLOORS in eslint.config.js`;
  const below = floorOf.get(toDir) < floorOf.get(fromDir);
  const narrow = NARROWER[fromDir];
  if (below && (!narrow || fits(to, narrow))) return undefined;
  if (fits(to, FILES[from] ?? [])) return undefined;
  const may = FLOORS.slice(0, floorOf.get(fromDir)).flat();
  const where =
    floorOf.get(toDir) === floorOf.get(fromDir)
      ? 'is on the same floor as'
      : below
        ? 'may not import'
        : 'sits below';
  return `${fromDir}/ ${where} ${toDir}/: it may import only ${(narrow ?? may).join(', ') || 'nothing'} (the floors: docs/architecture.md)`;
}

const floorsRule = {
  meta: { type: 'problem', schema: [], messages: { up: '{{file}} imports "{{spec}}": {{why}}' } },
  create(context) {
    const file = path.relative(ROOT, context.filename);
    const check = (node, spec) => {
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const target = path
        .relative(ROOT, path.resolve(path.dirname(context.filename), spec))
        .replace(/\.[cm]?[jt]s$/, '');
      let why;
      if (file.startsWith('src/')) {
        if (!target.startsWith('src/')) why = 'src/ imports nothing outside src/';
        else why = floorProblem(file.slice(4), target.slice(4));
      } else if (file.startsWith('web/')) {
        if (!target.startsWith('web/') && !WEB_MAY_IMPORT.includes(target))
          why = `web/ imports only ${WEB_MAY_IMPORT.join(', ')} outside web/`;
      }
      if (why) context.report({ node, messageId: 'up', data: { file, spec, why } });
    };
    return {
      ImportDeclaration: (n) => check(n.source, n.source.value),
      ExportNamedDeclaration: (n) => n.source && check(n.source, n.source.value),
      ExportAllDeclaration: (n) => check(n.source, n.source.value),
      ImportExpression: (n) => n.source.type === 'Literal' && check(n.source, n.source.value),
      TSImportType: (n) => n.argument.type === 'TSLiteralType' && check(n.argument, n.argument.literal.value),
    };
  },
};

/** A comment that lifts a size limit must say why: `eslint-disable... max-lines... -- REASON`. */
const sizeReasonRule = {
  meta: {
    type: 'problem',
    schema: [],
    messages: { why: 'Lifting {{rule}} needs a one-line reason after " -- " (docs/architecture.md, Sizes)' },
  },
  create(context) {
    return {
      Program() {
        for (const c of context.sourceCode.getAllComments()) {
          const m = /^\s*eslint-disable(?:-next-line|-line)?\s+(.*)$/s.exec(c.value);
          if (!m) continue;
          const [rules, reason] = m[1].split(/\s--\s/);
          const sized = rules
            .split(',')
            .map((r) => r.trim())
            .find((r) => /^max-lines(-per-function)?$/.test(r));
          if (sized && !reason?.trim())
            context.report({ loc: c.loc, messageId: 'why', data: { rule: sized } });
        }
      },
    };
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'native/**', 'web/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: false } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['src/**/*.ts', 'web/src/**/*.ts'],
    plugins: { jaula: { rules: { floors: floorsRule, 'size-reason': sizeReasonRule } } },
    rules: { 'jaula/floors': 'error', 'jaula/size-reason': 'error' },
  },
  {
    // Sizes (docs/architecture.md): no file over 400 lines, no function over 80. A unit that truly
    // reads better whole says why on an eslint-disable line with a "-- reason" in the file.
    files: ['src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'max-lines': ['error', { max: 400 }],
      'max-lines-per-function': ['error', { max: 80 }],
    },
  },
  {
    // Plain CommonJS that Node runs as it is (a V8 snapshot's builder takes no ES module).
    files: ['bench/tools/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['src/common/**/*.ts', 'src/api/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['node:*'], message: 'common/ and api/ stay free of node:* imports' }] },
      ],
    },
  },
);
