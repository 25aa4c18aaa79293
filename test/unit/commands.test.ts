/**
 * The command builders of src/infra: each remote tool's flags are written in one place, and what
 * they build is checked here as text (the real tools run in the integration and end-to-end suites).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { compose, composeLater, NOTHING_LATER, type ComposeProject } from '../../src/infra/compose';
import * as docker from '../../src/infra/docker';
import * as git from '../../src/infra/git';
import * as alembic from '../../src/infra/alembic';
import { pgDump, pgDumpGlobals, pgDumpVersion, pgRestore, pgRestoreReads, psql, type DbClient } from '../../src/infra/postgres';
import { argv, hostScript } from '../../src/infra/shell';

const v2: ComposeProject = { command: 'docker compose', files: ['compose.yml', 'compose.prod.yml'], envFile: '.env.prod', project: 'app-prod' };

describe('compose', () => {
  it('names the files, the env file and the project before the subcommand', () => {
    assert.equal(
      compose(v2, ['up', '-d', '--no-build']),
      'docker compose -f compose.yml -f compose.prod.yml --env-file .env.prod -p app-prod up -d --no-build',
    );
  });

  it('runs v1 as docker-compose, with the same flags', () => {
    assert.equal(
      compose({ ...v2, command: 'docker-compose' }, ['config', '--services']),
      'docker-compose -f compose.yml -f compose.prod.yml --env-file .env.prod -p app-prod config --services',
    );
  });

  it('quotes what the shell would split', () => {
    assert.equal(
      compose({ ...v2, files: ['my compose.yml'] }, ['logs', "it's"]),
      `docker compose -f 'my compose.yml' --env-file .env.prod -p app-prod logs 'it'\\''s'`,
    );
  });

  it('gives a script that runs it later the directory, the project name and the command', () => {
    assert.deepEqual(composeLater('/srv/app', v2, ['start', 'api']), {
      RESTART_DIR: '/srv/app',
      RESTART_PROJECT: 'app-prod',
      RESTART: 'docker compose -f compose.yml -f compose.prod.yml --env-file .env.prod -p app-prod start api',
    });
  });
});

describe('docker', () => {
  it('writes the compose project filter, and the service filter beside it', () => {
    assert.equal(docker.projectLabel('app-prod'), 'label=com.docker.compose.project=app-prod');
    assert.deepEqual(docker.projectFilter('app-prod'), ['--filter', 'label=com.docker.compose.project=app-prod']);
    assert.deepEqual(docker.projectFilter('app-prod', 'db'), [
      '--filter',
      'label=com.docker.compose.project=app-prod',
      '--filter',
      'label=com.docker.compose.service=db',
    ]);
  });

  it('lists the ids of running containers, or of all of them', () => {
    assert.equal(
      docker.psIds('app-prod', { service: 'api' }),
      'docker ps -q --filter label=com.docker.compose.project=app-prod --filter label=com.docker.compose.service=api',
    );
    assert.equal(docker.psIds('app-prod', { all: true }), 'docker ps -aq --filter label=com.docker.compose.project=app-prod');
  });

  it("inspects a project's containers with the script, its labels set in front", () => {
    const all = docker.inspectProjectContainers('app-prod');
    assert.match(all, /^PROJECT_LABEL=label=com\.docker\.compose\.project=app-prod; SERVICE_LABEL=''; DOCKER_ENDPOINT=''\n/);
    assert.match(
      docker.inspectProjectContainers('app-prod', 'api'),
      /^PROJECT_LABEL=\S+; SERVICE_LABEL=label=com\.docker\.compose\.service=api; DOCKER_ENDPOINT=''\n/,
    );
    assert.doesNotMatch(all, /#!\/usr\/bin\/env bash|Prints/, 'the opening comment is not sent');
  });

  it('reads the tail of a log, lists, tags, stops and removes', () => {
    assert.equal(docker.logsTail('0123456789ab', 30), 'docker logs --tail 30 0123456789ab 2>&1');
    assert.equal(docker.listImages('twinstack/app-prod-*', '{{.Tag}}'), `docker images --format '{{.Tag}}' 'twinstack/app-prod-*'`);
    assert.match(
      docker.tagImages([
        { from: 'sha256:1', to: 'twinstack/app-prod-api:r1' },
        { from: 'sha256:2', to: 'twinstack/app-prod-web:r1' },
      ]),
      // tag-images.sh, the pairs as its positional parameters.
      /^set -- sha256:1 twinstack\/app-prod-api:r1 sha256:2 twinstack\/app-prod-web:r1\n.*docker tag "\$1" "\$2" \|\| exit/s,
    );
    assert.equal(docker.tagImages([]), '');
    assert.match(
      docker.stopAndRemove(['a1', 'b2'], 10),
      /^DRAIN_SECONDS=10; set -- a1 b2\ndocker stop -t "\$DRAIN_SECONDS" "\$@" >\/dev\/null\ndocker rm -f "\$@" >\/dev\/null$/,
    );
    assert.equal(docker.imageIdsCommand(['app:1', 'db:2']), `docker image inspect --format '{{.Id}}' app:1 db:2`);
  });
});

describe('git', () => {
  const sha = '0123456789abcdef0123456789abcdef01234567';

  it('fetches, resolves a ref (branch, then tag, then anything) and checks out detached', () => {
    assert.equal(git.isRepository('/srv/app'), 'test -d /srv/app/.git');
    assert.equal(git.fetch('origin'), 'git fetch --prune --tags --force origin');
    assert.match(
      git.resolveCommit('origin', 'main'),
      /^REMOTE=origin; REF=main\ngit rev-parse --verify --quiet "refs\/remotes\/\$REMOTE\/\$REF\^\{commit\}" \|\|/,
    );
    assert.equal(git.checkoutDetached(sha), `git -c advice.detachedHead=false checkout --quiet --detach ${sha}`);
    assert.equal(git.head('/srv/rel'), 'git -C /srv/rel rev-parse HEAD 2>/dev/null');
  });

  it('asks whether a branch contains a commit, printing the branch name', () => {
    assert.equal(
      git.branchContains(sha, 'refs/remotes/origin/main'),
      `git for-each-ref --contains ${sha} --format='%(refname:strip=3)' refs/remotes/origin/main`,
    );
  });

  it('adds a worktree and removes one with the scripts', () => {
    assert.match(
      git.addWorktree('/srv/app', '/var/lib/ts/work/x', sha),
      new RegExp(`^CHECKOUT=/srv/app; DIR=/var/lib/ts/work/x; PARENT=/var/lib/ts/work; SHA=${sha}\n`),
    );
    assert.match(git.removeWorktree('/srv/app', '/var/lib/ts/work/x'), /^CHECKOUT=\/srv\/app; DIR=\/var\/lib\/ts\/work\/x\n.*worktree prune$/s);
  });
});

/** A database client that runs the tools on the host as they are (an environment wraps them in docker exec). */
const client: DbClient = { dbTool: (tool, args) => argv(tool, args) };

