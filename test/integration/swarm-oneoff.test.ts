/**
 * Migrations before the switch on a swarm: alembic in a one-off task of a new image, started from
 * the api service's own spec, on a real single-node swarm (a private Docker engine reached through
 * a real sshd, images pushed by digest to a registry of the test's own, the fixture's PostgreSQL
 * in the stack's db task). Asserted on the engine (the job services, the task containers) and in
 * the database (alembic_version, the migration's table); nothing secret in any command line sent.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { oneOffAlembic, oneOffHeads } from '../../src/domain/alembic';
import { Environment } from '../../src/domain/environment';
import * as alembic from '../../src/infra/alembic';
import type { Host } from '../../src/infra/host';
import type { SshHost } from '../../src/infra/ssh';
import { freePort } from '../harness/ports';
import { dbService, DEV_DB, HOST_NETWORK, startSwarmHost, swarmDevConfig, swarmHostSkip, until, type SwarmHost } from '../harness/swarm-host';

const OPTIONS = { labels: ['dev'], registry: true, ssh: true, sshTmp: true } as const;
const APP = path.join(__dirname, '..', 'fixtures', 'app');
const SECRET = randomBytes(4).toString('hex');
const DB_PASSWORD = `owner-pw-${SECRET}`;
const TOKEN = `token-${SECRET}`;

/** 0002 makes a table and writes what the task saw: its session's application_name (from PGOPTIONS) and the secret's file. */
const MIGRATION_2 = `from alembic import op
import sqlalchemy as sa
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
def upgrade():
    op.execute("create table gadgets (note text, token text)")
    token = open("/run/secrets/api_token").read().strip()
    op.get_bind().execute(sa.text("insert into gadgets select current_setting('application_name'), :t"), {"t": token})
`;
/** 0003 fails (division by zero), or with SLOW set waits for longer than any test's limit. */
const MIGRATION_3 = `import os
from alembic import op
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
def upgrade():
    op.execute("select pg_sleep(600)" if os.environ.get("SLOW") else "select 1/0")
`;

/** The stack: the fixture's db and api (api on release 1), host network, dev's nodes, a secret for the api. */
function stackFile(o: { db: string; api: string; dbPort: number; secret: string }): string {
  return `services:
${dbService({ image: o.db, port: o.dbPort, password: DB_PASSWORD })}  api:
    image: ${o.api}
    networks: [hostnet]
    command: ["sleep", "infinity"]
    environment: { DB_PORT: "${o.dbPort}", DB_NAME: ${DEV_DB}, DB_PASSWORD: ${DB_PASSWORD}, PGOPTIONS: "-c application_name=from-spec" }
    secrets: [{ source: token, target: api_token }]
    deploy:
      placement: { constraints: [node.labels.twinstack.env.dev == true] }
${HOST_NETWORK}secrets:
  token:
    external: true
    name: ${o.secret}
`;
}

