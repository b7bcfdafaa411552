import { expect } from 'chai';
import type { KubeApi } from '../../../src/adapters/kube-api.ts';
import { FINALIZER, type LogTail } from '../../../src/core/spec.ts';
import { Controller } from '../../../src/runtime/controller.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { MemoryStore } from './capture-harness.ts';

/** A controller whose cache is a map, so reconcile can be called directly. */
class TestController extends Controller {
  readonly lts = new Map<string, LogTail>();
  override getLogTail(namespace: string, name: string): LogTail | undefined {
    return this.lts.get(`${namespace}/${name}`);
  }
}

describe('runtime/Controller.reconcile', () => {
  it('returns at once while a deleted LogTail\'s daemon stops; removes the finalizer only after the deadline', async () => {
    const finalizerCalls: boolean[] = [];
    const held: (() => void)[] = [];
    const api = {
      getPod: () => new Promise(() => {}),
      // The daemon's first status write never answers: its stop cannot complete.
      patchLogTailStatus: () => new Promise<void>((r) => held.push(r)),
      createEvent: () => Promise.resolve(true),
      setFinalizer: (_ns: string, _n: string, _cur: unknown, _f: string, present: boolean) => {
        finalizerCalls.push(present);
        return Promise.resolve();
      },
    } as unknown as KubeApi;
    const ctrl = new TestController({ kc: undefined as never, api, store: new MemoryStore(), logger: silentLogger(), maxConcurrentStreams: 2, idleTimeoutMs: 1000, statusIntervalMs: 1000, finalizerDeadlineMs: 600 });
    Object.assign(ctrl as unknown as { running: boolean }, { running: true });
    const lt: LogTail = { apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name: 'x', namespace: 'ns', uid: 'u1', generation: 1 }, spec: { podName: 'p' } };
    ctrl.lts.set('ns/x', lt);
    expect(await ctrl.reconcile('ns/x')).to.deep.equal({ kind: 'done' });
    expect(finalizerCalls).to.deep.equal([true]);
    expect(ctrl.activeCaptures()).to.equal(1);

    ctrl.lts.set('ns/x', { ...lt, metadata: { ...lt.metadata, finalizers: [FINALIZER], deletionTimestamp: new Date() } });
    const t0 = Date.now();
    expect(await ctrl.reconcile('ns/x')).to.deep.equal({ kind: 'requeueAfter', ms: 250 });
    expect(Date.now() - t0, 'the worker did not wait for the daemon').to.be.below(200);
    expect(finalizerCalls, 'the finalizer is held while the daemon stops').to.deep.equal([true]);
    expect(ctrl.activeCaptures()).to.equal(0);

    await new Promise((r) => setTimeout(r, 700));
    expect(await ctrl.reconcile('ns/x')).to.deep.equal({ kind: 'done' });
    expect(finalizerCalls, 'removed once the deadline passed').to.deep.equal([true, false]);
    // Let the daemon finish stopping, so nothing of it outlives the test.
    for (const r of held) r();
    await new Promise((r) => setTimeout(r, 50));
  });
});