describe('PostgreSQL client tools', () => {
  it('runs psql without psqlrc, quiet, stopping at the first error, reading the script from standard input', () => {
    assert.equal(psql(client, 'app'), "psql -X -q -v ON_ERROR_STOP=1 -d app -c 'SET standard_conforming_strings = on' -f -");
    assert.equal(
      psql(client, 'app', { tuples: true, output: '/dev/null', stopOnError: false, run: ['select 1'] }),
      "psql -X -q -A -t -o /dev/null -d app -c 'SET standard_conforming_strings = on' -c 'select 1'",
    );
  });

  it('dumps a database in the custom format, as of a snapshot, or its schema without owners and privileges', () => {
    assert.equal(pgDump(client, 'app', { custom: true }), 'pg_dump -Fc -d app');
    assert.equal(pgDump(client, 'app', { custom: true, snapshot: '00000003-1B-1' }), 'pg_dump -Fc --snapshot=00000003-1B-1 -d app');
    assert.equal(pgDump(client, 'app', { schemaOnly: true, noOwnership: true }), 'pg_dump --schema-only --no-owner --no-privileges -d app');
    assert.equal(pgDump(client, 'app_dev', { schemaOnly: true }), 'pg_dump --schema-only -d app_dev');
  });

  it("dumps one section of production's schema with only what another server can recreate", () => {
    assert.equal(
      pgDump(client, 'app', { section: 'pre-data', lockWaitTimeout: '30s', noOwnership: true, noServerObjects: true }),
      'pg_dump --section pre-data --lock-wait-timeout=30s --no-owner --no-privileges --no-publications --no-subscriptions --no-security-labels --no-tablespaces -d app',
    );
  });

  it('reads the version and the globals, with or without role passwords', () => {
    assert.equal(pgDumpVersion(client), 'pg_dump --version');
    assert.equal(pgDumpGlobals(client, { rolePasswords: true }), 'pg_dumpall --globals-only');
    assert.equal(pgDumpGlobals(client, { rolePasswords: false }), 'pg_dumpall --globals-only --no-role-passwords');
  });

  it('restores from standard input or from a file it opens (parallel jobs), always stopping at the first error', () => {
    assert.equal(
      pgRestore(client, 'app', { stdin: '/backups/b 1/db.dump' }, { singleTransaction: true }),
      "pg_restore --single-transaction --exit-on-error -d app < '/backups/b 1/db.dump'",
    );
    assert.equal(pgRestore(client, 'copy', { stdin: '/b/db.dump' }, { noOwner: true }), 'pg_restore --no-owner --exit-on-error -d copy < /b/db.dump');
    assert.equal(
      pgRestore(client, 'copy', { file: '/b/db.dump' }, { noOwner: true, jobs: 4 }),
      'pg_restore --no-owner --exit-on-error -j 4 -d copy /b/db.dump',
    );
    assert.equal(pgRestoreReads(client, { stdin: '/b/db.dump' }), 'pg_restore --list < /b/db.dump > /dev/null');
  });
});

