/**
 * `npm run sandbox`: twinstack doing its whole job on this machine. It brings up a local host (an
 * sshd on 127.0.0.1 with fresh keys, pinned exactly as on a VPS; this machine's Docker engine; the
 * fixture app's prod and dev stacks; a generated production dataset and vault), then runs the
 * workflows' steps in order through the bundled actions, with the inputs GitHub would give them,
 * and prints each job summary as terminal text. It ends with where each environment stands.
 *
 * Everything it builds is kept in .sandbox/ (git-ignored) and the stacks are left running, so a
 * second run reuses them and is fast. `npm run sandbox -- --down` removes the stacks and .sandbox/.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { ROOT, runBundle, type BundleRun } from '../test/harness/bundle';
import { sshdAvailable, startSshd, type TestSshd } from '../test/harness/sshd';
import { SAMPLE_CONFIG, SCHEMA_SQL, dataSql } from '../test/fixtures/sample-schema/generate';

const WORK = path.join(ROOT, '.sandbox');
const BASE_IMAGE = 'twinstack-fixture-base:latest';
/** The sandbox's own names and ports, apart from the end-to-end suites' slots 0–8. */
const SLOT = 9;
const PORTS = { prod: { db: 25410 + 20 * SLOT, api: 18410 + 20 * SLOT }, dev: { db: 25420 + 20 * SLOT, api: 18420 + 20 * SLOT } } as const;
const PROJECTS = { prod: 'twinstack-sandbox-prod', dev: 'twinstack-sandbox-dev' } as const;
const DATABASES = { prod: 'makapix', dev: 'makapix_dev' } as const;
const USERS = 400;
type Env = 'prod' | 'dev';

const tty = process.stdout.isTTY;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);

class Stop extends Error {}

/** A problem the person running the sandbox can fix: said in one line, with the command to run. */
function stop(message: string): never {
  throw new Stop(message);
}