describe('a one-off alembic task of a new image on a single-node swarm', { skip: swarmHostSkip(OPTIONS) }, () => {
  let sw: SwarmHost;
  let stack: string;
  let run: string;
  /** The ssh host, every command line it is sent recorded. */
  let host: Host;
  const sent: string[] = [];
  let dev: Environment;
  let dbPort: number;
  /** The api images by digest: 1 (what the stack runs), 2 (one more migration), 3 (a failing or slow one after it). */
  const api: Record<1 | 2 | 3, string> = { 1: '', 2: '', 3: '' };
  let tmpDir: string;

  /** An image of `from` with one more migration file. */
  const withMigration = (ref: string, from: string, file: string, text: string): string => {
    const ctx = fs.mkdtempSync(path.join(sw.engine.dir, 'ctx-'));
    fs.writeFileSync(path.join(ctx, file), text);
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${from}\nCOPY ${file} /app/migrations/versions/${file}\n`);
    return sw.buildAndPush(ref, [ctx]);
  };

  const psql = (sql: string): string => sw.psql({ service: `${stack}_db`, port: dbPort, database: DEV_DB }, sql);
  /** The swarm's services, by name: the stack's two, and any one-off job left behind. */
  const services = () => sw.engine.docker(['service', 'ls', '--format', '{{.Name}}']).split('\n').filter(Boolean).sort();
  const onlyTheStack = () => assert.deepEqual(services(), [`${stack}_api`, `${stack}_db`]);
  /** The running containers of a one-off job's tasks. */
  const jobContainers = (what: string) => sw.engine.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${stack}_twinstack-${what}`]).trim();
  /** No env file directory left in the SSH user's TMPDIR, and no value of the env in any command line sent. */
  const nothingSecretLeft = (...values: string[]) => {
    assert.deepEqual(fs.readdirSync(tmpDir), []);
    for (const v of [DB_PASSWORD, TOKEN, ...values]) assert.ok(!sent.some((s) => s.includes(v)), `"${v}" was in a command line sent to the host`);
  };

  before(async () => {
    sw = await startSwarmHost(OPTIONS);
    const { engine, registry } = sw as Required<SwarmHost>;
    stack = sw.name('dev');
    run = sw.run;
    const repo = (name: string) => `${registry.address}/${sw.name(name)}`;
    const db = sw.buildAndPush(`${repo('db')}:1`, ['-f', path.join(APP, 'db', 'Dockerfile'), APP]);
    api[1] = sw.buildAndPush(`${repo('api')}:1`, ['-f', path.join(APP, 'api', 'Dockerfile'), APP]);
    api[2] = withMigration(`${repo('api')}:2`, api[1], '0002_gadgets.py', MIGRATION_2);
    api[3] = withMigration(`${repo('api')}:3`, api[2], '0003_broken.py', MIGRATION_3);

    const secret = sw.name('token');
    engine.docker(['secret', 'create', secret, '-'], { input: TOKEN });
    const checkout = path.join(engine.dir, 'checkout');
    fs.mkdirSync(checkout);
    dbPort = await freePort();
    fs.writeFileSync(path.join(checkout, 'stack.yml'), stackFile({ db, api: api[1], dbPort, secret }));
    engine.docker(['stack', 'deploy', '-c', 'stack.yml', stack], { cwd: checkout });
    await until(() => engine.docker(['ps', '--filter', `label=com.docker.swarm.service.name=${stack}_db`, '--format', '{{.Status}}']).includes('(healthy)'), {
      limitMs: 300_000,
    });

    tmpDir = sw.sshTmp!;
    const ssh: SshHost = sw.host!;
    host = Object.create(ssh) as Host;
    host.run = (script, options) => {
      sent.push(script);
      return ssh.run(script, options);
    };
    const config = swarmDevConfig({ dir: engine.dir, registry: registry.address, checkout, project: stack, dbPort });
    dev = new Environment('dev', config);
  });

  after(async () => {
    await sw?.stop();
  });

  it("reads the heads of the new image's code, not the running service's, and removes a job a cut run left", async () => {
    const running = sw.specImage(`${stack}_api`);
    assert.equal(running, api[1]);
    // A cut run's job of the same name, still running: it goes before the new one starts.
    sw.engine.docker(['service', 'create', '--quiet', '--detach', '--mode', 'replicated-job', '--name', `${stack}_twinstack-heads`, api[1], 'sleep', '600']);
    await until(() => jobContainers('heads') !== '', { limitMs: 120_000 });
    const leftover = jobContainers('heads');
    assert.notEqual(leftover, '');
    const heads = await oneOffHeads(host, dev, { name: `${stack}-twinstack-heads`, timeoutSeconds: 300, image: api[2] });
    assert.deepEqual(heads, ['0002']);
    onlyTheStack();
    // The engine would leave a removed job's task running: it was stopped before the new job started.
    assert.equal(jobContainers('heads'), '');
    assert.deepEqual(await oneOffHeads(host, dev, { name: `${stack}-twinstack-heads`, timeoutSeconds: 300, image: api[1] }), ['0001']);
    onlyTheStack();
    nothingSecretLeft();
  });

  it("migrates the stack's database in a one-off task with the service's secret, its variable overridden", async () => {
    assert.equal(psql(`select to_regclass('alembic_version') is null`), 't');
    const override = `-c application_name=twinstack-${run}`;
    const r = await oneOffAlembic(host, dev, alembic.upgradeHead(), {
      env: { PGOPTIONS: override },
      timeoutSeconds: 300,
      label: 'dev alembic upgrade head (new image)',
      name: `${stack}-twinstack-migrate`,
      image: api[2],
    });
    assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /Running upgrade 0001 -> 0002/);
    assert.equal(psql('select version_num from alembic_version'), '0002');
    // The override, not the spec's PGOPTIONS; the secret file the service gets.
    assert.equal(psql("select note || '|' || token from gadgets"), `twinstack-${run}|${TOKEN}`);
    onlyTheStack();
    // The variables went through an env file in a directory of the SSH user's TMPDIR, gone now.
    assert.ok(sent.some((c) => c.includes(`--env-file ${tmpDir}/twinstack-oneoff.`)));
    nothingSecretLeft(override);
  });

  it('returns a failing migration non-zero with its error, the database left at its revision', async () => {
    const r = await oneOffAlembic(host, dev, alembic.upgradeHead(), {
      timeoutSeconds: 300,
      label: 'broken',
      name: `${stack}-twinstack-migrate`,
      image: api[3],
    });
    assert.notEqual(r.exitCode, 0);
    assert.equal(r.timedOut, false);
    assert.match(`${r.stdout}\n${r.stderr}`, /DivisionByZero|division by zero/);
    assert.equal(psql('select version_num from alembic_version'), '0002');
    onlyTheStack();
    nothingSecretLeft();
  });

  it('stops a migration that outlives its time limit: the job is removed and its container ends', async () => {
    const r = await oneOffAlembic(host, dev, alembic.upgradeHead(), {
      env: { SLOW: '1' },
      timeoutSeconds: 20,
      label: 'slow',
      name: `${stack}-twinstack-migrate`,
      image: api[3],
    });
    assert.equal(r.timedOut, true);
    assert.notEqual(r.exitCode, 0);
    onlyTheStack();
    // The task's container was stopped before the job was removed.
    assert.equal(jobContainers('migrate'), '');
    assert.equal(psql('select version_num from alembic_version'), '0002');
    nothingSecretLeft();
  });
});
