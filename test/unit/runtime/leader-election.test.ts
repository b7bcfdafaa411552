import { expect } from 'chai';
import { ApiException } from '@kubernetes/client-node';
import type { V1Lease } from '@kubernetes/client-node';
import { LeaderElector } from '../../../src/runtime/leader-election.ts';
import type { LeaseApi } from '../../../src/runtime/leader-election.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { FakeClock, deferred } from './fake-clock.ts';

function apiError(code: number, message: string): ApiException<unknown> {
  return new ApiException(code, message, { kind: 'Status', code, message }, {});
}

/** One Lease as the apiserver keeps it: JSON on the wire, resourceVersion-checked replaces. */
class LeaseServer {
  lease: V1Lease | undefined;
  rv = 1;
  conflicts = 0;
  /** Reads wait until this many are pending, then all answer with one snapshot. */
  readBarrier = 0;
  #heldReads: Array<() => void> = [];

  seed(spec: V1Lease['spec']): void {
    this.lease = this.#wire({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'lt', namespace: 'sys', resourceVersion: String(this.rv) }, spec });
  }

  #wire<T>(o: T): T {
    return JSON.parse(JSON.stringify(o)) as T;
  }

  /** The view of one replica; `down`/`hang` cut it off from the apiserver. */
  client(): LeaseApi & { down: boolean; hang: boolean } {
    const gate = async (c: { down: boolean; hang: boolean }) => {
      if (c.hang) await new Promise(() => {});
      if (c.down) throw new TypeError('fetch failed');
    };
    const c = {
      down: false,
      hang: false,
      readNamespacedLease: async (): Promise<V1Lease> => {
        await gate(c);
        if (this.readBarrier > 0) {
          const d = deferred();
          this.#heldReads.push(() => d.resolve());
          if (this.#heldReads.length >= this.readBarrier) {
            this.readBarrier = 0;
            const held = this.#heldReads;
            this.#heldReads = [];
            const snapshot = this.#wire(this.lease);
            for (const r of held) r();
            await d.promise;
            return this.#wire(snapshot) as V1Lease;
          }
          await d.promise;
        }
        if (!this.lease) throw apiError(404, 'NotFound');
        return this.#wire(this.lease);
      },
      createNamespacedLease: async ({ body }: { namespace: string; body: V1Lease }): Promise<V1Lease> => {
        await gate(c);
        if (this.lease) throw apiError(409, 'AlreadyExists');
        this.rv++;
        this.lease = this.#wire({ ...body, metadata: { ...body.metadata, resourceVersion: String(this.rv) } });
        return this.#wire(this.lease);
      },
      replaceNamespacedLease: async ({ body }: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease> => {
        await gate(c);
        if (!this.lease) throw apiError(404, 'NotFound');
        const want = body.metadata?.resourceVersion;
        // Like the apiserver: a replace without resourceVersion is unconditional.
        if (want !== undefined && want !== this.lease.metadata?.resourceVersion) {
          this.conflicts++;
          throw apiError(409, 'Conflict');
        }
        this.rv++;
        this.lease = this.#wire({ ...body, metadata: { ...body.metadata, resourceVersion: String(this.rv) } });
        return this.#wire(this.lease);
      },
    };
    return c;
  }
}

interface Candidate {
  elector: LeaderElector;
  api: ReturnType<LeaseServer['client']>;
  stop: AbortController;
  done: Promise<void>;
  terms: AbortSignal[];
  stopped: number;
  /** Inside a term: started and its signal not aborted. */
  active(): boolean;
}

