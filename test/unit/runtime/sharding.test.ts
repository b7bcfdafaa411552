import { expect } from 'chai';
import type { V1Lease } from '@kubernetes/client-node';
import { OWNER_ANNOTATION, OWNER_TERM_ANNOTATION, SHARD_GROUP_LABEL, SHARD_ID_ANNOTATION, rendezvousOwner } from '../../../src/core/shard.ts';
import type { LogTail } from '../../../src/core/spec.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { type LocalCaptures, type ShardApi, ShardMembership, Sharding } from '../../../src/runtime/sharding.ts';
import type { StopReason } from '../../../src/runtime/capture-daemon.ts';
import { FakeClock } from './fake-clock.ts';

const NS = 'sys';
const GROUP = 'logtail-operator';
const LEASE_MS = 15_000;

function httpError(status: number): Error {
  return Object.assign(new Error(`HTTP ${status}`), { status });
}

/** The apiserver as far as sharding uses it: Leases and LogTail annotations, resourceVersion-checked. */
class FakeServer {
  rv = 100;
  uids = 0;
  readonly leases = new Map<string, V1Lease>();
  readonly logTails = new Map<string, LogTail>();
  conflicts = 0;

  #wire<T>(o: T): T {
    return JSON.parse(JSON.stringify(o)) as T;
  }

  addLogTail(name: string, uid: string, extra: Partial<LogTail['metadata']> = {}): void {
    this.logTails.set(name, { apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name, namespace: 'app', uid, resourceVersion: String(++this.rv), finalizers: ['logtail.dev/finalizer'], ...extra }, spec: { podName: 'p' } });
  }

  lt(name: string): LogTail {
    return this.#wire(this.logTails.get(name)!);
  }

  /** One replica's connection; `down` cuts it off. */
  client(): ShardApi & { down: boolean; hold: Promise<void> | undefined } {
    const c = {
      down: false,
      hold: undefined as Promise<void> | undefined,
      gate: () => {
        if (c.down) throw new TypeError('fetch failed');
      },
      listLeases: async (_ns: string, selector: string) => {
        c.gate();
        const [k, v] = selector.split('=');
        return [...this.leases.values()].filter((l) => l.metadata?.labels?.[k!] === v).map((l) => this.#wire(l));
      },
      getLease: async (_ns: string, name: string) => {
        c.gate();
        const l = this.leases.get(name);
        return l ? this.#wire(l) : undefined;
      },
      createLease: async (_ns: string, body: V1Lease) => {
        c.gate();
        const name = body.metadata!.name!;
        if (this.leases.has(name)) throw httpError(409);
        const l = this.#wire({ ...body, metadata: { ...body.metadata, uid: `uid${++this.uids}-lease`, resourceVersion: String(++this.rv) } });
        this.leases.set(name, l);
        return this.#wire(l);
      },
      replaceLease: async (_ns: string, name: string, body: V1Lease) => {
        c.gate();
        if (c.hold) await c.hold;
        const cur = this.leases.get(name);
        if (!cur) throw httpError(404);
        if (body.metadata?.resourceVersion !== cur.metadata?.resourceVersion) {
          this.conflicts++;
          throw httpError(409);
        }
        const l = this.#wire({ ...body, metadata: { ...body.metadata, resourceVersion: String(++this.rv) } });
        this.leases.set(name, l);
        return this.#wire(l);
      },
      patchOwner: async (_ns: string, name: string, resourceVersion: string, claim: { owner: string; term: string; since: string } | null) => {
        c.gate();
        const cur = this.logTails.get(name);
        if (!cur) throw httpError(404);
        if (cur.metadata.resourceVersion !== resourceVersion) {
          this.conflicts++;
          throw httpError(409);
        }
        const annotations = { ...(cur.metadata.annotations ?? {}) };
        if (claim === null) {
          delete annotations[OWNER_ANNOTATION];
          delete annotations[OWNER_TERM_ANNOTATION];
        } else {
          annotations[OWNER_ANNOTATION] = claim.owner;
          annotations[OWNER_TERM_ANNOTATION] = claim.term;
        }
        cur.metadata = { ...cur.metadata, annotations, resourceVersion: String(++this.rv) };
      },
    };
    return c;
  }
}

