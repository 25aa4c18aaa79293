/**
 * vault-sync: the dev vault gets the files the (freshly resampled) dev database references, copied
 * from the production vault on the host; files nothing references any more are removed.
 */
import type { VaultSyncInputs, VaultSyncOutputs } from '../../../action-types';
import type { ActionDefinition } from '../runner';
import { Summary } from '../../infra/summary';
import { boolean } from '../../infra/validate';
import { checkVaultPaths, vaultSync } from '../../resample/vault';

export const vaultSyncAction: ActionDefinition<VaultSyncInputs, VaultSyncOutputs, { dryRun: boolean }> = {
  name: 'vault-sync',
  prepare(ctx) {
    // Refuse equal, nested or root vaults before connecting.
    checkVaultPaths(ctx.config.environments.prod.vault, ctx.config.environments.dev.vault);
    return { dryRun: boolean(ctx.io.defaulted('dry-run'), 'input dry-run') };
  },
  async execute(ctx) {
    const r = await vaultSync(ctx, ctx.plan);
    const verb = r.dryRun ? 'would copy' : 'copied';
    ctx.log.info(
      `Vault: ${r.referenced} referenced files; ${verb} ${r.copied} (${r.bytesCopied} bytes); ${r.dryRun ? 'would delete' : 'deleted'} ${r.deleted} (${r.bytesDeleted} bytes); ${r.missing} missing in production.`,
    );
    ctx.io.output('files-copied', r.copied);
    ctx.io.output('bytes-copied', r.bytesCopied);
    ctx.io.output('files-deleted', r.deleted);
    ctx.io.output('missing', r.missing);
    const s = new Summary().heading(r.dryRun ? 'Vault sync (dry run: nothing changed)' : 'Vault sync into dev');
    s.table(
      ['referenced', verb, 'bytes', r.dryRun ? 'would delete' : 'deleted', 'bytes deleted', 'missing in prod'],
      [[String(r.referenced), String(r.copied), String(r.bytesCopied), String(r.deleted), String(r.bytesDeleted), String(r.missing)]],
    );
    if (r.missing)
      s.text(
        `⚠️ ${r.missing} referenced file(s) are not in the production vault (dev shows them as broken images), e.g. ${r.missingExamples.slice(0, 5).join(', ')}.`,
      );
    if (r.invalid) s.text(`⚠️ ${r.invalid} path(s) from the vault query were refused as unsafe.`);
    if (r.links) s.text(`⚠️ ${r.links} symlink(s) were found in the dev vault and removed: a vault holds files only, and something on dev created them.`);
    if (r.outside) s.text(`🛑 ${r.outside} unreferenced name(s) in the dev vault resolve outside it and were left alone: check what on dev created them.`);
    await ctx.io.summary(s.toMarkdown());
  },
};