describe('runtime/Controller: spec.holdPod', () => {
  const UID = 'lt-uid-1';
  const HOLD = `logtail.dev/hold-${UID}`;

  /** A pod store with a finalizer patch that can be made to fail; every call is recorded in order. */
  function world(o: { failPodPatch?: boolean } = {}) {
    const calls: string[] = [];
    const pod = { metadata: { name: 'p', namespace: 'ns', uid: 'pod-1', resourceVersion: '7', finalizers: ['example.com/keep', HOLD] } };
    const api = {
      getPod: () => Promise.resolve(structuredClone(pod)),
      setPodFinalizer: (_ns: string, _n: string, seen: { resourceVersion: string }, f: string, present: boolean) => {
        calls.push(`pod ${present ? '+' : '-'}${f} @${seen.resourceVersion}`);
        if (o.failPodPatch) return Promise.reject(Object.assign(new Error('500'), { status: 500 }));
        pod.metadata.finalizers = present ? [...pod.metadata.finalizers, f] : pod.metadata.finalizers.filter((x) => x !== f);
        return Promise.resolve();
      },
      setFinalizer: (_ns: string, _n: string, _cur: unknown, f: string, present: boolean) => {
        calls.push(`logtail ${present ? '+' : '-'}${f}`);
        return Promise.resolve();
      },
      patchLogTailStatus: (_ns: string, _n: string, status: { conditions?: Array<{ type: string; status: string; reason: string }> }) => {
        const c = status.conditions?.find((x) => x.type === 'PodHeld');
        calls.push(`status PodHeld=${c?.status}/${c?.reason}`);
        return Promise.resolve();
      },
      createEvent: () => Promise.resolve(true),
    } as unknown as KubeApi;
    class HoldController extends TestController {
      override getPod(): ReturnType<Controller['getPod']> {
        return structuredClone(pod) as never;
      }
    }
    const ctrl = new HoldController({ kc: undefined as never, api, store: new MemoryStore(), logger: silentLogger(), maxConcurrentStreams: 2, idleTimeoutMs: 1000, statusIntervalMs: 1000, holdPodEnabled: true });
    return { ctrl, calls, pod };
  }
  const base = (extra: Partial<LogTail['metadata']>, status?: LogTail['status']): LogTail => ({
    apiVersion: 'logtail.dev/v1alpha1',
    kind: 'LogTail',
    metadata: { name: 'x', namespace: 'ns', uid: UID, generation: 1, finalizers: [FINALIZER], ...extra },
    spec: { podName: 'p', holdPod: true },
    ...(status ? { status } : {}),
  });

  it('a deleted LogTail releases its hold (no one else\'s finalizer) before its own finalizer goes', async () => {
    const { ctrl, calls, pod } = world();
    ctrl.lts.set('ns/x', base({ deletionTimestamp: new Date() }));
    expect(await ctrl.reconcile('ns/x')).to.deep.equal({ kind: 'done' });
    expect(calls).to.deep.equal([`pod -${HOLD} @7`, 'logtail -logtail.dev/finalizer']);
    expect(pod.metadata.finalizers).to.deep.equal(['example.com/keep']);
  });

  it('a failed release keeps the LogTail\'s finalizer and is retried', async () => {
    const { ctrl, calls } = world({ failPodPatch: true });
    ctrl.lts.set('ns/x', base({ deletionTimestamp: new Date() }));
    expect(await ctrl.reconcile('ns/x')).to.deep.equal({ kind: 'requeue' });
    expect(calls).to.deep.equal([`pod -${HOLD} @7`]);
  });

  it('a finished LogTail whose hold is still on the pod: released, PodHeld=False/Released, then its finalizer goes', async () => {
    const { ctrl, calls } = world();
    ctrl.lts.set('ns/x', base({}, { phase: 'Complete', conditions: [] } as never));
    expect(await ctrl.reconcile('ns/x')).to.deep.equal({ kind: 'done' });
    expect(calls).to.deep.equal([`pod -${HOLD} @7`, 'status PodHeld=False/Released', 'logtail -logtail.dev/finalizer']);
  });

  it('a LogTail without holdPod never touches the pod', async () => {
    const { ctrl, calls } = world();
    ctrl.lts.set('ns/x', { ...base({ deletionTimestamp: new Date() }), spec: { podName: 'p' } });
    expect(await ctrl.reconcile('ns/x')).to.deep.equal({ kind: 'done' });
    expect(calls).to.deep.equal(['logtail -logtail.dev/finalizer']);
  });

  it('the sweep releases holds whose LogTail is gone or finished, and only with synced caches', async () => {
    const { ctrl, calls } = world();
    const pods = [
      { metadata: { name: 'p', namespace: 'ns', uid: 'pod-1', finalizers: ['example.com/keep', HOLD] } },
      { metadata: { name: 'q', namespace: 'ns', uid: 'pod-2', finalizers: ['logtail.dev/hold-live'] } },
    ];
    const live = { metadata: { name: 'y', namespace: 'ns', uid: 'live' }, status: { phase: 'Streaming' } };
    let synced = false;
    Object.assign(ctrl as unknown as Record<string, unknown>, {
      running: true,
      ltInformer: { list: () => [live], hasSynced: () => synced },
      podInformer: { list: () => pods, hasSynced: () => synced },
    });
    const sweep = () => (ctrl as unknown as { sweepHolds(): Promise<void> }).sweepHolds();
    await sweep();
    expect(calls, 'nothing before the caches are synced').to.deep.equal([]);
    synced = true;
    await sweep();
    expect(calls).to.deep.equal([`pod -${HOLD} @7`]);
  });
});
