// FairSlots: the stream slots shared between namespaces (issue 11 item 3).
import { expect } from 'chai';
import { FairSlots, SlotPreempted } from '../../../src/runtime/semaphore.ts';

const tick = () => new Promise((r) => setImmediate(r));

/** Starts acquisitions and records the order they are granted in. */
function recorder(slots: FairSlots) {
  const granted: string[] = [];
  const ask = (ns: string, label = ns, signal?: AbortSignal) => slots.acquireFor(ns, signal).then(() => void granted.push(label));
  return { granted, ask };
}

describe('runtime/FairSlots', () => {
  it('one namespace holding every slot does not keep a later namespace waiting behind its own queue', async () => {
    const slots = new FairSlots(4);
    const { granted, ask } = recorder(slots);
    for (let i = 0; i < 4; i++) await ask('big');
    for (let i = 0; i < 6; i++) void ask('big', `big-wait-${i}`);
    void ask('small', 'small-1');
    await tick();
    expect(slots.inUse).to.equal(4);
    expect(slots.wouldWait('small')).to.equal(true);
    slots.releaseFor('big');
    await tick();
    // the first freed slot goes to the namespace holding none, although six 'big' waiters are older
    expect(granted.at(-1)).to.equal('small-1');
    expect(slots.heldBy('small')).to.equal(1);
    slots.releaseFor('big');
    await tick();
    expect(granted.at(-1)).to.equal('big-wait-0');
  });

  it('serves three namespaces round-robin as slots free up', async () => {
    const slots = new FairSlots(1);
    const { granted, ask } = recorder(slots);
    await ask('a', 'a0');
    for (const l of ['a1', 'a2', 'a3']) void ask('a', l);
    for (const l of ['b1', 'b2']) void ask('b', l);
    void ask('c', 'c1');
    await tick();
    const release = (ns: string) => slots.releaseFor(ns);
    const order = ['a', 'b', 'c', 'a', 'b', 'a'];
    for (const ns of order) {
      release(ns);
      await tick();
    }
    // holdings are 0 for all when each picks; ties go to the namespace served longest ago
    expect(granted).to.deep.equal(['a0', 'b1', 'c1', 'a1', 'b2', 'a2', 'a3']);
  });

  it('a per-namespace cap holds a namespace back even with free slots, and another namespace goes at once', async () => {
    const slots = new FairSlots(8, 2);
    const { granted, ask } = recorder(slots);
    await ask('a');
    await ask('a');
    void ask('a', 'a-third');
    await tick();
    expect(granted).to.deep.equal(['a', 'a']);
    expect(slots.wouldWait('a')).to.equal(true);
    expect(slots.wouldWait('b')).to.equal(false);
    await ask('b');
    expect(granted).to.deep.equal(['a', 'a', 'b']);
    slots.releaseFor('a');
    await tick();
    expect(granted.at(-1)).to.equal('a-third');
    expect(slots.heldBy('a')).to.equal(2);
  });

  it('an aborted waiter leaves the queue with the signal\'s reason and takes no slot', async () => {
    const slots = new FairSlots(1);
    await slots.acquireFor('a');
    const ac = new AbortController();
    const p = slots.acquireFor('b', ac.signal);
    ac.abort(new Error('gone'));
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect((err as Error).message).to.equal('gone');
    expect(slots.waiting).to.equal(0);
    slots.releaseFor('a');
    expect(slots.inUse).to.equal(0);
  });

  it('acquire()/release() without a namespace behave as one shared namespace; releasing what is not held throws', async () => {
    const slots = new FairSlots(2);
    await slots.acquire();
    await slots.acquire();
    expect(slots.wouldWait('')).to.equal(true);
    slots.release();
    slots.release();
    expect(() => slots.release()).to.throw(/holds none/);
    expect(() => new FairSlots(0)).to.throw();
    expect(() => new FairSlots(2, 0)).to.throw();
  });

  describe('leases and preemption', () => {
    /** A clock whose time moves only by `advance`. */
    function manualClock() {
      let t = 0;
      const timers: Array<{ at: number; fn: () => void }> = [];
      return {
        now: () => t,
        sleep: (ms: number, signal?: AbortSignal) => new Promise<void>((resolve, reject) => {
          const x = { at: t + ms, fn: resolve };
          timers.push(x);
          signal?.addEventListener('abort', () => {
            timers.splice(timers.indexOf(x), 1);
            reject(signal.reason);
          }, { once: true });
        }),
        advance: (ms: number) => {
          t += ms;
          for (const x of timers.filter((y) => y.at <= t)) {
            timers.splice(timers.indexOf(x), 1);
            x.fn();
          }
        },
      };
    }

    it('a namespace holding every slot is asked for one when another namespace waits; the lease gets it back as the oldest of its namespace', async () => {
      const slots = new FairSlots(2);
      const a1 = await slots.acquireLease('a');
      const a2 = await slots.acquireLease('a');
      a1.following(true);
      a2.following(true);
      const later = slots.acquireLease('a');
      expect(a1.asked || a2.asked).to.equal(false);
      const b = slots.acquireLease('b');
      await tick();
      // the slot held longest (a1; same instant: the first) is asked, with the reason
      expect([a1.asked, a2.asked]).to.deep.equal([true, false]);
      expect(a1.signal.reason).to.be.instanceOf(SlotPreempted);
      expect(a1.reason).to.match(/namespace "a" held 2 of 2 stream slots while "b" \(holds 0\) waited/);
      expect(a1.following(false)).to.equal(true);
      const back = a1.giveBack();
      const bl = await b;
      expect(slots.heldBy('b')).to.equal(1);
      let resumed = false;
      void back.then(() => (resumed = true));
      bl.release();
      await tick();
      // the preempted lease kept its place: ahead of the later 'a' waiter
      expect(resumed).to.equal(true);
      expect([a1.asked, a1.grants]).to.deep.equal([false, 2]);
      a2.release();
      await later;
      expect(slots.heldByOwner(undefined)).to.equal(2);
    });

    it('one slot, two namespaces: the share rounds down to 0, the odd slot stays with its holder (no preemption)', async () => {
      const slots = new FairSlots(1);
      const a = await slots.acquireLease('a');
      a.following(true);
      void slots.acquireLease('b');
      await tick();
      expect(a.asked).to.equal(false);
    });

    it('a slot is not asked while its holder is not following (draining), only once it follows', async () => {
      const slots = new FairSlots(2);
      const a = await slots.acquireLease('a');
      await slots.acquireFor('a');
      void slots.acquireLease('b');
      await tick();
      expect(a.asked).to.equal(false);
      expect(a.following(true)).to.equal(true);
    });

    it('the minimum hold: a slot younger than it is asked only once it is reached', async () => {
      const clock = manualClock();
      const slots = new FairSlots(2, undefined, { minHoldMs: 10_000, clock });
      const a = await slots.acquireLease('a');
      await slots.acquireFor('a');
      a.following(true);
      clock.advance(4_000);
      void slots.acquireLease('b');
      await tick();
      expect(a.asked).to.equal(false);
      clock.advance(5_999);
      await tick();
      expect(a.asked).to.equal(false);
      clock.advance(1);
      await tick();
      expect(a.asked).to.equal(true);
    });

    it('a lease aborted while waiting to get its slot back holds nothing; release() is then a no-op', async () => {
      const slots = new FairSlots(2);
      const a = await slots.acquireLease('a', undefined, 'lt-a');
      await slots.acquireFor('a');
      a.following(true);
      const b = slots.acquireLease('b');
      await tick();
      const ac = new AbortController();
      const back = a.giveBack(ac.signal);
      await b;
      ac.abort(new Error('stopped'));
      expect(await back.then(() => 'resumed', (e: Error) => e.message)).to.equal('stopped');
      expect(a.release()).to.equal(false);
      expect([slots.heldBy('a'), slots.heldByOwner('lt-a'), slots.waiting]).to.deep.equal([1, 0, 0]);
    });
  });
});
