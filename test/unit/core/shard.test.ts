import { expect } from 'chai';
import { type ClaimDecision, type ClaimInput, decideClaim, memberLeaseName, memberState, needsOwner, rendezvousOwner, rendezvousScore } from '../../../src/core/shard.ts';

const FIN = 'logtail.dev/finalizer';
const keys = (n: number, prefix = 'uid') => Array.from({ length: n }, (_, i) => `${prefix}-${i}-5f0c6a1e`);

function counts(ks: string[], members: string[]): Map<string, number> {
  const out = new Map<string, number>(members.map((m) => [m, 0]));
  for (const k of ks) {
    const o = rendezvousOwner(k, members)!;
    out.set(o, out.get(o)! + 1);
  }
  return out;
}

describe('core/shard: rendezvous hashing', () => {
  it('is deterministic and independent of the order of the members', () => {
    for (const k of keys(200)) {
      const a = rendezvousOwner(k, ['op-a', 'op-b', 'op-c']);
      expect(rendezvousOwner(k, ['op-c', 'op-a', 'op-b'])).to.equal(a);
      expect(rendezvousOwner(k, new Set(['op-b', 'op-c', 'op-a']))).to.equal(a);
    }
  });

  it('has no owner without members, and the only member owns everything', () => {
    expect(rendezvousOwner('x', [])).to.equal(undefined);
    for (const k of keys(50)) expect(rendezvousOwner(k, ['solo'])).to.equal('solo');
  });

  it('scores differ per member and per key', () => {
    expect(rendezvousScore('a', 'k')).to.not.equal(rendezvousScore('b', 'k'));
    expect(rendezvousScore('a', 'k1')).to.not.equal(rendezvousScore('a', 'k2'));
    // the separator keeps ("ab","c") apart from ("a","bc")
    expect(rendezvousScore('ab', 'c')).to.not.equal(rendezvousScore('a', 'bc'));
  });

  const spreads: Array<[number, number]> = [
    [2, 4000],
    [3, 3000],
    [5, 5000],
    [10, 10_000],
  ];
  for (const [n, total] of spreads) {
    it(`spreads ${total} keys evenly over ${n} members (each within 15 % of 1/${n})`, () => {
      const members = Array.from({ length: n }, (_, i) => `logtail-operator-7d9f-${i}`);
      const c = counts(keys(total), members);
      for (const [, v] of c) {
        expect(v / total).to.be.within((1 / n) * 0.85, (1 / n) * 1.15);
      }
    });
  }

  it('a member joining takes about 1/N of the keys and no other key moves', () => {
    const ks = keys(3000);
    const before = ['op-0', 'op-1', 'op-2'];
    const after = [...before, 'op-3'];
    let moved = 0;
    for (const k of ks) {
      const a = rendezvousOwner(k, before);
      const b = rendezvousOwner(k, after);
      if (a !== b) {
        moved++;
        expect(b, `key ${k} moved between old members`).to.equal('op-3');
      }
    }
    expect(moved / ks.length).to.be.within(0.2, 0.3);
  });

  it('a member leaving moves only its own keys, spread over the others', () => {
    const ks = keys(3000);
    const before = ['op-0', 'op-1', 'op-2', 'op-3'];
    const after = ['op-0', 'op-1', 'op-3'];
    const gained = new Map<string, number>();
    for (const k of ks) {
      const a = rendezvousOwner(k, before)!;
      const b = rendezvousOwner(k, after)!;
      if (a !== 'op-2') expect(b).to.equal(a);
      else gained.set(b, (gained.get(b) ?? 0) + 1);
    }
    expect([...gained.keys()].sort()).to.deep.equal(['op-0', 'op-1', 'op-3']);
    for (const [, v] of gained) expect(v).to.be.greaterThan(150);
  });
});

