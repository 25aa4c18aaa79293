/**
 * The backup action with `wal: push`, on the fake VPS: which branch it takes. Refused in one line
 * before the host is touched without backup.wal or backup.offsite; with nothing new, it lists the
 * archive and sends nothing; it never takes prod's lock and never dumps; a failed push fails the
 * step unless backup.offsite.required is false. That the segments really land sealed on a backup
 * host behind rrsync is proven in test/integration/wal-push.test.ts.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { backupAction } from '../../src/actions/backup/backup';
import { parseOffsiteArchive } from '../../src/domain/offsite';
import { offsiteBaseList } from '../../src/domain/wal-offsite-retention';
import { FakeVps } from '../support/fake-vps';
import { runOnFake } from '../support/run-action';

const HOST_KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIHtRQP8nZ8VGtfOFAZuY6D8z2rVmYwK1Bb+s27Yr41ZQ';
const offsite = (required = true) =>
  `  offsite: ${JSON.stringify({
    host: 'backups.example.net',
    user: 'twinstack',
    path: '/srv/backups/makapix',
    'known-hosts': `backups.example.net ssh-ed25519 ${HOST_KEY}`,
    recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'],
    required,
  })}\n`;
const WAL = 'backup:\n  wal: { enabled: true, admin-user: postgres }\n';
const keys = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-wal-push-'));
after(() => fs.rmSync(keys, { recursive: true, force: true }));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'write-only', '-f', path.join(keys, 'w')], { stdio: 'ignore' });
const WRITE_KEY = fs.readFileSync(path.join(keys, 'w'), 'utf8');
const SEG = (n: number) => `00000001000000000000000${n}`;

/** The archive holds segments 3 and 4 and the one being received; the marker says `pushed`. */
function scene(pushed: string | undefined, required = true): FakeVps {
  const vps = new FakeVps(WAL + offsite(required));
  const h = vps.host;
  h.on('list the WAL archive', /^find \S+\/prod\/wal -mindepth 1 -maxdepth 1 -type f -printf /, {
    stdout: [SEG(3), SEG(4), `${SEG(5)}.partial`, '.pgpass', '.offsite-pushed'].join('\n'),
  });
  h.on('the marker', /^cat -- \S+\/prod\/wal\/\.offsite-pushed$/, pushed ? { stdout: `${pushed}\n` } : { exitCode: 1, stderr: 'No such file or directory' });
  h.on('when a segment was completed', /^FILE=\S+\/prod\/wal\/0{7}1\d{16}\n/, { stdout: '1000 940\n' });
  return vps;
}

describe('backup with wal: push', () => {
  it('without backup.offsite, or on dev, refuses in one line before touching the host', async () => {
    const noOffsite = new FakeVps(WAL);
    const a = await runOnFake(backupAction, noOffsite, { wal: 'push' });
    assert.match(a.failure, /input wal is push but the config has no backup\.offsite/);
    assert.equal(noOffsite.host.calls.length, 0);
    const dev = new FakeVps(WAL + offsite());
    const b = await runOnFake(backupAction, dev, { wal: 'push', environment: 'dev', 'offsite-ssh-key': WRITE_KEY });
    assert.match(b.failure, /input wal archives prod's WAL only/);
    assert.equal(dev.host.calls.length, 0);
  });

  it("with nothing new since the marker, sends nothing, takes no dump and not prod's lock, and states the off-host recovery point", async () => {
    const vps = scene(SEG(4));
    const r = await runOnFake(backupAction, vps, { wal: 'push', 'offsite-ssh-key': WRITE_KEY });
    vps.host.assertAllScripted();
    assert.equal(r.error, undefined, r.failure);
    const h = vps.host;
    assert.equal(h.indexOf(/\bage --encrypt\b/), -1, 'something was sealed');
    assert.equal(h.indexOf(/^rsync /), -1, 'something was sent');
    assert.equal(h.indexOf(/pg_dump/), -1, 'wal: push took a dump');
    assert.deepEqual(
      h.scripts(/^DIR=\S+; LOCK_FILE=/).map((s) => /LOCK_FILE=(\S+\/lock);/.exec(s)?.[1]?.split('/').slice(-3).join('/')),
      ['prod/wal-push/lock'],
    );
    assert.equal(r.outputs['wal-pushed'], '0');
    assert.equal(r.outputs['wal-offsite-segment'], SEG(4));
    assert.equal(r.outputs['wal-offsite-age'], '60');
    assert.equal(r.outputs.offsite, 'unchanged');
  });

  it('a push that fails fails the step, or only warns with backup.offsite.required false; the marker stays', async () => {
    for (const required of [true, false]) {
      const vps = scene(SEG(3), required);
      vps.host.on('offsite tools', /command -v "\$t"/, { stdout: 'age\n' });
      vps.host.on('staging removed', /^rm -rf \S+\/prod\/\.offsite-wal$/, {});
      const r = await runOnFake(backupAction, vps, { wal: 'push', 'offsite-ssh-key': WRITE_KEY });
      vps.host.assertAllScripted();
      assert.equal(vps.host.indexOf(/^rsync /), -1);
      assert.equal(vps.host.files.has(`${vps.config.backup.dir}/prod/wal/.offsite-pushed`), false, 'the marker moved');
      assert.equal(r.outputs.offsite, 'failed');
      if (required) assert.match(r.failure, /the push of 1 WAL segment\(s\) off the host failed at seal: age not installed on the VPS/);
      else assert.equal(r.error, undefined, r.failure);
    }
  });
});

describe('the off-host base backups as the admin key lists them', () => {
  const record = (id: string, meta?: Record<string, string>) =>
    JSON.stringify({ id, env: 'prod', sealedAt: '2026-01-01T00:00:00Z', recipients: ['age1x'], files: {}, ...(meta ? { meta } : {}) }, null, 2);
  it('reads each record, newest first, and a push cut short as partial', () => {
    const text = [
      '@@base 20260101T000000Z',
      record('base/20260101T000000Z', { walStart: SEG(2) }),
      '@@base 20260103T000000Z',
      '@@base 20260102T000000Z',
      record('base/20260102T000000Z'),
      '@@file 000000010000000000000002.age',
    ].join('\n');
    assert.deepEqual(offsiteBaseList(parseOffsiteArchive(text)), [
      { stamp: '20260103T000000Z', complete: false, walStart: undefined },
      { stamp: '20260102T000000Z', complete: true, walStart: undefined },
      { stamp: '20260101T000000Z', complete: true, walStart: SEG(2) },
    ]);
  });

  it('refuses a record that does not parse, naming it, rather than pruning by it', () => {
    assert.throws(() => parseOffsiteArchive('@@base 20260101T000000Z\n{"id": "base/20260101T000000Z"}\n'), /base\/20260101T000000Z\/upload\.json/);
  });
});
