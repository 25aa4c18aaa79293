/**
 * Resample and vault-sync, end to end: the bundled actions reach the fixture host through SSH and
 * drive the real db containers (psql and pg_dump inside them), dev's compose services, dev's
 * alembic and its health checks. Production holds a Makapix-shaped dataset and a vault of files.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type { ResampleReport } from '../../src/resample/engine';
import { isSampled } from '../../src/resample/plan';
import { SAMPLE_CONFIG, SCHEMA_SQL, dataSql } from '../fixtures/sample-schema/generate';
import { composeCommands, startFixtureHost, type FixtureHost, lastError } from './support/fixture-host';

/** Users in the production dataset (3 posts, 8 comments, 20 view events each). */
const USERS = 300;
const PASSWORD = 'every-dev-user-signs-in-with-this';
const composeCommand = composeCommands()[0];

/** The users the hash picks, computed apart from the engine's SQL: not banned (id % 17) and below the threshold, or included (5). */
function expectedUsers(seed: string, fraction: number): number[] {
  const ids: number[] = [];
  for (let id = 1; id <= USERS; id++) if ((id % 17 !== 0 && isSampled(seed, fraction, String(id))) || id === 5) ids.push(id);
  return ids;
}

/** Every file under a directory, as paths relative to it. */
function files(root: string, rel = ''): string[] {
  const dir = path.join(root, rel);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? files(root, path.join(rel, e.name)) : [path.join(rel, e.name)]))
    .sort();
}

