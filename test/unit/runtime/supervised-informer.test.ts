import { expect } from 'chai';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubernetesListObject, V1ConfigMap } from '@kubernetes/client-node';
import { memoryLogger } from '../../../src/runtime/logger.ts';
import {
  MultiNamespaceInformer,
  SupervisedInformer,
  informerFor,
  resourcePath,
} from '../../../src/runtime/supervised-informer.ts';
import type { RestartInfo, WatchCallback, WatchDone, WatchLike } from '../../../src/runtime/supervised-informer.ts';
import { LOGTAIL_RESOURCE } from '../../../src/core/spec.ts';
import { FakeClock, settle } from './fake-clock.ts';

type CM = V1ConfigMap;

/** The apiserver's state, as the list call and the tests see it. */
class FakeApi {
  rv = 100;
  readonly objects = new Map<string, CM>();
  listCalls = 0;
  listError: Error | undefined;
  listHang = false;

  put(namespace: string, name: string, value = ''): CM {
    this.rv++;
    const o: CM = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace, name, resourceVersion: String(this.rv) }, data: { value } };
    this.objects.set(`${namespace}/${name}`, o);
    return o;
  }

  del(namespace: string, name: string): CM {
    const o = this.objects.get(`${namespace}/${name}`);
    if (!o) throw new Error('no such object');
    this.objects.delete(`${namespace}/${name}`);
    this.rv++;
    return { ...o, metadata: { ...o.metadata, resourceVersion: String(this.rv) } };
  }

  list(namespace?: string): Promise<KubernetesListObject<CM>> {
    this.listCalls++;
    if (this.listHang) return new Promise(() => {});
    if (this.listError) return Promise.reject(this.listError);
    const items = [...this.objects.values()].filter((o) => namespace === undefined || o.metadata?.namespace === namespace);
    return Promise.resolve({ metadata: { resourceVersion: String(this.rv) }, items: structuredClone(items) });
  }
}

interface WatchCall {
  path: string;
  params: Record<string, string | number | boolean | undefined>;
  cb: WatchCallback;
  done: WatchDone;
  controller: AbortController;
}

/**
 * Stands in for client-node's Watch. Like the real one, aborting a request
 * makes its done callback fire later with an AbortError.
 */
class FakeWatch implements WatchLike {
  readonly calls: WatchCall[] = [];
  reject: Error | undefined;

  async watch(path: string, params: WatchCall['params'], cb: WatchCallback, done: WatchDone): Promise<AbortController> {
    if (this.reject) throw this.reject;
    const controller = new AbortController();
    let ended = false;
    const once: WatchDone = (err) => {
      if (ended) return;
      ended = true;
      done(err);
    };
    controller.signal.addEventListener('abort', () => {
      setImmediate(() => once(new DOMException('This operation was aborted', 'AbortError')));
    });
    this.calls.push({ path, params, cb, done: once, controller });
    return controller;
  }

  get last(): WatchCall {
    const c = this.calls[this.calls.length - 1];
    if (!c) throw new Error('no watch call yet');
    return c;
  }
}

function fetchFailed(): Error {
  return new TypeError('fetch failed');
}