function sh(command: string, opts: { cwd?: string; input?: string; env?: Record<string, string> } = {}): string {
  return execFileSync('bash', ['-c', command], {
    cwd: opts.cwd,
    input: opts.input,
    encoding: 'utf8',
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
}

function succeeds(command: string): boolean {
  try {
    sh(command);
    return true;
  } catch {
    return false;
  }
}

/** Everything the sandbox needs from this machine, each missing piece with what to run. */
function checkMachine(): string {
  const missing = sshdAvailable();
  if (missing) stop(`${missing}`);
  if (!succeeds('command -v docker'))
    stop('Docker is not installed: run `bash .ci/install.sh` as root (it installs docker.io, docker-compose and openssh-server)');
  if (!succeeds('docker info')) stop('the Docker engine is not running: start it with `bash .ci/start-docker.sh` (as root)');
  const compose = succeeds('docker compose version') ? 'docker compose' : succeeds('docker-compose version') ? 'docker-compose' : '';
  if (!compose) stop('neither the docker compose plugin nor docker-compose is installed: run `bash .ci/install.sh` as root');
  if (!succeeds(`docker image inspect ${BASE_IMAGE}`))
    stop(`the fixture base image ${BASE_IMAGE} is missing: build it with \`bash test/e2e/support/base-image.sh\` (as root, about 2 minutes)`);
  for (const name of ['preflight', 'deploy', 'gate', 'promote', 'monitor', 'rollback', 'status']) {
    if (!fs.existsSync(path.join(ROOT, 'dist', name, 'index.js'))) stop(`the bundle dist/${name}/index.js is missing: run \`npm run bundle\``);
  }
  return compose;
}

const checkout = (env: Env) => path.join(WORK, env === 'prod' ? 'makapix' : 'makapix-dev');
const vault = (env: Env) => path.join(WORK, `vault-${env}`);

/** The fixture app's origin, its two checkouts, env files, vaults and the twinstack config; kept between runs. */
function prepareHost(compose: string): Record<string, string> {
  fs.mkdirSync(WORK, { recursive: true });
  const origin = path.join(WORK, 'origin.git');
  if (!fs.existsSync(origin)) {
    console.log(dim('sandbox: creating the fixture app repository (.sandbox/origin.git)'));
    sh(`bash ${JSON.stringify(path.join(ROOT, 'test/e2e/support/make-fixture-repo.sh'))} ${JSON.stringify(WORK)}`);
  }
  const branches: Record<string, string> = {};
  for (const line of sh(`git -C ${JSON.stringify(origin)} for-each-ref --format='%(refname:short) %(objectname)' refs/heads`)
    .trim()
    .split('\n')) {
    const [b, s] = line.split(' ');
    branches[b] = s;
  }
  for (const env of ['prod', 'dev'] as const) {
    if (!fs.existsSync(checkout(env))) sh(`git clone -q ${JSON.stringify(origin)} ${JSON.stringify(checkout(env))}`);
    fs.mkdirSync(vault(env), { recursive: true });
    const example = fs.readFileSync(path.join(checkout(env), 'deploy/stack', `env.${env}.example`), 'utf8');
    const text = example
      .replace(/^VAULT_HOST_PATH=.*$/m, `VAULT_HOST_PATH=${vault(env)}`)
      .replace(/^COMPOSE_PROJECT_NAME=.*$/m, `COMPOSE_PROJECT_NAME=${PROJECTS[env]}`)
      .replace(/^DB_PORT=.*$/m, `DB_PORT=${PORTS[env].db}`)
      .replace(/^API_PORT=.*$/m, `API_PORT=${PORTS[env].api}`);
    const file = path.join(checkout(env), 'deploy/stack', `.env.${env}`);
    // Rewritten only when it changes: a new env file would recreate every container.
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) fs.writeFileSync(file, text, { mode: 0o600 });
  }
  const environment = (env: Env) => ({
    checkout: checkout(env),
    project: PROJECTS[env],
    'compose-files': ['deploy/stack/docker-compose.yml', `deploy/stack/docker-compose.${env}.yml`],
    'env-file': `deploy/stack/.env.${env}`,
    url: `http://127.0.0.1:${PORTS[env].api}`,
    'health-path': '/api/health',
    'api-service': 'api',
    'health-timeout-seconds': 120,
    database: { service: 'db', name: DATABASES[env], user: 'owner', port: PORTS[env].db, 'container-port': PORTS[env].db },
    vault: vault(env),
  });
  const config = {
    'compose-command': compose,
    'state-dir': path.join(WORK, 'state'),
    'keep-releases': 3,
    // The sandbox installs prod before twinstack's first promotion, as a first install does.
    deploy: { 'allow-prod': true },
    backup: { dir: path.join(WORK, 'backups'), keep: 3 },
    // The fixture app runs every container with host networking.
    preflight: { 'dev-host-network': true },
    // The fixture's next release lives on its own branch (second), not merged into main; the app reads DB_NAME.
    promote: { branch: 'second', 'database-env': 'DB_NAME' },
    environments: { prod: environment('prod'), dev: environment('dev') },
    // The generated dataset's sample plan; the app's own tables come whole.
    sample: {
      ...SAMPLE_CONFIG,
      seed: 'sandbox',
      'reference-tables': [...SAMPLE_CONFIG['reference-tables'], 'site_settings', 'items'],
      columns: { ...SAMPLE_CONFIG.columns, 'site_settings.value': 'keep', 'items.name': 'keep' },
    },
  };
  fs.mkdirSync(path.join(WORK, 'workspace', '.github'), { recursive: true });
  fs.writeFileSync(path.join(WORK, 'workspace', '.github', 'twinstack.yml'), `# Written by npm run sandbox.\n${stringify(config)}`);
  return branches;
}

function psql(env: Env, sql: string): string {
  return sh(`docker exec -i ${PROJECTS[env]}-db psql -X -q -A -t -v ON_ERROR_STOP=1 -p ${PORTS[env].db} -U owner -d ${DATABASES[env]} -f -`, { input: sql });
}

/** Production's data: the Makapix-shaped schema beside the app's own tables, and a vault file per artwork. */
function loadDataset(): void {
  const marker = path.join(WORK, 'dataset-loaded');
  if (fs.existsSync(marker)) return;
  console.log(dim(`sandbox: generating the production dataset (${USERS} users) and its vault`));
  // The app's migrations own alembic_version; the generated schema's copy of it is left out.
  const schema = SCHEMA_SQL.replace(/CREATE TABLE alembic_version \([^;]*\);/, '');
  const data = dataSql(USERS).replace(/INSERT INTO alembic_version[^;]*;/, '');
  psql('prod', `SET client_min_messages = warning;\n${schema}\n${data}`);
  const paths = psql('prod', "SELECT storage_shard || '/' || storage_key || '.' || format FROM posts").trim().split('\n');
  for (const p of paths) {
    const file = path.join(vault('prod'), p);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `pixel art ${p}\n`);
  }
  fs.writeFileSync(marker, `${new Date().toISOString()}\n`);
}

