/**
 * Point-in-time restore's pure parts: backup_label and the recovery's log lines read, the base
 * backup chosen (or refused in one line), the WAL files a recovery needs, and the scratch server's
 * command line (no network, no published port, never prod's archive settings).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { chooseBaseBackup, parseBaseBackups, type FoundBaseBackup } from '../../src/domain/pitr';
import { OperationFailed } from '../../src/infra/errors';
import { parseBackupLabel, parsePgTime, parseRecoveryLog, recoverySettings, runScratchServer, walFilesFor } from '../../src/infra/pitr';

const LABEL = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-12-04 18:56:01 UTC
LABEL: twinstack base 20261204T185601Z
START TIMELINE: 1
`;

describe('backup_label', () => {
  it('gives the start segment and the start time', () => {
    const l = parseBackupLabel(LABEL);
    assert.equal(l.startSegment, '000000010000000000000002');
    assert.equal(l.startTime.toISOString(), '2026-12-04T18:56:01.000Z');
    assert.equal(l.label, 'twinstack base 20261204T185601Z');
  });
  it('reads numeric offsets and refuses a zone abbreviation in one line', () => {
    assert.equal(parseBackupLabel(LABEL.replace('18:56:01 UTC', '20:56:01 +02')).startTime.toISOString(), '2026-12-04T18:56:01.000Z');
    assert.throws(
      () => parseBackupLabel(LABEL.replace('UTC', 'CET')),
      (e: Error) => /log_timezone to UTC/.test(e.message) && !e.message.includes('\n'),
    );
    assert.throws(() => parseBackupLabel('LABEL: x\n'), /no START WAL LOCATION/);
  });
});

describe('times as PostgreSQL prints them', () => {
  it('keeps milliseconds and the offset', () => {
    assert.equal(parsePgTime('2026-12-04 18:56:01.123456+00')?.toISOString(), '2026-12-04T18:56:01.123Z');
    assert.equal(parsePgTime('2026-12-04 18:56:01.5-05:30')?.toISOString(), '2026-12-05T00:26:01.500Z');
    assert.equal(parsePgTime('2026-12-04 18:56:01 GMT')?.toISOString(), '2026-12-04T18:56:01.000Z');
    assert.equal(parsePgTime('yesterday'), undefined);
  });
});

describe("the recovery's log", () => {
  const log = [
    '2026-12-04 19:00:00.001 UTC [1] LOG:  starting point-in-time recovery to 2026-12-04 18:58:00+00',
    '2026-12-04 19:00:00.100 UTC [1] LOG:  restored log file "000000010000000000000003" from archive',
    '2026-12-04 19:00:00.200 UTC [1] LOG:  recovery stopping before commit of transaction 742, time 2026-12-04 18:58:00.412301+00',
    '2026-12-04 19:00:00.201 UTC [1] LOG:  redo done at 0/3001234 system usage: CPU: user: 0.00 s',
    '2026-12-04 19:00:00.201 UTC [1] LOG:  last completed transaction was at log time 2026-12-04 18:57:59.007+00',
    '2026-12-04 19:00:00.300 UTC [1] LOG:  selected new timeline ID: 2',
  ].join('\n');
  it('names the first transaction left out and the last one replayed', () => {
    const r = parseRecoveryLog(log);
    assert.deepEqual(r.stoppedBefore, { xid: '742', time: new Date('2026-12-04T18:58:00.412Z') });
    assert.equal(r.lastCompleted?.toISOString(), '2026-12-04T18:57:59.007Z');
    assert.equal(r.targetNotReached, false);
  });
  it('sees an archive that ends before the target', () => {
    const r = parseRecoveryLog('2026-12-04 19:00:00 UTC [1] FATAL:  recovery ended before configured recovery target was reached\n');
    assert.equal(r.targetNotReached, true);
    assert.equal(r.stoppedBefore, undefined);
  });
});

describe('the WAL a recovery needs', () => {
  const archive = [
    '.pgpass',
    '000000010000000000000001',
    '000000010000000000000002',
    '000000010000000000000003',
    '00000002.history',
    '000000020000000000000003',
    '000000020000000000000004.partial',
    '000000010000000000000004.partial',
  ];
  it('takes the segments from the start on, the history files and the newest .partial', () => {
    assert.deepEqual(walFilesFor(archive, '000000010000000000000002'), {
      files: ['00000001.history', '000000010000000000000002', '000000010000000000000003', '00000002.history', '000000020000000000000003']
        .filter((f) => archive.includes(f))
        .sort(),
      partial: '000000020000000000000004.partial',
    });
  });
  it('takes nothing older than the start, not even a .partial', () => {
    assert.deepEqual(walFilesFor(['000000010000000000000001.partial', '000000010000000000000001'], '000000010000000000000002'), {
      files: [],
      partial: undefined,
    });
  });
});

describe('choosing the base backup', () => {
  const at = (iso: string) => new Date(iso);
  const base = (dir: string, start: string, finished: string): FoundBaseBackup => ({
    dir,
    startTime: at(start),
    startSegment: '000000010000000000000002',
    finishedAt: at(finished),
    extraTars: [],
  });
  const bases = [base('/b/1', '2026-12-01T00:00:00Z', '2026-12-01T00:10:00Z'), base('/b/2', '2026-12-02T00:00:00Z', '2026-12-02T00:10:00Z')];
  it('takes the newest one whole before the target', () => {
    assert.equal(chooseBaseBackup(bases, at('2026-12-02T00:05:00Z'), '/b').dir, '/b/1');
    assert.equal(chooseBaseBackup(bases, at('2026-12-02T00:10:00Z'), '/b').dir, '/b/2');
    assert.equal(chooseBaseBackup(bases, 'latest', '/b').dir, '/b/2');
  });
  it('refuses a target before the oldest in one line', () => {
    assert.throws(
      () => chooseBaseBackup(bases, at('2026-12-01T00:09:59Z'), '/b'),
      (e: Error) =>
        e instanceof OperationFailed &&
        /the oldest, \/b\/1, finished at 2026-12-01T00:10:00.000Z; choose a later target/.test(e.message) &&
        !e.message.includes('\n'),
    );
    assert.throws(() => chooseBaseBackup([], 'latest', '/b'), /there is no base backup in \/b/);
  });
  it('reads the listing the host prints, a base backup whose label is unreadable set apart', () => {
    const text = `@@base 1796410561 /b/20261204T185601Z\n${LABEL}@@base 1796410600 /b/broken\n@@base 1796410700 /b/ts\n@@tar 16385.tar\n${LABEL}`;
    const r = parseBaseBackups(text);
    assert.deepEqual(
      r.bases.map((b) => [b.dir, b.finishedAt.toISOString(), b.extraTars]),
      [
        ['/b/20261204T185601Z', '2026-12-04T18:56:02.000Z', []],
        ['/b/ts', '2026-12-04T18:58:21.000Z', ['16385.tar']],
      ],
    );
    assert.equal(r.unreadable.length, 1);
    assert.throws(() => chooseBaseBackup(r.bases.slice(1), 'latest', '/b'), /holds tablespaces \(16385.tar\)/);
  });
});

describe('the scratch server', () => {
  it('has no network, publishes nothing and never archives', () => {
    const cmd = runScratchServer({
      name: 'p-twinstack-pitr',
      image: 'sha256:abc',
      dir: '/var/backups/prod/pitr/x',
      labels: {},
      settings: recoverySettings('latest'),
    });
    assert.match(cmd, /--network none /);
    // Docker's init reaps orphans: PostgreSQL as the first process would crash-restart on one exiting with 2.
    assert.match(cmd, /^docker run -d --init /);
    assert.doesNotMatch(cmd, / (-p|--publish) /);
    assert.match(cmd, /-c archive_mode=off /);
    assert.match(cmd, /-c 'restore_command=cp \/pitr\/archive\/%f %p'/);
    assert.doesNotMatch(cmd, /recovery_target_time=/);
  });
  it('stops before the target, exclusive, then promotes', () => {
    const s = recoverySettings(new Date('2026-12-04T18:58:00.250Z'));
    assert.ok(s.includes('recovery_target_time=2026-12-04 18:58:00.250+00'));
    assert.ok(s.includes('recovery_target_inclusive=off'));
    assert.ok(s.includes('recovery_target_action=promote'));
  });
});