describe('core/shard: member state from observed Leases', () => {
  const D = 15_000;
  it('a claim is alive only in the term it was made in', () => {
    const lease = { holder: 'a', durationMs: D, observedAt: 1000, term: 'u.3' };
    expect(memberState(lease, undefined, D, 2000, 'u.3')).to.equal('live');
    expect(memberState(lease, undefined, D, 2000)).to.equal('live');
    expect(memberState(lease, undefined, D, 2000, 'u.2'), 'the holder lost its Lease and came back: its old claims are dead').to.equal('dead');
    expect(memberState(lease, undefined, D, 2000, 'v.3'), 'a re-created Lease (other UID) is another term').to.equal('dead');
    expect(memberState(lease, undefined, D, 1000 + D, 'u.3')).to.equal('dead');
  });
  const cases: Array<[string, Parameters<typeof memberState>[0], number | undefined, number, string]> = [
    ['a Lease seen changing just now is live', { holder: 'a', durationMs: D, observedAt: 1000, term: 'u.0' }, undefined, 1000, 'live'],
    ['live until its duration has passed on our clock', { holder: 'a', durationMs: D, observedAt: 1000, term: 'u.0' }, undefined, 1000 + D - 1, 'live'],
    ['dead once it has not changed for its duration', { holder: 'a', durationMs: D, observedAt: 1000, term: 'u.0' }, undefined, 1000 + D, 'dead'],
    ['the Lease\'s own duration counts, not ours', { holder: 'a', durationMs: 5000, observedAt: 1000, term: 'u.0' }, undefined, 6000, 'dead'],
    ['a released Lease (no holder) is dead at once', { holder: '', durationMs: D, observedAt: 1000, term: 'u.0' }, undefined, 1000, 'dead'],
    ['no Lease, never missed before: unknown (it may be newer than our list)', undefined, undefined, 50_000, 'unknown'],
    ['no Lease, missing for less than a duration: unknown', undefined, 40_000, 40_000 + D - 1, 'unknown'],
    ['no Lease, missing for a whole duration: dead', undefined, 40_000, 40_000 + D, 'dead'],
  ];
  for (const [name, lease, missing, now, want] of cases) {
    it(name, () => expect(memberState(lease, missing, D, now)).to.equal(want));
  }
});

describe('core/shard: needsOwner', () => {
  const cases: Array<[string, Parameters<typeof needsOwner>[0], boolean]> = [
    ['new LogTail', { metadata: {}, status: {} }, true],
    ['running', { metadata: { finalizers: [FIN] }, status: { phase: 'Running' } }, true],
    ['terminal, finalizer still on', { metadata: { finalizers: [FIN] }, status: { phase: 'Complete' } }, true],
    ['terminal, finalizer gone, no ttl', { metadata: { finalizers: [] }, status: { phase: 'Complete' } }, false],
    ['terminal, finalizer gone, ttl pending', { metadata: {}, spec: { ttlSecondsAfterFinished: 60 }, status: { phase: 'Failed' } }, true],
    ['terminal, ttl 0', { metadata: {}, spec: { ttlSecondsAfterFinished: 0 }, status: { phase: 'Incomplete' } }, true],
    ['being deleted with our finalizer', { metadata: { finalizers: [FIN], deletionTimestamp: 'x' }, status: { phase: 'Running' } }, true],
    ['being deleted, only a foreign finalizer left', { metadata: { finalizers: ['other/x'], deletionTimestamp: 'x' }, status: { phase: 'Running' } }, false],
  ];
  for (const [name, lt, want] of cases) it(name, () => expect(needsOwner(lt, FIN)).to.equal(want));
});