describe('runtime/SupervisedInformer', () => {
  let informers: Array<{ stop(): void }> = [];
  afterEach(() => {
    for (const i of informers) i.stop();
    informers = [];
  });

  function setup(opts: { watchdogMs?: number; backoff?: { initialMs: number; maxMs: number } } = {}) {
    const api = new FakeApi();
    const fw = new FakeWatch();
    const clock = new FakeClock();
    const { logger, lines } = memoryLogger();
    const restartInfos: RestartInfo[] = [];
    const informer = new SupervisedInformer<CM>({
      name: 'configmaps',
      kc: new KubeConfig(),
      path: '/api/v1/configmaps',
      listFn: () => api.list(),
      logger,
      restartBackoff: opts.backoff ?? { initialMs: 1000, maxMs: 8000 },
      watchdogMs: opts.watchdogMs ?? 60_000,
      onRestart: (i) => restartInfos.push(i),
      clock,
      watch: fw,
    });
    informers.push(informer);
    const events: string[] = [];
    informer.on('add', (o) => events.push(`add ${o.metadata?.name} ${o.data?.value}`));
    informer.on('update', (o) => events.push(`update ${o.metadata?.name} ${o.data?.value}`));
    informer.on('delete', (o) => events.push(`delete ${o.metadata?.name}`));
    return { api, fw, clock, informer, events, lines, restartInfos };
  }

  it('start() resolves after the first list, and the cache serves get/list', async () => {
    const { api, informer, events, fw } = setup();
    api.put('a', 'one', '1');
    api.put('b', 'two', '2');
    expect(informer.hasSynced()).to.equal(false);
    await informer.start();
    expect(informer.hasSynced()).to.equal(true);
    expect(events.sort()).to.deep.equal(['add one 1', 'add two 2']);
    expect(informer.get('one', 'a')?.data?.value).to.equal('1');
    expect(informer.get('one', 'b')).to.equal(undefined);
    expect(informer.list().length).to.equal(2);
    expect(informer.list('b').map((o) => o.metadata?.name)).to.deep.equal(['two']);
    await settle();
    expect(fw.calls.length).to.equal(1);
    expect(fw.last.path).to.equal('/api/v1/configmaps');
    expect(fw.last.params.resourceVersion).to.equal('102');
    expect(fw.last.params.allowWatchBookmarks).to.equal(true);
    expect(informer.healthy()).to.equal(true);
  });

  it('delivers watch events as add/update/delete', async () => {
    const { api, informer, events, fw } = setup();
    await informer.start();
    await settle();
    fw.last.cb('ADDED', api.put('a', 'x', '1'));
    fw.last.cb('MODIFIED', api.put('a', 'x', '2'));
    fw.last.cb('DELETED', api.del('a', 'x'));
    expect(events).to.deep.equal(['add x 1', 'update x 2', 'delete x']);
    expect(informer.get('x', 'a')).to.equal(undefined);
  });

  it('restarts after an error and delivers what it missed, each change once', async () => {
    const { api, informer, events, fw, clock, restartInfos } = setup();
    api.put('a', 'stays', '1');
    api.put('a', 'changes', '1');
    api.put('a', 'goes', '1');
    await informer.start();
    await settle();
    events.length = 0;

    // The apiserver goes away: client-node reports `error` and would stop here.
    fw.last.done(fetchFailed());
    await settle();
    expect(informer.healthy()).to.equal(false);
    api.put('a', 'changes', '2');
    api.del('a', 'goes');
    api.put('a', 'new', '1');
    const listsBefore = api.listCalls;

    await clock.advance(999);
    expect(api.listCalls, 'waits for the backoff').to.equal(listsBefore);
    await clock.advance(1);
    expect(api.listCalls).to.equal(listsBefore + 1);
    expect(events.sort()).to.deep.equal(['add new 1', 'delete goes', 'update changes 2']);
    expect(informer.restarts).to.equal(1);
    expect(restartInfos).to.deep.equal([{ informer: 'configmaps', reason: 'error', restarts: 1 }]);
    expect(informer.list().map((o) => o.metadata?.name).sort()).to.deep.equal(['changes', 'new', 'stays']);
    expect(informer.healthy()).to.equal(true);

    // Events flow again through the new watch.
    fw.last.cb('ADDED', api.put('a', 'later', '1'));
    expect(events).to.include('add later 1');
  });

  it('ignores everything the replaced run still delivers, including its abort error', async () => {
    const { informer, events, fw, clock } = setup();
    await informer.start();
    await settle();
    const old = fw.last;
    old.done(fetchFailed());
    await clock.advance(1000);
    expect(fw.calls.length).to.equal(2);
    old.cb('ADDED', { metadata: { namespace: 'a', name: 'stale', resourceVersion: '999' } });
    old.done(fetchFailed());
    await clock.advance(30_000);
    expect(events).to.deep.equal([]);
    expect(informer.restarts).to.equal(1);
    // The restart's own stop must not come back as an error that restarts again.
    expect(fw.calls.length).to.equal(2);
    expect(fw.calls[1]?.controller.signal.aborted).to.equal(false);
  });

  it('backs off exponentially while the list keeps failing, and resets once watching again', async () => {
    const { api, informer, fw, clock } = setup({ backoff: { initialMs: 1000, maxMs: 4000 } });
    await informer.start();
    await settle();
    api.listError = fetchFailed();
    fw.last.done(fetchFailed());
    const listTimes: number[] = [];
    const t0 = clock.now();
    let seen = api.listCalls;
    for (let i = 0; i < 20_000; i += 250) {
      await clock.advance(250);
      if (api.listCalls !== seen) {
        seen = api.listCalls;
        listTimes.push(clock.now() - t0);
      }
    }
    // restarts at +1000, +2000, +4000, +4000, +4000 ...
    expect(listTimes.slice(0, 5)).to.deep.equal([1000, 3000, 7000, 11000, 15000]);

    api.listError = undefined;
    await clock.advance(4000);
    expect(informer.healthy()).to.equal(true);
    const lists = api.listCalls;
    fw.last.done(fetchFailed());
    await clock.advance(1000);
    expect(api.listCalls, 'back to the initial delay').to.equal(lists + 1);
  });

  it('relists after 410 Gone by itself (client-node does this), without a supervisor restart', async () => {
    const { api, informer, events, fw } = setup();
    api.put('a', 'old', '1');
    await informer.start();
    await settle();
    expect(api.listCalls).to.equal(1);
    api.del('a', 'old');
    api.put('a', 'fresh', '1');
    // What the apiserver sends when the resourceVersion is compacted away.
    fw.last.cb('ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 });
    fw.last.done(null);
    await settle();
    expect(api.listCalls).to.equal(2);
    expect(fw.calls.length).to.equal(2);
    expect(fw.last.params.resourceVersion, 'watches from the new list').to.equal(String(api.rv));
    expect(events).to.deep.equal(['add old 1', 'delete old', 'add fresh 1']);
    expect(informer.restarts).to.equal(0);
  });

  it('restarts a watch that went silent', async () => {
    const { api, informer, fw, clock, restartInfos } = setup({ watchdogMs: 60_000 });
    await informer.start();
    await settle();
    // Activity keeps it alive.
    await clock.advance(50_000);
    fw.last.cb('BOOKMARK', { metadata: { resourceVersion: String(api.rv) } });
    await clock.advance(50_000);
    expect(informer.restarts).to.equal(0);
    expect(informer.healthy()).to.equal(true);
    // Silence does not.
    await clock.advance(10_001);
    expect(informer.restarts).to.equal(1);
    expect(restartInfos[0]?.reason).to.equal('watchdog');
    expect(api.listCalls).to.equal(2);
    expect(fw.calls[0]?.controller.signal.aborted, 'the silent request is closed').to.equal(true);
  });

  it('restarts a list that never answers', async () => {
    const { api, informer, clock } = setup({ watchdogMs: 60_000 });
    api.listHang = true;
    let synced = false;
    void informer.start().then(() => (synced = true));
    await clock.advance(60_000);
    expect(api.listCalls).to.equal(2);
    api.listHang = false;
    await clock.advance(60_000);
    expect(synced).to.equal(true);
    expect(informer.restarts).to.equal(2);
  });

  it('survives a watch transport that throws instead of calling done', async () => {
    const { informer, fw, clock } = setup();
    await informer.start();
    await settle();
    // The server closes the watch; ListWatch reconnects from inside the done
    // callback, where a rejection would go unhandled.
    fw.reject = new Error('credentials plugin failed');
    fw.last.done(null);
    await clock.advance(1000);
    expect(informer.restarts).to.equal(1);
    fw.reject = undefined;
    await clock.advance(2000);
    expect(informer.healthy()).to.equal(true);
  });

  it('keeps delivering when a handler throws', async () => {
    const { api, informer, events, fw, lines } = setup();
    informer.on('add', () => {
      throw new Error('handler bug');
    });
    await informer.start();
    await settle();
    fw.last.cb('ADDED', api.put('a', 'x', '1'));
    fw.last.cb('ADDED', api.put('a', 'y', '1'));
    expect(events).to.deep.equal(['add x 1', 'add y 1']);
    expect(lines.filter((l) => l.message === 'informer handler threw').length).to.equal(2);
    expect(informer.restarts).to.equal(0);
  });

  it('stop() ends the watch, stops restarting, and fails a pending start()', async () => {
    const { api, informer, fw, clock } = setup();
    api.listError = fetchFailed();
    const started = informer.start();
    await settle();
    informer.stop();
    let error: unknown;
    await started.catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/stopped before its first list/);
    const calls = api.listCalls;
    await clock.advance(120_000);
    expect(api.listCalls).to.equal(calls);
    expect(fw.calls.length).to.equal(0);
  });
});

