/**
 * `npm run bench`: speed and memory figures, each a ratio measured within one run (these machines
 * are shared and noisy; a lone absolute time means little). Select benches with arguments:
 * `npm run bench -- backup resample vault`. Each bench is its own script, run in its own process so
 * peak-memory figures are its own.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const benches: Record<string, { script: string; args: string[]; what: string }> = {
  backup: { script: 'backup.ts', args: [], what: 'backup action vs plain pg_dump -Fc (BENCH_BACKUP_MB, default 300)' },
  resample: {
    script: 'resample.ts',
    args: [],
    what: 'resample vs bare COPY pipes, vs the scan floor (read of every table the sample reads + COPY of the sampled rows + post-data) and vs row by row; peak memory; at 5,000 and 50,000 users and at BENCH_RESAMPLE_LARGE users (default 500,000, about 29 million rows; 0 skips it)',
  },
  'resample-fixed': {
    script: 'resample-fixed.ts',
    args: [],
    what: "where a small resample's seconds go, phase by phase: Makapix-shaped at 2,000 users and pagila-shaped, the second of two runs each",
  },
  vault: { script: 'vault.ts', args: [], what: 'vault-sync (rsync) vs a per-file cp loop; a second run copies nothing' },
  rehearsal: {
    script: 'rehearsal.ts',
    args: [],
    what: 'promote rehearsal (restore of the copy, migration in a one-off container, ACCESS EXCLUSIVE holds) at two database sizes (BENCH_REHEARSAL_ROWS, default 200,000; 10x)',
  },
  rolling: { script: 'rolling.ts', args: [], what: 'failed requests and longest gap at 20 requests/s through Caddy: rolling switch vs in-place (up -d)' },
  'in-place': {
    script: 'in-place.ts',
    args: [],
    what: 'polls refused and the longest gap while the api and a slow-stopping worker are recreated in place (switchServices): docker compose v2 vs docker-compose v1',
  },
  recovery: {
    script: 'recovery.ts',
    args: [],
    what: "WAL receiver and base backup overhead on prod's writes/s, point-in-time restore time at two sizes 10x apart (BENCH_RECOVERY_ROWS, default 80,000), a second off-host push of the same backup; parts: BENCH_RECOVERY=wal,restore,offsite",
  },
  'flip-rolling': {
    script: 'flip-rolling.ts',
    args: [],
    what: 'failed requests at 20 requests/s through Caddy while the promote and rollback actions switch prod: rolling vs in place',
  },
};

const wanted = process.argv.slice(2).filter((a) => a !== '--');
const names = wanted.length ? wanted : Object.keys(benches);
for (const n of names) {
  if (!benches[n]) {
    console.error(`bench: unknown bench ${n}; known: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
}
let failed = 0;
for (const n of names) {
  const b = benches[n];
  console.log(`\n=== bench ${n}: ${b.what}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, b.script), ...b.args], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`bench ${n} failed (exit ${r.status})`);
  }
}
process.exit(failed ? 1 : 0);