function member(server: FakeServer, clock: FakeClock, id: string, pod?: { name: string; uid: string }) {
  const api = server.client();
  const m = new ShardMembership({ api, namespace: NS, group: GROUP, id, leaseDurationMs: LEASE_MS, logger: silentLogger(), clock, ...(pod ? { pod } : {}) });
  const events = { changes: 0, lost: 0 };
  m.onChange = () => events.changes++;
  m.onLost = () => events.lost++;
  return { m, api, events, gate: new Sharding({ membership: m, api, logger: silentLogger(), clock }) };
}

type Member = ReturnType<typeof member>;

/**
 * One test's world: the fake apiserver, a fake clock, and the members made in
 * it. `started` makes and starts members in order, then lets the clock run
 * `settleMs` (a list round: each sees the others live); `stop` stops every
 * member made here that still runs, in the order they were made.
 */
function world() {
  const server = new FakeServer();
  const clock = new FakeClock();
  const made: Member[] = [];
  const add = (id: string, pod?: { name: string; uid: string }): Member => {
    const x = member(server, clock, id, pod);
    made.push(x);
    return x;
  };
  return {
    server,
    clock,
    member: add,
    async started<const T extends readonly string[]>(ids: T, settleMs = 0): Promise<{ -readonly [K in keyof T]: Member }> {
      const xs = ids.map((id) => add(id));
      for (const x of xs) await x.m.start();
      if (settleMs > 0) await clock.advance(settleMs);
      return xs as { -readonly [K in keyof T]: Member };
    },
    async stop(): Promise<void> {
      for (const x of made) await x.m.stop();
    },
  };
}

/** A controller's captures as the gate sees them: `running` keys stop after `stopTicks` asks. */
class Local implements LocalCaptures {
  readonly running = new Map<string, number>();
  readonly asked: Array<[string, StopReason]> = [];
  stop(key: string, reason: StopReason): boolean {
    const left = this.running.get(key);
    if (left === undefined) return true;
    this.asked.push([key, reason]);
    if (left <= 1) {
      this.running.delete(key);
      return true;
    }
    this.running.set(key, left - 1);
    return false;
  }
}

/** A uid the hash gives to `winner` among `members`. */
function uidFor(winner: string, members: string[], from = 0): string {
  for (let i = from; ; i++) if (rendezvousOwner(`uid-${i}`, members) === winner) return `uid-${i}`;
}

describe('runtime/sharding: membership on Leases', () => {
  it('each replica creates its own labelled Lease (owned by its pod) and sees every member live', async () => {
    const w = world();
    const ms = ['op-a', 'op-b', 'op-c'].map((id) => w.member(id, { name: id, uid: `pod-${id}` }));
    for (const x of ms) await x.m.start();
    await w.clock.advance(2_000);
    for (const x of ms) expect(x.m.live()).to.deep.equal(['op-a', 'op-b', 'op-c']);
    const lease = w.server.leases.get('logtail-operator-shard-op-b')!;
    expect(lease.metadata?.labels?.[SHARD_GROUP_LABEL]).to.equal(GROUP);
    expect(lease.metadata?.annotations?.[SHARD_ID_ANNOTATION]).to.equal('op-b');
    expect(lease.metadata?.ownerReferences).to.deep.equal([{ apiVersion: 'v1', kind: 'Pod', name: 'op-b', uid: 'pod-op-b' }]);
    expect(lease.spec?.holderIdentity).to.equal('op-b');
    expect(lease.spec?.leaseDurationSeconds).to.equal(15);
    await w.stop();
  });

  it('a replica cut off stops itself at the renew deadline, before the others consider its Lease expired', async () => {
    const w = world();
    const clock = w.clock;
    const [a, b] = await w.started(['op-a', 'op-b'], 4_000);
    expect(a.m.live()).to.deep.equal(['op-a', 'op-b']);
    const changesBefore = a.events.changes;
    b.api.down = true;
    const cut = clock.now();
    // b's last renewal was at most one retry period (2 s) before the cut
    let lostAt = 0;
    let deadAt = 0;
    for (let t = 0; t < 30_000; t += 100) {
      await clock.advance(100);
      if (!lostAt && b.events.lost > 0) lostAt = clock.now();
      if (!deadAt && a.m.state('op-b') === 'dead') deadAt = clock.now();
    }
    expect(b.events.lost).to.equal(1);
    expect(b.m.isLive()).to.equal(false);
    expect(b.m.term).to.match(/\.0$/);
    expect(lostAt - cut).to.be.at.most(10_000 + 2_000);
    expect(deadAt).to.be.greaterThan(lostAt);
    expect(deadAt - cut).to.be.at.least(15_000 - 2_000);
    expect(a.m.live()).to.deep.equal(['op-a']);
    expect(a.events.changes).to.be.greaterThan(changesBefore);
    expect(a.events.lost).to.equal(0);
    await w.stop();
  });

  it('a released Lease (graceful stop) is dead at once; the same id renewing again is live again', async () => {
    const w = world();
    const [a, b] = await w.started(['op-a', 'op-b'], 2_000);
    expect(a.m.state('op-b')).to.equal('live');
    await b.m.stop();
    expect(w.server.leases.get('logtail-operator-shard-op-b')?.spec?.holderIdentity).to.equal(undefined);
    await w.clock.advance(2_000);
    expect(a.m.state('op-b')).to.equal('dead');
    await w.started(['op-b'], 2_000);
    expect(a.m.state('op-b')).to.equal('live');
    await w.stop();
  });

  it('an owner never seen is unknown for a lease duration (its Lease may be newer than our list), then dead', async () => {
    const w = world();
    const [a] = await w.started(['op-a']);
    expect(a.m.state('ghost')).to.equal('unknown');
    await w.clock.advance(LEASE_MS - 2_000);
    expect(a.m.state('ghost')).to.equal('unknown');
    await w.clock.advance(2_000);
    expect(a.m.state('ghost')).to.equal('dead');
    await w.stop();
  });
});

