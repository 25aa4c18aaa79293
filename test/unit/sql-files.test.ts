/**
 * Static SQL lives in .sql files under src/, read as one line each (sqlFile): every file is one
 * statement that PostgreSQL's own parser accepts, and reads the same once its comments are gone.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, it } from 'node:test';
import { parseSql, sqlParserReady } from '../../src/infra/pg-parser';
import { sqlFile } from '../../src/infra/sql';

const root = path.join(__dirname, '..', '..');
const files = fs
  .readdirSync(path.join(root, 'src'), { recursive: true })
  .map((f) => path.join('src', String(f)))
  .filter((f) => f.endsWith('.sql'))
  .sort();

describe('sql files', () => {
  before(() => sqlParserReady);

  it('are found (the rehearsal lock sampler is one)', () => {
    assert.ok(files.includes(path.join('src', 'domain', 'lock-sample.sql')), files.join(', '));
  });

  for (const f of files) {
    it(`${f} is one statement PostgreSQL parses`, () => {
      const text = sqlFile(fs.readFileSync(path.join(root, f), 'utf8'));
      // psql variables (:'name' a literal, :"name" an identifier) are psql's, not the server's grammar.
      const parsed = text.replace(/:'[a-z_]+'/g, "'v'").replace(/:"[a-z_]+"/g, '"v"');
      assert.equal(parseSql(parsed).statements.length, 1);
      assert.ok(!text.includes('\n'));
    });
  }

  it('are read without their comment lines, the rest joined by a space', () => {
    assert.equal(sqlFile('-- what it does\nSELECT 1\n  FROM t\n\n'), 'SELECT 1 FROM t');
  });

  it('may not end a line of SQL with a comment, which joining would turn on the rest', () => {
    assert.throws(() => sqlFile('SELECT 1 -- one\nFROM t'), /comment after SQL/);
  });
});
