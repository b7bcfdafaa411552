import { expect } from 'chai';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { loadKubeCredentials } from '../../../src/adapters/kube-credentials.ts';
import { memoryLogger } from '../../../src/runtime/logger.ts';
import { SupervisedInformer } from '../../../src/runtime/supervised-informer.ts';
import { cluster, uniqueName } from '../fixture.ts';

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('runtime/SupervisedInformer against a real apiserver', function () {
  this.timeout(300_000);

  it('recovers after the apiserver restarts and delivers what happened meanwhile', async () => {
    const c = await cluster();
    const kc = new KubeConfig();
    kc.loadFromFile(c.kubeconfigPath);
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = uniqueName('informer');
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    const cm = (name: string): V1ConfigMap => ({ metadata: { name, namespace }, data: { k: name } });

    const { logger, lines } = memoryLogger('info');
    const informer = new SupervisedInformer<V1ConfigMap>({
      name: 'configmaps',
      // Our loader and watch transport (the operator's), client-node's generated client for the test's own writes.
      kc: await loadKubeCredentials({ kubeconfig: c.kubeconfigPath }),
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      listFn: () => core.listNamespacedConfigMap({ namespace }),
      logger,
      restartBackoff: { initialMs: 500, maxMs: 2000 },
    });
    const events: string[] = [];
    informer.on('add', (o) => events.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => events.push(`update ${o.metadata?.name} ${o.data?.k}`));
    informer.on('delete', (o) => events.push(`delete ${o.metadata?.name}`));
    try {
      await core.createNamespacedConfigMap({ namespace, body: cm('listed') });
      await informer.start();
      expect(events).to.deep.equal(['add listed']);
      await core.createNamespacedConfigMap({ namespace, body: cm('watched') });
      await waitFor('the watch to deliver "watched"', () => events.includes('add watched'), 20_000);

      await c.restartApiserver();

      // Made once the apiserver is back: only a working informer can see them.
      await core.createNamespacedConfigMap({ namespace, body: cm('after-restart') });
      await core.replaceNamespacedConfigMap({ name: 'listed', namespace, body: { ...cm('listed'), data: { k: 'changed' } } });
      await core.deleteNamespacedConfigMap({ name: 'watched', namespace });
      const why = () => JSON.stringify({ events, restarts: informer.restarts, log: lines.slice(-5) });
      await waitFor(`the informer to see the changes after the restart ${why()}`, () => events.includes('add after-restart') && events.includes('delete watched') && events.includes('update listed changed'), 90_000);
      expect(informer.restarts, why()).to.be.at.least(1);
      expect(informer.get('after-restart', namespace)?.data?.k).to.equal('after-restart');
      expect(informer.get('watched', namespace)).to.equal(undefined);
      // Each change exactly once, nothing re-announced by the relist.
      expect(events.filter((e) => e === 'add listed' || e === 'add watched').length, why()).to.equal(2);
      expect(events.filter((e) => e === 'add after-restart').length, why()).to.equal(1);
      await waitFor('the informer to report healthy', () => informer.healthy(), 10_000);

      // And it keeps watching afterwards.
      await core.createNamespacedConfigMap({ namespace, body: cm('later') });
      await waitFor('the watch to deliver "later"', () => events.includes('add later'), 20_000);
    } finally {
      informer.stop();
    }
  });
});