describe('runtime/sharding: terms', () => {
  it('a replica back after losing its Lease starts a new term; its old claims are dead for everybody and are claimed afresh (RV-guarded)', async () => {
    const { server, clock, ...w } = world();
    const [a, b] = await w.started(['op-a', 'op-b'], 2_000);
    const uid = uidFor('op-b', ['op-a', 'op-b']);
    server.addLogTail('x', uid);
    await b.gate.gate('app/x', server.lt('x'), new Local());
    const term0 = b.m.term;
    expect(term0).to.match(/^uid\d-lea\.0$/);
    expect(server.lt('x').metadata.annotations).to.include({ [OWNER_ANNOTATION]: 'op-b', [OWNER_TERM_ANNOTATION]: term0 });
    expect(await b.gate.gate('app/x', server.lt('x'), new Local())).to.equal(undefined);
    // b is cut off past its renew deadline: it fences itself and, while cut off, works on nothing
    b.api.down = true;
    await clock.advance(12_000);
    expect(b.events.lost).to.equal(1);
    expect(await b.gate.gate('app/x', server.lt('x'), new Local())).to.deep.equal({ kind: 'done' });
    // back before a's view expired it: a new term (leaseTransitions 1)
    b.api.down = false;
    await clock.advance(2_000);
    expect(b.m.isLive()).to.equal(true);
    const term1 = b.m.term;
    expect(term1).to.equal(term0.replace(/\.0$/, '.1'));
    expect(server.leases.get('logtail-operator-shard-op-b')?.spec?.leaseTransitions).to.equal(1);
    // a (at its next list) sees b live, but in term 1: b's term-0 claim is dead for a too
    await clock.advance(2_000);
    expect(a.m.state('op-b')).to.equal('live');
    expect(a.m.state('op-b', term0)).to.equal('dead');
    expect(a.m.state('op-b', term1)).to.equal('live');
    // b does not just resume: it claims again, guarded by resourceVersion
    const seen = server.lt('x');
    expect(await b.gate.gate('app/x', seen, new Local())).to.deep.equal({ kind: 'done' });
    expect(server.lt('x').metadata.annotations).to.include({ [OWNER_ANNOTATION]: 'op-b', [OWNER_TERM_ANNOTATION]: term1 });
    expect(await b.gate.gate('app/x', server.lt('x'), new Local())).to.equal(undefined);
    // a, deciding from the same (now stale) version, is refused
    await a.gate.gate('app/x', seen, new Local());
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal('op-b');
    await w.stop();
  });

  it('a restarted process of the same replica (same id, Lease still there) starts a new term', async () => {
    const w = world();
    const [first] = await w.started(['op-a']);
    expect(first.m.term).to.match(/\.0$/);
    // killed: no release
    first.api.down = true;
    const [second] = await w.started(['op-a']);
    expect(second.m.term).to.equal(first.m.term.replace(/\.0$/, '.1'));
    expect(second.m.isLive()).to.equal(true);
    await second.m.stop();
    first.api.down = false;
  });
});

