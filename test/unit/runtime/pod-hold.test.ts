import { expect } from 'chai';
import type { V1Pod } from '@kubernetes/client-node';
import { KubeApiError } from '../../../src/adapters/kube-api.ts';
import { holdFinalizer } from '../../../src/core/hold.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { PodHold, changePodFinalizer, type PodFinalizerApi } from '../../../src/runtime/pod-hold.ts';
import { settle } from './fake-clock.ts';

const LT_UID = '11111111-2222-3333-4444-555555555555';
const F = holdFinalizer(LT_UID);

/** A pod store that applies the patch as the apiserver applies a JSON patch with `test` ops: all or nothing. */
class FakePods implements PodFinalizerApi {
  pod: V1Pod | undefined = { metadata: { name: 'p', namespace: 'ns', uid: 'pod-1', resourceVersion: '1', finalizers: ['example.com/other'] } };
  patches = 0;
  /** Run just before the next patch is applied: someone else changes the pod in between. */
  before: (() => void) | undefined;
  forbid = false;
  reads = 0;

  async getPod(): Promise<V1Pod | undefined> {
    this.reads++;
    return this.pod ? structuredClone(this.pod) : undefined;
  }

  bump(change: (m: NonNullable<V1Pod['metadata']>) => void): void {
    const m = this.pod!.metadata!;
    change(m);
    m.resourceVersion = String(Number(m.resourceVersion) + 1);
  }

  async setPodFinalizer(_ns: string, _name: string, seen: { uid: string; resourceVersion: string; finalizers?: string[] | undefined }, finalizer: string, present: boolean): Promise<void> {
    this.patches++;
    if (this.forbid) throw new KubeApiError(403, 'Forbidden', 'pods "p" is forbidden');
    const b = this.before;
    this.before = undefined;
    b?.();
    if (!this.pod) throw new KubeApiError(404, 'NotFound', 'not found');
    const m = this.pod.metadata!;
    if (m.uid !== seen.uid || m.resourceVersion !== seen.resourceVersion) throw new KubeApiError(422, 'Invalid', 'the server rejected our request: testing value /metadata/resourceVersion failed');
    this.bump((x) => {
      const list = [...(x.finalizers ?? [])];
      x.finalizers = present ? [...list, finalizer] : list.filter((f) => f !== finalizer);
    });
  }
}

/** A clock whose sleeps end only when the test advances it. */
class ManualClock {
  t = Date.parse('2026-11-29T12:00:00Z');
  private sleeps: Array<{ at: number; resolve: () => void }> = [];
  now = () => this.t;
  sleep = (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const s = { at: this.t + ms, resolve };
      this.sleeps.push(s);
      signal?.addEventListener('abort', () => {
        this.sleeps = this.sleeps.filter((x) => x !== s);
        reject(signal.reason);
      });
    });
  async advance(ms: number): Promise<void> {
    this.t += ms;
    const due = this.sleeps.filter((s) => s.at <= this.t);
    this.sleeps = this.sleeps.filter((s) => s.at > this.t);
    for (const s of due) s.resolve();
    await settle();
  }
  pending(): number {
    return this.sleeps.length;
  }
}

function setup(o: { enabled?: boolean; timeoutMs?: number } = {}) {
  const api = new FakePods();
  const clock = new ManualClock();
  const abort = new AbortController();
  const conditions: Array<[string, string, string]> = [];
  const events: string[] = [];
  const hold = new PodHold({
    api,
    enabled: o.enabled ?? true,
    logger: silentLogger(),
    clock,
    namespace: 'ns',
    podName: 'p',
    logTailUid: LT_UID,
    holdTimeoutMs: o.timeoutMs ?? 60_000,
    podUid: () => 'pod-1',
    previous: () => conditions.at(-1)?.[1],
    setCondition: (status, reason, message) => conditions.push([status, reason, message]),
    event: (_t, reason) => events.push(reason),
    signal: abort.signal,
  });
  return { api, clock, abort, conditions, events, hold };
}

