/**
 * Recovery bench (issue 21), on the parts the integration tests use: prod's PostgreSQL 15 from the
 * fixture's db image in Docker (startWalDb), the VPS one sshd on loopback, the backup host a second
 * sshd whose authorized_keys confines the VPS's key with `rrsync -wo -no-del -no-overwrite`.
 * Parts (BENCH_RECOVERY=wal,restore,offsite, default all three, in one process sharing the setup):
 *   - wal: prod's write throughput (pgbench, one client, single-row INSERT transactions, for
 *     BENCH_WAL_SECONDS, default 15) without the WAL receiver, then with it (ensureWal/stopWal, the
 *     backup action's own path), alternated BENCH_WAL_ROUNDS (default 4) times in ABBA order; and the receiver's
 *     write and flush lag, sampled every second in both arms.
 *   - restore: restoreToPoint(latest), the restore action's path, at two database sizes 10x apart
 *     (BENCH_RECOVERY_ROWS posts rows of about 200 bytes, default 80,000, then 10x), each from a
 *     base backup just taken; the larger base backup runs while pgbench writes (its overhead, from
 *     pgbench's per-second progress). At the small size a restore drill runs too (restore with
 *     drill: true) and its job summary is printed as it is.
 *   - offsite: copyOffsite of the larger database's verified dump, then of the same backup again;
 *     bytes each way counted by a TCP relay in front of the backup host's sshd (every byte the VPS
 *     sends or receives there: ssh handshakes, rsync, and the read that must be refused).
 * Docker resources are named twinstack-test-<random>-bench.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { restoreAction } from '../src/actions/restore/restore';
import { takeBackup } from '../src/domain/backup';
import { parseConfig, type Config } from '../src/domain/config';
import { Environment, type EnvContext } from '../src/domain/environment';
import { connectWithAdminKey, copyOffsite, writeOnlyAuthorizedKey, type OffsiteCopy } from '../src/domain/offsite';
import { restoreToPoint } from '../src/domain/pitr';
import { baseBackup, ensureWal, stopWal } from '../src/domain/wal';
import { MemoryLogger } from '../src/infra/logger';
import type { SshHost } from '../src/infra/ssh';
import { startWalDb } from '../test/integration/wal-support';
import { connect } from '../test/harness/connect';
import { startSshd, type TestSshd } from '../test/harness/sshd';
import { runOnFake } from '../test/support/run-action';

const RUN = randomBytes(4).toString('hex');
const PROJECT = `twinstack-test-${RUN}-bench`;
const IMAGE = `twinstack-test-bench-db:${RUN}`;
const DB = `${PROJECT}-db-1`;
const PASSWORD = `wal-bench-${RUN}`;
const PARTS = (process.env.BENCH_RECOVERY ?? 'wal,restore,offsite').split(',');
const WAL_SECONDS = Number(process.env.BENCH_WAL_SECONDS ?? 15);
const WAL_ROUNDS = Number(process.env.BENCH_WAL_ROUNDS ?? 4);
const SMALL_ROWS = Number(process.env.BENCH_RECOVERY_ROWS ?? 80_000);
const WRITER = '/tmp/twinstack-bench-writer.sql';

const docker = (...args: string[]) =>
  execFileSync('docker', args, { encoding: 'utf8', timeout: 1_800_000, maxBuffer: 64 << 20, env: { ...process.env, DOCKER_BUILDKIT: '0' } }).trim();
const attempt = (...args: string[]) => spawnSync('docker', args, { encoding: 'utf8', timeout: 120_000 });
const sql = (query: string, user = 'owner', database = 'app') =>
  docker('exec', DB, 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-A', '-t', '-h', '/var/run/postgresql', '-U', user, '-d', database, '-c', query);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

interface Stand {
  root: string;
  config: Config;
  ctx: EnvContext;
  vps: TestSshd;
  backupHost: TestSshd;
  relay: Relay;
  host: SshHost;
  writeKey: string;
  figures: Record<string, number | string>;
}

/** A TCP relay in front of the backup host's sshd: bytes each way, per connection. */
interface Relay {
  port: number;
  conns: Array<{ up: number; down: number }>;
  close(): Promise<void>;
}