describe('runtime/sharding: term edge cases', () => {
  it('a renewal of the old term answered after the fence fired does not revive that term', async () => {
    const { clock, ...w } = world();
    const [b] = await w.started(['op-b']);
    const term0 = b.m.term;
    // the next renewals hang at the server until released
    let release!: () => void;
    b.api.hold = new Promise<void>((r) => (release = r));
    await clock.advance(10_500);
    expect(b.events.lost).to.equal(1);
    expect(b.m.isLive()).to.equal(false);
    // the held renewal (made in term 0) is answered now
    release();
    b.api.hold = undefined;
    await clock.advance(100);
    expect(b.m.isLive(), 'revived by a renewal of the old term').to.equal(false);
    expect(b.m.term).to.equal(term0);
    // the next renewal starts term 1
    await clock.advance(2_000);
    expect(b.m.isLive()).to.equal(true);
    expect(b.m.term).to.equal(term0.replace(/\.0$/, '.1'));
    await w.stop();
  });

  it('our Lease deleted under us: fence first, then a new Lease (new UID) is a new term', async () => {
    const { server, clock, ...w } = world();
    const [b] = await w.started(['op-b']);
    const term0 = b.m.term;
    server.leases.delete('logtail-operator-shard-op-b');
    await clock.advance(2_000);
    expect(b.events.lost).to.equal(1);
    await clock.advance(2_000);
    expect(b.m.isLive()).to.equal(true);
    expect(b.m.term).to.not.equal(term0);
    expect(b.m.term).to.match(/\.0$/);
    await w.stop();
  });
});

