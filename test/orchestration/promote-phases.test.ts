/**
 * promote's steps called on their own: the last one before the point of no return leaves the
 * rollback its time, or refuses while prod is still untouched.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ROLLBACK_RESERVE_MS, reserveRollbackTime } from '../../src/actions/promote/prepare';
import { isRefusal } from '../../src/actions/promote/promotion';
import { FakeHost } from '../support/fake-host';

function hostWithDeadline(inMinutes?: number): FakeHost {
  const host = new FakeHost();
  host.deadline = inMinutes === undefined ? undefined : Date.now() + inMinutes * 60_000;
  return host;
}

describe('promote: reserveRollbackTime', () => {
  it('without a deadline, goes on and sets none', () => {
    const host = hostWithDeadline();
    const r = reserveRollbackTime({ host }, { step: 'rehearsed' });
    assert.ok(!isRefusal(r));
    assert.equal(r.fullDeadline, undefined);
    assert.equal(r.step, 'rehearsed', 'what the steps before found is handed on');
    assert.equal(host.deadline, undefined);
  });

  it("cuts the way forward's deadline by the rollback's reserve, and keeps the full one for the rollback", () => {
    const host = hostWithDeadline(120);
    const full = host.deadline;
    const r = reserveRollbackTime({ host }, {});
    assert.ok(!isRefusal(r));
    assert.equal(r.fullDeadline, full);
    assert.equal(host.deadline, full! - ROLLBACK_RESERVE_MS);
  });

  it('refuses when less than twice the reserve is left, and leaves the deadline alone', () => {
    const host = hostWithDeadline(50);
    const full = host.deadline;
    const r = reserveRollbackTime({ host }, {});
    assert.ok(isRefusal(r));
    assert.equal(r.refused, 'images');
    assert.match(r.message, /too little time is left before the run's deadline to promote and still roll back \((49|50) min\)/);
    assert.equal(host.deadline, full);
  });
});
