/**
 * Resample's fixed cost: where the seconds of a small run go, phase by phase (the report's phase
 * clock), on the Makapix-shaped fixture at 2,000 users and on a pagila-shaped one. Each database is
 * resampled twice and the second run reported (dev then exists, as in steady use). One run each:
 * compare phases within a run, not across machines or runs.
 * Usage: npx tsx bench/resample-fixed.ts [--users 2000] [--pagila-only]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { target } from '../test/harness/connect';
import { startPostgres } from '../test/harness/postgres';
import { startSshd } from '../test/harness/sshd';
import { SAMPLE_CONFIG, SCHEMA_SQL, dataSql } from '../test/fixtures/sample-schema/generate';
import { benchConfigYaml, createDevDatabase, runSql } from '../test/integration/resample-support';

const i = process.argv.indexOf('--users');
const USERS = i > 0 ? Number(process.argv[i + 1]) : 2_000;

// pagila's shape: customers renting films from a public catalog, with payments and addresses.
const PAGILA_SQL = `
CREATE TABLE country (country_id int PRIMARY KEY, country text NOT NULL);
CREATE TABLE city (city_id int PRIMARY KEY, city text NOT NULL, country_id int NOT NULL REFERENCES country);
CREATE TABLE address (address_id int PRIMARY KEY, address text NOT NULL, city_id int NOT NULL REFERENCES city, phone text NOT NULL);
CREATE TABLE store (store_id int PRIMARY KEY, manager text NOT NULL);
CREATE TABLE customer (customer_id int PRIMARY KEY, store_id int NOT NULL REFERENCES store, first_name text NOT NULL, last_name text NOT NULL, email text, address_id int NOT NULL REFERENCES address);
CREATE TABLE actor (actor_id int PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL);
CREATE TABLE category (category_id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE film (film_id int PRIMARY KEY, title text NOT NULL, description text, release_year int);
CREATE TABLE film_actor (actor_id int NOT NULL REFERENCES actor, film_id int NOT NULL REFERENCES film, PRIMARY KEY (actor_id, film_id));
CREATE TABLE film_category (film_id int NOT NULL REFERENCES film, category_id int NOT NULL REFERENCES category, PRIMARY KEY (film_id, category_id));
CREATE TABLE inventory (inventory_id int PRIMARY KEY, film_id int NOT NULL REFERENCES film, store_id int NOT NULL REFERENCES store);
CREATE TABLE rental (rental_id int PRIMARY KEY, rental_date timestamptz NOT NULL, inventory_id int NOT NULL REFERENCES inventory, customer_id int NOT NULL REFERENCES customer, return_date timestamptz);
CREATE TABLE payment (payment_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer, rental_id int REFERENCES rental, amount numeric(5,2) NOT NULL);
CREATE INDEX ON rental (customer_id); CREATE INDEX ON payment (customer_id); CREATE INDEX ON inventory (film_id);
INSERT INTO country SELECT g, 'Country ' || g FROM generate_series(1, 109) g;
INSERT INTO city SELECT g, 'City ' || g, 1 + g % 109 FROM generate_series(1, 600) g;
INSERT INTO address SELECT g, g || ' Main Street', 1 + g % 600, '555' || lpad(g::text, 7, '0') FROM generate_series(1, 603) g;
INSERT INTO store VALUES (1, 'Store one'), (2, 'Store two');
INSERT INTO customer SELECT g, 1 + g % 2, 'First' || g, 'Last' || g, 'customer' || g || '@mail.example.org', 3 + g FROM generate_series(1, 599) g;
INSERT INTO actor SELECT g, 'Actor' || g, 'Actorname' || g FROM generate_series(1, 200) g;
INSERT INTO category SELECT g, 'Category ' || g FROM generate_series(1, 16) g;
INSERT INTO film SELECT g, 'Film ' || g, 'About ' || g, 2006 FROM generate_series(1, 1000) g;
INSERT INTO film_actor SELECT DISTINCT 1 + (g * 7) % 200, 1 + g % 1000 FROM generate_series(1, 5462) g;
INSERT INTO film_category SELECT g, 1 + g % 16 FROM generate_series(1, 1000) g;
INSERT INTO inventory SELECT g, 1 + g % 1000, 1 + g % 2 FROM generate_series(1, 4581) g;
INSERT INTO rental SELECT g, '2022-01-01'::timestamptz + g * interval '10 minutes', 1 + (g * 13) % 4581, 1 + (g * 17) % 599, NULL FROM generate_series(1, 16044) g;
INSERT INTO payment SELECT g, r.customer_id, r.rental_id, 0.99 + g % 10 FROM generate_series(1, 16044) g JOIN rental r ON r.rental_id = g;
`;
const PAGILA_CONFIG = {
  root: 'customer',
  'reference-tables': ['country', 'city', 'store', 'actor', 'category', 'film', 'film_actor', 'film_category', 'inventory'],
  'public-tables': ['country', 'city', 'actor', 'category', 'film'],
  'foreign-keys': { 'customer(address_id)': 'include' },
  columns: {
    'customer.first_name': 'fake-name',
    'customer.last_name': 'fake-name',
    'customer.email': 'fake-email',
    'address.address': { sql: "'address ' || address_id" },
    'address.phone': { sql: "'555-0100'" },
    'store.manager': 'keep',
  },
};

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-bench-'));
  const [sshd, prod, dev] = await Promise.all([startSshd(), startPostgres(), startPostgres()]);
  try {
    const yaml = (prodDb: string, sample: unknown) => benchConfigYaml({ dir, prod, dev, prodDb, sample, timeoutSeconds: 600 });
    const resampleOnce = (db: string, sample: unknown, fraction: number) => {
      const job = JSON.stringify({ target: target(sshd), configYaml: yaml(db, sample), fraction });
      const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'resample-run.ts'), job], {
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      });
      if (r.status !== 0) throw new Error(`resample failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop() as string) as {
        seconds: number;
        rowsCopied: number;
        phases: Array<[string, number]>;
        calls: number[];
      };
    };
    const measure = (label: string, db: string, sql: string, sample: unknown, fraction: number) => {
      prod.psql(`CREATE DATABASE ${db}`);
      runSql(prod, db, sql);
      resampleOnce(db, sample, fraction);
      const run = resampleOnce(db, sample, fraction);
      const lines = [`${label}: ${run.rowsCopied} rows in ${run.seconds.toFixed(2)} s`];
      // Host round trips begun within each phase: a count the machine's load does not change.
      let from = 0;
      const trips = run.phases.map(([, sec]) => {
        const to = from + sec * 1000;
        const n = run.calls.filter((c) => c >= from && c < to).length;
        from = to;
        return n;
      });
      lines.push(`  ${'phase'.padEnd(55)} ${'seconds'.padStart(8)} ${'share'.padStart(6)} ${'round trips'.padStart(12)}`);
      for (const [k, [phase, sec]] of run.phases.entries())
        lines.push(
          `  ${phase.padEnd(55)} ${sec.toFixed(2).padStart(8)} ${`${((100 * sec) / run.seconds).toFixed(0)} %`.padStart(6)} ${String(trips[k]).padStart(12)}`,
        );
      lines.push(`  ${'whole run'.padEnd(55)} ${run.seconds.toFixed(2).padStart(8)} ${''.padStart(6)} ${String(run.calls.length).padStart(12)}`);
      console.log(lines.join('\n'));
      prod.psql(`DROP DATABASE ${db}`);
    };
    createDevDatabase(dev);
    if (!process.argv.includes('--pagila-only'))
      measure(`Makapix-shaped, ${USERS} users, fraction 0.1`, 'makapix_fixed', `${SCHEMA_SQL}\n${dataSql(USERS)}`, SAMPLE_CONFIG, 0.1);
    measure('pagila-shaped (599 customers, 16,044 rentals), fraction 0.1', 'pagila_fixed', PAGILA_SQL, PAGILA_CONFIG, 0.1);
  } finally {
    await Promise.all([sshd.stop(), prod.stop(), dev.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