/** Job summary Markdown as terminal text: headings underlined, tables aligned, markup removed. */
function markdownToText(markdown: string): string {
  const inline = (s: string) =>
    s
      .replace(/\*\*(.+?)\*\*/g, (_m, t: string) => bold(t))
      .replace(/`([^`]+)`/g, '$1')
      .replace(/<br>/g, ' / ')
      .replace(/<\/?(details|summary)>/g, '');
  const out: string[] = [];
  const lines = markdown.replace(/<details><summary>(.*?)<\/summary>/g, '$1:').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('|')) {
      const rows: string[][] = [];
      for (; i < lines.length && lines[i].startsWith('|'); i++) {
        if (/^\|( ?:?-+:? ?\|)+$/.test(lines[i])) continue;
        rows.push(
          lines[i]
            .slice(1, -1)
            .split(/(?<!\\)\|/)
            .map((c) => inline(c.trim().replace(/\\\|/g, '|'))),
        );
      }
      i--;
      const widths = rows[0].map((_c, k) => Math.max(...rows.map((r) => width(r[k] ?? ''))));
      rows.forEach((r, n) => {
        out.push(
          '  ' +
            r
              .map((c, k) => c + ' '.repeat(widths[k] - width(c)))
              .join('  ')
              .trimEnd(),
        );
        if (n === 0) out.push('  ' + widths.map((w) => '─'.repeat(w)).join('  '));
      });
      continue;
    }
    const heading = /^(#+) (.*)$/.exec(line);
    if (heading) {
      const text = inline(heading[2]);
      out.push(heading[1].length <= 2 ? `${bold(text)}\n${'═'.repeat(width(text))}` : `${bold(text)}`);
      continue;
    }
    if (line.startsWith('```')) {
      const chart = line.startsWith('```mermaid');
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) if (!chart) out.push(`    ${lines[i]}`);
      if (chart) out.push(dim('  (a chart: GitHub draws it in the job summary)'));
      continue;
    }
    if (line.trim() === '</details>') continue;
    out.push(inline(line));
  }
  return out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();

  /** The printed width: ANSI colour codes (ESC [ n m) take no column. */
  function width(s: string): number {
    // eslint-disable-next-line no-control-regex -- ESC is the character these codes begin with
    return s.replace(/\x1b\[\d+m/g, '').length;
  }
}

interface Step {
  workflow: string;
  name: string;
  action: string;
  inputs?: Record<string, string>;
  /** Outcomes that are part of the story (a refusal the sandbox shows on purpose). */
  expectFailure?: boolean;
}

interface Outcome {
  step: Step;
  run: BundleRun;
  seconds: number;
}

