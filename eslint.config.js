import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Layers: imports point down (cli -> core -> runtime/storage/network/cgroups -> os -> common). */
const layerRule = (patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

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
  { files: ['src/common/**/*.ts', 'src/api/**/*.ts'], ignores: ['**/*.test.ts'], rules: layerRule([{ group: ['node:*'], message: 'common/ and api/ stay free of node:* imports' }, { group: ['../*/**', '!../common/**', '!../api/**'], message: 'common/ imports nothing above it' }]) },
  { files: ['src/os/**/*.ts'], rules: layerRule([{ group: ['../core/**', '../cli/**', '../daemon/**', '../runtime/**', '../storage/**', '../network/**'], message: 'os/ is the bottom layer' }]) },
  { files: ['src/core/**/*.ts', 'src/runtime/**/*.ts', 'src/storage/**/*.ts', 'src/network/**/*.ts', 'src/cgroups/**/*.ts', 'src/unify/**/*.ts'], rules: layerRule([{ group: ['../cli/**', '../../cli/**', '../daemon/**', '../../daemon/**'], message: 'core never imports cli or daemon' }]) },
);
