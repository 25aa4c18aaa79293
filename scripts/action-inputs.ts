/**
 * Writes the connection inputs (src/actions/connection-inputs.ts) into every
 * actions/<name>/action.yml, between two marker comments at the top of `inputs:`. Everything else
 * in the file (the action's own inputs, their order, comments) is left as written: the file is
 * edited as text, never re-dumped. `--check` changes nothing and fails, one line per stale file,
 * naming the file and the input that differs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CONNECTION_INPUTS, type InputSpec } from '../src/actions/connection-inputs';

const root = path.resolve(__dirname, '..');
export const SOURCE = 'src/actions/connection-inputs.ts';
const BEGIN = `  # twinstack: connection inputs, generated from ${SOURCE} by scripts/action-inputs.ts; edit that file`;
const END = '  # twinstack: end of connection inputs';
const FIX = 'run npx tsx scripts/action-inputs.ts';

/** A YAML scalar as the action.yml files write them: single-quoted, or double-quoted when it holds a quote. */
function quoted(text: string): string {
  if (!text.includes("'")) return `'${text}'`;
  if (/["\\]/.test(text)) throw new Error(`${SOURCE}: ${JSON.stringify(text)} holds both kinds of quote`);
  return `"${text}"`;
}

function inputLines(name: string, spec: InputSpec): string[] {
  const lines = [`  ${name}:`, `    description: ${quoted(spec.description)}`, `    required: ${spec.required}`];
  if (spec.default !== undefined) lines.push(`    default: ${quoted(spec.default)}`);
  return lines;
}

const expected: Map<string, string[]> = new Map(Object.entries(CONNECTION_INPUTS).map(([name, spec]) => [name, inputLines(name, spec)]));

/** The generated block, markers included. */
export function block(): string[] {
  return [BEGIN, ...[...expected.values()].flat(), END];
}

/** Where the input whose key line is at `start` ends: at the next line indented two spaces or less. */
function inputEnd(lines: string[], start: number): number {
  let i = start + 1;
  while (i < lines.length && (lines[i].trim() === '' || /^ {3,}/.test(lines[i]))) i++;
  return i;
}

function markers(lines: string[]): { begin: number; end: number } | undefined {
  const begin = lines.indexOf(BEGIN);
  const end = lines.indexOf(END);
  return begin >= 0 && end > begin ? { begin, end } : undefined;
}

/**
 * The action.yml text with a fresh block. A file without markers (a new action, or a copy written
 * by hand) loses its own copies of the connection inputs and gets the block first under `inputs:`.
 */
export function render(text: string, file: string): string {
  let lines = text.split('\n');
  const found = markers(lines);
  if (found) return [...lines.slice(0, found.begin), ...block(), ...lines.slice(found.end + 1)].join('\n');
  const at = lines.indexOf('inputs:');
  if (at < 0) throw new Error(`${file}: no top-level inputs: to write the connection inputs into`);
  for (let i = at + 1; i < lines.length && (lines[i] === '' || lines[i].startsWith(' '));) {
    const key = /^ {2}([A-Za-z0-9_-]+):\s*$/.exec(lines[i])?.[1];
    const end = inputEnd(lines, i);
    if (key && expected.has(key)) lines = [...lines.slice(0, i), ...lines.slice(end)];
    else i = end > i ? end : i + 1;
  }
  return [...lines.slice(0, at + 1), ...block(), ...lines.slice(at + 1)].join('\n');
}

/** One line naming the file and the first input whose copy differs from the source, or undefined when fresh. */
export function staleness(text: string, file: string): string | undefined {
  const lines = text.split('\n');
  const found = markers(lines);
  if (!found) return `${file}: no generated connection inputs (marker comments missing); ${FIX}`;
  const actual = new Map<string, string[]>();
  for (let i = found.begin + 1; i < found.end;) {
    const key = /^ {2}([A-Za-z0-9_-]+):/.exec(lines[i])?.[1] ?? `line ${i + 1}`;
    const end = Math.min(inputEnd(lines, i), found.end);
    actual.set(key, lines.slice(i, end));
    i = end;
  }
  for (const [name, want] of expected) {
    const have = actual.get(name);
    if (!have) return `${file}: connection input ${name} is missing; ${FIX}`;
    if (have.join('\n') !== want.join('\n')) return `${file}: connection input ${name} differs from ${SOURCE}; ${FIX}`;
  }
  for (const name of actual.keys()) if (!expected.has(name)) return `${file}: input ${name} is inside the generated block but not in ${SOURCE}; ${FIX}`;
  if (text !== render(text, file)) return `${file}: the connection inputs are out of order; ${FIX}`;
  return undefined;
}

function actionFiles(): string[] {
  return fs
    .readdirSync(path.join(root, 'actions'))
    .map((name) => path.join('actions', name, 'action.yml'))
    .filter((rel) => fs.existsSync(path.join(root, rel)))
    .sort();
}

if (require.main === module) {
  let stale = 0;
  for (const rel of actionFiles()) {
    const text = fs.readFileSync(path.join(root, rel), 'utf8');
    if (process.argv.includes('--check')) {
      const problem = staleness(text, rel);
      if (problem) console.error(problem);
      if (problem) stale++;
    } else {
      const fresh = render(text, rel);
      if (fresh !== text) fs.writeFileSync(path.join(root, rel), fresh);
    }
  }
  if (stale) process.exit(1);
}
