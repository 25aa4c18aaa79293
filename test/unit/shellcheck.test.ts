/**
 * Shell that runs on the host lives in .sh files; every shell file of the project passes shellcheck,
 * and so does the shell embedded in YAML: each `run:` of the workflows and of any composite action.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';

const root = path.join(__dirname, '..', '..');
/** Every shell file of the project: host scripts under src/, the build and test scripts, CI's. */
const scripts = ['src', 'scripts', '.ci', 'test']
  .flatMap((d) => fs.readdirSync(path.join(root, d), { recursive: true }).map((f) => path.join(d, String(f))))
  .filter((f) => f.endsWith('.sh') || f === path.join('.ci', 'run'))
  .filter((f) => !f.includes('node_modules'))
  .sort();

function shellcheck(args: string[], input?: string): { status: number | null; output: string } {
  const r = spawnSync('shellcheck', ['--severity=style', ...args], { cwd: root, encoding: 'utf8', input });
  assert.ok(!r.error, `shellcheck is not installed: run bash .ci/install.sh (${r.error?.message})`);
  return { status: r.status, output: r.stdout + r.stderr };
}

describe('shell scripts', () => {
  it('are found (the vault sync is one)', () => {
    assert.ok(scripts.includes(path.join('src', 'resample', 'vault-sync.sh')), scripts.join(', '));
  });
  for (const f of scripts) {
    it(`${f} passes shellcheck`, () => {
      const r = shellcheck(['--shell=bash', f]);
      assert.equal(r.status, 0, r.output);
    });
  }
});

interface Step {
  name?: string;
  run?: string;
  shell?: string;
}
interface Job {
  defaults?: { run?: { shell?: string } };
  steps?: Step[];
}

/** A `run:` block and the shell GitHub runs it with. */
interface EmbeddedScript {
  where: string;
  shell: string;
  script: string;
}

/**
 * Every `run:` of a workflow (`jobs.*.steps`) or a composite action (`runs.steps`). GitHub runs a
 * step without `shell:` on Linux with bash; `${{ }}` expressions are replaced before the shell sees
 * the script, so here they become a plain word of the same length, as actionlint does.
 */
function embeddedScripts(file: string, text: string): EmbeddedScript[] {
  const doc = parse(text) as { defaults?: Job['defaults']; jobs?: Record<string, Job>; runs?: { steps?: Step[] } };
  const groups: Array<[string, Step[], string | undefined]> = [
    ...Object.entries(doc.jobs ?? {}).map(([id, job]): [string, Step[], string | undefined] => [`job ${id}`, job.steps ?? [], job.defaults?.run?.shell]),
    ['runs', doc.runs?.steps ?? [], undefined],
  ];
  return groups.flatMap(([group, steps, jobShell]) =>
    steps
      .map((step, i) => ({ step, i }))
      .filter(({ step }) => typeof step.run === 'string')
      .map(({ step, i }) => ({
        where: `${file} ${group} step ${i + 1}${step.name ? ` (${step.name})` : ''}`,
        shell: step.shell ?? jobShell ?? doc.defaults?.run?.shell ?? 'bash',
        script: (step.run ?? '').replace(/\$\{\{[\s\S]*?\}\}/g, (e) => '_'.repeat(e.length)),
      })),
  );
}

const yamlFiles = [
  ...fs.readdirSync(path.join(root, '.github', 'workflows')).map((f) => path.join('.github', 'workflows', f)),
  ...fs.readdirSync(path.join(root, 'actions')).map((a) => path.join('actions', a, 'action.yml')),
]
  .filter((f) => /\.ya?ml$/.test(f) && fs.existsSync(path.join(root, f)))
  .sort();
const embedded = yamlFiles.flatMap((f) => embeddedScripts(f, fs.readFileSync(path.join(root, f), 'utf8')));

describe('shell embedded in workflows and action.yml files', () => {
  it('is found (the rollback confirmation is one)', () => {
    assert.ok(
      embedded.some((e) => e.where.startsWith(path.join('.github', 'workflows', 'rollback.yml')) && /rollback production/.test(e.script)),
      embedded.map((e) => e.where).join('\n'),
    );
  });
  for (const e of embedded) {
    it(`${e.where} passes shellcheck`, () => {
      // Only sh and bash are shell: a `shell: python` step is not checked here.
      assert.ok(['bash', 'sh'].includes(e.shell.split(/\s/)[0]), `${e.where}: shell ${e.shell} is not checked; use bash or sh`);
      const r = shellcheck([`--shell=${e.shell.split(/\s/)[0]}`, '-'], e.script);
      assert.equal(r.status, 0, `${e.where}:\n${r.output}`);
    });
  }

  it('the check itself catches an unquoted variable in a run block, with expressions set aside', () => {
    const workflow = 'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo "${{ github.sha }}" > $GITHUB_OUTPUT\n';
    const [e] = embeddedScripts('broken.yml', workflow);
    assert.equal(e.script, `echo "${'_'.repeat('${{ github.sha }}'.length)}" > $GITHUB_OUTPUT`);
    const r = shellcheck(['--shell=bash', '-'], e.script);
    assert.notEqual(r.status, 0);
    assert.match(r.output, /SC2086/);
  });
});