function startRelay(target: number): Promise<Relay> {
  const conns: Relay['conns'] = [];
  const server = net.createServer((client) => {
    const c = { up: 0, down: 0 };
    conns.push(c);
    const upstream = net.connect(target, '127.0.0.1');
    client.on('data', (d) => (c.up += d.length));
    upstream.on('data', (d) => (c.down += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ port: (server.address() as net.AddressInfo).port, conns, close: () => new Promise((r) => server.close(() => r())) }),
    ),
  );
}

async function setUp(): Promise<Stand> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-test-bench-recovery-'));
  fs.mkdirSync(path.join(root, 'keys'), { mode: 0o700 });
  const keyFile = path.join(root, 'keys', 'offsite');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'twinstack-bench', '-f', keyFile], { stdio: 'ignore' });
  const ageKey = path.join(root, 'keys', 'age.txt');
  execFileSync('age-keygen', ['-o', ageKey], { stdio: 'ignore' });
  const store = path.join(root, 'store');
  fs.mkdirSync(store);
  await startWalDb({ image: IMAGE, network: PROJECT, db: DB, project: PROJECT });
  const [vps, backupHost] = await Promise.all([
    startSshd(),
    startSshd({ authorizedKeys: [writeOnlyAuthorizedKey(store, fs.readFileSync(`${keyFile}.pub`, 'utf8'))] }),
  ]);
  const relay = await startRelay(backupHost.port);
  const offsite = {
    host: '127.0.0.1',
    port: relay.port,
    user: backupHost.user,
    path: store,
    'known-hosts': backupHost.knownHosts.replaceAll(`[127.0.0.1]:${backupHost.port}`, `[127.0.0.1]:${relay.port}`),
    recipients: [execFileSync('age-keygen', ['-y', ageKey], { encoding: 'utf8' }).trim()],
  };
  const text = fs
    .readFileSync(path.join(__dirname, '../test/fixtures/config/makapix.yml'), 'utf8')
    .replace('state-dir: /var/lib/twinstack', `state-dir: ${root}/state`)
    .replace('project: makapix-prod', `project: ${PROJECT}`)
    .replace('{ service: db, name: makapix, user: owner,', '{ service: db, name: app, user: owner,');
  const config = parseConfig(
    `${text}\nbackup:\n  dir: ${root}/backups\n  verify: restore\n  offsite: ${JSON.stringify(offsite)}\n  wal: { enabled: true, admin-user: postgres }\n` +
      `  drill:\n    smoke:\n      - SELECT count(*) FROM posts\n      - { sql: "SELECT title FROM posts WHERE id = 1", expect: post 1 }\n`,
    'twinstack.yml',
  );
  const host = await connect(vps);
  const ctx = { host, config, env: new Environment('prod', config), log: new MemoryLogger() };
  const writeKey = fs.readFileSync(keyFile, 'utf8');
  sql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); INSERT INTO alembic_version VALUES ('rev_bench')");
  sql('CREATE TABLE writes (id bigserial PRIMARY KEY, note text, at timestamptz NOT NULL DEFAULT clock_timestamp())');
  sql('CREATE TABLE posts (id bigint PRIMARY KEY, owner_id int, created_at timestamptz, title text, body text)');
  docker('exec', DB, 'sh', '-c', `echo "INSERT INTO writes (note) VALUES (md5(random()::text));" > ${WRITER}`);
  return { root, config, ctx, vps, backupHost, relay, host, writeKey, figures: {} };
}

