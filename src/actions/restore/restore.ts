/**
 * restore: point-in-time restore of prod's database from the newest base backup and the WAL
 * archive (src/domain/pitr.ts), under prod's lock. The runbook: read the target (a UTC time or
 * `latest`) → recover into a scratch server and check it → dump it as a verified backup → stop
 * prod's app services, swap the dump in (prod's previous database kept aside), start them → compare
 * prod's row counts with the scratch server's → record and summarize: the exact recovery point and
 * how many seconds before the target may be missing.
 */
import type { RestoreInputs, RestoreOutputs } from '../../../action-types';
import type { ActionDefinition } from '../runner';
import type { Config } from '../../domain/config';
import { Environment } from '../../domain/environment';
import { underLock } from '../../domain/operation';
import { isoOf, PointRestoreFailed, restoreToPoint, type PointRestore, type RecoveryTarget } from '../../domain/pitr';
import { appServices } from '../../domain/rollback';
import { restoreAsideName } from '../../domain/backup';
import { ConfigurationError, errorMessage } from '../../infra/errors';
import { executeDrill } from './drill';
import { withOffsiteArchive, type OffsiteSource } from '../../domain/offsite-restore';
import type { ActionIO } from '../../infra/actions-io';
import { agePublicKeys, isAgeIdentity } from '../../infra/age';
import { unencryptedPrivateKey } from '../../infra/ssh';
import { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';

interface Plan {
  target: RecoveryTarget;
  /** A restore drill: recover and check in a scratch server, never touch prod (./drill.ts). */
  drill: boolean;
  /** source offsite: the keys that read and decrypt the off-host copies (src/domain/offsite-restore.ts). */
  offsite?: OffsiteSource;
}

/**
 * The source input, and with offsite its two secrets (masked the moment they are read), checked
 * before anything connects: backup.offsite in the config, an admin key that is a usable private
 * key and not the VPS's login key, an age identity whose public key is one of the recipients.
 */
export function sourceInput(io: ActionIO<RestoreInputs, RestoreOutputs>, config: Config): OffsiteSource | undefined {
  const identity = io.secret('offsite-identity');
  const adminKey = io.secret('offsite-admin-key');
  const source = io.defaulted('source');
  if (source === 'local') return undefined;
  if (source !== 'offsite') throw new ConfigurationError(`input source "${validate.printable(source)}" must be local or offsite`);
  const o = config.backup.offsite;
  if (!o) throw new ConfigurationError('input source is offsite but the config has no backup.offsite: add that section (the backup host the copies are on)');
  if (!identity.trim())
    throw new ConfigurationError(
      'input offsite-identity is required with source offsite: pass the age private key of one of backup.offsite.recipients from a secret',
    );
  if (!isAgeIdentity(identity))
    throw new ConfigurationError('input offsite-identity is not an age private key: give the AGE-SECRET-KEY-1... line age-keygen wrote');
  if (!agePublicKeys(identity).some((k) => o.recipients.includes(k)))
    throw new ConfigurationError(
      'input offsite-identity is not the private key of any of backup.offsite.recipients: the copies were sealed to those keys only',
    );
  if (!adminKey.trim())
    throw new ConfigurationError("input offsite-admin-key is required with source offsite: the runner reads the copies with the backup host's admin key");
  const admin = unencryptedPrivateKey(adminKey, 'offsite-admin-key');
  const login = io.secret('ssh-key');
  if (login.trim() && !/ENCRYPTED/.test(login) && unencryptedPrivateKey(login, 'ssh-key').publicKey === admin.publicKey)
    throw new ConfigurationError(
      'input offsite-admin-key is the same key as ssh-key: the key that may delete off-host copies must never be one the VPS accepts',
    );
  return { adminKey: admin.key, identity };
}

/** The `target` input: `latest`, or an ISO-8601 time in UTC not in the future; anything else is refused in one line. */
export function parseTarget(text: string, now = new Date()): RecoveryTarget {
  const t = text.trim();
  if (t === 'latest') return 'latest';
  const shape = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/;
  const at = new Date(t);
  if (!shape.test(t) || Number.isNaN(at.getTime()) || at.toISOString().slice(0, 19) !== t.slice(0, 19))
    throw new ConfigurationError(`input target "${validate.printable(t)}" must be latest or a UTC time such as 2026-12-04T18:58:00Z`);
  if (at.getTime() > now.getTime())
    throw new ConfigurationError(`input target ${t} is in the future (it is ${now.toISOString()} now): use latest to restore everything the archive holds`);
  return at;
}

function checkWalConfig(config: Config): void {
  if (!config.backup.wal.enabled)
    throw new ConfigurationError('backup.wal is not enabled in the config: a point-in-time restore needs the WAL archive (see Continuous WAL archiving)');
}

function checkDrill(config: Config, target: RecoveryTarget): void {
  if (target !== 'latest')
    throw new ConfigurationError(
      `input target must be latest for a drill (it is ${isoOf(target)}): the drill proves everything the archive holds can be recovered`,
    );
  if (config.backup.verify !== 'restore')
    throw new ConfigurationError(
      "the drill compares row counts with the newest dump's manifest: set backup.verify: restore in the config, so backups record them",
    );
}

export const restoreAction: ActionDefinition<RestoreInputs, RestoreOutputs, Plan> = {
  name: 'restore',
  prepare({ io, config }) {
    const target = parseTarget(io.required('target', 'latest, or the UTC time to restore prod to'));
    const drill = validate.boolean(io.defaulted('drill'), 'input drill');
    checkWalConfig(config);
    if (drill) checkDrill(config, target);
    const offsite = sourceInput(io, config);
    return offsite ? { target, drill, offsite } : { target, drill };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    if (plan.drill) return executeDrill({ host, config, io, log, run, offsite: plan.offsite });
    const prod = new Environment('prod', config);
    io.output('url', prod.cfg.url);
    let done: PointRestore;
    try {
      done = await underLock(
        { host, stateDir: config['state-dir'], env: 'prod', ...prod.workScope, action: 'restore', run, log, lockTimeoutSeconds },
        async (op) => {
          const services = await appServices(host, prod);
          try {
            const c = { host, config, env: prod, log };
            const r = plan.offsite
              ? await withOffsiteArchive(c, { offsite: plan.offsite, target: plan.target }, (source) =>
                  restoreToPoint(c, { target: plan.target, services, source }),
                )
              : await restoreToPoint(c, { target: plan.target, services });
            await op.record('restore', {
              target: isoOf(plan.target),
              status: 'done',
              recoveryPoint: r.recovery.recoveryPoint.toISOString(),
              unrecoveredSeconds: r.unrecoveredSeconds,
              base: r.recovery.base.dir,
              backup: r.backup.id,
              alembicRevision: r.recovery.alembicRevision,
            });
            return r;
          } catch (e) {
            const stage = e instanceof PointRestoreFailed ? e.stage : undefined;
            await op.record('restore', { target: isoOf(plan.target), status: 'failed', stage, error: errorMessage(e) });
            throw e;
          }
        },
      );
    } catch (e) {
      await io.summary(failureSummary(config, plan.target, e).toMarkdown());
      throw e instanceof PointRestoreFailed ? e.error : e;
    }
    io.output('recovery-point', done.recovery.recoveryPoint.toISOString());
    io.output('unrecovered-seconds', done.unrecoveredSeconds);
    io.output('backup-id', done.backup.id);
    io.output('base-backup', done.recovery.base.dir);
    await io.summary(successSummary(plan.target, done).toMarkdown());
  },
};

function successSummary(target: RecoveryTarget, r: PointRestore): Summary {
  const rec = r.recovery;
  const point = rec.recoveryPoint.toISOString();
  const summary = new Summary().heading('Point-in-time restore of prod');
  summary.text(
    `✅ **prod's database is restored to ${point}**${rec.pointIsBackupStart ? ' (the base backup itself: no transaction committed after it)' : ''}.`,
  );
  summary.list([
    `recovery point: **${point}**, the commit time of the last transaction replayed`,
    target === 'latest'
      ? `target: latest (everything the WAL archive held). The restore began ${r.unrecoveredSeconds} s after the recovery point: writes committed in that window that the archive had not received are lost.`
      : `target: ${isoOf(target)}. **${r.unrecoveredSeconds} s** before the target are not recovered (from the recovery point to the target)${rec.firstLeftOut ? `; the first transaction left out committed at ${rec.firstLeftOut.toISOString()}` : ''}.`,
    ...(rec.archiveEndsBeforeTarget ? ['the WAL archive held no commit at or after the target: everything it held was replayed'] : []),
    `alembic revision now: \`${rec.alembicRevision || 'none'}\`. If the running release expects another one (the restore went back before a migration), run the rollback action to the release that matches it.`,
    `prod's database as it was before: kept as \`${r.aside}\` until the next restore. To undo: restore backup-id of a fresh backup taken before, or rename it back by hand.`,
    `from base backup \`${rec.base.dir}\` (started ${rec.base.startTime.toISOString()}) and ${rec.walFiles} WAL file(s) of ${rec.from ?? 'the VPS'}; recovered and checked in ${rec.seconds} s in a scratch server, then restored through the verified backup \`${r.backup.id}\``,
    "prod's app services were stopped for the swap and started again; next: check the app (status action) and the rows you expected.",
  ]);
  summary.table(
    ['table', 'rows (prod now = recovered copy)'],
    [...r.counts].map(([t, n]) => [t, String(n)]),
  );
  return summary;
}

function failureSummary(config: Config, target: RecoveryTarget, e: unknown): Summary {
  const stage = e instanceof PointRestoreFailed ? e.stage : 'recover';
  const state: Record<typeof stage, string> = {
    recover: "prod's database was not touched: the recovery failed in its scratch server (removed).",
    dump: "prod's database was not touched: the dump of the recovered copy failed (the scratch server is removed).",
    swap: `the swap failed: prod's previous database was put back by the restore itself (if this run was cut short, the next operation on prod puts it back). Check that \`${restoreAsideName(config.environments.prod.database.name)}\` is not the one in use.`,
    check: `prod's database was restored, but it does not match the recovered copy: the previous one is kept as \`${restoreAsideName(config.environments.prod.database.name)}\`.`,
  };
  return new Summary()
    .heading('Point-in-time restore of prod')
    .text(`❌ **The point-in-time restore of prod to ${isoOf(target)} failed**: ${errorMessage(e)}`)
    .list([
      state[stage],
      "Next: read the error above (the scratch server's last log lines are in it), run the status action, then retry with another target or after fixing the archive (monitor shows its state).",
    ]);
}
