/**
 * backup with `wal: push`: the completed WAL segments not yet off the host go there, and nothing
 * else happens (no dump, no base backup, no environment lock). Between two base backups the WAL
 * would otherwise exist only on the VPS; run from a schedule, this sets the off-host RPO.
 *
 * Why here and not in monitor: monitor reads and never writes, takes no lock, runs with the
 * development environment's secrets and cancels a run still going when the next one starts. A push
 * writes to the backup host with offsite-ssh-key, which the backup action already takes and checks
 * (the same keys, the same sealing and check on arrival as every other off-host copy), so an
 * operator finds every copy in one action and gives its secrets to one job. No daemon: the workflow
 * schedule (`.github/workflows/wal-push.yml`, every 5 minutes at best on GitHub) is the only clock.
 *
 * Cheap when idle: one listing of the archive and one read of the marker on the VPS; the backup
 * host is reached only when there is something to send. The pushes serialise on their own lock
 * (src/domain/wal-offsite.ts), never on prod's: a deploy holding prod does not delay the WAL.
 */
import type { BackupInputs, BackupOutputs } from '../../../action-types';
import type { ActionIO, RunInfo } from '../../infra/actions-io';
import { OperationFailed } from '../../infra/errors';
import type { Host } from '../../infra/host';
import type { Logger } from '../../infra/logger';
import { Summary } from '../../infra/summary';
import type { Config } from '../../domain/config';
import { Environment } from '../../domain/environment';
import type { OffsiteKeys } from '../../domain/offsite';
import { pushWalOffsite, type WalPush } from '../../domain/wal-offsite';
import { walDir } from '../../domain/wal';
import type { WalInputs } from './wal';

export interface WalPushContext {
  host: Host;
  config: Config;
  io: ActionIO<BackupInputs & WalInputs, BackupOutputs>;
  log: Logger;
  run: RunInfo;
  lockTimeoutSeconds: number;
  keys: OffsiteKeys;
}

/** The push, its outputs and summary; a failed push fails the step (or warns, with backup.offsite.required false). */
export async function runWalPush(c: WalPushContext): Promise<void> {
  const { host, config, io, log } = c;
  const prod = new Environment('prod', config);
  const push = await pushWalOffsite({ host, config, env: prod, keys: c.keys, log, lock: { run: c.run, waitSeconds: c.lockTimeoutSeconds } });
  const status = !push.copy ? 'unchanged' : push.copy.status;
  io.output('offsite', status);
  io.output('offsite-path', push.copy?.status === 'copied' ? push.copy.location : '');
  io.output('wal-pushed', push.segments.length);
  io.output('wal-offsite-segment', push.newest?.segment ?? '');
  io.output('wal-offsite-age', push.newest?.ageSeconds ?? '');
  await io.summary(walPushSummary(push, config).toMarkdown());
  if (push.copy?.status === 'failed') {
    const line = `the push of ${push.segments.length} WAL segment(s) off the host failed at ${push.copy.stage}: ${push.copy.error}`;
    if (config.backup.offsite?.required !== false) throw new OperationFailed(line);
    log.warning(`${line} (backup.offsite.required is false: the step succeeds)`);
  }
}

/** The off-host recovery point in one line. */
export function recoveryPointLine(push: WalPush): string {
  const n = push.newest;
  if (!n) return 'No WAL segment is off the host yet: after losing the VPS, the newest off-host recovery point is the newest base backup or dump there.';
  if (n.ageSeconds === undefined) return `The newest segment off the host is \`${n.segment}\` (no longer on the VPS, so its time is not known here).`;
  return `**Off-host recovery point**: segment \`${n.segment}\`, completed ${n.time}, **${n.ageSeconds} s** behind now. Writes after it are only on the VPS (the archive, and the segment still being received) until a later push.`;
}

export function walPushSummary(push: WalPush, config: Config): Summary {
  const s = new Summary().heading('WAL off the host (prod)');
  const c = push.copy;
  if (!c) {
    s.text(
      push.present.length
        ? `✅ ${push.present.length} segment(s) after the last push were on the backup host already (a push cut short); nothing sent, the marker moved.`
        : '✅ No completed WAL segment since the last push: nothing sent.',
    );
  } else if (c.status === 'failed') {
    s.text(`❌ **The push of ${push.segments.length} WAL segment(s) failed** at ${c.stage}: ${c.error}`);
    s.list([
      `Nothing is lost on the VPS: the segments stay in \`${walDir(config)}\`, and the retention there keeps every segment not yet off the host.`,
      'Next: fix the cause above; the next scheduled push sends them (or run the backup action with wal: push now).',
    ]);
  } else {
    const checked = c.arrival === 'checked' ? 'checked on arrival with offsite-admin-key' : 'not checked on arrival (no offsite-admin-key)';
    const range = push.segments.length > 1 ? `${push.segments[0]} to ${push.segments[push.segments.length - 1]}` : push.segments[0];
    s.text(`✅ **${push.segments.length} WAL segment(s) sealed and pushed** (${range}) to \`${c.location}\`, ${checked}, ${c.seconds} s.`);
    if (push.present.length) s.text(`${push.present.length} more were on the backup host already (a push cut short) and were not sent again.`);
  }
  s.text(recoveryPointLine(push));
  s.text(
    "How often this runs sets the off-host RPO: the schedule's interval plus the time prod takes to complete a 16 MiB segment (the segment being received, `.partial`, never leaves the VPS).",
  );
  return s;
}
