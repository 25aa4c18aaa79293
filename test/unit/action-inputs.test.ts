/** The connection inputs are written once (src/actions/connection-inputs.ts) and generated into every action.yml. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { render, staleness } from '../../scripts/action-inputs';
import { CONNECTION_INPUTS } from '../../src/actions/connection-inputs';

const ROOT = path.resolve(__dirname, '../..');
const actions = fs
  .readdirSync(path.join(ROOT, 'actions'))
  .filter((n) => fs.existsSync(path.join(ROOT, 'actions', n, 'action.yml')))
  .sort();
const read = (name: string) => fs.readFileSync(path.join(ROOT, 'actions', name, 'action.yml'), 'utf8');
const rel = (name: string) => `actions/${name}/action.yml`;

describe('connection inputs generated into action.yml', () => {
  it('every action has them', () => assert.equal(actions.length, 11));

  for (const name of actions) {
    it(`${rel(name)} is what the generator writes, and writing it again changes nothing`, () => {
      const text = read(name);
      assert.equal(staleness(text, rel(name)), undefined);
      assert.equal(render(text, rel(name)), text);
      assert.equal(render(render(text, rel(name)), rel(name)), text);
    });

    it(`${rel(name)} offers every connection input with the source's description, required flag and default`, () => {
      const inputs = (parse(read(name)) as { inputs: Record<string, unknown> }).inputs;
      for (const [input, spec] of Object.entries(CONNECTION_INPUTS)) assert.deepEqual(inputs[input], spec, input);
    });
  }

  const deploy = read('deploy');

  it('a hand-edited default is caught in one line naming the file and the input', () => {
    const edited = deploy.replace("default: '22'", "default: '2222'");
    assert.notEqual(edited, deploy);
    assert.equal(
      staleness(edited, 'actions/deploy/action.yml'),
      'actions/deploy/action.yml: connection input port differs from src/actions/connection-inputs.ts; run npx tsx scripts/action-inputs.ts',
    );
    assert.equal(render(edited, 'actions/deploy/action.yml'), deploy);
  });

  it('a hand-edited description, a removed input and an input added inside the block are caught too', () => {
    const described = deploy.replace('SSH port of the VPS.', 'The SSH port.');
    assert.match(staleness(described, 'x.yml') ?? '', /^x\.yml: connection input port differs from /);
    const removed = deploy.replace(/ {2}ssh-passphrase:\n(?: {4}.*\n)+/, '');
    assert.match(staleness(removed, 'x.yml') ?? '', /^x\.yml: connection input ssh-passphrase is missing; /);
    const added = deploy.replace(
      '  # twinstack: end of connection inputs',
      "  proxy:\n    description: 'A jump host.'\n  # twinstack: end of connection inputs",
    );
    assert.match(staleness(added, 'x.yml') ?? '', /^x\.yml: input proxy is inside the generated block but not in /);
  });

  it('a file without the markers is refused, and the generator moves its own copies into the block, keeping the other inputs in order', () => {
    const unmarked = deploy.replace(/ {2}# twinstack: .*\n/g, '');
    assert.match(staleness(unmarked, 'x.yml') ?? '', /^x\.yml: no generated connection inputs \(marker comments missing\)/);
    assert.equal(render(unmarked, 'x.yml'), deploy);

    const handWritten = [
      'name: x',
      '# a comment the generator keeps',
      'inputs:',
      '  environment:',
      "    description: 'Which one.'",
      '  port:',
      "    description: 'Old words.'",
      '',
      '  ref:',
      "    description: 'A ref.' # and this one",
      'runs:',
      "  using: 'node24'",
      '',
    ].join('\n');
    const fresh = render(handWritten, 'x.yml');
    assert.equal(staleness(fresh, 'x.yml'), undefined);
    const lines = fresh.split('\n');
    assert.deepEqual(lines.slice(0, 3), ['name: x', '# a comment the generator keeps', 'inputs:']);
    assert.deepEqual(lines.slice(-7), [
      '  environment:',
      "    description: 'Which one.'",
      '  ref:',
      "    description: 'A ref.' # and this one",
      'runs:',
      "  using: 'node24'",
      '',
    ]);
    assert.deepEqual(Object.keys((parse(fresh) as { inputs: object }).inputs), [...Object.keys(CONNECTION_INPUTS), 'environment', 'ref']);
  });
});
