// FairSlots: the stream slots shared between namespaces (issue 11 item 3).
import { expect } from 'chai';
import { FairSlots } from '../../../src/runtime/semaphore.ts';

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
    expect(Object.fromEntries(slots.overShare())).to.deep.equal({ big: 2 });
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
});
