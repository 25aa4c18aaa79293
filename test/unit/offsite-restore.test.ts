/**
 * Reading the backup host's listing for a restore from the off-host copies: upload records checked
 * with their schema, base backups offered to the same choice a local restore makes (whole from the
 * time they were sealed), and the WAL a base backup needs, refused naming the first segment missing
 * from its start on, or a file no upload record vouches for.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseOffsiteArchive } from '../../src/domain/offsite';
import { offsiteBases, offsiteWalPlan } from '../../src/domain/offsite-restore';
import { chooseBaseBackup } from '../../src/domain/pitr';
import { nextSegment } from '../../src/domain/wal-retention';

const h = (c: string) => c.repeat(64);
const file = (bytes = 100) => ({ bytes, sha256: h('a'), plain: { bytes: 16 * 1024 * 1024, sha256: h('b') } });
const seg = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;
const record = (id: string, names: string[], sealedAt = '2026-12-04T10:00:00.500Z') =>
  JSON.stringify({ id, env: 'prod', sealedAt, recipients: [], files: Object.fromEntries(names.map((n) => [n, file()])) }, null, 2);

function listing(o: { bases?: Array<[string, string | undefined]>; wal?: number[]; records?: number[][] }): string {
  const lines: string[] = [];
  for (const [stamp, sealedAt] of o.bases ?? []) {
    lines.push(`@@base ${stamp}`);
    if (sealedAt) lines.push(record(`base/${stamp}`, ['base.tar.age', 'backup_manifest.age'], sealedAt));
  }
  for (const n of o.wal ?? []) lines.push(`@@file ${seg(n)}.age`);
  for (const r of o.records ?? [])
    lines.push(
      `@@record upload-${seg(r.at(-1) ?? 0)}.json`,
      record(
        'wal',
        r.map((n) => `${seg(n)}.age`),
      ),
    );
  return lines.join('\n') + '\n';
}

describe('restore from the off-host copies: what the backup host holds', () => {
  it('offers finished base backups to the local choice, whole from the second after their sealing', () => {
    const archive = parseOffsiteArchive(
      listing({
        bases: [
          ['20261204T090000Z', '2026-12-04T09:05:00.200Z'],
          ['20261204T100000Z', '2026-12-04T10:05:00.900Z'],
          ['20261204T110000Z', undefined],
        ],
      }),
    );
    const bases = offsiteBases(archive);
    assert.deepEqual(
      bases.map((b) => [b.dir, b.finishedAt.toISOString()]),
      [
        ['20261204T090000Z', '2026-12-04T09:05:01.000Z'],
        ['20261204T100000Z', '2026-12-04T10:05:01.000Z'],
      ],
    );
    assert.equal(chooseBaseBackup(bases, 'latest', 'there').dir, '20261204T100000Z');
    assert.equal(chooseBaseBackup(bases, new Date('2026-12-04T10:05:00.950Z'), 'there').dir, '20261204T090000Z');
    assert.throws(() => chooseBaseBackup(bases, new Date('2026-12-04T09:05:00Z'), 'there'), /no base backup was whole before/);
  });

  it('refuses an upload record that is not one', () => {
    assert.throws(() => parseOffsiteArchive('@@record upload-x.json\n{"id": "wal", "files": {"x.age": {"sha256": "no"}}}\n'), /upload-x\.json/);
  });

  it('takes the WAL from the base backup’s start on, every file recorded', () => {
    const archive = parseOffsiteArchive(
      listing({
        wal: [1, 2, 3, 4],
        records: [
          [1, 2],
          [3, 4],
        ],
      }),
    );
    assert.deepEqual(offsiteWalPlan(archive, seg(2), 'b@h:/p/prod'), [seg(2), seg(3), seg(4)]);
  });

  it('names the first segment missing, the start itself included', () => {
    const archive = parseOffsiteArchive(listing({ wal: [2, 3, 5, 6], records: [[2, 3, 4, 5, 6]] }));
    assert.throws(
      () => offsiteWalPlan(archive, seg(2), 'b@h:/p/prod'),
      new RegExp(`WAL segment ${seg(4)} is missing from the off-host archive b@h:/p/prod/wal`),
    );
    assert.throws(() => offsiteWalPlan(archive, seg(1), 'b@h:/p/prod'), new RegExp(`WAL segment ${seg(1)} is missing`));
    assert.throws(() => offsiteWalPlan(parseOffsiteArchive(''), seg(1), 'b@h:/p/prod'), new RegExp(`WAL segment ${seg(1)} is missing`));
  });

  it('refuses a needed segment no upload record vouches for', () => {
    const archive = parseOffsiteArchive(listing({ wal: [2, 3], records: [[2]] }));
    assert.throws(() => offsiteWalPlan(archive, seg(2), 'b@h:/p/prod'), new RegExp(`${seg(3)}\\.age has no sha256`));
  });

  it('counts segments across a log file boundary', () => {
    assert.equal(nextSegment('0000000100000000000000FF'), '000000010000000100000000');
    assert.equal(nextSegment('00000001000000000000003F', 64 * 1024 * 1024), '000000010000000100000000');
  });
});
