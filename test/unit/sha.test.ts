/** A commit id is parsed once, by one rule, wherever it comes from: an input, or git's own output. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { FakeHost } from '../support/fake-host';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { resolveRef } from '../../src/domain/git';
import { ConfigurationError } from '../../src/infra/errors';
import { isSha, parseSha, short } from '../../src/infra/sha';
import * as validate from '../../src/infra/validate';

const SHA = '0123456789abcdef0123456789abcdef01234567';
const CONFIG = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');

describe('Sha', () => {
  it('is 40 hexadecimal characters, lower case', () => {
    assert.equal(isSha(SHA), true);
    assert.equal(isSha(SHA.toUpperCase()), false);
    assert.equal(isSha(SHA.slice(0, 39)), false);
    assert.equal(isSha(`${SHA}0`), false);
    assert.equal(isSha('g'.repeat(40)), false);
  });

  it('is parsed from input with blanks around it and upper case, as the lower-case id', () => {
    assert.equal(parseSha(` ${SHA.toUpperCase()}\n`), SHA);
    assert.equal(parseSha('main'), undefined);
    assert.equal(parseSha('a'.repeat(64)), undefined);
  });

  it('is shown by its first 12 characters', () => {
    assert.equal(short(SHA), '0123456789ab');
    assert.equal(short('abc'), 'abc');
  });

  it('is what the sha input accepts: the gate and promote read it alike', () => {
    assert.equal(validate.sha(SHA.toUpperCase(), 'input sha'), SHA);
    assert.equal(validate.sha(` ${SHA} `, 'input sha'), SHA);
    // A SHA-256 id would pass the input and then be refused by resolveRef: it is refused here, in one line.
    assert.throws(() => validate.sha('a'.repeat(64), 'input sha'), /input sha ".*" is not valid: expected a full 40-character hexadecimal commit id/);
    assert.throws(() => validate.sha('1a2b3c4', 'input sha'), /not valid/);
    assert.throws(() => validate.sha('x'.repeat(300), 'input sha'), /300 characters long/);
  });
});

describe('resolveRef', () => {
  const env = new Environment('prod', parseConfig(CONFIG, 'c'));
  const host = (answer: string) =>
    new FakeHost()
      .on('is a repository', /^test -d /, {})
      .on('git fetch', /^git fetch /, {})
      .on('resolve', /^git rev-parse /, { stdout: `${answer}\n` });

  it("gives git's answer as a Sha, which the sha input accepts as it is", async () => {
    const sha = await resolveRef(host(SHA), env, 'main');
    assert.equal(sha, SHA);
    assert.equal(validate.sha(sha), sha);
  });

  it('refuses an answer that is not a full 40-character id, as the sha input does', async () => {
    await assert.rejects(resolveRef(host('a'.repeat(64)), env, 'main'), ConfigurationError);
    assert.throws(() => validate.sha('a'.repeat(64)), ConfigurationError);
  });
});
