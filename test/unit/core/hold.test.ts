import { expect } from 'chai';
import { type HoldAction, type HoldInput, decideHold, holdDeadline, holdFinalizer, holdOwner, staleHolds } from '../../../src/core/hold.ts';

const UID = '0b7c4e2a-5d1f-4a3b-9c8d-7e6f5a4b3c2d';
const F = holdFinalizer(UID);
const T0 = Date.parse('2026-11-29T12:00:00Z');
const MIN = 60_000;

function input(o: Partial<HoldInput> & { pod?: HoldInput['pod'] }): HoldInput {
  return { holdPod: true, enabled: true, finalizer: F, holdTimeoutMs: 10 * MIN, captureEnded: false, logTailDeleting: false, pod: { uid: 'p1', finalizers: [] }, now: T0, ...o };
}
const kind = (a: HoldAction) => (a.kind === 'release' ? `release:${a.reason}` : a.kind === 'none' ? `none:${a.reason ?? '-'}` : a.kind);

describe('core/hold', () => {
  it('names one finalizer per LogTail UID, a qualified name, and finds the owner back', () => {
    expect(F).to.equal(`logtail.dev/hold-${UID}`);
    const [prefix, name] = F.split('/');
    expect(prefix).to.equal('logtail.dev');
    expect(name!.length).to.be.at.most(63);
    expect(name).to.match(/^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/); // apimachinery IsQualifiedName
    expect(holdOwner(F)).to.equal(UID);
    expect(holdOwner('logtail.dev/finalizer')).to.equal(undefined);
    expect(holdOwner('logtail.dev/hold-')).to.equal(undefined);
    expect(holdOwner('example.com/hold-x')).to.equal(undefined);
  });

  it('the deadline is holdTimeout after the pod\'s deletionTimestamp, none while it is not deleted', () => {
    expect(holdDeadline({}, MIN)).to.equal(undefined);
    expect(holdDeadline({ deletionTimestamp: '2026-11-29T12:00:00Z' }, MIN)).to.equal(T0 + MIN);
    expect(holdDeadline({ deletionTimestamp: new Date(T0) }, 5)).to.equal(T0 + 5);
  });

  const deleting = (ago: number) => ({ uid: 'p1', finalizers: ['other/x', F], deletionTimestamp: new Date(T0 - ago).toISOString() });
  const held = { uid: 'p1', finalizers: ['other/x', F] };
  const cases: Array<[string, Partial<HoldInput>, string]> = [
    ['capture starts, pod running: place', {}, 'place'],
    ['holdPod false: nothing', { holdPod: false }, 'none:-'],
    ['no pod: nothing', { pod: undefined }, 'none:-'],
    ['operator without --enable-hold-pod: say so, capture without a hold', { enabled: false }, 'none:HoldNotPermitted'],
    ['pod already being deleted when first seen: too late (the apiserver refuses new finalizers)', { pod: { uid: 'p1', deletionTimestamp: new Date(T0).toISOString() } }, 'none:HoldTooLate'],
    ['released earlier (a restarted operator): never placed again', { previous: 'Released' }, 'none:-'],
    ['timed out earlier: never placed again', { previous: 'HoldTimeout' }, 'none:-'],
    ['capture ended before it was placed: nothing', { captureEnded: true }, 'none:-'],
    ['held, pod running: keep', { pod: held }, 'keep'],
    ['held, pod deleted 9 min ago, timeout 10 min: keep', { pod: deleting(9 * MIN) }, 'keep'],
    ['held, pod deleted exactly holdTimeout ago: release (HoldTimeout)', { pod: deleting(10 * MIN) }, 'release:HoldTimeout'],
    ['held, pod deleted long ago (an operator that was down): release (HoldTimeout)', { pod: deleting(3 * 60 * MIN) }, 'release:HoldTimeout'],
    ['held, every object committed: release', { pod: held, captureEnded: true }, 'release:Released'],
    ['held, capture ended on a deleted pod: release (the capture, not the timeout)', { pod: deleting(20 * MIN), captureEnded: true }, 'release:Released'],
    ['held, LogTail deleted: release', { pod: held, logTailDeleting: true }, 'release:LogTailDeleted'],
    ['held, LogTail deleted and capture ended: LogTailDeleted', { pod: held, logTailDeleting: true, captureEnded: true }, 'release:LogTailDeleted'],
    ['held, operator now runs without --enable-hold-pod: release', { pod: held, enabled: false }, 'release:HoldNotPermitted'],
    ['held by another LogTail only: not ours, place ours', { pod: { uid: 'p1', finalizers: [holdFinalizer('another')] } }, 'place'],
  ];
  for (const [name, o, want] of cases) {
    it(name, () => {
      expect(kind(decideHold(input(o)))).to.equal(want);
    });
  }

  it('keep says until when (the deadline), or undefined while the pod is not deleted', () => {
    expect(decideHold(input({ pod: held }))).to.deep.equal({ kind: 'keep', until: undefined });
    expect(decideHold(input({ pod: deleting(MIN) }))).to.deep.equal({ kind: 'keep', until: T0 - MIN + 10 * MIN });
  });

  it('the HoldTimeout message names the timeout and says the capture goes on', () => {
    const a = decideHold(input({ pod: deleting(11 * MIN) }));
    expect(a.kind === 'release' && a.message).to.match(/holdTimeout \(10m\).*capture goes on/);
  });

  describe('staleHolds', () => {
    const pods = [
      { namespace: 'a', name: 'p1', uid: 'u1', finalizers: [holdFinalizer('lt-live'), 'example.com/keep'] },
      { namespace: 'a', name: 'p2', uid: 'u2', finalizers: [holdFinalizer('lt-gone')] },
      { namespace: 'b', name: 'p3', uid: 'u3', finalizers: [holdFinalizer('lt-done'), holdFinalizer('lt-live')] },
      { namespace: 'b', name: 'p4', uid: 'u4' },
    ];
    const owners = new Map([
      ['lt-live', { finished: false }],
      ['lt-done', { finished: true }],
    ]);
    it('releases holds whose LogTail is gone or finished, keeps live ones and other finalizers', () => {
      expect(staleHolds(pods, owners).map((h) => `${h.namespace}/${h.name} ${h.finalizer}`)).to.deep.equal([`a/p2 ${holdFinalizer('lt-gone')}`, `b/p3 ${holdFinalizer('lt-done')}`]);
    });
    it('with no LogTail at all every hold is stale', () => {
      expect(staleHolds(pods, new Map())).to.have.length(4);
    });
  });
});
