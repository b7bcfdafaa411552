import { expect } from 'chai';
import { fairShare, mustWait, overShare, pickNext, type Waiter } from '../../../src/core/fair-share.ts';

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

  describe('overShare', () => {
    const cases: Array<{ name: string; capacity: number; held: Record<string, number>; waiters: string; cap?: number; want: Record<string, number> }> = [
      { name: 'nobody waits: no namespace is over', capacity: 64, held: { a: 64 }, waiters: '', want: {} },
      { name: 'one namespace holds all, another waits', capacity: 64, held: { a: 64 }, waiters: 'b', want: { a: 32 } },
      { name: 'three namespaces wanting 10 slots', capacity: 10, held: { a: 8, b: 2 }, waiters: 'c c', want: { a: 4 } },
      { name: 'at or under the share is not over', capacity: 10, held: { a: 5, b: 5 }, waiters: 'a', want: {} },
      { name: 'a waiter at its cap does not count', capacity: 8, held: { a: 6, b: 2 }, waiters: 'b', cap: 2, want: {} },
    ];
    for (const c of cases) {
      it(c.name, () => expect(Object.fromEntries(overShare(c.capacity, h(c.held), w(c.waiters), c.cap))).to.deep.equal(c.want));
    }
  });
});
