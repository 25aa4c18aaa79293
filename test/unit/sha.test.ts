/** A commit id is parsed once, by one rule, wherever it comes from: an input, or git's own output. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { FakeHost } from '../support/fake-host';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { ensureCommit, resolveRef } from '../../src/domain/git';
import { ConfigurationError } from '../../src/infra/errors';
import { isSha, parseSha, short, type Sha } from '../../src/infra/sha';
import * as validate from '../../src/infra/validate';

const SHA = '0123456789abcdef0123456789abcdef01234567';
const SHA256 = `${SHA}0123456789abcdef01234567`;
const CONFIG = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');

describe('Sha', () => {
  it('is 40 hexadecimal characters (64 in a SHA-256 repository), lower case', () => {
    assert.equal(isSha(SHA), true);
    assert.equal(isSha(SHA256), true);
    assert.equal(isSha(SHA256.slice(0, 63)), false);
    assert.equal(isSha(SHA256.slice(0, 50)), false);
    assert.equal(isSha(SHA.toUpperCase()), false);
    assert.equal(isSha(SHA.slice(0, 39)), false);
    assert.equal(isSha(`${SHA}0`), false);
    assert.equal(isSha('g'.repeat(40)), false);
  });

  it('is parsed from input with blanks around it and upper case, as the lower-case id', () => {
    assert.equal(parseSha(` ${SHA.toUpperCase()}\n`), SHA);
    assert.equal(parseSha('main'), undefined);
    assert.equal(parseSha(SHA256.toUpperCase()), SHA256);
    assert.equal(parseSha('a'.repeat(41)), undefined);
  });

  it('is shown by its first 12 characters', () => {
    assert.equal(short(SHA), '0123456789ab');
    assert.equal(short('abc'), 'abc');
  });

  it('is what the sha input accepts: the gate and promote read it alike', () => {
    assert.equal(validate.sha(SHA.toUpperCase(), 'input sha'), SHA);
    assert.equal(validate.sha(` ${SHA} `, 'input sha'), SHA);
    // A SHA-256 id is accepted here and by resolveRef alike; anything between is refused in one line.
    assert.equal(validate.sha(SHA256, 'input sha'), SHA256);
    assert.throws(
      () => validate.sha('a'.repeat(50), 'input sha'),
      /input sha ".*" is not valid: expected a full hexadecimal commit id \(40 characters, or 64 in a SHA-256 repository\)/,
    );
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
      .on('resolve', /^REMOTE=\S+; REF=\S+\ngit rev-parse /, { stdout: `${answer}\n` });

  it("gives git's answer as a Sha, which the sha input accepts as it is", async () => {
    const sha = await resolveRef(host(SHA), env, 'main');
    assert.equal(sha, SHA);
    assert.equal(validate.sha(sha), sha);
  });

  it("takes a SHA-256 repository's 64-character id, which the sha input accepts too", async () => {
    assert.equal(await resolveRef(host(SHA256), env, 'main'), SHA256);
    assert.equal(validate.sha(SHA256), SHA256);
  });

  it('refuses an answer that is not a full id, as the sha input does', async () => {
    await assert.rejects(resolveRef(host('a'.repeat(50)), env, 'main'), ConfigurationError);
    assert.throws(() => validate.sha('a'.repeat(50)), ConfigurationError);
  });
});

describe('ensureCommit', () => {
  const env = new Environment('prod', parseConfig(CONFIG, 'c'));
  const host = (has: boolean) =>
    new FakeHost()
      .on('is a repository', /^test -d /, {})
      .on('git fetch', /^git fetch /, {})
      .on('has commit', /^git cat-file -e /, { exitCode: has ? 0 : 1 });

  it('fetches, then asks git for the commit itself, not for a branch or tag of that name', async () => {
    const h = host(true);
    await ensureCommit(h, env, SHA as Sha);
    assert.deepEqual(
      h.calls.map((c) => c.rule),
      ['is a repository', 'git fetch', 'has commit'],
    );
    assert.equal(h.calls[2].script, `git cat-file -e '${SHA}^{commit}'`);
  });

  it('refuses a commit the checkout does not have, in one line saying to push it', async () => {
    await assert.rejects(
      ensureCommit(host(false), env, SHA as Sha),
      /^ConfigurationError: commit 0123456789ab is not in \S+ after fetching origin: push it there first$/,
    );
  });
});
