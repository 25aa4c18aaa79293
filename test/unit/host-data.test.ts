/** JSON read from the host is parsed with its schema: another shape is refused in one line that names where it was read. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { queryJson, rawCatalog } from '../../src/resample/catalog';
import { parseTagged, tagged } from '../../src/resample/engine';
import { parseDockerStats } from '../../src/safety/metrics';
import { parseBackupManifest } from '../../src/domain/backup';
import { parseLog } from '../../src/domain/host-log';
import { EnvironmentLock, describeHolder } from '../../src/domain/lock';
import { parseBusyEntry, parseLockHolder } from '../../src/domain/lock-records';
import type { Host } from '../../src/infra/host';
import { parseContainerInspect } from '../../src/infra/docker-inspect';
import { HostDataError } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';

const HOLDER_FILE = '/var/lib/twinstack/prod/lock-holder.json';
const holder = {
  run: 'https://github.com/o/r/actions/runs/1',
  actor: 'alice',
  sha: 'a'.repeat(40),
  action: 'promote',
  op: 'o1',
  since: '2026-01-01T00:00:00Z',
};

function refused(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HostDataError, `not a HostDataError: ${String(e)}`);
    assert.match(e.message, message);
    assert.doesNotMatch(e.message, /\n/, 'one line');
    return true;
  });
}

describe('JSON read from the host', () => {
  it('reads a lock holder as written, and refuses one cut short or of another shape, naming the file', () => {
    assert.deepEqual(parseLockHolder(JSON.stringify(holder), HOLDER_FILE), holder);
    refused(
      () => parseLockHolder('{"run":"https://github.com/o/r/act', HOLDER_FILE),
      /^the lock holder \/var\/lib\/twinstack\/prod\/lock-holder\.json is not JSON/,
    );
    refused(
      () => parseLockHolder(JSON.stringify({ ...holder, actor: 7 }), HOLDER_FILE),
      /lock-holder\.json is not what twinstack expects: actor: Expected string, received number/,
    );
    refused(() => parseLockHolder('[]', HOLDER_FILE), /lock-holder\.json is not what twinstack expects: the value: Expected object, received array/);
  });

  it('reads a busy entry with its process group, and refuses a malformed one, naming the entry', () => {
    const entry = { op: 'o1', run: 'r1', label: 'building dev', since: '2026-01-01T00:00:00Z' };
    assert.deepEqual(parseBusyEntry(`4242\t${JSON.stringify(entry)}`, '/s/dev/busy.d'), { pgid: 4242, ...entry });
    refused(
      () => parseBusyEntry(`4242\t${JSON.stringify({ ...entry, label: undefined })}`, '/s/dev/busy.d'),
      /^the busy entry \/s\/dev\/busy\.d\/4242\.json is not what twinstack expects: label: Required/,
    );
    refused(() => parseBusyEntry('4242\t{"op":', '/s/dev/busy.d'), /busy\.d\/4242\.json is not JSON/);
    refused(() => parseBusyEntry(`x1\t${JSON.stringify(entry)}`, '/s/dev/busy.d'), /a busy entry in \/s\/dev\/busy\.d does not start with a process group/);
  });

  it('refuses a backup manifest of another shape, naming where it was read and the field', () => {
    refused(
      () => parseBackupManifest('{"id":"b1","env":"prod","status":"verif', 'a manifest under /backups/prod'),
      /^a manifest under \/backups\/prod is not JSON/,
    );
    refused(
      () => parseBackupManifest(JSON.stringify({ id: 'b1', env: 'prod', status: 'maybe' }), 'a manifest under /backups/prod'),
      /a manifest under \/backups\/prod is not what twinstack expects: status: Invalid enum value.*\(and \d+ more problems\)/,
    );
  });

  it('refuses docker inspect output of another shape, and reads an empty answer as no containers', () => {
    assert.deepEqual(parseContainerInspect('\n'), []);
    refused(() => parseContainerInspect('[{"Id":"abc","Name":"/x"}]'), /^docker inspect output is not what twinstack expects: 0\.Image: Required/);
    refused(() => parseContainerInspect('Error: No such object: x'), /^docker inspect output is not JSON/);
  });

  it('skips a host-log record of another shape and says which line and field, keeping a release whose informational field is odd', () => {
    const log = new MemoryLogger();
    const base = { v: 1, time: '2026-01-01T00:00:00Z', env: 'prod', action: 'deploy', op: 'o1' };
    const images = { api: { name: 'app-api', id: 'sha256:1', tag: 'twinstack:r1' } };
    const text = [
      JSON.stringify({ ...base, event: 'finished', outcome: 'maybe' }),
      JSON.stringify({ ...base, event: 'release', release: 'r1', sha: 'a'.repeat(40), kind: 'deploy', images, durationSeconds: 'slow' }),
    ].join('\n');
    const records = parseLog(text, '/s/prod/log.jsonl', log);
    assert.deepEqual(
      records.map((r) => r.event),
      ['release'],
    );
    assert.match(
      log.lines.join('\n'),
      /\/s\/prod\/log\.jsonl: 1 line\(s\) are not twinstack records and were skipped \(line 1: finished: outcome: Invalid enum value/,
    );
  });

  it('an unreadable lock holder or busy entry is reported by what is wrong with it, never blocking the environment', async () => {
    const answering = (stdout: string) => ({ run: () => Promise.resolve({ stdout, stderr: '', exitCode: 0 }) }) as unknown as Host;
    const h = await EnvironmentLock.readHolder(answering('{"run":"https://github.com/o/r/act'), '/var/lib/twinstack', 'prod');
    assert.ok(h);
    assert.match(describeHolder(h), /^an unknown run \(the lock holder \/var\/lib\/twinstack\/prod\/lock-holder\.json is not JSON/);
    const work = await EnvironmentLock.busyWork(answering('BUSY\n4242\t{"op":3}\n'), '/var/lib/twinstack', 'dev');
    assert.equal(work.busy, true);
    assert.equal(work.entries[0].pgid, 4242);
    assert.match(
      work.entries[0].label,
      /^unknown \(the busy entry \/var\/lib\/twinstack\/dev\/busy\.d\/4242\.json is not what twinstack expects: op: Expected string/,
    );
  });

  it("refuses psql's answer of another shape in one line naming what was read, and reads one of the right shape", async () => {
    const env = new Environment('prod', parseConfig(fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8'), 'c'));
    const answering = (stdout: string) => ({ run: () => Promise.resolve({ stdout, stderr: '', exitCode: 0 }) }) as unknown as Host;
    const query = { database: 'app', sql: 'SELECT 1', label: 'reading the production catalog', schema: rawCatalog };
    const empty = { tables: [], foreignKeys: [], sequences: [] };
    assert.deepEqual(await queryJson(answering(`${JSON.stringify(empty)}\n`), env, query), empty);
    const table = { id: 'public.t', schema: 'public', name: 't', partitioned: false, columns: [], primaryKey: null, reltuples: '12' };
    await assert.rejects(queryJson(answering(JSON.stringify({ ...empty, tables: [table] })), env, query), (e: unknown) => {
      refused(() => {
        throw e;
      }, /^psql's answer when reading the production catalog is not what twinstack expects: tables\.0\.reltuples: Expected number, received string$/);
      return true;
    });
    await assert.rejects(queryJson(answering('ERROR:  permission denied\n'), env, query), (e: unknown) => {
      refused(() => {
        throw e;
      }, /^psql's answer when reading the production catalog is not JSON/);
      return true;
    });
  });

  it('refuses a staging session result of another shape, naming the result', () => {
    const stdout = ['ts:counts:{"public.t": 3}', 'ts:leaks:[{"source":"public.u.email","table":"public.t","column":"note"}]'].join('\n');
    assert.deepEqual(parseTagged(stdout, tagged.counts), { 'public.t': 3 });
    refused(() => parseTagged(stdout, tagged.leaks), /^the staging session's leaks result is not what twinstack expects: 0\.rows: Required$/);
    refused(() => parseTagged('ts:fanout:{"public.t(a) → public.u":{"parents":2', tagged.fanout), /^the staging session's fanout result is not JSON/);
  });

  it('skips a docker stats line that is not JSON (a warning, a line cut short), keeping the others', () => {
    const line = JSON.stringify({ Name: 'app-api-1', ID: 'abc', CPUPerc: '1.5%', MemUsage: '10MiB / 1GiB', MemPerc: '1.0%' });
    assert.deepEqual(
      parseDockerStats(`{"Name":\n${line}\n[1]`).map((r) => r.name),
      ['app-api-1'],
    );
  });
});
