/**
 * Continuous WAL archiving (backup.wal) against a real PostgreSQL 15 in a real container, over a
 * real OpenSSH server: ensure starts pg_receivewal from prod's own db image on prod's network, rows
 * written to prod land in an archived 16 MiB segment on the host, a second ensure changes nothing,
 * the health check fails when the receiver is stopped, and off removes the container and the slot.
 * Every check reads the host (docker, the WAL directory, pg_replication_slots), not twinstack's words.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type Config } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { baseBackup, ensureWal, receiverName, stopWal, walDir, walHealth } from '../../src/domain/wal';
import { pruneBaseBackups } from '../../src/domain/wal-retention';
import { backupAction } from '../../src/actions/backup/backup';
import { runMonitor } from '../../src/actions/monitor/monitor';
import { MemoryLogger } from '../../src/infra/logger';
import { walSettingFindings } from '../../src/safety/wal-settings';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { runOnFake } from '../support/run-action';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd';
import { startWalDb, walSuite } from './wal-support';

const { RUN, PROJECT, IMAGE, NETWORK, DB, docker, attempt, psql } = walSuite('wal');
const PASSWORD = `wal-secret-${RUN}-not-in-any-log`;
const SEGMENT = 16 * 1024 * 1024;

/** psql as the superuser inside prod's db container. */
const sql = (query: string) => psql(query, { user: 'postgres' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let skip: string | false = sshdAvailable() ?? false;
if (!skip && attempt('image', 'inspect', 'twinstack-fixture-base:latest').status !== 0)
  skip = 'the fixture base image is missing (bash test/e2e/support/base-image.sh)';

let sshd: TestSshd;
let host: SshHost;
let root: string;
let config: Config;
let prod: Environment;
const log = new MemoryLogger();

function configFor(backupDir: string): Config {
  const text = fs
    .readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8')
    .replace('project: makapix-prod', `project: ${PROJECT}`)
    .replace('{ service: db, name: makapix, user: owner,', '{ service: db, name: app, user: owner,')
    .replace('url: https://makapix.club', 'url: http://127.0.0.1:9')
    .replace('state-dir: /var/lib/twinstack', `state-dir: ${path.dirname(backupDir)}/state`);
  const monitor = 'monitor: { requests: 1, request-timeout-seconds: 1 }';
  return parseConfig(
    `${text}\n${monitor}\nbackup:\n  dir: ${backupDir}\n  wal: { enabled: true, admin-user: postgres, max-lag-seconds: 60 }\n`,
    'twinstack.yml',
  );
}

function cleanUp(): void {
  for (const c of [`${PROJECT}-twinstack-wal`, DB]) attempt('rm', '-f', '-v', c);
  attempt('network', 'rm', NETWORK);
  attempt('rmi', '-f', IMAGE);
}

describe('continuous WAL archiving of prod', { skip }, () => {
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-wal-'));
    config = configFor(path.join(root, 'backups'));
    prod = new Environment('prod', config);
    try {
      await startWalDb({ image: IMAGE, network: NETWORK, db: DB, project: PROJECT });
      sshd = await startSshd();
      host = await connect(sshd, {}, log);
    } catch (e) {
      cleanUp();
      throw e;
    }
  });
  after(async () => {
    await host?.close();
    await sshd?.stop();
    cleanUp();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("ensure starts pg_receivewal from prod's own image, streaming on a slot it creates", async () => {
    assert.equal(sql('SELECT count(*) FROM pg_replication_slots'), '0');
    // Preflight reads prod's real settings: PostgreSQL 15's defaults allow streaming replication.
    assert.deepEqual(await walSettingFindings(host, config, false), []);
    const r = await ensureWal({ host, config, env: prod, log }, PASSWORD);
    const name = receiverName(prod);
    assert.equal(r.receiver, 'created');
    const [running, image, network, restart] = docker(
      'inspect',
      '--format',
      '{{.State.Running}} {{.Image}} {{.HostConfig.NetworkMode}} {{.HostConfig.RestartPolicy.Name}}',
      name,
    ).split(' ');
    assert.deepEqual([running, network, restart], ['true', NETWORK, 'unless-stopped']);
    assert.equal(image, docker('inspect', '--format', '{{.Image}}', DB), "the receiver does not run prod's db image");
    assert.equal(sql("SELECT slot_type || ' ' || active FROM pg_replication_slots WHERE slot_name = 'twinstack_wal'"), 'physical true');
    assert.equal(sql("SELECT rolreplication AND rolcanlogin FROM pg_roles WHERE rolname = 'twinstack_wal'"), 't');
    assert.equal(sql("SELECT count(*) FROM pg_stat_replication WHERE usename = 'twinstack_wal'"), '1');
  });

  it("preflight says in one line when prod's pg_hba.conf admits no replication connection from the compose network", async () => {
    const hba = (script: string) => docker('exec', DB, 'sh', '-c', script);
    hba('cp "$PGDATA/pg_hba.conf" "$PGDATA/pg_hba.conf.keep" && sed -i "/^host replication all samenet/d" "$PGDATA/pg_hba.conf"');
    try {
      const findings = await walSettingFindings(host, config, false);
      assert.deepEqual(
        findings.map((f) => [f.severity, f.message.replace(/from \S+$/, 'from <db network>')]),
        [['error', "prod's pg_hba.conf has no rule that admits replication connections of twinstack_wal from <db network>"]],
      );
      const net = `{{(index .NetworkSettings.Networks "${NETWORK}")`;
      const at = docker('inspect', '--format', `${net}.IPAddress}}/${net}.IPPrefixLen}}`, DB);
      assert.ok(findings[0].message.endsWith(`from ${at}`), `${findings[0].message} (the db is at ${at})`);
      assert.match(findings[0].fix, /^add "host replication twinstack_wal samenet scram-sha-256" to pg_hba\.conf/);
    } finally {
      hba('mv "$PGDATA/pg_hba.conf.keep" "$PGDATA/pg_hba.conf"');
    }
    assert.deepEqual(await walSettingFindings(host, config, false), []);
  });

  it('archives rows written to prod: after a WAL switch the segment holding them is a complete 16 MiB file on the host', async () => {
    sql('CREATE TABLE orders (id serial PRIMARY KEY, note text)');
    sql("INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, 1000) g");
    const segment = sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
    const rel = sql("SELECT (SELECT oid FROM pg_database WHERE datname = 'app') || '/' || pg_relation_filenode('orders')");
    sql('SELECT pg_switch_wal()');
    const file = path.join(walDir(config), segment);
    for (let i = 0; i < 60 && !fs.existsSync(file); i++) await sleep(500);
    assert.ok(fs.existsSync(file), `${segment} was not archived: ${fs.readdirSync(walDir(config)).join(', ')}`);
    assert.equal(fs.statSync(file).size, SEGMENT);
    // The archived segment holds the 1000 inserts into the table (pg_waldump from the same image).
    const dump = docker(
      'run',
      '--rm',
      '--network',
      'none',
      '--user',
      '0:0',
      '-v',
      `${walDir(config)}:/wal:ro`,
      '--entrypoint',
      'pg_waldump',
      IMAGE,
      `--relation=1663/${rel}`,
      `/wal/${segment}`,
    );
    assert.equal(dump.split('\n').filter((l) => /desc: INSERT\b/.test(l)).length, 1000);
    assert.equal((await walHealth(host, config, prod)).problems.length, 0);
  });

  it('a second ensure changes nothing: the same container keeps running', async () => {
    const name = receiverName(prod);
    const before = docker('inspect', '--format', '{{.Id}} {{.State.StartedAt}}', name);
    const r = await ensureWal({ host, config, env: prod, log }, PASSWORD);
    assert.equal(r.receiver, 'unchanged');
    assert.equal(docker('inspect', '--format', '{{.Id}} {{.State.StartedAt}}', name), before);
  });

  it('keeps the password out of the log, every command line and the container', () => {
    assert.ok(!log.text.includes(PASSWORD), 'the replication password reached the log');
    assert.ok(!docker('inspect', receiverName(prod)).includes(PASSWORD), 'the replication password is in the container');
    const pgpass = path.join(walDir(config), '.pgpass');
    assert.equal(fs.statSync(pgpass).mode & 0o077, 0, '.pgpass is readable by others');
  });

  it('a base backup is tar files in a dated directory, and the archive holds the WAL it starts from', async () => {
    const b = await baseBackup({ host, config, env: prod, log }, PASSWORD, new Date('2026-01-02T03:04:05Z'));
    assert.equal(b.dir, path.join(root, 'backups', 'prod', 'base', '20260102T030405Z'));
    assert.deepEqual(fs.readdirSync(b.dir).sort(), ['backup_manifest', 'base.tar']);
    const label = execFileSync('tar', ['-xOf', path.join(b.dir, 'base.tar'), 'backup_label'], { encoding: 'utf8' });
    const start = /^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$/m.exec(label)?.[1];
    assert.ok(start, label);
    assert.match(execFileSync('tar', ['-tf', path.join(b.dir, 'base.tar')], { encoding: 'utf8' }), /^PG_VERSION$/m);
    sql('SELECT pg_switch_wal()');
    const file = path.join(walDir(config), start);
    for (let i = 0; i < 60 && !fs.existsSync(file); i++) await sleep(500);
    assert.equal(fs.statSync(file).size, SEGMENT, `the archive lacks ${start}, where the base backup starts`);
    assert.equal(attempt('inspect', `${PROJECT}-twinstack-basebackup`).status === 0, false, 'the base backup container was left');
  });

  it('the backup action with wal: ensure dumps prod, checks the receiver, then takes a base backup, and records each in the host log', async () => {
    const bases = () => (fs.existsSync(path.join(root, 'backups', 'prod', 'base')) ? fs.readdirSync(path.join(root, 'backups', 'prod', 'base')) : []);
    const before = bases();
    // pg_dump runs as prod's own user, which owns what the app creates.
    sql('ALTER TABLE orders OWNER TO owner');
    const run = await runOnFake(backupAction, { config, host }, { environment: 'prod', 'ssh-key': sshd.privateKey, wal: 'ensure', 'wal-password': PASSWORD });
    assert.equal(run.error, undefined, run.failure);
    const added = bases().filter((d) => !before.includes(d));
    assert.equal(added.length, 1, `new base backups: ${added.join(', ')}`);
    assert.deepEqual(fs.readdirSync(path.join(root, 'backups', 'prod', 'base', added[0])).sort(), ['backup_manifest', 'base.tar']);
    const records = fs
      .readFileSync(path.join(root, 'state', 'prod', 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; status?: string; stamp?: string });
    const events = records.map((r) => r.event).filter((e) => ['backup', 'wal', 'base-backup'].includes(e));
    assert.deepEqual(events, ['backup', 'wal', 'base-backup']);
    const base = records.find((r) => r.event === 'base-backup');
    assert.deepEqual([base?.status, base?.stamp], ['done', added[0]]);
    assert.ok(!run.log.lines.some((l) => l.includes(PASSWORD)), 'the replication password reached the log');
  });

  it('retention keeps the newest keep-base base backups and every WAL segment from the oldest kept one on; nothing else of the archive goes', async () => {
    const baseRoot = path.join(root, 'backups', 'prod', 'base');
    const wal = walDir(config);
    // Another base backup, then a segment switch, so the archive holds segments on both sides of where it starts.
    sql("INSERT INTO orders (note) SELECT 'later ' || g FROM generate_series(1, 100) g");
    sql('SELECT pg_switch_wal()');
    await sleep(1100);
    const newest = await baseBackup({ host, config, env: prod, log }, PASSWORD);
    sql('SELECT pg_switch_wal()');
    const label = execFileSync('tar', ['-xOf', path.join(newest.dir, 'base.tar'), 'backup_label'], { encoding: 'utf8' });
    const start = /\(file ([0-9A-F]{24})\)/.exec(label)?.[1] ?? '';
    for (let i = 0; i < 60 && !fs.existsSync(path.join(wal, start)); i++) await sleep(500);
    // Planted beside the real segments: an old one on another timeline, a history file, names no segment has.
    const planted = ['000000020000000000000000', '00000002.history', '000000010000000000000000.partial', 'notes\nwith a newline', '00000001000000000000000 '];
    for (const f of planted) fs.writeFileSync(path.join(wal, f), 'planted');
    const before = fs.readdirSync(wal);
    const segments = before.filter((f) => /^[0-9A-F]{24}$/.test(f)).sort((a, b) => a.slice(8).localeCompare(b.slice(8)) || a.localeCompare(b));
    const older = segments.filter((f) => f.slice(8) < start.slice(8) && f !== segments.at(-1));
    assert.ok(older.length >= 2, `too few segments older than ${start} to prove anything: ${segments.join(' ')}`);
    const basesBefore = fs.readdirSync(baseRoot);
    assert.ok(basesBefore.length >= 3, basesBefore.join(' '));

    const keepOne = { ...config, backup: { ...config.backup, wal: { ...config.backup.wal, 'keep-base': 1 } } };
    const r = await pruneBaseBackups({ host, config: keepOne, env: prod, log });
    assert.deepEqual(fs.readdirSync(baseRoot), [newest.stamp]);
    // The receiver may open its next .partial meanwhile (WAL written after the switch): not the retention's doing.
    const settled = (names: string[]) => names.filter((f) => !/^[0-9A-F]{24}\.partial$/.test(f) || planted.includes(f)).sort();
    assert.deepEqual(settled(fs.readdirSync(wal)), settled(before.filter((f) => !older.includes(f))));
    assert.ok(fs.existsSync(path.join(wal, start)), `the segment the kept base backup starts from (${start}) went`);
    assert.equal(r.start, start);
    for (const f of planted.slice(1)) assert.ok(fs.existsSync(path.join(wal, f)), `${JSON.stringify(f)} was deleted`);
    assert.ok(fs.existsSync(path.join(wal, '.pgpass')));
    for (const f of planted.slice(1)) fs.rmSync(path.join(wal, f));
  });

  it('retention deletes no WAL while no base backup exists', async () => {
    const elsewhere = path.join(root, 'no-base-backups');
    const noBase = { ...config, backup: { ...config.backup, dir: elsewhere, wal: { ...config.backup.wal, dir: walDir(config), 'keep-base': 1 } } };
    const before = fs.readdirSync(walDir(config)).sort();
    const r = await pruneBaseBackups({ host, config: noBase, env: prod, log });
    assert.deepEqual(fs.readdirSync(walDir(config)).sort(), before);
    assert.deepEqual(r.walRemoved, []);
  });

  it('monitor fails when the receiver is stopped', async () => {
    const wal = (r: Awaited<ReturnType<typeof runMonitor>>) => r.findings.filter((f) => f.check === 'wal-archive' && f.severity === 'error');
    assert.deepEqual(wal(await runMonitor(host, config, log)), []);
    docker('stop', receiverName(prod));
    assert.equal(docker('inspect', '--format', '{{.State.Running}}', receiverName(prod)), 'false');
    assert.equal(wal(await runMonitor(host, config, log)).length, 1);
    const h = await walHealth(host, config, prod);
    assert.equal(h.receiver, 'exited');
    assert.deepEqual(
      h.problems.map((p) => p.message),
      [`the WAL receiver ${receiverName(prod)} is exited`],
    );
  });

  it('off removes the receiver and drops the slot, so prod keeps no WAL for it', async () => {
    await ensureWal({ host, config, env: prod, log }, PASSWORD);
    assert.equal(sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'twinstack_wal'"), 't');
    await stopWal({ host, config, env: prod, log });
    assert.notEqual(attempt('inspect', receiverName(prod)).status, 0, 'the receiver container is still there');
    assert.equal(sql('SELECT count(*) FROM pg_replication_slots'), '0');
    // Archived WAL stays on the host.
    assert.ok(fs.readdirSync(walDir(config)).some((f) => /^[0-9A-F]{24}$/.test(f)));
  });
});