function tearDown(s: Partial<Stand>): Promise<unknown> {
  for (const c of ['twinstack-pitr', 'twinstack-basebackup', 'twinstack-wal'].map((n) => `${PROJECT}-${n}`)) attempt('rm', '-f', '-v', c);
  attempt('rm', '-f', '-v', DB);
  attempt('network', 'rm', PROJECT);
  attempt('rmi', '-f', IMAGE);
  if (s.root) fs.rmSync(s.root, { recursive: true, force: true });
  return Promise.all([s.host?.close(), s.vps?.stop(), s.backupHost?.stop(), s.relay?.close()]);
}

interface WriterRun {
  tps: number;
  transactions: number;
  /** pgbench's per-second progress: [seconds since start, tps]. */
  progress: Array<[number, number]>;
  startedAt: number;
}

/** pgbench in prod's db container: one client, one INSERT per transaction, for `seconds`. */
function writer(seconds: number): Promise<WriterRun> {
  const startedAt = Date.now();
  const args = ['exec', DB, 'pgbench', '-n', '-h', '/var/run/postgresql', '-U', 'postgres', '-c', '1', '-T', String(seconds), '-P', '1', '-f', WRITER, 'app'];
  const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) =>
    child.on('close', (code) => {
      const tps = /^tps = ([\d.]+)/m.exec(out)?.[1];
      const n = /number of transactions actually processed: (\d+)/.exec(out)?.[1];
      if (code !== 0 || !tps || !n) return reject(new Error(`pgbench exited with ${code}: ${err.slice(-500)}${out.slice(-500)}`));
      const progress = [...err.matchAll(/^progress: ([\d.]+) s, ([\d.]+) tps/gm)].map((m) => [Number(m[1]), Number(m[2])] as [number, number]);
      resolve({ tps: Number(tps), transactions: Number(n), progress, startedAt });
    }),
  );
}

interface LagSample {
  /** pg_stat_replication.write_lag and flush_lag (seconds), as of the receiver's last reply. */
  writeLag: number;
  flushLag: number;
  /** WAL the receiver had written but not fsynced, as of its last reply (bytes). */
  unflushed: number;
}

/** The receiver's lag as prod sees it, every second until `until` resolves (nothing while no receiver is connected). */
async function sampleLag(until: Promise<unknown>): Promise<LagSample[]> {
  let done = false;
  void until.finally(() => (done = true));
  const samples: LagSample[] = [];
  const q =
    'SELECT coalesce(extract(epoch FROM write_lag), 0), coalesce(extract(epoch FROM flush_lag), 0), pg_wal_lsn_diff(write_lsn, flush_lsn) ' +
    "FROM pg_stat_replication WHERE usename = 'twinstack_wal'";
  while (!done) {
    const row = sql(q, 'postgres', 'postgres');
    if (row) {
      const [writeLag, flushLag, unflushed] = row.split('|').map(Number);
      samples.push({ writeLag, flushLag, unflushed });
    }
    await sleep(1000);
  }
  return samples;
}

