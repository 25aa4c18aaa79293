/**
 * backup.wal in the config (every bad value one line), the WAL tools' command lines as strings,
 * the scripts that prepare the role and slot, and how the archive's health is read.
 */
import { strict as assert } from 'node:assert';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { walInput, type WalInputs } from '../../src/actions/backup/wal';
import { parseConfig, type Config } from '../../src/domain/config';
import { parseWalStatus, walDir } from '../../src/domain/wal';
import { judgeHba, judgeWalSettings, type HbaRule } from '../../src/safety/wal-settings';
import { ActionIO } from '../../src/infra/actions-io';
import { ConfigurationError } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import { argv } from '../../src/infra/shell';
import { dropSlotScript, ensureRoleAndSlotScript, pgBasebackup, pgpassLine, pgReceivewal, runDetached, runOnce, scramVerifier } from '../../src/infra/wal';

const makapix = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');
const withWal = (w: Record<string, unknown>) => `${makapix}\nbackup:\n  wal: ${JSON.stringify(w)}\n`;

function rejects(w: Record<string, unknown>, message: RegExp): void {
  assert.throws(
    () => parseConfig(withWal(w), '.github/twinstack.yml'),
    (e: Error) => {
      assert.ok(e instanceof ConfigurationError, String(e));
      assert.ok(!e.message.includes('\n'), 'the error is more than one line');
      assert.match(e.message, message);
      return true;
    },
  );
}

