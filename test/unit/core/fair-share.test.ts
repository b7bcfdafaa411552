import { expect } from 'chai';
import { fairShare, type Holder, mustWait, pickNext, planPreemption, type Waiter } from '../../../src/core/fair-share.ts';

const w = (spec: string): Waiter[] => (spec ? spec.split(' ').map((ns, seq) => ({ namespace: ns, seq })) : []);
const h = (spec: Record<string, number>) => new Map(Object.entries(spec));

describe('core/fair-share', () => {
  describe('fairShare', () => {
    const cases: Array<[number, number, number | undefined, number]> = [
      [64, 1, undefined, 64],
      [64, 2, undefined, 32],
      [64, 3, undefined, 22],
      [10, 4, undefined, 3],
      [64, 0, undefined, 64],
      [64, 2, 8, 8],
      [4, 8, undefined, 1],
    ];
    for (const [cap, wanting, nsCap, want] of cases) {
      it(`${cap} slots, ${wanting} namespaces${nsCap ? `, cap ${nsCap}` : ''} → ${want}`, () => expect(fairShare(cap, wanting, nsCap)).to.equal(want));
    }
  });

  describe('pickNext', () => {
    const cases: Array<{ name: string; waiters: string; held: Record<string, number>; cap?: number; want: number }> = [
      { name: 'nobody waits', waiters: '', held: { a: 3 }, want: -1 },
      { name: 'one namespace: first come first served', waiters: 'a a a', held: { a: 5 }, want: 0 },
      { name: 'the namespace holding fewest goes first, however late', waiters: 'a a a b', held: { a: 63, b: 0 }, want: 3 },
      { name: 'holding none beats holding one', waiters: 'b c', held: { a: 10, b: 1 }, want: 1 },
      { name: 'tie on holdings: the older waiter', waiters: 'c b', held: { b: 2, c: 2 }, want: 0 },
      { name: 'within a namespace only its oldest competes', waiters: 'a b a', held: { a: 1, b: 1 }, want: 0 },
      { name: 'cap: a namespace at its cap gets nothing', waiters: 'a a b', held: { a: 2, b: 1 }, cap: 2, want: 2 },
      { name: 'cap: everyone at the cap → nobody', waiters: 'a b', held: { a: 2, b: 2 }, cap: 2, want: -1 },
    ];
    for (const c of cases) {
      it(c.name, () => expect(pickNext(w(c.waiters), h(c.held), c.cap)).to.equal(c.want));
    }
    it('tie on holdings: the namespace served longest ago, before arrival order', () => {
      expect(pickNext(w('a b c'), h({}), undefined, h({ a: 7, b: 3 }))).to.equal(2);
      expect(pickNext(w('a b'), h({}), undefined, h({ a: 7, b: 3 }))).to.equal(1);
      expect(pickNext(w('a b'), h({ b: 1 }), undefined, h({ a: 7, b: 3 }))).to.equal(0);
    });
  });

  describe('mustWait', () => {
    const cases: Array<{ name: string; ns: string; free: number; waiters: string; held: Record<string, number>; cap?: number; want: boolean }> = [
      { name: 'free slot, nobody waiting', ns: 'a', free: 1, waiters: '', held: {}, want: false },
      { name: 'no free slot', ns: 'a', free: 0, waiters: '', held: { b: 4 }, want: true },
      { name: 'free slot but older waiters', ns: 'a', free: 1, waiters: 'b', held: {}, want: true },
      { name: 'at its cap, with free slots', ns: 'a', free: 5, waiters: '', held: { a: 2 }, cap: 2, want: true },
      { name: 'waiters all capped do not block another namespace', ns: 'b', free: 2, waiters: 'a a', held: { a: 2 }, cap: 2, want: false },
    ];
    for (const c of cases) {
      it(c.name, () => expect(mustWait(c.ns, c.free, w(c.waiters), h(c.held), c.cap)).to.equal(c.want));
    }
  });

  describe('planPreemption', () => {
    // holders: "ns:heldSinceMs[:flags]" (flags: n = not preemptible, a = already asked), ids 1.. in order; now = 100 000 ms
    const hs = (spec: string): Holder[] =>
      spec
        ? spec.split(' ').map((x, i) => {
            const [namespace, since, flags = ''] = x.split(':');
            return { id: i + 1, namespace: namespace!, since: Number(since), preemptible: !flags.includes('n'), asked: flags.includes('a') };
          })
        : [];
    const count = (holders: Holder[], extra: Record<string, number> = {}) => {
      const m = new Map(Object.entries(extra));
      for (const x of holders) m.set(x.namespace, (m.get(x.namespace) ?? 0) + 1);
      return m;
    };
    const NOW = 100_000;
    const cases: Array<{ name: string; capacity: number; holders: string; others?: Record<string, number>; waiters: string; cap?: number; minHoldMs?: number; ask: number[]; recheckAt?: number }> = [
      { name: 'nobody waits: nothing asked', capacity: 2, holders: 'a:0 a:0', waiters: '', ask: [] },
      { name: 'only the holder namespace waits: nothing asked', capacity: 2, holders: 'a:0 a:0', waiters: 'a a', ask: [] },
      { name: '2 slots, a holds both, b waits: a gives one back (1/1)', capacity: 2, holders: 'a:0 a:0', waiters: 'b', ask: [1] },
      { name: '3 slots, a holds all, b waits: one back (2/1; the odd slot stays)', capacity: 3, holders: 'a:0 a:0 a:0', waiters: 'b b b', ask: [1] },
      { name: '8 slots, a holds all, b waits with 4: four back (4/4)', capacity: 8, holders: 'a:0 a:1 a:2 a:3 a:4 a:5 a:6 a:7', waiters: 'b b b b', ask: [1, 2, 3, 4] },
      { name: 'demand counts: b waits with 1, a gives back only 1', capacity: 8, holders: 'a:0 a:1 a:2 a:3 a:4 a:5 a:6 a:7', waiters: 'b a a', ask: [1] },
      { name: 'within a namespace the slot held longest goes first', capacity: 2, holders: 'a:50 a:10', waiters: 'b', ask: [2] },
      { name: 'three namespaces, 8 slots: 3/3/2', capacity: 8, holders: 'a:0 a:0 a:0 a:0 a:0 a:0 a:0 a:0', waiters: 'b b b b c c c c', ask: [1, 2, 3, 4, 5] },
      { name: '10 slots, 4 namespaces: none holds 2 more than a waiter (3/3/2/2)', capacity: 10, holders: 'a:0 a:0 a:0 b:0 b:0 b:0 c:0 c:0 d:0 d:0', waiters: 'c d', ask: [] },
      { name: 'ceil is not enough: 3/3/3/1 with d waiting moves one (3/3/2/2)', capacity: 10, holders: 'a:0 a:0 a:0 b:0 b:0 b:0 c:0 c:0 c:0 d:0', waiters: 'd', ask: [1] },
      { name: 'already asked slots count as given', capacity: 2, holders: 'a:0:a a:0', waiters: 'b', ask: [] },
      { name: 'an asked slot for b, c still needs one', capacity: 4, holders: 'a:0:a a:0 a:0 a:0', waiters: 'b c', ask: [2] },
      { name: 'not preemptible (draining an ended run): the next one of the namespace', capacity: 2, holders: 'a:0:n a:5', waiters: 'b', ask: [2] },
      { name: 'nothing preemptible: nothing asked, no recheck', capacity: 2, holders: 'a:0:n a:0:n', waiters: 'b', ask: [] },
      { name: 'slots held without a lease count but are never asked', capacity: 3, holders: 'a:0', others: { a: 2 }, waiters: 'b', ask: [1] },
      { name: 'min hold: held 5 s of 10 → not yet; recheck when the first reaches 10 s', capacity: 2, holders: 'a:95000 a:96000', waiters: 'b', minHoldMs: 10_000, ask: [], recheckAt: 105_000 },
      { name: 'min hold: the one past it is asked, the young one stays', capacity: 2, holders: 'a:96000 a:80000', waiters: 'b', minHoldMs: 10_000, ask: [2] },
      { name: 'min hold blocks the most-over namespace: the next over one gives', capacity: 6, holders: 'a:99000 a:99000 a:99000 a:99000 b:0 b:0', waiters: 'c', minHoldMs: 10_000, ask: [5], recheckAt: 109_000 },
      { name: 'a waiter at its cap asks nothing', capacity: 8, holders: 'a:0 a:0 a:0 a:0 a:0 a:0 b:0 b:0', waiters: 'b', cap: 2, ask: [] },
      { name: 'free slots and capped waiters: free ones are not taken from anyone', capacity: 8, holders: 'a:0 a:0', waiters: 'a c', cap: 2, ask: [] },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const holders = hs(c.holders);
        const plan = planPreemption({ capacity: c.capacity, held: count(holders, c.others), holders, waiters: w(c.waiters), cap: c.cap, now: NOW, minHoldMs: c.minHoldMs ?? 0 });
        expect(plan).to.deep.equal(c.recheckAt === undefined ? { ask: c.ask } : { ask: c.ask, recheckAt: c.recheckAt });
      });
    }
  });
});