/** The server's WAL position in bytes. */
const walPosition = () => Number(sql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')", 'postgres', 'postgres'));

async function walOverhead(s: Stand): Promise<void> {
  const without: number[] = [];
  const withReceiver: number[] = [];
  const lag: LagSample[] = [];
  let walBytes = 0;
  await writer(5); // warm-up
  // ABBA order: a drift of the machine's load, or an after-effect of starting or removing the
  // receiver, weighs on both arms alike.
  for (let i = 0; i < WAL_ROUNDS; i++) {
    for (const on of i % 2 ? [true, false] : [false, true]) {
      if (!on) {
        const run = writer(WAL_SECONDS);
        await sampleLag(run);
        without.push((await run).tps);
        continue;
      }
      await ensureWal(s.ctx, PASSWORD);
      const at = walPosition();
      const run = writer(WAL_SECONDS);
      lag.push(...(await sampleLag(run)));
      withReceiver.push((await run).tps);
      walBytes += walPosition() - at;
      await stopWal(s.ctx);
    }
  }
  const [a, b] = [mean(without), mean(withReceiver)];
  const walPerS = walBytes / (WAL_ROUNDS * WAL_SECONDS);
  const max = (f: (l: LagSample) => number) => Math.max(...lag.map(f));
  const med = (f: (l: LagSample) => number) => median(lag.map(f));
  console.log(
    `\nWAL archiving overhead: pgbench, 1 client, single-row INSERT transactions (synchronous_commit on), ${WAL_SECONDS} s a run, alternated off-on, on-off, ...`,
  );
  console.log(`  without the receiver: ${without.map((t) => t.toFixed(0)).join(', ')} writes/s (mean ${a.toFixed(0)})`);
  console.log(`  with pg_receivewal:   ${withReceiver.map((t) => t.toFixed(0)).join(', ')} writes/s (mean ${b.toFixed(0)})`);
  console.log(`  with / without = ${(b / a).toFixed(3)}; WAL written with the receiver: ${mb(walPerS)}/s`);
  console.log(
    `  receiver lag (pg_stat_replication, ${lag.length} samples at 1/s): write_lag median ${med((l) => l.writeLag).toFixed(3)} s, max ${max((l) => l.writeLag).toFixed(3)} s; ` +
      `flush_lag median ${med((l) => l.flushLag).toFixed(3)} s, max ${max((l) => l.flushLag).toFixed(3)} s; ` +
      `written but not fsynced median ${mb(med((l) => l.unflushed))}, max ${mb(max((l) => l.unflushed))} (= ${(max((l) => l.unflushed) / walPerS).toFixed(1)} s of these writes)`,
  );
  Object.assign(s.figures, {
    'wal.writes_per_s_without': a,
    'wal.writes_per_s_with_receiver': b,
    'wal.ratio': b / a,
    'wal.write_lag_max_s': max((l) => l.writeLag),
    'wal.flush_lag_max_s': max((l) => l.flushLag),
    'wal.unflushed_bytes_max': max((l) => l.unflushed),
    'wal.bytes_per_s': walPerS,
  });
}

/** Grows posts to `rows` rows of about 200 bytes (as in the backup and rehearsal benches). */
function fillPosts(from: number, rows: number): void {
  sql(
    `INSERT INTO posts SELECT g, g % 5000, now() - g * interval '1 second', 'post ' || g, md5(g::text) || repeat(md5((g * 7)::text), 4)
     FROM generate_series(${from + 1}, ${rows}) g`,
  );
}

/** pgbench's mean tps over the seconds inside [from, to) (ms since the epoch) and over the others. */
function splitTps(run: WriterRun, from: number, to: number): { inside: number; outside: number } {
  const at = (p: [number, number]) => run.startedAt + p[0] * 1000;
  const inside = run.progress.filter((p) => at(p) > from + 1000 && at(p) <= to);
  const outside = run.progress.filter((p) => at(p) <= from || at(p) > to + 1000);
  return { inside: mean(inside.map((p) => p[1])), outside: mean(outside.map((p) => p[1])) };
}

interface SizeRow {
  rows: number;
  dbBytes: number;
  baseBytes: number;
  baseS: number;
  recoverS: number;
  walFiles: number;
  totalS: number;
}

/** One size: a base backup (with the writer running when `underLoad`), a few writes after it, restoreToPoint(latest). */
async function restoreAt(s: Stand, rows: number, underLoad: boolean): Promise<SizeRow> {
  // The database a previous restore set aside would be in the base backup too (it is one cluster).
  sql('DROP DATABASE IF EXISTS app_twinstack_pre_restore', 'postgres', 'postgres');
  const dbBytes = Number(sql("SELECT pg_database_size('app')"));
  const load = underLoad ? writer(60) : undefined;
  if (load) await sleep(10_000);
  const from = Date.now();
  const base = await baseBackup(s.ctx, PASSWORD);
  const to = Date.now();
  const baseS = (to - from) / 1000;
  if (load) {
    const run = await load;
    const { inside, outside } = splitTps(run, from, to);
    console.log(
      `  base backup (${mb(dbBytes)} database) under the writer: ${inside.toFixed(0)} writes/s while it ran (${baseS.toFixed(1)} s), ${outside.toFixed(0)} writes/s outside it -> ${(inside / outside).toFixed(3)}`,
    );
    Object.assign(s.figures, { 'base.writes_per_s_during': inside, 'base.writes_per_s_outside': outside, 'base.ratio': inside / outside });
  }
  sql("INSERT INTO writes (note) SELECT 'after base ' || g FROM generate_series(1, 1000) g");
  const t = Date.now();
  const r = await restoreToPoint(s.ctx, { target: 'latest' });
  const totalS = (Date.now() - t) / 1000;
  if (r.counts.get('public.posts') !== rows) throw new Error(`restored ${r.counts.get('public.posts')} posts, not ${rows}`);
  const baseBytes = Object.values(base.files).reduce((a, b) => a + b, 0);
  return { rows, dbBytes, baseBytes, baseS, recoverS: r.recovery.seconds, walFiles: r.recovery.walFiles, totalS };
}

/** The drill (restore with drill: true) as the weekly workflow runs it; prints its job summary as written. */
async function drillSummary(s: Stand): Promise<void> {
  await takeBackup({ ...s.ctx, ctx: {}, verify: 'restore' });
  const r = await runOnFake(restoreAction, { host: s.host, config: s.config }, { target: 'latest', drill: 'true' });
  console.log(
    `\nRestore drill (restore, drill: true) at the small size: ${r.failure || 'passed'}; RTO ${r.outputs['rto-seconds']} s, RPO ${r.outputs['rpo-seconds']} s`,
  );
  console.log('----- job summary -----');
  console.log(r.summary.trim());
  console.log('----- end of job summary -----');
  Object.assign(s.figures, { 'drill.rto_s': Number(r.outputs['rto-seconds']), 'drill.rpo_s': Number(r.outputs['rpo-seconds']) });
}

async function restoreBySize(s: Stand): Promise<void> {
  console.log(`\nRestore time against database size: restoreToPoint(latest) (recovery in a scratch server, pg_dump of it, swap into prod)`);
  await ensureWal(s.ctx, PASSWORD);
  fillPosts(0, SMALL_ROWS);
  const small = await restoreAt(s, SMALL_ROWS, false);
  await drillSummary(s);
  fillPosts(SMALL_ROWS, SMALL_ROWS * 10);
  const large = await restoreAt(s, SMALL_ROWS * 10, true);
  const line = (what: string, f: (r: SizeRow) => number, fmt: (v: number) => string) =>
    console.log(`  ${what.padEnd(34)}${fmt(f(small)).padStart(14)}${fmt(f(large)).padStart(14)}${`${(f(large) / f(small)).toFixed(1)}x`.padStart(9)}`);
  const sec = (v: number) => `${v.toFixed(1)} s`;
  console.log(`  ${''.padEnd(34)}${'small'.padStart(14)}${'large'.padStart(14)}${'ratio'.padStart(9)}`);
  line('posts rows', (r) => r.rows, (v) => v.toLocaleString('en')); // prettier-ignore
  line('database size (pg_database_size)', (r) => r.dbBytes, mb);
  line('base backup (base.tar + manifest)', (r) => r.baseBytes, mb);
  line('base backup time', (r) => r.baseS, sec);
  line('recovery in the scratch server', (r) => r.recoverS, sec);
  line('whole restore (recover, dump, swap)', (r) => r.totalS, sec);
  line('WAL files replayed', (r) => r.walFiles, String);
  console.log(
    `  seconds per MB of database: ${(small.totalS / (small.dbBytes / 1048576)).toFixed(2)} small, ${(large.totalS / (large.dbBytes / 1048576)).toFixed(2)} large`,
  );
  for (const [k, r] of [
    ['small', small],
    ['large', large],
  ] as const)
    Object.assign(s.figures, {
      [`restore.${k}.database_bytes`]: r.dbBytes,
      [`restore.${k}.base_s`]: r.baseS,
      [`restore.${k}.recover_s`]: r.recoverS,
      [`restore.${k}.total_s`]: r.totalS,
    });
}

/** One copyOffsite of a backup, with the bytes the VPS exchanged with the backup host during it. */
async function pushOnce(
  s: Stand,
  manifest: Awaited<ReturnType<typeof takeBackup>>,
): Promise<{ copy: OffsiteCopy; up: number; down: number; conns: number; s: number }> {
  const first = s.relay.conns.length;
  const realHost = { port: s.backupHost.port, 'known-hosts': s.backupHost.knownHosts };
  const t = Date.now();
  const copy = await copyOffsite({
    ...s.ctx,
    manifest,
    keys: { write: s.writeKey, admin: s.backupHost.privateKey },
    // The runner's check on arrival goes straight to the backup host: the relay counts only the VPS's traffic.
    connectBackupHost: (o, key, log) => connectWithAdminKey({ ...o, ...realHost }, key, log),
  });
  const seconds = (Date.now() - t) / 1000;
  await sleep(500);
  const conns = s.relay.conns.slice(first);
  return { copy, up: conns.reduce((a, c) => a + c.up, 0), down: conns.reduce((a, c) => a + c.down, 0), conns: conns.length, s: seconds };
}

async function offsiteUnchanged(s: Stand): Promise<void> {
  const rows = Number(sql('SELECT count(*) FROM posts'));
  if (rows === 0) fillPosts(0, SMALL_ROWS * 10);
  const manifest = await takeBackup({ ...s.ctx, ctx: {}, verify: 'list' });
  const sizes = Object.entries(manifest.files).map(([n, f]) => `${n} ${mb(f.bytes)}`);
  const a = await pushOnce(s, manifest);
  const b = await pushOnce(s, manifest);
  const what = (p: typeof a) => (p.copy.status === 'copied' ? `copied, arrival ${p.copy.arrival}` : `failed at ${p.copy.stage}: ${p.copy.error}`);
  console.log(
    `\nOff-host copy of one verified backup (${sizes.join(', ')}), then of the same backup again (copyOffsite: age, rsync --ignore-existing, rrsync)`,
  );
  console.log(`  first push:  ${a.s.toFixed(1)} s, VPS -> backup host ${a.up} bytes, back ${a.down} bytes over ${a.conns} ssh connections; ${what(a)}`);
  console.log(`  second push: ${b.s.toFixed(1)} s, VPS -> backup host ${b.up} bytes, back ${b.down} bytes over ${b.conns} ssh connections; ${what(b)}`);
  console.log(`  second / first: bytes sent ${(b.up / a.up).toFixed(4)}, time ${(b.s / a.s).toFixed(2)}`);
  Object.assign(s.figures, {
    'offsite.first_bytes_up': a.up,
    'offsite.first_s': a.s,
    'offsite.second_bytes_up': b.up,
    'offsite.second_s': b.s,
    'offsite.second_status': b.copy.status === 'copied' ? 'copied' : `failed:${b.copy.stage}`,
  });
}

async function main(): Promise<void> {
  let s: Partial<Stand> = {};
  try {
    s = await setUp();
    const stand = s as Stand;
    console.log(
      `prod: PostgreSQL 15 (fixture db image) in Docker; VPS and backup host: sshd on loopback; ${os.cpus().length} cores, load ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    if (PARTS.includes('wal')) await walOverhead(stand);
    if (PARTS.includes('restore')) await restoreBySize(stand);
    if (PARTS.includes('offsite')) await offsiteUnchanged(stand);
    console.log(
      `\nload at the end: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    console.log(JSON.stringify(stand.figures));
  } finally {
    await tearDown(s);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