describe('runtime/MultiNamespaceInformer', () => {
  it('runs one informer per namespace behind one get/list/on', async () => {
    const api = new FakeApi();
    const fw = new FakeWatch();
    api.put('a', 'one');
    api.put('b', 'two');
    api.put('c', 'elsewhere');
    const informer = new MultiNamespaceInformer<CM>({
      name: 'cms',
      kc: new KubeConfig(),
      namespaces: ['a', 'b'],
      path: (ns) => resourcePath({ version: 'v1', plural: 'configmaps', namespace: ns }),
      listFn: (ns) => api.list(ns),
      logger: memoryLogger().logger,
      clock: new FakeClock(),
      watch: fw,
    });
    try {
      const added: string[] = [];
      informer.on('add', (o) => added.push(o.metadata?.name ?? ''));
      await informer.start();
      await settle();
      expect(informer.hasSynced()).to.equal(true);
      expect(added.sort()).to.deep.equal(['one', 'two']);
      expect(fw.calls.map((c) => c.path).sort()).to.deep.equal(['/api/v1/namespaces/a/configmaps', '/api/v1/namespaces/b/configmaps']);
      expect(informer.get('two', 'b')?.metadata?.name).to.equal('two');
      expect(informer.get('two', 'a')).to.equal(undefined);
      expect(informer.get('elsewhere', 'c')).to.equal(undefined);
      expect(informer.list().length).to.equal(2);
      expect(informer.list('a').map((o) => o.metadata?.name)).to.deep.equal(['one']);
      const watchB = fw.calls.find((c) => c.path.includes('/b/'));
      watchB?.cb('ADDED', api.put('b', 'three'));
      expect(added).to.include('three');
    } finally {
      informer.stop();
    }
  });

  it('informerFor picks the cluster-wide or the per-namespace form', () => {
    const common = {
      name: 'x',
      kc: new KubeConfig(),
      logger: memoryLogger().logger,
      path: (ns?: string) => resourcePath({ ...LOGTAIL_RESOURCE, namespace: ns }),
      listFn: () => Promise.resolve({ items: [] as CM[] }),
    };
    expect(informerFor<CM>(common)).to.be.instanceOf(SupervisedInformer);
    expect(informerFor<CM>({ ...common, namespaces: [] })).to.be.instanceOf(SupervisedInformer);
    expect(informerFor<CM>({ ...common, namespaces: ['a'] })).to.be.instanceOf(MultiNamespaceInformer);
    expect(common.path(undefined)).to.equal('/apis/logtail.dev/v1alpha1/logtails');
    expect(common.path('n')).to.equal('/apis/logtail.dev/v1alpha1/namespaces/n/logtails');
  });
});
