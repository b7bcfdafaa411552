// Preemption of a stream slot (issue 11 item 3), a whole capture against the
// kubelet model: the capture's namespace holds more than its share while
// another namespace waits, so its follow stream stops, the capture waits
// (Pending/WaitingForSlot, "preempted"), and once it has a slot again it reads
// on from its checkpoint: byte-exact, no retry counted, no Warning.
import { expect } from 'chai';
import { FairSlots } from '../../../src/runtime/semaphore.ts';
import { type Capture, makeCapture } from './capture-harness.ts';

const MIN_HOLD_MS = 10_000;

/**
 * Two slots: namespace "ns" holds both (the capture's, and one held for the
 * whole test by another stream of "ns"); at `askAtMs` namespace "other" asks
 * for one and holds it `holdMs`. The container writes a line every 10 ms for
 * `lines` lines, then exits.
 */
function scenario(o: { askAtMs: number; holdMs: number; lines: number; during?: (cap: Capture) => void }) {
  let slots!: FairSlots;
  const cap = makeCapture({ slots: (clock) => (slots = new FairSlots(2, undefined, { minHoldMs: MIN_HOLD_MS, clock })) });
  const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
  cap.model.start(pod, 'main');
  for (let i = 0; i < o.lines; i++) cap.clock.at(i * 10, () => cap.model.write(pod, 'main', `line ${i} ${'y'.repeat(i % 70)}\n`));
  const end = o.lines * 10;
  cap.clock.at(end + 5, () => {
    cap.model.exit(pod, 'main', 0);
    cap.model.setPhase(pod, 'Succeeded');
  });
  const other = { askedAt: -1, grantedAt: -1, releasedAt: -1 };
  void slots.acquireFor('ns');
  cap.clock.at(o.askAtMs, () => {
    other.askedAt = cap.clock.now();
    void slots.acquireLease('other').then((lease) => {
      other.grantedAt = cap.clock.now();
      o.during?.(cap);
      cap.clock.at(o.holdMs, () => {
        other.releasedAt = cap.clock.now();
        lease.release();
      });
    });
  });
  return { cap, pod, other, end, slots: () => slots };
}

describe('runtime/preemption of a stream slot against the kubelet model', function () {
  this.timeout(30_000);

  it('an over-share namespace gives its slot back at once; the capture waits, resumes from its checkpoint, and stores the run byte-exact', async () => {
    const { cap, pod, other, end } = scenario({ askAtMs: 20_000, holdMs: 5_000, lines: 4000 });
    const t0 = cap.clock.now();
    const st = await cap.run();
    expect([st.phase, st.reason, st.result], st.message).to.deep.equal(['Complete', 'Captured', 'Succeeded']);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    // "other" got its slot at once (the capture had held its slot longer than the minimum hold), long before the run ended
    expect(other.grantedAt - t0).to.equal(20_000);
    expect(other.grantedAt - t0).to.be.below(end);
    // while it held the slot the capture waited, and said why
    const waiting = cap.statuses.filter((s) => s.phase === 'Pending' && s.reason === 'WaitingForSlot');
    expect(waiting.length).to.be.greaterThan(0);
    expect(waiting[0]!.message).to.match(/^preempted: main's log stream gave its slot back \(namespace "ns" held 2 of 2 stream slots while "other" \(holds 0\) waited: over its fair share\)/);
    expect(waiting[0]!.conditions?.find((c) => c.type === 'Streaming')?.status).to.equal('False');
    // ... and streamed again after, with its reason restored
    const after = cap.statuses.slice(cap.statuses.indexOf(waiting[0]!)).find((s) => s.phase === 'Streaming');
    expect(after?.reason).to.equal('Streaming');
    // a preemption is not a failure
    const c = st.containers.find((x) => x.name === 'main')!;
    expect([c.streamRetries ?? 0, st.retries ?? 0]).to.deep.equal([0, 0]);
    expect(cap.events.filter((e) => e.type === 'Warning').map((e) => e.reason)).to.deep.equal([]);
    expect(cap.events.filter((e) => e.reason === 'Preempted')).to.have.length(1);
    // the stream after the pause was a resumed one (sinceTime from the checkpoint), opened once "other" released
    const follows = cap.model.requests.filter((r) => r.follow);
    expect(follows.length).to.be.greaterThanOrEqual(2);
    expect(follows[0]!.sinceTime).to.equal(undefined);
    expect(follows[1]!.sinceTime).to.be.a('string');
    expect(cap.store.open).to.equal(0);
  });

  it('the minimum hold: a stream younger than --min-stream-hold keeps its slot until it reaches it', async () => {
    // the capture's stream opens at ~0; "other" asks at 3 s and gets the slot at 10 s
    const { cap, pod, other } = scenario({ askAtMs: 3_000, holdMs: 2_000, lines: 3000 });
    const t0 = cap.clock.now();
    const st = await cap.run();
    expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    expect(other.grantedAt - t0).to.be.within(MIN_HOLD_MS, MIN_HOLD_MS + 50);
  });

  it('a log rotated while the capture waits is recorded as a gap (LogGap), as for any reconnect', async () => {
    const { cap, pod } = scenario({ askAtMs: 20_000, holdMs: 5_000, lines: 4000, during: (c) => c.clock.at(2_000, () => c.model.rotate(c.model.pod('p')!, 'main')) });
    const st = await cap.run();
    expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'LogGap']);
    const c = st.containers.find((x) => x.name === 'main')!;
    expect(c.state).to.equal('Gap');
    expect(c.lastError).to.match(/^LogGap: /);
    // what was stored is the log with one piece missing (what was written while waiting, before the rotation), nothing duplicated
    const stored = cap.object('main', 0)!;
    const whole = pod.container('main').runs[0]!.expected();
    let p = 0;
    while (p < stored.length && stored[p] === whole[p]) p++;
    const rest = stored.subarray(p);
    expect(rest.length).to.be.greaterThan(0);
    expect(whole.subarray(whole.length - rest.length).equals(rest)).to.equal(true);
    expect(stored.length).to.be.lessThan(whole.length);
  });
});
