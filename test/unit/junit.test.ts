import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parseJUnit } from '../../src/infra/junit';

// Written by pytest (Debian bookworm's, in the fixture base image) with -o junit_family=xunit1.
const xml = fs.readFileSync(path.join(__dirname, '../fixtures/junit/pytest-xunit1.xml'), 'utf8');

describe('JUnit reports from pytest', () => {
  const report = parseJUnit(xml);

  it('counts passed, failed (failures and errors) and skipped tests', () => {
    assert.deepEqual([report.passed, report.failed, report.skipped, report.cases.length], [1, 2, 1, 4]);
  });

  it('gives each failure its file, 1-based line and unescaped message', () => {
    const f = report.cases.find((c) => c.name === 'test_fails');
    assert.equal(f?.id, 'tests.test_s::test_fails');
    assert.equal(f?.file, 'tests/test_s.py');
    assert.equal(f?.line, 8);
    assert.equal(f?.message, 'AssertionError: one and one <make> "three"\nassert (1 + 1) == 3');
    assert.match(f?.details ?? '', /tests\/test_s\.py:9: AssertionError/);
  });

  it('reports set-up errors as failures', () => {
    const e = report.cases.find((c) => c.name === 'test_error');
    assert.equal(e?.result, 'error');
    assert.match(e?.message ?? '', /fixture 'missing_fixture' not found/);
  });

  it('refuses something that is not a JUnit report', () => {
    assert.throws(() => parseJUnit('<html></html>'), /not a JUnit XML report/);
  });
});
