/**
 * One resample in its own process, as the action runs it, so the bench can read that process's
 * peak memory. Reads a JSON job on argv[2]; prints one JSON line with the report's figures.
 */
import { parseConfig } from '../src/domain/config';
import { MemoryLogger } from '../src/infra/logger';
import { SshHost, type SshTarget } from '../src/infra/ssh';
import { resample } from '../src/resample/engine';

interface Job {
  target: SshTarget;
  configYaml: string;
  fraction: number;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]) as Job;
  const log = new MemoryLogger();
  const host = await SshHost.connect(job.target, log);
  try {
    const config = parseConfig(job.configYaml, 'bench config');
    // When each host round trip began, in ms from the run's start: every command, including the
    // lock's long-running flock (spawn); a file transfer is one command (run), counted once.
    const calls: number[] = [];
    const t0 = Date.now();
    for (const m of ['run', 'spawn'] as const) {
      const original = host[m].bind(host) as (...a: unknown[]) => Promise<unknown>;
      (host as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
        calls.push(Date.now() - t0);
        return original(...a);
      };
    }
    const report = await resample(
      { host, config, log, run: { url: 'bench', actor: 'bench', sha: '', workflow: 'bench' }, lockTimeoutSeconds: 60 },
      { dryRun: false, fraction: job.fraction, devPassword: 'bench-password' },
    );
    process.stdout.write(
      `${JSON.stringify({
        seconds: report.seconds,
        rowsCopied: report.rowsCopied,
        sshBytes: report.sshBytes.sent + report.sshBytes.received,
        maxRssKb: process.resourceUsage().maxRSS,
        phases: report.phases,
        // Production's children per parent for the representativeness report, read beside the rows.
        fanoutSeconds: (report.representativeness?.prodMs ?? 0) / 1000,
        calls,
        tables: report.tables.filter((t) => t.copied > 0).map((t) => [t.table, t.copied]),
      })}\n`,
    );
  } finally {
    await host.close();
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