describe('runtime/LeaderElector', () => {
  let clock: FakeClock;
  let server: LeaseServer;
  let candidates: Candidate[];

  beforeEach(() => {
    clock = new FakeClock();
    server = new LeaseServer();
    candidates = [];
  });

  afterEach(async () => {
    for (const c of candidates) {
      c.api.hang = false;
      c.api.down = false;
      c.stop.abort();
    }
    await clock.advance(60_000);
    await Promise.all(candidates.map((c) => c.done));
  });

  function candidate(identity: string): Candidate {
    const api = server.client();
    const terms: AbortSignal[] = [];
    const c: Candidate = {
      api,
      terms,
      stopped: 0,
      stop: new AbortController(),
      done: Promise.resolve(),
      active: () => terms.length > 0 && !terms[terms.length - 1]!.aborted,
      elector: new LeaderElector({
        api,
        namespace: 'sys',
        name: 'lt',
        identity,
        leaseDurationMs: 15_000,
        renewDeadlineMs: 10_000,
        retryPeriodMs: 2_000,
        logger: silentLogger(),
        clock,
        onStartedLeading: (signal) => {
          terms.push(signal);
        },
        onStoppedLeading: () => {
          c.stopped++;
        },
      }),
    };
    c.done = c.elector.run(c.stop.signal);
    candidates.push(c);
    return c;
  }

  it('creates the lease, renews it every retry period, and releases it on stop', async () => {
    const a = candidate('a');
    await clock.advance(0);
    expect(a.elector.isLeader()).to.equal(true);
    expect(a.terms.length).to.equal(1);
    expect(server.lease?.spec?.holderIdentity).to.equal('a');
    expect(server.lease?.spec?.leaseDurationSeconds).to.equal(15);
    // MicroTime on the wire: six fraction digits.
    expect(String(server.lease?.spec?.renewTime)).to.match(/\.\d{6}Z$/);

    const firstRenew = Date.parse(String(server.lease?.spec?.renewTime));
    await clock.advance(2000);
    expect(Date.parse(String(server.lease?.spec?.renewTime))).to.equal(firstRenew + 2000);
    await clock.advance(20_000);
    expect(a.elector.isLeader()).to.equal(true);
    expect(a.elector.healthy()).to.equal(true);

    a.stop.abort();
    await clock.advance(0);
    await a.done;
    expect(a.terms[0]?.aborted).to.equal(true);
    expect(a.stopped).to.equal(1);
    expect(a.elector.isLeader()).to.equal(false);
    expect(server.lease?.spec?.holderIdentity).to.equal(undefined);
    expect(server.lease?.spec?.leaseDurationSeconds).to.equal(1);
  });

  it('hands over when the leader stops renewing: the leader quits first, the other waits for expiry', async () => {
    const a = candidate('a');
    await clock.advance(0);
    const b = candidate('b');
    await clock.advance(10_000);
    expect(a.active()).to.equal(true);
    expect(b.elector.isLeader()).to.equal(false);
    expect(b.elector.healthy(), 'a standby that can read the lease is healthy').to.equal(true);

    // A is cut off from the apiserver right after a renewal.
    const lastRenew = Date.parse(String(server.lease?.spec?.renewTime));
    a.api.down = true;
    let aQuitAt: number | undefined;
    let bLeadAt: number | undefined;
    for (let t = 0; t < 30_000; t += 250) {
      await clock.advance(250);
      if (aQuitAt === undefined && !a.active()) aQuitAt = clock.now() - lastRenew;
      if (bLeadAt === undefined && b.active()) bLeadAt = clock.now() - lastRenew;
      expect(a.active() && b.active(), `two leaders at +${clock.now() - lastRenew} ms`).to.equal(false);
      expect(a.elector.isLeader() && b.elector.isLeader()).to.equal(false);
    }
    expect(aQuitAt, 'A gives up at its renew deadline').to.be.within(10_000, 10_250);
    expect(a.stopped).to.equal(1);
    // B saw the last renewal within one retry period of it, and waits a full lease duration from then.
    expect(bLeadAt).to.be.within(15_000, 15_000 + 2_000 + 2_250);
    expect(server.lease?.spec?.holderIdentity).to.equal('b');
    expect(server.lease?.spec?.leaseTransitions).to.equal(1);
  });

  it('gives the lease up when a renewal hangs, at the renew deadline', async () => {
    const a = candidate('a');
    await clock.advance(0);
    const t0 = clock.now();
    a.api.hang = true;
    await clock.advance(9_750);
    expect(a.active()).to.equal(true);
    await clock.advance(500);
    expect(a.active()).to.equal(false);
    expect(a.elector.isLeader()).to.equal(false);
    expect(clock.now() - t0).to.be.lessThan(15_000);
  });

  it('lets only one of two candidates win a free lease (the loser gets 409)', async () => {
    server.seed({ leaseDurationSeconds: 15, leaseTransitions: 3 });
    server.readBarrier = 2;
    const a = candidate('a');
    const b = candidate('b');
    await clock.advance(0);
    expect(server.conflicts).to.equal(1);
    expect([a.active(), b.active()].filter(Boolean).length).to.equal(1);
    for (let t = 0; t < 40_000; t += 500) {
      await clock.advance(500);
      expect([a.active(), b.active()].filter(Boolean).length, `at +${t}`).to.equal(1);
    }
    expect(server.lease?.spec?.leaseTransitions).to.equal(4);
  });

  it('never takes a lease that its holder keeps renewing', async () => {
    server.seed({ holderIdentity: 'other', leaseDurationSeconds: 15, renewTime: new Date(clock.now()).toISOString() as never });
    const b = candidate('b');
    for (let t = 0; t < 60_000; t += 2_000) {
      await clock.advance(2_000);
      // The holder renews (content changes) every 2 s.
      server.lease!.spec!.renewTime = new Date(clock.now()).toISOString() as never;
      server.rv++;
      server.lease!.metadata!.resourceVersion = String(server.rv);
    }
    expect(b.active()).to.equal(false);
    // Once the holder stops, b takes over after a lease duration.
    // (it notices the last renewal up to one retry period late, and retries every period)
    await clock.advance(14_000);
    expect(b.active()).to.equal(false);
    await clock.advance(5_000);
    expect(b.active()).to.equal(true);
  });

  it('a graceful stop lets the standby take over within a retry period', async () => {
    const a = candidate('a');
    await clock.advance(0);
    const b = candidate('b');
    await clock.advance(4_000);
    expect(b.active()).to.equal(false);
    a.stop.abort();
    await clock.advance(2_000);
    expect(b.active()).to.equal(true);
  });

  it('waits for the work of a term to wind down before releasing the lease', async () => {
    const api = server.client();
    const work = deferred();
    let releasedBeforeWorkDone = false;
    const stop = new AbortController();
    const e = new LeaderElector({
      api,
      namespace: 'sys',
      name: 'lt',
      identity: 'w',
      logger: silentLogger(),
      clock,
      onStartedLeading: (signal) => {
        signal.addEventListener('abort', () => setImmediate(() => work.resolve()));
        return work.promise.then(() => {
          releasedBeforeWorkDone = server.lease?.spec?.holderIdentity !== 'w';
        });
      },
      onStoppedLeading: () => {},
    });
    const done = e.run(stop.signal);
    await clock.advance(0);
    stop.abort();
    await clock.advance(0);
    await done;
    expect(releasedBeforeWorkDone).to.equal(false);
    expect(server.lease?.spec?.holderIdentity).to.equal(undefined);
  });
});

