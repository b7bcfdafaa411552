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
