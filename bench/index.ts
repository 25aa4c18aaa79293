/**
 * `npm run bench`: speed and memory figures, each a ratio measured within one run (these machines
 * are shared and noisy; a lone absolute time means little). Select benches with arguments:
 * `npm run bench -- backup`.
 */
import { benchBackup } from './backup';

const benches: Record<string, () => Promise<Record<string, number>>> = {
  backup: benchBackup,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => a !== '--');
  const names = wanted.length ? wanted : Object.keys(benches);
  for (const n of names) if (!benches[n]) throw new Error(`unknown bench ${n}; known: ${Object.keys(benches).join(', ')}`);
  const results: Record<string, number> = {};
  for (const n of names) {
    console.log(`bench ${n}…`);
    Object.assign(results, await benches[n]());
  }
  const width = Math.max(...Object.keys(results).map((k) => k.length));
  console.log('');
  for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(width)}  ${Number.isInteger(v) ? v : v.toFixed(3)}`);
}

main().catch((e) => {
  console.error(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