describe('runtime/pod-hold', () => {
  it('places the hold beside other finalizers, keeps it, and releases it when the capture ends', async () => {
    const { api, conditions, hold } = setup();
    await hold.sync();
    expect(api.pod!.metadata!.finalizers).to.deep.equal(['example.com/other', F]);
    expect(conditions.at(-1)?.slice(0, 2)).to.deep.equal(['True', 'Held']);
    await hold.sync();
    expect(api.patches).to.equal(1);
    await hold.sync(true);
    expect(api.pod!.metadata!.finalizers).to.deep.equal(['example.com/other']);
    expect(conditions.at(-1)?.slice(0, 2)).to.deep.equal(['False', 'Released']);
  });

  it('a concurrent change of the pod makes the patch fail its test; re-read, nobody\'s finalizer is lost', async () => {
    const { api, clock, hold } = setup();
    const run = async (p: Promise<void>) => {
      await settle();
      await clock.advance(100); // the back-off before the re-read
      await p;
    };
    api.before = () => api.bump((m) => (m.finalizers = [...(m.finalizers ?? []), 'example.com/late']));
    await run(hold.sync());
    expect(api.patches).to.equal(2);
    expect(api.pod!.metadata!.finalizers).to.deep.equal(['example.com/other', 'example.com/late', F]);
    api.before = () => api.bump((m) => (m.finalizers = ['example.com/first', ...(m.finalizers ?? [])]));
    await run(hold.sync(true));
    expect(api.pod!.metadata!.finalizers).to.deep.equal(['example.com/first', 'example.com/other', 'example.com/late']);
  });

  it('releases holdTimeout after the pod\'s deletionTimestamp, with an Event, and only then', async () => {
    const { api, clock, conditions, events, hold } = setup({ timeoutMs: 60_000 });
    await hold.sync();
    api.bump((m) => (m.deletionTimestamp = new Date(clock.t + 5_000)));
    await hold.sync(); // the pod event of the deletion arms the timer
    await clock.advance(64_000);
    expect(api.pod!.metadata!.finalizers).to.include(F);
    await clock.advance(1_000);
    expect(api.pod!.metadata!.finalizers).to.not.include(F);
    expect(conditions.at(-1)?.slice(0, 2)).to.deep.equal(['False', 'HoldTimeout']);
    expect(events).to.deep.equal(['HoldTimeout']);
    await hold.sync(); // never placed again
    expect(api.pod!.metadata!.finalizers).to.not.include(F);
  });

  it('a stopped capture (operator exiting) keeps the hold and its timer ends', async () => {
    const { api, clock, abort, hold } = setup({ timeoutMs: 60_000 });
    await hold.sync();
    api.bump((m) => (m.deletionTimestamp = new Date(clock.t)));
    await hold.sync();
    expect(clock.pending()).to.equal(1);
    abort.abort(new Error('OperatorExiting'));
    await settle();
    expect(clock.pending()).to.equal(0);
    expect(api.pod!.metadata!.finalizers).to.include(F);
  });

  it('without --enable-hold-pod: no patch, condition HoldNotPermitted', async () => {
    const { api, conditions, hold } = setup({ enabled: false });
    await hold.sync();
    expect(api.patches).to.equal(0);
    expect(conditions.map((c) => c[1])).to.deep.equal(['HoldNotPermitted']);
  });

  it('a 403 on the patch: condition HoldNotPermitted, the capture goes on', async () => {
    const { api, conditions, hold } = setup();
    api.forbid = true;
    await hold.sync();
    expect(conditions.at(-1)?.slice(0, 2)).to.deep.equal(['False', 'HoldNotPermitted']);
  });

  it('a pod first seen while being deleted is not held (HoldTooLate)', async () => {
    const { api, conditions, hold } = setup();
    api.bump((m) => (m.deletionTimestamp = new Date()));
    await hold.sync();
    expect(api.patches).to.equal(0);
    expect(conditions.at(-1)?.[1]).to.equal('HoldTooLate');
  });

  it('changePodFinalizer: another pod under the name is never touched', async () => {
    const api = new FakePods();
    api.pod!.metadata!.finalizers = [F];
    expect(await changePodFinalizer(api, { namespace: 'ns', name: 'p', uid: 'pod-0' }, F, false, async () => undefined)).to.equal('gone');
    expect(api.pod!.metadata!.finalizers).to.deep.equal([F]);
    expect(await changePodFinalizer(api, { namespace: 'ns', name: 'p', uid: 'pod-1' }, F, false, async () => undefined)).to.equal('done');
    expect(await changePodFinalizer(api, { namespace: 'ns', name: 'p', uid: 'pod-1' }, F, false, async () => undefined)).to.equal('unchanged');
    api.pod = undefined;
    expect(await changePodFinalizer(api, { namespace: 'ns', name: 'p', uid: undefined }, F, false, async () => undefined)).to.equal('gone');
  });
});
