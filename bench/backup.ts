/**
 * Backup figure: the backup action's work (pg_dump -Fc streamed through tee and sha256sum into the
 * backup directory, plus pg_dumpall --globals-only and the manifest), verification excluded, against
 * a plain `pg_dump -Fc -f` of the same database on the same host, over the same SSH connection.
 * Prints the ratio from one run. Scale: BENCH_BACKUP_MB (default 300) MB of table data.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { takeBackup } from '../src/domain/backup';
import { parseConfig } from '../src/domain/config';
import { Environment } from '../src/domain/environment';
import { MemoryLogger } from '../src/infra/logger';
import { argv } from '../src/infra/shell';
import { connect } from '../test/harness/connect';
import { startPostgres } from '../test/harness/postgres';
import { startSshd } from '../test/harness/sshd';

export async function benchBackup(): Promise<Record<string, number>> {
  const mb = Number(process.env.BENCH_BACKUP_MB ?? 300);
  const [sshd, pg] = await Promise.all([startSshd(), startPostgres()]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-bench-backup-'));
  fs.chmodSync(dir, 0o777);
  const host = await connect(sshd);
  try {
    pg.psql('create database makapix');
    // Rows of about 200 bytes: ids, a timestamp, text that compresses like real content does.
    const rows = Math.round((mb * 1024 * 1024) / 200);
    pg.psql(
      `create table posts (id bigint primary key, owner_id int, created_at timestamptz, title text, body text);
       insert into posts select g, g % 5000, now() - g * interval '1 second', 'post ' || g, md5(g::text) || repeat(md5((g * 7)::text), 4)
       from generate_series(1, ${rows}) g;`,
      'makapix',
    );
    const size = pg.psql("select pg_database_size('makapix')", 'makapix').trim();
    const config = parseConfig(
      `backup: { dir: ${dir}/backups }
environments:
  prod: {checkout: /srv/p, project: p, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: ${pg.user}, port: ${pg.port}, via: host}}
  dev: {checkout: /srv/d, project: d, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:2, database: {name: makapix_dev, user: ${pg.user}, port: 1, via: host}}
`,
      'bench',
    );
    const prod = new Environment('prod', config);
    // Warm the page cache once so neither side pays for the first read.
    await host.run(`${prod.dbTool('pg_dump', ['-Fc', '-d', 'makapix'])} > /dev/null`, { quiet: true });

    // Alternate the two, twice each, and keep each one's best time: the machine is shared and noisy.
    let plainSeconds = Infinity;
    let actionSeconds = Infinity;
    let m!: Awaited<ReturnType<typeof takeBackup>>;
    for (let i = 0; i < 2; i++) {
      let t = Date.now();
      await host.run(prod.dbTool('pg_dump', ['-Fc', '-d', 'makapix', '-f', `${dir}/plain.dump`]), { quiet: true });
      plainSeconds = Math.min(plainSeconds, (Date.now() - t) / 1000);
      t = Date.now();
      m = await takeBackup({ host, config, env: prod, ctx: {}, log: new MemoryLogger(), verify: 'list' });
      actionSeconds = Math.min(actionSeconds, (Date.now() - t) / 1000 - m.timings.verify);
    }
    await host.run(argv('rm', '-rf', dir), { quiet: true });
    return {
      'backup.database_bytes': Number(size),
      'backup.dump_bytes': m.files['db.dump'].bytes,
      'backup.plain_pg_dump_s': plainSeconds,
      'backup.action_without_verify_s': actionSeconds,
      'backup.dump_stage_s': m.timings.dump,
      'backup.globals_stage_s': m.timings.globals,
      'backup.verify_s': m.timings.verify,
      'backup.ratio_action_to_plain': actionSeconds / plainSeconds,
    };
  } finally {
    await host.close();
    await Promise.all([sshd.stop(), pg.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchBackup().then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