describe('core/shard: the claim decision', () => {
  // A uid for which, among op-a/op-b/op-c, the hash picks each member in turn.
  const uidFor = (winner: string, members: string[]): string => {
    for (let i = 0; ; i++) if (rendezvousOwner(`u${i}`, members) === winner) return `u${i}`;
  };
  const all = ['op-a', 'op-b', 'op-c'];
  const base = (o: Partial<ClaimInput>): ClaimInput => ({ me: 'op-a', meLive: true, myTerm: 'u.4', uid: uidFor('op-a', all), owner: undefined, ownerTerm: undefined, ownerState: 'unknown', live: all, needsOwner: true, ...o });
  const cases: Array<[string, Partial<ClaimInput>, ClaimDecision]> = [
    ['unowned, the hash picks me: claim', {}, { kind: 'claim' }],
    ['unowned (owner ""), the hash picks me: claim', { owner: '' }, { kind: 'claim' }],
    ['unowned, the hash picks another: leave it to them', { uid: uidFor('op-b', all) }, { kind: 'leave', why: 'assigned-elsewhere' }],
    ['unowned, nothing left to do for it: leave', { needsOwner: false }, { kind: 'leave', why: 'no-owner-needed' }],
    ['mine, the hash agrees: work', { owner: 'op-a', ownerTerm: 'u.4' }, { kind: 'work' }],
    ['mine, a new member wins it: release to it', { owner: 'op-a', ownerTerm: 'u.4', uid: uidFor('op-d', [...all, 'op-d']), live: [...all, 'op-d'] }, { kind: 'release', to: 'op-d' }],
    ['mine, the hash moved but nothing left to do: keep (no churn)', { owner: 'op-a', ownerTerm: 'u.4', uid: uidFor('op-b', all), needsOwner: false }, { kind: 'work' }],
    ['owned by a live member: leave, even when the hash picks me', { owner: 'op-b', ownerState: 'live' }, { kind: 'leave', why: 'owned-elsewhere' }],
    ['owner unknown (Lease not seen yet): leave', { owner: 'op-x', ownerState: 'unknown' }, { kind: 'leave', why: 'owned-elsewhere' }],
    ['owner dead, the hash picks me: take it over', { owner: 'op-c', ownerState: 'dead', live: ['op-a', 'op-b'], uid: uidFor('op-a', ['op-a', 'op-b']) }, { kind: 'claim', from: 'op-c' }],
    ['owner dead, the hash picks another survivor: leave', { owner: 'op-c', ownerState: 'dead', live: ['op-a', 'op-b'], uid: uidFor('op-b', ['op-a', 'op-b']) }, { kind: 'leave', why: 'assigned-elsewhere' }],
    ['owner dead, nothing left to do: leave', { owner: 'op-c', ownerState: 'dead', needsOwner: false }, { kind: 'leave', why: 'no-owner-needed' }],
    ['my own Lease is stale, mine: wait (start nothing)', { owner: 'op-a', ownerTerm: 'u.4', meLive: false }, { kind: 'wait' }],
    ['my claim from an earlier term (I lost my Lease since), the hash picks me: claim it afresh', { owner: 'op-a', ownerTerm: 'u.3' }, { kind: 'claim', from: 'op-a' }],
    ['my claim without a term: claim it afresh', { owner: 'op-a' }, { kind: 'claim', from: 'op-a' }],
    ['my claim from an earlier term, the hash picks another: leave it (it is dead for everybody)', { owner: 'op-a', ownerTerm: 'u.3', uid: uidFor('op-b', all) }, { kind: 'leave', why: 'assigned-elsewhere' }],
    ['my claim from an earlier term while my Lease is stale: never work on it', { owner: 'op-a', ownerTerm: 'u.3', meLive: false }, { kind: 'leave', why: 'not-live' }],
    ['my own Lease is stale, unowned: never claim', { meLive: false }, { kind: 'leave', why: 'not-live' }],
    ['my own Lease is stale, owner dead: never claim', { meLive: false, owner: 'op-c', ownerState: 'dead' }, { kind: 'leave', why: 'not-live' }],
    ['I am missing from my own view of the members: still counted', { live: ['op-b', 'op-c'], uid: uidFor('op-a', all) }, { kind: 'claim' }],
    ['alone: everything is mine', { live: ['op-a'], uid: uidFor('op-b', all) }, { kind: 'claim' }],
  ];
  for (const [name, o, want] of cases) it(name, () => expect(decideClaim(base(o))).to.deep.equal(want));

  it('two replicas with different views never both decide to claim a live owner\'s LogTail', () => {
    // op-a sees op-d, op-b does not; the LogTail is owned by live op-c.
    for (let i = 0; i < 200; i++) {
      const a = decideClaim({ me: 'op-a', meLive: true, myTerm: 'a.0', uid: `k${i}`, owner: 'op-c', ownerTerm: 'c.2', ownerState: 'live', live: [...all, 'op-d'], needsOwner: true });
      const b = decideClaim({ me: 'op-b', meLive: true, myTerm: 'b.5', uid: `k${i}`, owner: 'op-c', ownerTerm: 'c.2', ownerState: 'live', live: all, needsOwner: true });
      expect(a.kind).to.equal('leave');
      expect(b.kind).to.equal('leave');
    }
  });
});

describe('core/shard: memberLeaseName', () => {
  const cases: Array<[string, string, string]> = [
    ['logtail-operator', 'logtail-operator-6c9d7f-x2k4p', 'logtail-operator-shard-logtail-operator-6c9d7f-x2k4p'],
    ['lt', 'Host_Name:123', 'lt-shard-host-name-123'],
    ['lt', 'op-1.', 'lt-shard-op-1'],
  ];
  for (const [group, id, want] of cases) it(`${group} + ${id}`, () => expect(memberLeaseName(group, id)).to.equal(want));
  it('is at most 253 characters', () => expect(memberLeaseName('g', 'x'.repeat(400)).length).to.be.at.most(253));
});