describe(`resample and vault-sync with ${composeCommand}`, () => {
  let fx: FixtureHost;
  let prodVault: string;
  let devVault: string;

  const db = (env: 'prod' | 'dev') => (env === 'prod' ? 'makapix' : 'makapix_dev');
  /** SQL through psql inside an environment's db container (a role other than owner on request). */
  const sql = (env: 'prod' | 'dev', text: string, user = 'owner') =>
    execFileSync(
      'docker',
      [
        'exec',
        '-i',
        `${fx.project(env)}-db`,
        'psql',
        '-X',
        '-q',
        '-A',
        '-t',
        '-v',
        'ON_ERROR_STOP=1',
        '-p',
        String(fx.dbPort(env)),
        '-U',
        user,
        '-d',
        db(env),
        '-f',
        '-',
      ],
      {
        input: text,
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      },
    ).trim();
  // pg_dump 15.14+ wraps its output in \restrict <random key>: not part of the database.
  const dump = (env: 'prod' | 'dev') =>
    execFileSync('docker', ['exec', `${fx.project(env)}-db`, 'pg_dump', '-p', String(fx.dbPort(env)), '-U', 'owner', '-d', db(env)], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    }).replace(/^\\(un)?restrict .*$/gm, '');
  const databases = (env: 'prod' | 'dev') => sql(env, "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database");
  const devUsers = () => sql('dev', "SELECT string_agg(id::text, ',' ORDER BY id) FROM users");
  const containers = (env: 'prod' | 'dev') =>
    fx
      .sh(`docker ps -a --filter label=com.docker.compose.project=${fx.project(env)} --format '{{.Names}} {{.ID}} {{.Image}} {{.State}}'`)
      .trim()
      .split('\n')
      .sort();
  const status = (env: 'prod' | 'dev', urlPath: string) =>
    fx.sh(`curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:${fx.apiPort(env)}${urlPath}`);
  async function waitForHealth(env: 'prod' | 'dev'): Promise<string> {
    const deadline = Date.now() + 60_000;
    let code = '';
    while (Date.now() < deadline) {
      // A refused connection (curl exits 7) while the api restarts is a wait, not an answer.
      try {
        code = status(env, '/api/health');
      } catch {
        code = '000';
      }
      if (code === '200') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    return code;
  }
  const lastRun = (env: 'prod' | 'dev') => {
    const log = fx.hostLog(env);
    const start = log.map((x) => x.event).lastIndexOf('started');
    return log.slice(start);
  };

  before(async () => {
    fx = await startFixtureHost(composeCommand);
    prodVault = path.join(fx.dir, 'vault-prod');
    devVault = path.join(fx.dir, 'vault-dev');
    const deployed = await Promise.all([fx.run('deploy', { environment: 'prod', ref: 'main' }), fx.run('deploy', { environment: 'dev', ref: 'main' })]);
    for (const d of deployed) assert.equal(d.code, 0, d.why);
    for (const env of ['prod', 'dev'] as const) fx.sh(`docker exec ${fx.project(env)}-api alembic upgrade head`);

    // Production's data: the Makapix-shaped schema beside the app's own tables, whose
    // alembic_version (0001) it keeps; the api's `app` role reads it through default privileges.
    const schema = SCHEMA_SQL.replace(/CREATE TABLE alembic_version \([^;]*\);\n/, '');
    const data = dataSql(USERS).replace(/INSERT INTO alembic_version [^;]*;\n/, '');
    assert.ok(schema !== SCHEMA_SQL && data !== dataSql(USERS), 'the fixture schema no longer creates alembic_version as expected');
    sql('prod', `SET client_min_messages = warning;\n${schema}\n${data}\nINSERT INTO items (name) VALUES ('a production item');`);
    sql('dev', "INSERT INTO items (name) VALUES ('dev data before the resample')");

    // Production's vault: every post's file but every 40th (referenced and missing), and an
    // upscaled variant for every third post.
    const posts = sql('prod', "SELECT id || ' ' || storage_shard || '/' || storage_key || '.' || format FROM posts ORDER BY id").split('\n');
    for (const line of posts) {
      const [id, rel] = line.split(' ');
      if (Number(id) % 40 === 0) continue;
      fs.mkdirSync(path.dirname(path.join(prodVault, rel)), { recursive: true });
      fs.writeFileSync(path.join(prodVault, rel), `pixels of post ${id}\n`.repeat(1 + (Number(id) % 7)));
      if (Number(id) % 3 === 0) fs.writeFileSync(path.join(prodVault, rel.replace(/\.[^.]+$/, '_upscaled.webp')), `upscaled post ${id}\n`);
    }

    const config = path.join(fx.workspace, '.github', 'twinstack.yml');
    fs.appendFileSync(
      config,
      stringify({
        sample: SAMPLE_CONFIG,
        'vault-sync': { query: "SELECT storage_shard || '/' || storage_key || '.' || format FROM posts", variants: ['{stem}_upscaled.webp'] },
      }),
    );
  });
  after(async () => {
    await fx?.stop();
  });

  it('prints the plan on a dry run and changes nothing', async () => {
    const devBefore = dump('dev');
    const running = containers('dev');
    const r = await fx.run('resample', { 'dry-run': 'true', fraction: '0.5' });
    assert.equal(r.code, 0, r.why);
    assert.equal(r.outputs.swapped, 'false');
    const report = JSON.parse(r.outputs.report) as ResampleReport;
    assert.equal(report.dryRun, true);
    assert.equal(report.fraction, 0.5);
    assert.match(r.visible, /Sample of public\.users: fraction 0\.5, seed "test-seed"\. Tables in copy order:/);
    assert.match(r.visible, /public\.follows\(follower_id\) → public\.users: drop/);
    assert.match(r.summary, /Resample plan \(dry run: nothing changed\)/);
    assert.equal(dump('dev'), devBefore);
    assert.deepEqual(containers('dev'), running);
    assert.equal(fx.hostLog('dev').filter((x) => x.action === 'resample').length, 0, 'a dry run took the lock');
  });

  it('swaps a referentially complete, anonymized sample into dev; production is only read', async () => {
    const prodBefore = dump('prod');
    const prodDatabases = databases('prod');
    const devDatabases = databases('dev');
    const r = await fx.run('resample', { 'dev-password': PASSWORD });
    assert.equal(r.code, 0, r.why);
    assert.equal(r.outputs.swapped, 'true');
    const report = JSON.parse(r.outputs.report) as ResampleReport;
    console.log(
      `resample: ${report.rowsCopied} rows in ${report.seconds.toFixed(1)} s, ${report.sshBytes.sent + report.sshBytes.received} bytes over SSH; phases ${JSON.stringify(report.phases)}`,
    );

    // The sample: exactly the users the seed picks, and everything checked clean.
    assert.equal(devUsers(), expectedUsers('test-seed', 0.25).join(','));
    assert.ok(report.foreignKeys.length >= 20);
    assert.deepEqual(
      report.foreignKeys.filter((f) => f.orphans !== 0),
      [],
    );
    assert.deepEqual(report.leaks, []);
    assert.ok(report.probes > 0, 'the leak scan probed nothing');
    assert.equal(sql('dev', "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"), '0');
    assert.equal(sql('dev', 'SELECT count(*) FROM posts WHERE owner_id NOT IN (SELECT id FROM users)'), '0');
    assert.equal(sql('dev', 'SELECT count(*) FROM items'), '0', "dev's earlier rows are gone; items has no path from users");
    assert.equal(sql('dev', 'SELECT version_num FROM alembic_version'), '0001');

    // No real personal value reached dev, and the dev password works for everyone.
    assert.equal(sql('dev', "SELECT count(*) FROM users WHERE email LIKE '%@mail.example.org' OR email <> 'user' || id || '@dev.example.test'"), '0');
    assert.match(sql('dev', 'SELECT DISTINCT password_hash FROM users'), /^\$pbkdf2-sha256\$29000\$[^\n]+$/);
    assert.equal(sql('dev', 'SELECT count(*) FROM players WHERE cert_pem IS NOT NULL OR private_key IS NOT NULL OR last_ip IS NOT NULL'), '0');
    assert.equal(sql('dev', "SELECT count(*) FROM view_events WHERE ip_hash = md5('ip' || id)"), '0');
    assert.equal(sql('dev', 'SELECT count(*) FROM refresh_tokens'), '0');
    assert.ok(!r.visible.includes(PASSWORD) && !r.summary.includes(PASSWORD), 'the dev password was printed');
    assert.ok(!/person\d+@mail\.example\.org/.test(r.stdout + r.stderr + r.summary), 'a real email reached the runner');

    // Production: byte-identical dump, no database left behind.
    assert.equal(dump('prod'), prodBefore);
    assert.equal(databases('prod'), prodDatabases);
    assert.equal(databases('dev'), devDatabases, 'a staging or previous database was left on dev');

    // Dev runs on it: healthy, and the non-owner app role reads the new tables.
    assert.equal(status('dev', '/api/health'), '200');
    assert.equal(status('dev', '/api/items'), '200');
    assert.equal(sql('dev', 'SELECT count(*) FROM users', 'app'), String(expectedUsers('test-seed', 0.25).length));
    assert.equal(sql('dev', "SELECT has_table_privilege('app', 'comments', 'INSERT'), has_database_privilege('app', 'makapix_dev', 'CONNECT')"), 't|t');
    assert.ok(
      containers('dev').every((c) => c.endsWith(' running')),
      containers('dev').join('\n'),
    );
    assert.deepEqual(
      lastRun('dev').map((x) => x.event),
      ['started', 'staging-created', 'swapped', 'resampled', 'finished'],
    );
    assert.match(r.summary, /Dev now runs on a fresh 25\.0% sample \(seed "test-seed"\)/);
  });

  it('picks the same users with the same seed, night after night', async () => {
    const before = devUsers();
    const r = await fx.run('resample', { 'dev-password': PASSWORD });
    assert.equal(r.code, 0, r.why);
    assert.equal(devUsers(), before);
    assert.equal(status('dev', '/api/health'), '200');
  });

  describe('vault-sync', () => {
    /** The dev vault the dev database calls for: each referenced file production has, and its variant. */
    function wanted(): string[] {
      const out: string[] = [];
      for (const rel of sql('dev', "SELECT storage_shard || '/' || storage_key || '.' || format FROM posts").split('\n')) {
        for (const f of [rel, rel.replace(/\.[^.]+$/, '_upscaled.webp')]) if (fs.existsSync(path.join(prodVault, f))) out.push(f);
      }
      return out.sort();
    }
    const referencedMissing = () => Number(sql('dev', 'SELECT count(*) FROM posts WHERE id % 40 = 0'));

    it('copies the files the dev database references, removes the rest, warns about missing ones', async () => {
      fs.mkdirSync(path.join(devVault, 'zz'), { recursive: true });
      fs.writeFileSync(path.join(devVault, 'zz', 'from-an-old-sample.png'), 'stale');
      const expected = wanted();
      assert.ok(expected.length > 100 && expected.some((f) => f.endsWith('_upscaled.webp')));
      const r = await fx.run('vault-sync');
      assert.equal(r.code, 0, r.why);
      assert.equal(r.outputs['files-copied'], String(expected.length));
      assert.equal(r.outputs['files-deleted'], '1');
      assert.deepEqual(files(devVault), expected);
      for (const f of expected) assert.equal(fs.readFileSync(path.join(devVault, f), 'utf8'), fs.readFileSync(path.join(prodVault, f), 'utf8'), f);
      assert.ok(files(prodVault).length > expected.length, 'files of unsampled posts stay in production only');
      const missing = referencedMissing();
      assert.ok(missing > 0, 'the sample has posts whose files production lacks');
      assert.equal(r.outputs.missing, String(missing));
      assert.match(r.stdout, new RegExp(`::warning::${missing} file\\(s\\) referenced by dev are missing from the production vault`));
      assert.equal(fx.hostLog('dev').filter((x) => x.event === 'vault-synced').length, 1);
    });

    it('copies nothing on a second run', async () => {
      const r = await fx.run('vault-sync');
      assert.equal(r.code, 0, r.why);
      assert.equal(r.outputs['files-copied'], '0');
      assert.equal(r.outputs['bytes-copied'], '0');
      assert.equal(r.outputs['files-deleted'], '0');
    });

    it('removes a file the dev database no longer references', async () => {
      const [id, rel] = sql(
        'dev',
        "SELECT id || ' ' || storage_shard || '/' || storage_key || '.' || format FROM posts WHERE id % 3 = 0 AND id % 40 <> 0 ORDER BY id LIMIT 1",
      ).split(' ');
      const variant = rel.replace(/\.[^.]+$/, '_upscaled.webp');
      assert.ok(fs.existsSync(path.join(devVault, rel)) && fs.existsSync(path.join(devVault, variant)));
      sql('dev', `DELETE FROM posts WHERE id = ${Number(id)}`);
      const r = await fx.run('vault-sync');
      assert.equal(r.code, 0, r.why);
      assert.equal(r.outputs['files-deleted'], '2');
      assert.equal(r.outputs['files-copied'], '0');
      assert.ok(!fs.existsSync(path.join(devVault, rel)) && !fs.existsSync(path.join(devVault, variant)));
      assert.ok(fs.existsSync(path.join(prodVault, rel)), 'the production file was touched');
      assert.deepEqual(files(devVault), wanted());
    });
  });

  it("leaves dev exactly as it was when dev's migration fails after the copy", async () => {
    // Dev runs code whose migration 0002 commits a table, then fails.
    const d = await fx.run('deploy', { environment: 'dev', ref: 'bad-migration' });
    assert.equal(d.code, 0, d.why);
    const devBefore = dump('dev');
    const devDatabases = databases('dev');
    const running = containers('dev');
    const prodBefore = dump('prod');
    const r = await fx.run('resample', { 'dev-password': PASSWORD, seed: 'another-seed' });
    assert.equal(r.code, 1, r.why);
    assert.equal(r.outputs.swapped, 'false');
    assert.match(lastError(r.stdout), /dev migrations \(alembic upgrade head\).*(UndefinedColumn|no_such_column)/s);
    assert.match(r.summary, /Dev is unchanged/);
    assert.deepEqual(
      lastRun('dev').map((x) => x.event),
      ['started', 'staging-created', 'swapped', 'swapped-back', 'finished'],
    );
    assert.equal(await waitForHealth('dev'), '200');
    assert.equal(dump('dev'), devBefore);
    assert.equal(databases('dev'), devDatabases);
    assert.equal(sql('dev', "SELECT to_regclass('public.half_done') IS NULL"), 't');
    assert.deepEqual(containers('dev'), running);
    assert.equal(status('dev', '/api/items'), '200');
    assert.equal(dump('prod'), prodBefore);
  });
});
