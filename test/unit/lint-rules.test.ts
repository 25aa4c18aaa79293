/**
 * The function-shape rules of eslint.config.mjs for src/: at most four parameters and 80 lines, and
 * an eslint-disable of either says why after ` -- `. Only that block of the config runs here (no
 * type information), so this takes a second.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ESLint, type Linter } from 'eslint';
import tseslint from 'typescript-eslint';

const root = path.resolve(__dirname, '../..');

async function ruleErrors(source: string): Promise<string[]> {
  const config = ((await import(path.join(root, 'eslint.config.mjs'))) as { default: Linter.Config[] }).default;
  const shape = config.filter((c) => c.rules && 'twinstack/long-function-says-why' in c.rules);
  const eslint = new ESLint({
    cwd: root,
    overrideConfigFile: true,
    overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...shape],
  });
  const [result] = await eslint.lintText(source, { filePath: path.join(root, 'src/domain/new-module.ts') });
  // Errors only: an unused disable comment (the one-line function below) is a warning of its own.
  return result.messages.filter((m) => m.severity === 2).map((m) => `${m.ruleId}: ${m.message}`);
}

const FIVE = 'export function five(a: number, b: number, c: number, d: number, e: number): number {\n  return a + b + c + d + e;\n}\n';

describe('the function-shape rules for src/', () => {
  it('refuses a function of five parameters, and allows four', async () => {
    const errors = await ruleErrors(FIVE);
    assert.equal(errors.length, 1);
    assert.match(errors[0], /^max-params: .*too many parameters \(5\)/);
    assert.deepEqual(await ruleErrors('export function four(a: number, b: number, c: number, d: number): number {\n  return a + b + c + d;\n}\n'), []);
  });

  it('refuses turning max-params off without a reason, and allows it with one', async () => {
    const bare = await ruleErrors(`// eslint-disable-next-line max-params\n${FIVE}`);
    assert.equal(bare.length, 1);
    assert.match(bare[0], /^twinstack\/long-function-says-why: .*more than 4 parameters/);
    assert.deepEqual(await ruleErrors(`// eslint-disable-next-line max-params -- the callback's signature is fixed by node:stream\n${FIVE}`), []);
  });

  it('still refuses turning max-lines-per-function off without a reason', async () => {
    const errors = await ruleErrors('// eslint-disable-next-line max-lines-per-function\nexport function one(): number {\n  return 1;\n}\n');
    assert.equal(errors.length, 1);
    assert.match(errors[0], /^twinstack\/long-function-says-why/);
  });
});