describe('backup.wal in the config', () => {
  it('is off unless enabled, with its defaults written once', () => {
    const c = parseConfig(makapix, 'c');
    assert.deepEqual(c.backup.wal, {
      enabled: false,
      slot: 'twinstack_wal',
      role: 'twinstack_wal',
      'max-lag-seconds': 3600,
      'keep-base': 7,
      synchronous: false,
    });
    assert.equal(walDir(c), '/var/backups/twinstack/prod/wal');
    const d = parseConfig(withWal({ enabled: true, dir: '/srv/wal/', 'admin-user': 'postgres' }), 'c');
    assert.equal(walDir(d), '/srv/wal');
    assert.equal(d.backup.wal['admin-user'], 'postgres');
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown key', { enabled: true, slots: 'x' }, /: backup\.wal: unknown key "slots"$/],
    ['enabled as a string', { enabled: 'yes' }, /: backup\.wal\.enabled: Expected boolean, received string$/],
    ['a slot name with capitals', { slot: 'Wal' }, /: backup\.wal\.slot: must be lower-case letters, digits and underscores, not starting with a digit$/],
    ['a role that is SQL', { role: 'x; DROP ROLE y' }, /: backup\.wal\.role: must be lower-case letters/],
    ['a relative directory', { dir: 'wal' }, /: backup\.wal\.dir: must be an absolute path/],
    ['a directory that escapes', { dir: '/srv/../etc' }, /: backup\.wal\.dir: must not contain "\.\."$/],
    ['the root as directory', { dir: '/' }, /: backup\.wal\.dir: must not be \/$/],
    ['a lag under a minute', { 'max-lag-seconds': 5 }, /: backup\.wal\.max-lag-seconds: must be at least 60$/],
    ['a lag that is not a number', { 'max-lag-seconds': '1h' }, /: backup\.wal\.max-lag-seconds: Expected number, received string$/],
    ['no base backup kept', { 'keep-base': 0 }, /: backup\.wal\.keep-base: must be at least 1$/],
  ];
  for (const [what, w, message] of bad) it(`refuses ${what} in one line`, () => rejects(w, message));
});

describe('the WAL tools command lines', () => {
  const target = { host: 'db', port: 5432, user: 'twinstack_wal' };

  it('pg_receivewal streams a physical slot into the directory, never prompting for a password', () => {
    assert.equal(
      argv(pgReceivewal({ ...target, dir: '/wal', slot: 'twinstack_wal' })),
      'pg_receivewal -D /wal -S twinstack_wal -h db -p 5432 -U twinstack_wal --no-password',
    );
    // backup.wal.synchronous: each write flushed as it arrives; off, the same line as before (a running receiver is kept).
    assert.equal(
      argv(pgReceivewal({ ...target, dir: '/wal', slot: 's', synchronous: true })),
      'pg_receivewal -D /wal -S s -h db -p 5432 -U twinstack_wal --no-password --synchronous',
    );
    assert.equal(argv(pgReceivewal({ ...target, dir: '/wal', slot: 's', synchronous: false })), argv(pgReceivewal({ ...target, dir: '/wal', slot: 's' })));
  });

  it('pg_basebackup writes tar files, without WAL of its own, after a fast checkpoint', () => {
    assert.equal(
      argv(pgBasebackup({ ...target, dir: '/base/20260101T000000Z', label: 'twinstack base 20260101T000000Z' })),
      "pg_basebackup -D /base/20260101T000000Z -F tar -X none -c fast -l 'twinstack base 20260101T000000Z' -h db -p 5432 -U twinstack_wal --no-password",
    );
  });

  const tool = {
    image: 'sha256:abc',
    network: 'makapix-prod_default',
    mounts: [{ host: '/var/backups/twinstack/prod/wal', container: '/wal' }],
    passfile: '/wal/.pgpass',
    labels: { 'twinstack.wal-spec': '0123' },
  };

  it("the receiver runs detached from prod's image, restarted unless stopped, as the login user, its password from a file", () => {
    assert.equal(
      runDetached('makapix-prod-twinstack-wal', tool, pgReceivewal({ ...target, dir: '/wal', slot: 's' })),
      'docker run -d --restart unless-stopped --name makapix-prod-twinstack-wal --network makapix-prod_default --user "$(id -u):$(id -g)" ' +
        '-v /var/backups/twinstack/prod/wal:/wal -e PGPASSFILE=/wal/.pgpass --label twinstack.wal-spec=0123 --entrypoint pg_receivewal sha256:abc ' +
        '-D /wal -S s -h db -p 5432 -U twinstack_wal --no-password',
    );
    assert.match(
      runOnce('b', tool, ['pg_basebackup', '-D', '/base']),
      /^docker run --rm --name b --network makapix-prod_default .* --entrypoint pg_basebackup sha256:abc -D \/base$/,
    );
  });

  it('.pgpass escapes colons and backslashes, and refuses a password of two lines', () => {
    assert.equal(pgpassLine('twinstack_wal', 'a:b\\c'), '*:*:*:twinstack_wal:a\\:b\\\\c\n');
    assert.throws(() => pgpassLine('r', 'a\nb'), /one line/);
  });

  it('the role gets a SCRAM verifier, the same for the same secret, never the password', () => {
    const v = scramVerifier('twinstack_wal', 'pencil');
    assert.equal(v, scramVerifier('twinstack_wal', 'pencil'));
    assert.notEqual(v, scramVerifier('twinstack_wal', 'pencil2'));
    const m = /^SCRAM-SHA-256\$4096:([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(v);
    assert.ok(m, v);
    // RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key")).
    const salted = pbkdf2Sync('pencil', Buffer.from(m[1], 'base64'), 4096, 32, 'sha256');
    assert.equal(m[2], createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest('base64'));
    const script = ensureRoleAndSlotScript('twinstack_wal', 'twinstack_wal', v);
    assert.ok(!script.includes('pencil'));
    assert.match(
      script,
      /^\\set role 'twinstack_wal'\n\\set slot 'twinstack_wal'\n\\set verifier 'SCRAM-SHA-256\$4096:[^']+'\nSELECT CASE WHEN r\.oid IS NULL .*\n\\gexec\nSELECT 'slot:' .*pg_create_physical_replication_slot\(:'slot', true\).*\n$/,
    );
    assert.match(dropSlotScript('s'), /^\\set slot 's'\nSELECT 'slot:' .*pg_drop_replication_slot/);
    assert.throws(() => dropSlotScript("s'; x"), /quote/);
  });
});

describe('the archive health', () => {
  const name = 'makapix-prod-twinstack-wal';
  const out = (lines: string[]) => ['now 1000', ...lines].join('\n');

  it('is the age of the newest completed segment, and healthy under the threshold', () => {
    const h = parseWalStatus(
      out([
        'receiver running 1970-01-01T00:00:00Z',
        'segment 900.5 16777216 000000010000000000000003',
        'partial 990 16777216 000000010000000000000004.partial',
      ]),
      {
        name,
        maxLagSeconds: 300,
      },
    );
    assert.equal(h.lagSeconds, 100);
    assert.deepEqual(h.problems, []);
  });

  it('fails over the threshold, and when the receiver is not running', () => {
    const h = parseWalStatus(out(['receiver exited 1970-01-01T00:00:00Z', 'segment 100 16777216 000000010000000000000003']), { name, maxLagSeconds: 300 });
    assert.equal(h.lagSeconds, 900);
    assert.equal(h.problems.length, 2);
    assert.deepEqual(h.problems[0], { message: 'the WAL receiver makapix-prod-twinstack-wal is exited', fix: 'run the backup action with wal: ensure' });
    assert.match(h.problems[1].message, /900 s old, over backup\.wal\.max-lag-seconds \(300\)$/);
    assert.match(parseWalStatus(out(['receiver absent']), { name, maxLagSeconds: 300 }).problems[0].message, /is absent$/);
  });

  it("counts no lag while the receiver is on prod's current segment (an idle database completes none)", () => {
    const lines = out([
      'receiver running 1970-01-01T00:00:00Z',
      'segment 100 16777216 000000010000000000000003',
      'partial 120 100 000000010000000000000004.partial',
    ]);
    assert.equal(parseWalStatus(lines, { name, maxLagSeconds: 300, current: '000000010000000000000004' }).lagSeconds, 0);
    assert.equal(parseWalStatus(lines, { name, maxLagSeconds: 300, current: '000000010000000000000005' }).lagSeconds, 900);
  });

  it("before the first segment, counts from the receiver's start", () => {
    assert.equal(parseWalStatus(out(['receiver running 1970-01-01T00:15:00Z']), { name, maxLagSeconds: 300 }).lagSeconds, 100);
  });
});

describe("backup's wal input", () => {
  class Inputs extends ActionIO<WalInputs, unknown> {
    constructor(
      private readonly values: Partial<WalInputs>,
      log: MemoryLogger,
    ) {
      super(log);
    }
    override input(name: keyof WalInputs): string {
      return this.values[name] ?? '';
    }
    override secret(name: keyof WalInputs): string {
      const v = this.values[name] ?? '';
      if (v) this.log.secret(v);
      return v;
    }
  }
  const on = parseConfig(withWal({ enabled: true }), 'c');
  const read = (values: Partial<WalInputs>, config: Config = on, env: 'prod' | 'dev' = 'prod', log = new MemoryLogger()) =>
    walInput(new Inputs(values, log), config, env);
  const refuses = (values: Partial<WalInputs>, message: RegExp, config: Config = on, env: 'prod' | 'dev' = 'prod') =>
    assert.throws(
      () => read(values, config, env),
      (e: Error) => e instanceof ConfigurationError && !e.message.includes('\n') && message.test(e.message),
    );

  it('is nothing when not given, ensure with its password masked, or off', () => {
    assert.equal(read({}), undefined);
    const log = new MemoryLogger();
    assert.deepEqual(read({ wal: 'ensure', 'wal-password': 'hunter22' }, on, 'prod', log), { mode: 'ensure', password: 'hunter22' });
    log.info('the password is hunter22');
    assert.ok(!log.text.includes('hunter22'), 'the password was not masked');
    assert.deepEqual(read({ wal: 'off' }, parseConfig(makapix, 'c')), { mode: 'off' });
  });

  it('refuses what cannot work, in one line saying what to change', () => {
    refuses({ wal: 'on' }, /^input wal "on" must be ensure, off or push$/);
    refuses({ wal: 'push' }, /input wal is push but the config has no backup\.offsite/);
    refuses({ wal: 'push' }, /input wal is push but backup\.wal\.enabled is false in the config/, parseConfig(makapix, 'c'));
    refuses({ wal: 'ensure', 'wal-password': 'x' }, /archives prod's WAL only: run it with environment: prod/, on, 'dev');
    refuses({ wal: 'ensure', 'wal-password': 'x' }, /backup\.wal\.enabled is false in the config: set it to true/, parseConfig(makapix, 'c'));
    refuses({ wal: 'ensure' }, /input wal-password is required with wal: ensure: pass the password of the replication role twinstack_wal from a secret/);
    refuses({ 'wal-password': 'x' }, /input wal-password is given but input wal is not/);
  });
});

describe("preflight's wal-settings", () => {
  it('passes the defaults of PostgreSQL 10 and later', () => {
    assert.deepEqual(judgeWalSettings('max_replication_slots|10\nmax_wal_senders|10\nwal_level|replica\n'), []);
    assert.deepEqual(judgeWalSettings('max_replication_slots|1\nmax_wal_senders|2\nwal_level|logical\n'), []);
  });

  it('names each setting to change, with the command line for the prod overlay, one line each', () => {
    const f = judgeWalSettings('max_replication_slots|0\nmax_wal_senders|0\nwal_level|minimal\n');
    assert.deepEqual(
      f.map((x) => `${x.message}. Fix: ${x.fix}`),
      [
        "prod's db has wal_level=minimal: pg_receivewal needs replica. Fix: set wal_level=replica (command: postgres -c wal_level=replica) in the prod overlay, then recreate prod's db container",
        "prod's db has max_wal_senders=0: the receiver and a base backup each take one. Fix: set max_wal_senders=10 (command: postgres -c max_wal_senders=10) in the prod overlay, then recreate prod's db container",
        "prod's db has max_replication_slots=0: the receiver streams from a slot. Fix: set max_replication_slots=10 (command: postgres -c max_replication_slots=10) in the prod overlay, then recreate prod's db container",
      ],
    );
    assert.ok(f.every((x) => x.check === 'wal-settings' && x.environment === 'prod' && x.severity === 'error'));
    assert.equal(judgeWalSettings('', 'warning').length, 3);
  });
});

describe("preflight's reading of pg_hba for the receiver", () => {
  const rule = (line: number, fields: Partial<HbaRule>): HbaRule => ({
    line,
    type: 'host',
    database: ['replication'],
    user: ['all'],
    address: 'samenet',
    netmask: null,
    method: 'scram-sha-256',
    error: null,
    ...fields,
  });
  const from = { ip: '172.18.0.2', prefix: 16 };
  /** The official image's pg_hba.conf: local trust, loopback, and `host all all all scram-sha-256`. */
  const official = [
    rule(89, { type: 'local', database: ['all'], address: null, method: 'trust' }),
    rule(90, { type: 'local', address: null, method: 'trust' }),
    rule(91, { address: '127.0.0.1', netmask: '255.255.255.255', method: 'trust' }),
    rule(100, { database: ['all'], address: 'all' }),
  ];

  it("says the official image's rules admit no replication connection from the compose network: `all` is not `replication`", () => {
    assert.equal(
      judgeHba(official, 'twinstack_wal', from),
      "prod's pg_hba.conf has no rule that admits replication connections of twinstack_wal from 172.18.0.2/16",
    );
  });

  it('admits the README line, samenet or a CIDR covering the whole network, for the role or all', () => {
    assert.equal(judgeHba([...official, rule(101, { user: ['twinstack_wal'] })], 'twinstack_wal', from), undefined);
    assert.equal(judgeHba([rule(1, { address: '172.18.0.0', netmask: '255.255.0.0' })], 'twinstack_wal', from), undefined);
    assert.equal(judgeHba([rule(1, { type: 'hostssl', address: 'all' })], 'twinstack_wal', from), undefined);
  });

  it('refuses a rule for another role, another network, a narrower mask, a broken line, or a local socket', () => {
    for (const r of [
      rule(1, { user: ['someone_else'] }),
      rule(1, { address: '10.0.0.0', netmask: '255.0.0.0' }),
      rule(1, { address: '172.18.0.0', netmask: '255.255.255.0' }),
      rule(1, { error: 'invalid authentication method' }),
      rule(1, { type: 'local', address: null }),
    ])
      assert.match(judgeHba([r], 'twinstack_wal', from) ?? '', /has no rule that admits/, JSON.stringify(r));
  });

  it('the first rule that matches decides: a reject above the admitting line refuses', () => {
    const rules = [rule(5, { address: 'all', method: 'reject' }), rule(6, {})];
    assert.equal(judgeHba(rules, 'twinstack_wal', from), "prod's pg_hba.conf line 5 rejects replication connections of twinstack_wal from 172.18.0.2/16");
  });

  it('with host networking, samehost or loopback admits', () => {
    const lo = { ip: '127.0.0.1', prefix: 32 };
    assert.equal(judgeHba([rule(1, { address: 'samehost' })], 'twinstack_wal', lo), undefined);
    assert.equal(judgeHba([rule(1, { address: '127.0.0.1', netmask: '255.255.255.255' })], 'twinstack_wal', lo), undefined);
  });
});
