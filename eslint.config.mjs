// Lint for twinstack's TypeScript: eslint's recommended rules and typescript-eslint's type-aware
// set, so a promise nobody awaits, a promise handed where a callback is expected and a value of
// type `any` flowing into typed code are errors. Formatting is prettier's job, not eslint's.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

// A long function, or one with more than four parameters, is allowed only where a comment says
// why: an eslint-disable comment that turns off max-lines-per-function or max-params (by name, or
// all rules at once) must give its reason after ` -- `.
const twinstack = {
  rules: {
    'long-function-says-why': {
      meta: {
        type: 'problem',
        schema: [],
        messages: { why: 'say why this function may be longer than 80 lines or take more than 4 parameters: `-- <reason>` after the rule name' },
      },
      create(context) {
        return {
          Program() {
            for (const c of context.sourceCode.getAllComments()) {
              const m = /^\s*(eslint-disable(?:-next-line|-line)?|eslint)(?:\s+([^]*?))?(?:\s+--\s+([^]*))?$/.exec(c.value);
              if (!m) continue;
              const rules = (m[2] ?? '').trim();
              const covers = /\bmax-(?:lines-per-function|params)\b/.test(rules) || (m[1] !== 'eslint' && rules === '');
              if (covers && (m[3] ?? '').trim().length < 10) context.report({ loc: c.loc, messageId: 'why' });
            }
          },
        };
      },
    },
  },
};

export default defineConfig(
  { ignores: ['dist/', 'node_modules/', '.sandbox/', 'action-types.d.ts'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // node:test's describe() and it() return promises that the runner itself tracks and awaits;
      // only those calls are exempt, every other promise must be awaited or marked with `void`.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'suite', 'test'] }] },
      ],
    },
  },
  // Every function in src/ is short enough to read at once: a long flow becomes a list of calls to
  // named steps. Past four parameters a function takes an options object, so each call site names
  // what it passes. An exception carries an eslint-disable comment that says why.
  {
    files: ['src/**/*.ts'],
    plugins: { twinstack },
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
      'max-params': ['error', 4],
      'twinstack/long-function-says-why': 'error',
    },
  },
  // The layers, from the top: src/actions → src/resample and src/safety → src/domain → src/config →
  // src/infra. An import never runs upward: infra (ssh, shell, the command builders, the Actions
  // adapter) knows nothing of twinstack; config (the config file's schemas) knows only infra; the
  // domain (environments, releases, locks, backups) knows nothing of the checks, the resample or the
  // actions built on it. The runner that owns the process (signals, exit code) is in src/actions/.
  layer('src/infra/**/*.ts', ['domain', 'config', 'safety', 'resample', 'actions'], 'infra is the lowest layer: it imports nothing of twinstack above it'),
  layer('src/config/**/*.ts', ['domain', 'safety', 'resample', 'actions'], 'the config schemas sit just above infra: they import only infra'),
  layer(
    'src/domain/**/*.ts',
    ['safety', 'resample', 'actions'],
    'the domain sits below the actions, safety and resample: move what it needs down, or the code up',
  ),
  layer(['src/safety/**/*.ts', 'src/resample/**/*.ts'], ['actions'], 'safety and resample sit below the actions: move what they need down'),
);

/** An import rule for one layer: nothing from the folders above it, by any relative path. */
function layer(files, above, message) {
  const group = above.flatMap((dir) => [`**/${dir}/*`, `**/${dir}/**`, `../${dir}`]);
  return {
    files: Array.isArray(files) ? files : [files],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group, message }] }] },
  };
}
