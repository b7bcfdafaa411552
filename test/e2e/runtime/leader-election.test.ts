import { expect } from 'chai';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { KubeApi } from '../../../src/adapters/kube-api.ts';
import { LeaderElector, kubeLeaseApi } from '../../../src/runtime/leader-election.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { cluster, uniqueName } from '../fixture.ts';

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('runtime/LeaderElector against a real apiserver', function () {
  this.timeout(120_000);

  it('elects one of two replicas, renews through the API, and hands over on release', async () => {
    const c = await cluster();
    const kc = new KubeConfig();
    kc.loadFromFile(c.kubeconfigPath);
    const namespace = uniqueName('lease');
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
    const leases = kc.makeApiClient(CoordinationV1Api);

    const replicas = ['a', 'b'].map((identity) => {
      const state = { identity, leading: false, terms: 0, stop: new AbortController(), done: Promise.resolve() };
      const elector = new LeaderElector({
        api: kubeLeaseApi(new KubeApi(kc)),
        namespace,
        name: 'logtail-operator',
        identity,
        leaseDurationMs: 4000,
        renewDeadlineMs: 3000,
        retryPeriodMs: 500,
        logger: silentLogger(),
        onStartedLeading: () => {
          state.leading = true;
          state.terms++;
        },
        onStoppedLeading: () => {
          state.leading = false;
        },
      });
      state.done = elector.run(state.stop.signal);
      return { ...state, elector, get leading() { return state.leading; }, get terms() { return state.terms; } };
    });
    try {
      await waitFor('a leader', () => replicas.some((r) => r.leading), 10_000);
      const leader = replicas.find((r) => r.leading)!;
      const standby = replicas.find((r) => r !== leader)!;
      const lease = await leases.readNamespacedLease({ name: 'logtail-operator', namespace });
      expect(lease.spec?.holderIdentity).to.equal(leader.identity);
      expect(lease.spec?.leaseDurationSeconds).to.equal(4);

      // Several renewals later the same replica still leads, alone.
      const rv = lease.metadata?.resourceVersion;
      await new Promise((r) => setTimeout(r, 3000));
      expect(leader.leading && !standby.leading).to.equal(true);
      const renewed = await leases.readNamespacedLease({ name: 'logtail-operator', namespace });
      expect(renewed.metadata?.resourceVersion).to.not.equal(rv);
      expect(String(renewed.spec?.renewTime)).to.not.equal(String(lease.spec?.renewTime));
      expect(standby.elector.healthy()).to.equal(true);

      const stoppedAt = Date.now();
      leader.stop.abort();
      await leader.done;
      // Released: the old leader no longer holds it. The standby may already
      // have taken it by the time this read arrives (its retry can fire
      // between the release and the read), so '' or the standby are both right.
      const released = await leases.readNamespacedLease({ name: 'logtail-operator', namespace });
      expect(['', standby.identity]).to.include(released.spec?.holderIdentity ?? '');
      await waitFor('the standby to take over', () => standby.leading, 5000);
      // Released, not expired: well under the 4 s lease duration.
      expect(Date.now() - stoppedAt).to.be.lessThan(2000);
    } finally {
      for (const r of replicas) r.stop.abort();
      await Promise.all(replicas.map((r) => r.done));
    }
  });
});
