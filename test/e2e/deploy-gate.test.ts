/**
 * Deploy and gate, end to end: the bundled actions reach this machine's Docker engine through the
 * suite's sshd, build the fixture app and run its real pytest and alembic.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseLog } from '../../src/domain/host-log';
import { composeCommands, startFixtureHost, type FixtureHost } from './support/fixture-host';

function errors(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l.startsWith('::error'));
}

for (const composeCommand of composeCommands()) {
  describe(`deploy and gate with ${composeCommand}`, () => {
    let fx: FixtureHost;
    const releases: string[] = [];

    before(async () => {
      fx = await startFixtureHost(composeCommand);
    });
    after(async () => {
      await fx?.stop();
    });

    function hostLog(env: 'prod' | 'dev') {
      return parseLog(fs.readFileSync(path.join(fx.dir, 'state', env, 'log.jsonl'), 'utf8'), env);
    }

    it('deploys dev from scratch: built, healthy, probed, recorded and tagged', async () => {
      const r = await fx.run('deploy', { environment: 'dev', ref: 'main' });
      assert.equal(r.code, 0, r.why);
      const sha = fx.branches.main;
      assert.equal(r.outputs.sha, sha);
      assert.match(r.outputs['release-id'], new RegExp(`^r\\d{8}T\\d{6}Z-${sha.slice(0, 7)}$`));
      assert.equal(r.outputs['previous-release-id'], '');
      releases.push(r.outputs['release-id']);
      assert.equal(fx.sh('git rev-parse HEAD', fx.checkout('dev')).trim(), sha);
      assert.equal(fx.sh(`curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${fx.apiPort('dev')}/api/health`), '200');
      const tags = fx
        .sh(`docker images --format '{{.Repository}}:{{.Tag}}' 'twinstack/${fx.project('dev')}-*'`)
        .trim()
        .split('\n')
        .sort();
      assert.deepEqual(tags, ['db', 'api', 'worker'].map((s) => `twinstack/${fx.project('dev')}-${s}:${r.outputs['release-id']}`).sort());
      const rel = hostLog('dev').find((x) => x.event === 'release');
      assert.equal(rel?.sha, sha);
      assert.deepEqual(Object.keys(rel?.images as object).sort(), ['api', 'db', 'worker']);
      assert.match(r.summary, /dev runs release `r\d{8}T\d{6}Z-/);
      // prod was not touched
      assert.equal(fx.sh(`docker ps -q --filter label=com.docker.compose.project=${fx.project('prod')}`).trim(), '');
    });

    it('gates the commit dev runs: alembic at its one head, real pytest results, recorded for the sha', async () => {
      const r = await fx.run('gate');
      assert.equal(r.code, 0, r.why);
      assert.ok(Number(r.outputs.passed) >= 2, `passed=${r.outputs.passed}`);
      assert.equal(r.outputs.failed, '0');
      assert.equal(r.outputs['alembic-head'], '0001');
      assert.equal(fx.psql('dev', 'select version_num from alembic_version').trim(), '0001');
      const gate = hostLog('dev').find((x) => x.event === 'gate');
      assert.equal(gate?.sha, fx.branches.main);
      assert.equal(gate?.passed, true);
      assert.match(r.summary, /passed the gate/);
    });

    it('fails the gate on a failing test, naming it with file and line', async () => {
      const d = await fx.run('deploy', { environment: 'dev', ref: 'failing-test' });
      assert.equal(d.code, 0, d.why);
      releases.push(d.outputs['release-id']);
      const r = await fx.run('gate');
      assert.equal(r.code, 1);
      assert.ok(Number(r.outputs.failed) >= 1);
      const annotation = errors(r.stdout).find((l) => l.includes('file=tests/test_fail.py'));
      assert.ok(annotation, errors(r.stdout).join('\n'));
      assert.match(annotation, /line=4::AssertionError: this fixture test fails on purpose/);
      assert.match(errors(r.stdout).at(-1) ?? '', /gate: commit \w+ did not pass: 1 test\(s\) failed: tests\.test_fail::/);
      const gate = hostLog('dev')
        .filter((x) => x.event === 'gate')
        .at(-1);
      assert.equal(gate?.passed, false);
      assert.equal(gate?.sha, fx.branches['failing-test']);
    });

    it('fails the gate on two alembic heads', async () => {
      const d = await fx.run('deploy', { environment: 'dev', ref: 'two-heads' });
      assert.equal(d.code, 0, d.why);
      releases.push(d.outputs['release-id']);
      const r = await fx.run('gate');
      assert.equal(r.code, 1);
      assert.match(errors(r.stdout).at(-1) ?? '', /alembic has 2 heads/);
    });

    it('deploys a new commit, reporting the previous release; the gate migrates to the new head', async () => {
      const r = await fx.run('deploy', { environment: 'dev', ref: 'second' });
      assert.equal(r.code, 0, r.why);
      assert.equal(r.outputs.sha, fx.branches.second);
      assert.equal(r.outputs['previous-release-id'], releases.at(-1));
      releases.push(r.outputs['release-id']);
      const g = await fx.run('gate', { sha: fx.branches.second });
      assert.equal(g.code, 0, g.why);
      assert.equal(g.outputs['alembic-head'], '0002');
      assert.match(fx.psql('dev', `select column_name from information_schema.columns where table_name = 'items'`), /description/);
    });

    it('fails a deploy whose service turns unhealthy, naming the service with its last log lines', async () => {
      const r = await fx.run('deploy', { environment: 'dev', ref: 'bad-health' });
      assert.equal(r.code, 1);
      assert.match(errors(r.stdout).at(-1) ?? '', new RegExp(`deploy: dev: service api is unhealthy \\(container ${fx.project('dev')}-api\\)`));
      assert.match(r.summary, /last log lines of api/);
      const last = hostLog('dev').at(-1);
      assert.equal(last?.event, 'finished');
      assert.equal(last?.outcome, 'failure');
      // On the host: the checkout is at the commit that failed, its api runs and is unhealthy, and the
      // failed release on record names exactly the image and HEAD the host has.
      const head = fx.sh('git rev-parse HEAD', fx.checkout('dev')).trim();
      assert.equal(head, fx.branches['bad-health']);
      const [image, health] = fx
        .sh(`docker inspect -f '{{.Image}} {{.State.Health.Status}}' ${fx.project('dev')}-api`)
        .trim()
        .split(' ');
      assert.equal(health, 'unhealthy');
      const failed = hostLog('dev')
        .filter((x) => x.event === 'release-failed')
        .at(-1);
      assert.ok(failed?.event === 'release-failed', 'no release-failed record');
      assert.equal(failed.sha, head);
      assert.equal(failed.head, head);
      assert.equal(failed.images?.api, image);
    });

    it('prunes release tags to the newest releases kept', async () => {
      const r = await fx.run('deploy', { environment: 'dev', ref: 'main' });
      assert.equal(r.code, 0, r.why);
      releases.push(r.outputs['release-id']);
      const ids = new Set(
        fx
          .sh(`docker images --format '{{.Tag}}' 'twinstack/${fx.project('dev')}-*'`)
          .trim()
          .split('\n'),
      );
      assert.ok(ids.size <= 3, `kept ${[...ids].join(', ')}`);
      assert.ok(ids.has(r.outputs['release-id']));
      assert.ok(!ids.has(releases[0]), 'the oldest release was not pruned');
    });

    it('refuses a ref that does not exist, and a hostile one before connecting', async () => {
      const r = await fx.run('deploy', { environment: 'dev', ref: 'no-such-branch' });
      assert.equal(r.code, 1);
      assert.match(errors(r.stdout).at(-1) ?? '', /ref no-such-branch is not a branch, tag or commit of origin/);
      const canary = path.join(fx.dir, 'canary');
      const h = await fx.run('deploy', { environment: 'dev', ref: `main;touch ${canary}` });
      assert.equal(h.code, 1);
      assert.deepEqual(errors(h.stdout).length, 1);
      assert.match(errors(h.stdout)[0], /ref "main;touch .*" is not a git branch, tag or commit sha/);
      assert.equal(fs.existsSync(canary), false);
    });
  });
}