async function runStep(sshd: TestSshd, step: Step, env: Record<string, string>): Promise<Outcome> {
  const connection = {
    host: '127.0.0.1',
    port: String(sshd.port),
    user: sshd.user,
    'ssh-key': sshd.privateKey,
    'known-hosts': sshd.knownHosts,
    config: '.github/twinstack.yml',
  };
  console.log(
    `\n${bold(`▶ ${step.workflow} › ${step.name}`)}  ${dim(
      `(actions/${step.action}${
        step.inputs && Object.keys(step.inputs).length
          ? `, with ${Object.entries(step.inputs)
              .map(([k, v]) => `${k}: ${v || "''"}`)
              .join(', ')}`
          : ''
      })`,
    )}`,
  );
  const started = Date.now();
  const run = await runBundle(step.action, { ...connection, ...step.inputs }, { workspace: path.join(WORK, 'workspace'), env });
  const seconds = (Date.now() - started) / 1000;
  if (run.summary.trim()) console.log(`\n${markdownToText(run.summary)}`);
  const errors = run.stdout.split('\n').filter((l) => l.startsWith('::error'));
  const mark = run.code === 0 ? '✓' : '✗';
  console.log(`\n${mark} ${step.name}: ${run.code === 0 ? 'succeeded' : 'failed'} in ${seconds.toFixed(1)}s`);
  for (const e of errors) console.log(`  ${e.replace(/^::error[^:]*::/, 'error: ').replace(/%0A/g, ' ')}`);
  return { step, run, seconds };
}

function githubEnv(workflow: string, sha: string): Record<string, string> {
  return {
    GITHUB_WORKFLOW: workflow,
    GITHUB_SHA: sha,
    GITHUB_REF: 'refs/heads/main',
    GITHUB_EVENT_NAME: workflow === 'twinstack deploy dev' ? 'push' : 'workflow_dispatch',
  };
}

function removeProject(project: string): void {
  sh(
    `ids=$(docker ps -aq --filter label=com.docker.compose.project=${project}); [ -z "$ids" ] || docker rm -f $ids >/dev/null;` +
      ` vols=$(docker volume ls -q --filter name=${project}_); [ -z "$vols" ] || docker volume rm -f $vols >/dev/null;` +
      ` tags=$(docker images --format '{{.Repository}}:{{.Tag}}' 'twinstack/${project}-*'); [ -z "$tags" ] || docker rmi $tags >/dev/null 2>&1;` +
      ` imgs=$(docker images --format '{{.Repository}}:{{.Tag}}' '${project}-*'); [ -z "$imgs" ] || docker rmi $imgs >/dev/null 2>&1; true`,
  );
}