describe('runtime/kubeLeaseApi', () => {
  it('reads, creates and replaces the Lease through KubeApi, with MicroTime strings and the status as `code`', async () => {
    const { KubeApiError } = await import('../../../src/adapters/kube-api.ts');
    const { kubeLeaseApi } = await import('../../../src/runtime/leader-election.ts');
    const calls: [string, string, unknown][] = [];
    const api = {
      request: (method: string, path: string, body?: unknown) => {
        calls.push([method, path, body]);
        if (method === 'GET') return Promise.reject(new KubeApiError(404, 'NotFound', 'leases "x" not found'));
        return Promise.resolve(body);
      },
    };
    const leases = kubeLeaseApi(api as never);
    const err = await leases.readNamespacedLease({ name: 'x', namespace: 'ns' }).catch((e: unknown) => e);
    expect((err as { code?: number }).code).to.equal(404);
    await leases.createNamespacedLease({ namespace: 'ns', body: { metadata: { name: 'x' }, spec: { holderIdentity: 'me' } } });
    await leases.replaceNamespacedLease({ name: 'x', namespace: 'ns', body: { metadata: { name: 'x', resourceVersion: '7' } } });
    expect(calls.map(([m, p]) => `${m} ${p}`)).to.deep.equal([
      'GET /apis/coordination.k8s.io/v1/namespaces/ns/leases/x',
      'POST /apis/coordination.k8s.io/v1/namespaces/ns/leases',
      'PUT /apis/coordination.k8s.io/v1/namespaces/ns/leases/x',
    ]);
    expect(calls[1]![2]).to.deep.include({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' });
  });
});
