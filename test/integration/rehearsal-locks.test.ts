/**
 * The rehearsal's pg_locks sampler against a real PostgreSQL: every line of one sample carries that
 * sample's one timestamp, so a table held through every sample is one unbroken hold.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LOCK_SAMPLE_SQL, lockHolds } from '../../src/domain/rehearsal';
import { startPostgres, type TestPostgres } from '../harness/postgres';

let pg: TestPostgres;
let holder: ChildProcess | undefined;

const client = (...args: string[]) =>
  [path.join(pg.bin, 'psql'), ['-X', '-q', '-h', '127.0.0.1', '-p', String(pg.port), '-U', pg.user, '-d', 'makapix', ...args]] as const;

before(async () => {
  pg = await startPostgres();
  pg.psql('create database makapix');
  pg.psql('create table posts (id int); create table users (id int); create table tags (id int)', 'makapix');
});
after(async () => {
  holder?.kill();
  await pg?.stop();
});

describe('the rehearsal lock sampler', () => {
  it('stamps every line of a sample with the one time of that sample, so a lock held throughout is one hold', async () => {
    const [cmd, args] = client('-c', 'begin; lock posts, users, tags in access exclusive mode; select pg_sleep(600);');
    holder = spawn(cmd, [...args], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      if (pg.psql("select count(*) from pg_locks where mode = 'AccessExclusiveLock' and granted and relation is not null", 'makapix').trim() === '3') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    // Many samples back to back, as the sampler's one session reads them (no pause: more chances to cross a millisecond).
    const [c2, a2] = client('-A', '-t', '-f', '-');
    const out = spawnSync(c2, [...a2], { input: Array<string>(3000).fill(LOCK_SAMPLE_SQL).join('\n'), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    assert.equal(out.status, 0, out.stderr);
    const lines = out.stdout.split('\n').filter(Boolean);
    const bare = lines.filter((l) => /^\d+$/.test(l));
    assert.equal(bare.length, 3000);
    let current = '';
    const stray: string[] = [];
    for (const l of lines) {
      if (/^\d+$/.test(l)) current = l;
      else if (l.split('|')[0] !== current) stray.push(`${l} in the sample of ${current}`);
    }
    assert.deepEqual(stray.slice(0, 5), [], `${stray.length} lock lines carry another time than their sample`);
    // Held in every sample: one hold per table, from the first sample to the last (plus the interval).
    const span = Number(bare[bare.length - 1]) - Number(bare[0]) + 100;
    assert.deepEqual(
      lockHolds(lines).map((h) => [h.table, h.ms]),
      ['public.posts', 'public.tags', 'public.users'].map((t) => [t, span]),
    );
  });
});