async function main(): Promise<number> {
  if (process.argv.includes('--down')) {
    if (succeeds('docker info')) for (const p of Object.values(PROJECTS)) removeProject(p);
    fs.rmSync(WORK, { recursive: true, force: true });
    console.log('sandbox: stacks, volumes, release images and .sandbox/ removed');
    return 0;
  }
  const began = Date.now();
  const compose = checkMachine();
  const branches = prepareHost(compose);
  const sshd = await startSshd();
  console.log(
    dim(
      `sandbox: the host is sshd on 127.0.0.1:${sshd.port} (host keys pinned through known-hosts), Docker ${sh("docker version --format '{{.Server.Version}}'").trim()}, ${compose}`,
    ),
  );
  const outcomes: Outcome[] = [];
  try {
    // Production as it stands before twinstack takes over: main deployed and migrated, with its data.
    const prodLog = path.join(WORK, 'state', 'prod', 'log.jsonl');
    if (!fs.existsSync(prodLog) || !fs.readFileSync(prodLog, 'utf8').includes('"event":"release"')) {
      const o = await runStep(
        sshd,
        { workflow: 'setup', name: 'Production before twinstack: main deployed', action: 'deploy', inputs: { environment: 'prod', ref: branches.main } },
        githubEnv('setup', branches.main),
      );
      if (o.run.code !== 0) stop('the first deploy of prod failed; see its summary above');
      sh(`docker exec ${PROJECTS.prod}-api alembic upgrade head`);
    }
    loadDataset();

    const sha = branches.second;
    const jobs: Array<{ workflow: string; steps: Step[] }> = [
      {
        workflow: 'twinstack deploy dev',
        steps: [
          { workflow: 'deploy-dev.yml', name: 'Preflight (isolation between prod and dev)', action: 'preflight' },
          { workflow: 'deploy-dev.yml', name: 'Deploy to dev', action: 'deploy', inputs: { environment: 'dev', ref: sha } },
          { workflow: 'deploy-dev.yml', name: 'Gate (alembic, pytest)', action: 'gate', inputs: { sha } },
        ],
      },
      {
        workflow: 'twinstack resample',
        steps: fs.existsSync(path.join(ROOT, 'dist', 'resample', 'index.js'))
          ? [
              {
                workflow: 'nightly resample',
                name: 'Resample production into dev',
                action: 'resample',
                // The masking key's secret, as TWINSTACK_MASK_KEY passes it in the app repository: fresh for each sandbox.
                inputs: { 'dry-run': 'false', 'dev-password': 'sandbox-dev-password', 'mask-key': randomBytes(32).toString('hex') },
              },
              { workflow: 'nightly resample', name: 'Vault sync', action: 'vault-sync', inputs: { 'dry-run': 'false' } },
            ]
          : [],
      },
      {
        workflow: 'twinstack flip the switch',
        steps: [
          { workflow: 'flip-the-switch.yml', name: 'Preflight (isolation between prod and dev)', action: 'preflight' },
          { workflow: 'flip-the-switch.yml', name: "Promote dev's commit to prod", action: 'promote', inputs: { 'require-gate': 'true' } },
        ],
      },
      { workflow: 'twinstack monitor', steps: [{ workflow: 'monitor.yml', name: 'Measure prod and dev', action: 'monitor' }] },
      {
        workflow: 'twinstack rollback',
        steps: [
          {
            workflow: 'rollback.yml',
            name: 'Roll prod back',
            action: 'rollback',
            inputs: { environment: 'prod', 'release-id': '', 'restore-database': 'false', 'backup-id': '' },
          },
        ],
      },
    ];
    if (!jobs[1].steps.length) console.log(`\n${bold('▶ nightly resample')}: skipped: dist/resample/index.js is not built (run \`npm run bundle\`)`);
    for (const job of jobs) {
      for (const step of job.steps) {
        const o = await runStep(sshd, step, githubEnv(job.workflow, sha));
        outcomes.push(o);
        // As on GitHub, a failed step ends its job; the next workflow runs on its own.
        if (o.run.code !== 0) {
          const rest = job.steps.slice(job.steps.indexOf(step) + 1);
          if (rest.length) console.log(dim(`  (${job.workflow}: ${rest.map((s) => s.name).join(', ')} skipped, as GitHub skips the rest of a failed job)`));
          break;
        }
      }
    }

    console.log(`\n${bold('▶ Where each environment stands')}`);
    const status = await runBundle(
      'status',
      { host: '127.0.0.1', port: String(sshd.port), user: sshd.user, 'ssh-key': sshd.privateKey, 'known-hosts': sshd.knownHosts },
      { workspace: path.join(WORK, 'workspace') },
    );
    console.log(`\n${markdownToText(status.summary)}`);
  } finally {
    await sshd.stop();
  }
  const failed = outcomes.filter((o) => o.run.code !== 0 && !o.step.expectFailure);
  console.log(`\n${bold('Summary')}`);
  for (const o of outcomes) console.log(`  ${o.run.code === 0 ? '✓' : '✗'} ${o.step.workflow} › ${o.step.name} (${o.seconds.toFixed(1)}s)`);
  console.log(
    `\nprod: http://127.0.0.1:${PORTS.prod.api}/api/health   dev: http://127.0.0.1:${PORTS.dev.api}/api/health   (the stacks keep running; \`npm run sandbox -- --down\` removes them)`,
  );
  console.log(`sandbox: ${outcomes.length - failed.length} of ${outcomes.length} steps succeeded in ${((Date.now() - began) / 1000).toFixed(0)}s`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof Stop) console.error(`sandbox: ${e.message}`);
    else console.error(`sandbox: ${e instanceof Error ? e.message.split('\n').slice(0, 5).join('\n') : String(e)}`);
    process.exit(1);
  },
);