describe('runtime/sharding: the claim on the LogTail', () => {
  it('of two replicas that both decide to claim (different views), exactly one wins (409 for the other)', async () => {
    const { server, clock, ...w } = world();
    // two separate groups: each replica sees only itself, so each thinks the LogTail is its own
    const a = w.member('op-a');
    const b = new ShardMembership({ api: server.client(), namespace: NS, group: 'other', id: 'op-b', leaseDurationMs: LEASE_MS, logger: silentLogger(), clock });
    const gb = new Sharding({ membership: b, api: server.client(), logger: silentLogger(), clock });
    await a.m.start();
    await b.start();
    server.addLogTail('x', 'uid-x');
    const seen = server.lt('x');
    const local = new Local();
    const [ra, rb] = await Promise.all([a.gate.gate('app/x', seen, local), gb.gate('app/x', seen, local)]);
    const owner = server.lt('x').metadata.annotations?.[OWNER_ANNOTATION];
    expect(['op-a', 'op-b']).to.include(owner);
    expect(server.conflicts).to.equal(1);
    const results = [ra, rb].map((r) => r?.kind);
    expect(results.sort()).to.deep.equal(['done', 'requeueAfter']);
    // the loser looks again with the fresh object: owned by somebody it does not know yet → leaves it
    const loser = owner === 'op-a' ? gb : a.gate;
    expect(await loser.gate('app/x', server.lt('x'), local)).to.deep.equal({ kind: 'done' });
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal(owner);
    await a.m.stop();
    await b.stop();
  });

  it('with one view, only the hash winner claims, and the owner works on it', async () => {
    const { server, ...w } = world();
    const ms = await w.started(['op-a', 'op-b', 'op-c'], 2_000);
    const uid = uidFor('op-b', ['op-a', 'op-b', 'op-c']);
    server.addLogTail('x', uid);
    const local = new Local();
    for (const x of ms) await x.gate.gate('app/x', server.lt('x'), local);
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal('op-b');
    expect(server.conflicts).to.equal(0);
    // now op-b reconciles it; the others leave it
    expect(await ms[1]!.gate.gate('app/x', server.lt('x'), local)).to.equal(undefined);
    expect(await ms[0]!.gate.gate('app/x', server.lt('x'), local)).to.deep.equal({ kind: 'done' });
    expect(ms[1]!.gate.owned()).to.equal(1);
    expect(ms[0]!.gate.owned()).to.equal(0);
    await w.stop();
  });

  it('a joining member wins a LogTail: the owner stops its capture (ShardMoved) before it clears the claim, then the new member claims', async () => {
    const { server, ...w } = world();
    const [a] = await w.started(['op-a']);
    const uid = uidFor('op-d', ['op-a', 'op-d']);
    server.addLogTail('x', uid);
    const localA = new Local();
    await a.gate.gate('app/x', server.lt('x'), localA);
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal('op-a');
    localA.running.set('app/x', 2); // its capture takes two looks to stop
    const [d] = await w.started(['op-d'], 2_000);
    expect(a.m.live()).to.deep.equal(['op-a', 'op-d']);
    // first look: stop requested, claim still held
    expect(await a.gate.gate('app/x', server.lt('x'), localA)).to.deep.equal({ kind: 'requeueAfter', ms: 250 });
    expect(localA.asked).to.deep.equal([['app/x', 'ShardMoved']]);
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal('op-a');
    // op-d must not claim while op-a (live) holds it
    expect(await d.gate.gate('app/x', server.lt('x'), new Local())).to.deep.equal({ kind: 'done' });
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal('op-a');
    // second look: stopped → released
    await a.gate.gate('app/x', server.lt('x'), localA);
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal(undefined);
    await d.gate.gate('app/x', server.lt('x'), new Local());
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal('op-d');
    await w.stop();
  });

  it('a release written from a stale cache (our own last status write not seen yet) is refused and retried', async () => {
    const { server, ...w } = world();
    const [a] = await w.started(['op-a']);
    server.addLogTail('x', uidFor('op-d', ['op-a', 'op-d']), { annotations: { [OWNER_ANNOTATION]: 'op-a', [OWNER_TERM_ANNOTATION]: a.m.term } });
    const stale = server.lt('x');
    server.logTails.get('x')!.metadata.resourceVersion = String(++server.rv); // a status write the cache has not delivered
    await w.started(['op-d'], 2_000);
    expect(await a.gate.gate('app/x', stale, new Local())).to.deep.equal({ kind: 'requeueAfter', ms: 300 });
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal('op-a');
    await a.gate.gate('app/x', server.lt('x'), new Local());
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal(undefined);
    await w.stop();
  });

  it('a killed owner\'s LogTails are taken over only after its Lease expired, by the hash winner among the survivors', async () => {
    const { server, clock, ...w } = world();
    const ms = await w.started(['op-a', 'op-b', 'op-c'], 2_000);
    const uid = uidFor('op-c', ['op-a', 'op-b', 'op-c']);
    server.addLogTail('x', uid, { annotations: { [OWNER_ANNOTATION]: 'op-c', [OWNER_TERM_ANNOTATION]: ms[2]!.m.term } });
    const heir = rendezvousOwner(uid, ['op-a', 'op-b'])!;
    const other = heir === 'op-a' ? 'op-b' : 'op-a';
    const byId = new Map(ms.map((x) => [x.m.id, x]));
    // op-c is killed: no renewal, no release
    byId.get('op-c')!.api.down = true;
    await clock.advance(10_000);
    for (const x of [byId.get(heir)!, byId.get(other)!]) await x.gate.gate('app/x', server.lt('x'), new Local());
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION], 'taken before the Lease expired').to.equal('op-c');
    await clock.advance(8_000);
    await byId.get(other)!.gate.gate('app/x', server.lt('x'), new Local());
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal('op-c');
    await byId.get(heir)!.gate.gate('app/x', server.lt('x'), new Local());
    expect(server.lt('x').metadata.annotations?.[OWNER_ANNOTATION]).to.equal(heir);
    await w.stop();
  });

  it('a capture of a LogTail that is not ours is stopped (ShardMoved)', async () => {
    const { server, ...w } = world();
    const [a, b] = await w.started(['op-a', 'op-b'], 2_000);
    server.addLogTail('x', 'u', { annotations: { [OWNER_ANNOTATION]: 'op-b', [OWNER_TERM_ANNOTATION]: b.m.term } });
    const local = new Local();
    local.running.set('app/x', 1);
    expect(await a.gate.gate('app/x', server.lt('x'), local)).to.deep.equal({ kind: 'done' });
    expect(local.asked).to.deep.equal([['app/x', 'ShardMoved']]);
    await w.stop();
  });
});
