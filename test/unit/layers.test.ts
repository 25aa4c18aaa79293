/**
 * The layer rule of eslint.config.mjs: an import that runs upward is an error in `npm run lint`.
 * Only the config's import rules run here (no type information), so this takes a second.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ESLint, type Linter } from 'eslint';
import tseslint from 'typescript-eslint';

const root = path.resolve(__dirname, '../..');

async function importErrors(file: string, source: string): Promise<string[]> {
  const config = ((await import(path.join(root, 'eslint.config.mjs'))) as { default: Linter.Config[] }).default;
  const layers = config.filter((c) => c.rules && 'no-restricted-imports' in c.rules);
  const eslint = new ESLint({
    cwd: root,
    overrideConfigFile: true,
    overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...layers],
  });
  const [result] = await eslint.lintText(source, { filePath: path.join(root, file) });
  return result.messages.map((m) => m.message);
}

describe('the layer rule', () => {
  it('refuses a domain module that imports from safety, resample or an action', async () => {
    for (const from of ['../safety/preflight', '../resample/plan', '../actions/runner']) {
      const errors = await importErrors('src/domain/new-module.ts', `import { x } from '${from}';\nexport const y = x;\n`);
      assert.equal(errors.length, 1, from);
      assert.match(errors[0], /the domain sits below the actions, safety and resample/);
    }
  });

  it('refuses infra importing anything of twinstack above it, and config importing the domain', async () => {
    assert.match((await importErrors('src/infra/new-tool.ts', "import type { Config } from '../domain/config';\n"))[0], /infra is the lowest layer/);
    assert.match((await importErrors('src/infra/new-tool.ts', "import { sampleSchema } from '../config/sample';\n"))[0], /infra is the lowest layer/);
    assert.match((await importErrors('src/config/new-section.ts', "import { scalarText } from '../domain/env-file';\n"))[0], /import only infra/);
  });

  it('refuses safety or resample importing an action', async () => {
    assert.match((await importErrors('src/safety/new-check.ts', "import { failureLine } from '../actions/runner';\n"))[0], /sit below the actions/);
    assert.match((await importErrors('src/resample/new-step.ts', "import { runAction } from '../actions/runner';\n"))[0], /sit below the actions/);
  });

  it('lets each layer import what lies below it', async () => {
    assert.deepEqual(
      await importErrors('src/domain/new-module.ts', "import { parseBytes } from '../infra/units';\nimport { sampleSchema } from '../config/sample';\n"),
      [],
    );
    assert.deepEqual(await importErrors('src/safety/new-check.ts', "import { loadConfig } from '../domain/config';\n"), []);
    assert.deepEqual(await importErrors('src/actions/new/new.ts', "import { preflight } from '../../safety/preflight';\n"), []);
  });
});
