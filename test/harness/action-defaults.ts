/**
 * Input defaults are written once, in actions/<name>/action.yml, and the runner passes them for an
 * input a workflow leaves out. Tests and the sandbox run an action without the runner, so they hand
 * it the same: the inputs given, over action.yml's defaults.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';

const ROOT = path.resolve(__dirname, '../..');
const cache = new Map<string, Record<string, string>>();

/** The defaults actions/<name>/action.yml gives its inputs; none for a name that is not an action. */
export function actionDefaults(name: string): Record<string, string> {
  let defaults = cache.get(name);
  if (!defaults) {
    const file = path.join(ROOT, 'actions', name, 'action.yml');
    const doc = fs.existsSync(file) ? (parseYaml(fs.readFileSync(file, 'utf8')) as { inputs?: Record<string, { default?: string | number | boolean }> }) : {};
    defaults = {};
    for (const [input, spec] of Object.entries(doc.inputs ?? {})) if (spec?.default !== undefined) defaults[input] = String(spec.default);
    cache.set(name, defaults);
  }
  return defaults;
}

/** The inputs as the runner hands them to action `name`: those given, and action.yml's default for each left out. */
export function withDefaults(name: string, inputs: Record<string, string>): Record<string, string> {
  return { ...actionDefaults(name), ...inputs };
}
