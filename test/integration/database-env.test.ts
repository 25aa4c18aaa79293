/**
 * promote.database-env (default DATABASE_URL): the rehearsal finds the app's database variable where
 * the app's containers get it. Makapix-style stacks build the URL in the compose file from other
 * variables; others keep it in the env file. Real `docker compose config` (v2) and `docker-compose
 * config` (v1) run on the host over a real OpenSSH server; neither needs the engine.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { databaseEnvValue, pointAt } from '../../src/domain/rehearsal';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let host: SshHost;
let root: string;

const compose = {
  'docker compose': spawnSync('docker', ['compose', 'version']).status === 0,
  'docker-compose': spawnSync('docker-compose', ['version']).status === 0,
};

before(async () => {
  sshd = await startSshd();
  host = await connect(sshd);
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-dbenv-'));
});
after(async () => {
  await host?.close();
  await sshd?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

const PASSWORD = 'not-in-any-log-7f3a';

/** A prod checkout holding the two compose files and the env file, and prod's Environment at it. */
function checkout(command: 'docker compose' | 'docker-compose', base: string, overlay: string, envFile: string): Environment {
  const dir = fs.mkdtempSync(path.join(root, 'checkout-'));
  fs.mkdirSync(path.join(dir, 'deploy/stack'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'deploy/stack/docker-compose.yml'), base);
  fs.writeFileSync(path.join(dir, 'deploy/stack/docker-compose.prod.yml'), overlay);
  fs.writeFileSync(path.join(dir, 'deploy/stack/.env.prod'), envFile);
  const text = fs
    .readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8')
    .replace('compose-command: docker compose', `compose-command: ${command}`)
    .replace('checkout: /opt/makapix\n', `checkout: ${dir}\n`);
  return new Environment('prod', parseConfig(text, 'twinstack.yml'));
}

const ENV_FILE = `DB_USER=owner\nDB_PASSWORD=${PASSWORD}\nDB_NAME=makapix\n`;
const BUILT_IN_COMPOSE = `services:
  api:
    image: twinstack-test-api:local
    environment:
      DATABASE_URL: postgresql://\${DB_USER}:\${DB_PASSWORD}@db:5432/\${DB_NAME}
  db:
    image: twinstack-test-db:local
`;
const PROD_OVERLAY = `services:
  api:
    environment:
      APP_ENV: production
`;

for (const command of ['docker compose', 'docker-compose'] as const) {
  describe(`promote.database-env with ${command}`, { skip: compose[command] ? false : `${command} is not installed` }, () => {
    it('finds DATABASE_URL built in the compose file from other variables, and points it at the copy', async () => {
      const log = new MemoryLogger();
      const prod = checkout(command, BUILT_IN_COMPOSE, PROD_OVERLAY, ENV_FILE);
      const value = await databaseEnvValue({ host, at: prod, variable: 'DATABASE_URL', log });
      assert.equal(value, `postgresql://owner:${PASSWORD}@db:5432/makapix`);
      assert.equal(pointAt(value, 'makapix_twinstack_rehearse'), `postgresql://owner:${PASSWORD}@db:5432/makapix_twinstack_rehearse`);
      log.info(`value: ${value}`);
      assert.ok(!log.text.includes(PASSWORD), 'the database URL reached the log');
    });

    it('falls back to the env file when the compose files do not set it', async () => {
      const prod = checkout(command, BUILT_IN_COMPOSE.replace(/ {4}environment:\n.*\n/, ''), PROD_OVERLAY, `${ENV_FILE}DB_URL_ONLY_HERE=makapix\n`);
      assert.equal(await databaseEnvValue({ host, at: prod, variable: 'DB_URL_ONLY_HERE', log: new MemoryLogger() }), 'makapix');
    });

    it('refuses in one line naming the setting to add when nothing sets it', async () => {
      const prod = checkout(command, BUILT_IN_COMPOSE, PROD_OVERLAY, ENV_FILE);
      await assert.rejects(databaseEnvValue({ host, at: prod, variable: 'SQLALCHEMY_URL', log: new MemoryLogger() }), (e: Error) => {
        assert.doesNotMatch(e.message, /\n/);
        assert.match(e.message, /sets SQLALCHEMY_URL \(promote\.database-env\).*set promote\.database-env to the variable your app reads its database from/);
        assert.ok(!e.message.includes(PASSWORD));
        return true;
      });
    });
  });
}
