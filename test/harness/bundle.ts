/** Runs a bundled action (dist/<name>/index.js) the way the runner does: inputs as INPUT_* variables. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withDefaults } from './action-defaults';

export const ROOT = path.resolve(__dirname, '../..');

export interface BundleRun {
  code: number | null;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  summary: string;
  /** The stdout lines a person would see (the runner hides ::add-mask:: commands). */
  visible: string;
  /**
   * Why the run ended as it did, verdict first, for an assertion's message: the exit code, the
   * error annotations, the job summary and the last lines of output without debug lines. A failed
   * test's report may be cut after a few thousand characters, so the cause must come before the log.
   */
  why: string;
}

const WHY_TAIL_LINES = 40;

function explain(code: number | null, visible: string, stderr: string, summary: string): string {
  const lines = visible.split('\n');
  const errors = lines.filter((l) => l.startsWith('::error') || l.startsWith('::warning'));
  const tail = lines.filter((l) => !l.startsWith('::debug::')).slice(-WHY_TAIL_LINES);
  return [
    `exit code ${code}`,
    ...errors,
    summary.trim() ? `job summary:\n${summary.trim()}` : 'no job summary',
    stderr.trim() ? `stderr (last 2000 characters):\n${stderr.slice(-2000)}` : '',
    `the last ${WHY_TAIL_LINES} lines of output, debug lines left out:\n${tail.join('\n')}`,
  ]
    .filter(Boolean)
    .join('\n');
}

function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<]+)<<(.+)$/.exec(lines[i]);
    if (!m) continue;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== m[2]; i++) body.push(lines[i]);
    out[m[1]] = body.join('\n');
  }
  return out;
}

export interface RunningBundle {
  pid: number;
  kill(signal?: NodeJS.Signals): void;
  done: Promise<BundleRun>;
}

/** Starts a bundle; `done` resolves when it exits. */
export function startBundle(
  name: string,
  inputs: Record<string, string>,
  opts: { workspace?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): RunningBundle {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `twinstack-run-${name}-`));
  const outputFile = path.join(dir, 'output');
  const summaryFile = path.join(dir, 'summary');
  fs.writeFileSync(outputFile, '');
  fs.writeFileSync(summaryFile, '');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: summaryFile,
    GITHUB_WORKSPACE: opts.workspace ?? dir,
    GITHUB_REPOSITORY: 'makapix/makapix',
    GITHUB_RUN_ID: String(4242 + Math.floor(Math.random() * 1e6)),
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_ACTOR: 'octocat',
    GITHUB_SHA: '0'.repeat(40),
    ...opts.env,
  };
  for (const [k, v] of Object.entries(withDefaults(name, inputs))) env[`INPUT_${k.toUpperCase()}`] = v;
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', name, 'index.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 900_000);
  const done = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c))).then((code) => {
    clearTimeout(timer);
    const summary = fs.readFileSync(summaryFile, 'utf8');
    const visible = stdout
      .split('\n')
      .filter((l) => !l.startsWith('::add-mask::'))
      .join('\n');
    const result: BundleRun = {
      code,
      stdout,
      stderr,
      outputs: parseOutputs(fs.readFileSync(outputFile, 'utf8')),
      summary,
      visible,
      why: explain(code, visible, stderr, summary),
    };
    fs.rmSync(dir, { recursive: true, force: true });
    return result;
  });
  return { pid: child.pid ?? 0, kill: (signal = 'SIGKILL') => child.kill(signal), done };
}

export async function runBundle(
  name: string,
  inputs: Record<string, string>,
  opts: { workspace?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<BundleRun> {
  return startBundle(name, inputs, opts).done;
}

export function bundleNames(): string[] {
  return fs
    .readdirSync(path.join(ROOT, 'actions'))
    .filter((n) => fs.existsSync(path.join(ROOT, 'actions', n, 'action.yml')))
    .sort();
}