describe('alembic', () => {
  it('writes its commands', () => {
    assert.deepEqual(alembic.heads(), ['alembic', 'heads']);
    assert.deepEqual(alembic.current(), ['alembic', 'current']);
    assert.deepEqual(alembic.upgradeHead(), ['alembic', 'upgrade', 'head']);
    assert.deepEqual(alembic.check(), ['alembic', 'check']);
  });

  it('reads the heads and the current revision from their output', () => {
    assert.deepEqual(alembic.parseHeads('0002 (head)\n0002b (branchb) (head)\n'), ['0002', '0002b']);
    assert.deepEqual(alembic.parseHeads('INFO  [alembic] no heads\n'), []);
    assert.equal(alembic.parseCurrent('0001 (head)\n'), '0001');
    assert.equal(alembic.parseCurrent(''), '');
  });
});

describe('host scripts', () => {
  it('set their parameters quoted, in front of the file without its opening comment', () => {
    const file = '#!/usr/bin/env bash\n# what it does\n\necho "$NAME" "$N"\n';
    assert.equal(hostScript(file, { NAME: "it's me", N: 3 }), `NAME='it'\\''s me'; N=3\necho "$NAME" "$N"`);
  });

  it('refuse a parameter name that is not an upper-case shell variable', () => {
    assert.throws(() => hostScript('true\n', { 'a;b': 'x' }), /bad host script parameter name/);
    assert.throws(() => hostScript('true\n', { lower: 'x' }), /bad host script parameter name/);
  });

  it('run as bash runs them: the project containers, with docker answered by a stub', () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-docker-'));
    try {
      // The stub prints its arguments, and two ids for `ps`.
      fs.writeFileSync(path.join(bin, 'docker'), '#!/bin/sh\nif [ "$1" = ps ]; then echo a1; echo b2; else echo "$*"; fi\n', { mode: 0o755 });
      const run = (script: string) => spawnSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
      assert.equal(run(docker.inspectProjectContainers('app-prod', 'api')).stdout, 'inspect a1 b2\n');
      fs.writeFileSync(path.join(bin, 'docker'), '#!/bin/sh\n[ "$1" = ps ] || echo "$*"\n', { mode: 0o755 });
      assert.equal(run(docker.inspectProjectContainers('app-prod')).stdout, '[]\n');
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it('run the undo of a cut restore as the next operation would: the database back only when the check says so, then the services in their directory', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-undo-'));
    try {
      const undo = (check: string, restart = composeLater(dir, v2, ['start', 'api'])) => {
        const file = path.join(dir, 'restore.sh');
        const params = {
          // psql stands in as a command that records the SQL it reads; the check's answer is given.
          PSQL: `cat >> ${path.join(dir, 'sql.log')}`,
          PSQL_TUPLES: `cat > /dev/null; echo ${check}`,
          UNDO_CHECK: 'SELECT 1;',
          PUT_BACK: 'ALTER DATABASE app_aside RENAME TO app;',
          ...restart,
          RESTART: restart.RESTART && 'echo "$PWD $COMPOSE_PROJECT_NAME" > started',
        };
        fs.writeFileSync(
          file,
          `# restore of prod: put app back\n${hostScript(fs.readFileSync(path.join(__dirname, '../../src/domain/restore-undo.sh'), 'utf8'), params)}\n`,
        );
        return spawnSync('bash', ['-o', 'pipefail', '-e', file], { cwd: '/', encoding: 'utf8' });
      };
      assert.equal(undo('1').status, 0);
      assert.equal(fs.readFileSync(path.join(dir, 'sql.log'), 'utf8'), 'ALTER DATABASE app_aside RENAME TO app;');
      assert.equal(fs.readFileSync(path.join(dir, 'started'), 'utf8'), `${dir} app-prod\n`);
      fs.rmSync(path.join(dir, 'sql.log'));
      assert.equal(undo('0', NOTHING_LATER).status, 0);
      assert.equal(fs.existsSync(path.join(dir, 'sql.log')), false, 'a database the check does not name is left alone');
      const gone = undo('0', composeLater(path.join(dir, 'missing'), v2, ['start', 'api']));
      assert.notEqual(gone.status, 0, 'nothing starts outside the directory');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
