/**
 * The retention's pure parts: an LSN to the WAL file holding it (checked against what PostgreSQL's
 * own pg_walfile_name gives), the start file read from a backup_label and a backup_manifest, the
 * base backup listing and which backups the retention keeps. That the deletion on the host keeps
 * exactly the WAL the kept backups need is proven in test/integration/wal.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { labelStartFile, manifestStartFile, parseBaseListing, planBaseRetention, walFileName } from '../../src/domain/wal-retention';

describe('an LSN to its WAL file name', () => {
  it('gives the timeline, the log and the segment, as pg_walfile_name does inside a segment', () => {
    // SELECT pg_walfile_name('0/2000028') on timeline 1: 000000010000000000000002
    assert.equal(walFileName('0/2000028', 1), '000000010000000000000002');
    assert.equal(walFileName('0/0', 1), '000000010000000000000000');
    assert.equal(walFileName('0/FFFFFFFF', 1), '0000000100000000000000FF');
    // The high half is the log: 16 MiB segments, 256 to a log.
    assert.equal(walFileName('1/0', 1), '000000010000000100000000');
    assert.equal(walFileName('2A/C5000060', 3), '000000030000002A000000C5');
    assert.equal(walFileName('FFFFFFFF/FF000000', 0x1f), '0000001FFFFFFFFF000000FF');
  });

  it('names the segment starting at an LSN on its first byte (where a backup starts)', () => {
    assert.equal(walFileName('0/3000000', 1), '000000010000000000000003');
  });

  it('follows a wal_segment_size other than 16 MiB', () => {
    // 64 MiB segments: 64 to a log; 0/C000000 is byte 192 MiB, segment 3.
    assert.equal(walFileName('0/C000000', 1, 64 * 1024 * 1024), '000000010000000000000003');
    assert.equal(walFileName('1/4000000', 2, 64 * 1024 * 1024), '000000020000000100000001');
    assert.equal(walFileName('0/100000', 1, 1024 * 1024), '000000010000000000000001');
  });

  it('refuses what is not an LSN, a timeline or a segment size', () => {
    assert.throws(() => walFileName('0x10', 1), /"0x10" is not an LSN/);
    assert.throws(() => walFileName('0/1', 0), /not a timeline/);
    assert.throws(() => walFileName('0/1', 1, 3_000_000), /not a WAL segment size/);
  });
});

describe("a base backup's start file", () => {
  it('is named by backup_label', () => {
    const label = 'START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nCHECKPOINT LOCATION: 0/5000060\nBACKUP METHOD: streamed\n';
    assert.equal(labelStartFile(label), '000000010000000000000005');
    assert.equal(labelStartFile('LABEL: x\n'), undefined);
  });

  it("is the backup_manifest's first WAL range's Start-LSN on its timeline", () => {
    const manifest = JSON.stringify({
      'PostgreSQL-Backup-Manifest-Version': 1,
      Files: [],
      'WAL-Ranges': [{ Timeline: 2, 'Start-LSN': '0/7000028', 'End-LSN': '0/7000100' }],
    });
    assert.equal(manifestStartFile(manifest), '000000020000000000000007');
    assert.throws(() => manifestStartFile('{"Files": []}'), /backup_manifest is not what twinstack expects/);
  });
});

describe('the base backup retention', () => {
  const listing = [
    '1 d 20260101T000000Z',
    '2 f 20260101T000000Z/base.tar',
    '2 f 20260101T000000Z/backup_manifest',
    '1 d 20260102T000000Z',
    '2 f 20260102T000000Z/base.tar',
    '1 d 20260103T000000Z',
    '2 f 20260103T000000Z/base.tar',
    '2 f 20260103T000000Z/backup_manifest',
    '1 d 20260104T000000Z',
    '2 f 20260104T000000Z/base.tar',
    '2 f 20260104T000000Z/backup_manifest',
    '1 d 20260105T000000Z',
    '1 d not-a-stamp',
    '1 f 20260106T000000Z',
  ].join('\n');

  it('lists the dated directories newest first, complete when backup_manifest is there', () => {
    assert.deepEqual(parseBaseListing(listing), [
      { stamp: '20260105T000000Z', complete: false },
      { stamp: '20260104T000000Z', complete: true },
      { stamp: '20260103T000000Z', complete: true },
      { stamp: '20260102T000000Z', complete: false },
      { stamp: '20260101T000000Z', complete: true },
    ]);
  });

  it('keeps the newest complete ones; removes older complete ones and broken ones older than the newest complete one', () => {
    assert.deepEqual(planBaseRetention(parseBaseListing(listing), 2), {
      kept: ['20260104T000000Z', '20260103T000000Z'],
      removed: ['20260102T000000Z', '20260101T000000Z'],
    });
    assert.deepEqual(planBaseRetention(parseBaseListing(listing), 7), {
      kept: ['20260104T000000Z', '20260103T000000Z', '20260101T000000Z'],
      removed: ['20260102T000000Z'],
    });
  });

  it('with no complete base backup, removes nothing', () => {
    assert.deepEqual(planBaseRetention([{ stamp: '20260102T000000Z', complete: false }], 1), { kept: [], removed: [] });
  });
});
