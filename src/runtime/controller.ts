// The LogTail controller: informers feed a work queue of namespace/name keys;
// reconcile re-reads the LogTail from the cache (never an event's payload),
// owns the finalizer, and starts, stops or forgets one capture daemon per key.
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { type KubeApi, KubeApiError, isNotFound } from '../adapters/kube-api.ts';
import type { ObjectStore } from '../adapters/store/types.ts';
import { API_VERSION, FINALIZER, LOGTAIL_RESOURCE, logTailsPath, resolveSpec, type LogTail } from '../core/spec.ts';
import { conditionsForPhase, isTerminalPhase, type LogTailStatus } from '../core/status.ts';
import { openLogStream } from '../adapters/log-stream.ts';
import { CaptureDaemon, type StopReason } from './capture-daemon.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { Semaphore } from './semaphore.ts';
import { informerFor, resourcePath, type ObjectInformer } from './supervised-informer.ts';
import { WorkQueue } from './work-queue.ts';

export interface ControllerOptions {
  kc: KubeConfig;
  api: KubeApi;
  store: ObjectStore;
  logger: Logger;
  metrics?: Metrics;
  /** Empty or undefined: all namespaces. */
  watchNamespaces?: string[];
  maxConcurrentStreams: number;
  idleTimeoutMs: number;
  statusIntervalMs: number;
  workers?: number;
  finalizerDeadlineMs?: number;
}

interface Finished {
  uid: string;
  generation: number;
}

export class Controller {
  private readonly o: ControllerOptions;
  private readonly log: Logger;
  private readonly queue: WorkQueue;
  private readonly slots: Semaphore;
  private readonly daemons = new Map<string, CaptureDaemon>();
  /** The same daemons by `namespace/podName`, for pod events. */
  private readonly daemonsByPod = new Map<string, Set<CaptureDaemon>>();
  /** Keys whose daemon finished, until the cache shows the terminal status it wrote. */
  private readonly finished = new Map<string, Finished>();
  private ltInformer: ObjectInformer<LogTail> | undefined;
  private podInformer: ObjectInformer<V1Pod> | undefined;
  private running = false;

  constructor(o: ControllerOptions) {
    this.o = o;
    this.log = o.logger;
    this.queue = new WorkQueue({ name: 'logtails', logger: o.logger, baseDelayMs: 250, maxDelayMs: 60_000, onDepth: (n) => o.metrics?.workqueueDepth.set(n) });
    this.slots = new Semaphore(o.maxConcurrentStreams);
  }

  getLogTail(namespace: string, name: string): LogTail | undefined {
    return this.ltInformer?.get(name, namespace);
  }

  getPod(name: string, namespace: string): V1Pod | undefined {
    return this.podInformer?.get(name, namespace);
  }

  ready(): boolean {
    return this.running && !!this.ltInformer?.hasSynced() && !!this.podInformer?.hasSynced();
  }

  activeCaptures(): number {
    return this.daemons.size;
  }

  async start(): Promise<void> {
    const { kc, watchNamespaces: namespaces } = this.o;
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const lt = informerFor<LogTail>({
      name: 'logtails',
      kc,
      namespaces,
      path: (ns) => logTailsPath(ns),
      listFn: (ns) =>
        (ns ? custom.listNamespacedCustomObject({ ...LOGTAIL_RESOURCE, namespace: ns }) : custom.listClusterCustomObject(LOGTAIL_RESOURCE)) as never,
      logger: this.log,
      onRestart: () => this.o.metrics?.informerRestarts.inc({ informer: 'logtails' }),
    });
    const pods = informerFor<V1Pod>({
      name: 'pods',
      kc,
      namespaces,
      path: (ns) => resourcePath({ version: 'v1', plural: 'pods', namespace: ns }),
      listFn: (ns) => (ns ? core.listNamespacedPod({ namespace: ns }) : core.listPodForAllNamespaces()) as never,
      logger: this.log,
      onRestart: () => this.o.metrics?.informerRestarts.inc({ informer: 'pods' }),
    });
    const enqueue = (obj: LogTail) => this.queue.add(`${obj.metadata?.namespace}/${obj.metadata?.name}`);
    for (const verb of ['add', 'update', 'delete'] as const) {
      lt.on(verb, enqueue);
      pods.on(verb, (pod) => this.podChanged(pod));
    }
    this.ltInformer = lt;
    this.podInformer = pods;
    // Pods first: a daemon started by the first LogTail event must find its pod in the cache.
    await pods.start();
    await lt.start();
    this.running = true;
    this.queue.run((key) => this.reconcile(key), this.o.workers ?? 4);
    for (const obj of lt.list()) enqueue(obj);
  }

  /** Stops taking work, then stops every capture with `reason` (uploads aborted, status checkpointed). */
  async stop(reason: StopReason = 'OperatorExiting', deadlineMs = 20_000): Promise<void> {
    this.running = false;
    const q = this.queue.shutdown();
    await Promise.all([...this.daemons.values()].map((d) => d.stop(reason, deadlineMs)));
    await q;
    this.ltInformer?.stop();
    this.podInformer?.stop();
  }

  private podChanged(pod: V1Pod): void {
    const ns = pod.metadata?.namespace;
    const name = pod.metadata?.name;
    if (!ns || !name) return;
    // Every pod event in the watched namespaces lands here: look the
    // interested daemons up instead of scanning all of them.
    for (const d of this.daemonsByPod.get(`${ns}/${name}`) ?? []) d.podChanged();
  }

  private addDaemon(key: string, d: CaptureDaemon): void {
    this.daemons.set(key, d);
    const set = this.daemonsByPod.get(d.podKey) ?? new Set<CaptureDaemon>();
    set.add(d);
    this.daemonsByPod.set(d.podKey, set);
  }

  private removeDaemon(key: string): void {
    const d = this.daemons.get(key);
    if (!d) return;
    this.daemons.delete(key);
    const set = this.daemonsByPod.get(d.podKey);
    set?.delete(d);
    if (set?.size === 0) this.daemonsByPod.delete(d.podKey);
  }

  private async writeStatus(lt: LogTail, status: LogTailStatus): Promise<void> {
    await this.o.api.patchLogTailStatus(lt.metadata.namespace!, lt.metadata.name!, status);
  }

  async reconcile(key: string): Promise<void> {
    const slash = key.indexOf('/');
    const ns = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const lt = this.getLogTail(ns, name);
    const daemon = this.daemons.get(key);

    if (!lt) {
      if (daemon) {
        await daemon.stop('Deleted', this.o.finalizerDeadlineMs);
        this.removeDaemon(key);
      }
      this.finished.delete(key);
      return;
    }
    const uid = lt.metadata.uid!;
    const generation = lt.metadata.generation ?? 0;

    if (lt.metadata.deletionTimestamp) {
      if (daemon) {
        // The finalizer is held until the capture has flushed or aborted its upload.
        await daemon.stop('Deleted', this.o.finalizerDeadlineMs);
        this.removeDaemon(key);
      }
      await this.dropFinalizer(lt);
      return;
    }

    const phase = lt.status?.phase;
    if (isTerminalPhase(phase)) {
      if (daemon) {
        await daemon.done;
        this.removeDaemon(key);
      }
      this.finished.delete(key);
      await this.dropFinalizer(lt);
      this.scheduleTtl(lt, key);
      return;
    }

    if (daemon) {
      if (daemon.generation !== generation) {
        // The CRD makes spec immutable; this only happens without its validation.
        await daemon.stop('SpecChanged', this.o.finalizerDeadlineMs);
        this.removeDaemon(key);
        await this.failInvalid(lt, 'the spec changed while the capture was running; LogTail specs are immutable, delete and recreate it');
      }
      return;
    }

    const f = this.finished.get(key);
    if (f && f.uid === uid && f.generation === generation) {
      // Our daemon wrote a terminal status the cache hasn't delivered yet:
      // starting again would capture twice.
      this.queue.addAfter(key, 500);
      return;
    }

    const resolved = resolveSpec(lt.spec);
    if (!resolved.ok) {
      await this.failInvalid(lt, resolved.message);
      return;
    }

    if (!(lt.metadata.finalizers ?? []).includes(FINALIZER)) {
      if (!(await this.patchFinalizer(lt, true))) return;
    }
    if (!this.running) return;
    const kc = this.o.kc;
    const d = new CaptureDaemon(lt, resolved.spec, {
      api: this.o.api,
      logs: { open: (req) => openLogStream(kc, req) },
      store: this.o.store,
      pods: { get: (n, namespace) => this.getPod(n, namespace) },
      slots: this.slots,
      logger: this.log,
      metrics: this.o.metrics,
      idleTimeoutMs: this.o.idleTimeoutMs,
      statusIntervalMs: this.o.statusIntervalMs,
    });
    this.addDaemon(key, d);
    d.start();
    void d.done.then(() => {
      if (this.daemons.get(key) === d && !d.signal.aborted) {
        this.finished.set(key, { uid, generation });
        this.removeDaemon(key);
        this.queue.add(key);
      }
    });
  }

  private async failInvalid(lt: LogTail, message: string): Promise<void> {
    const now = new Date();
    const prev = (lt.status ?? {}) as Partial<LogTailStatus>;
    const status = {
      ...prev,
      phase: 'Failed',
      result: 'Unknown',
      reason: 'InvalidSpec',
      message,
      retries: prev.retries ?? 0,
      bytes: prev.bytes ?? 0,
      containers: prev.containers ?? [],
      observedGeneration: lt.metadata.generation ?? 0,
      startTime: prev.startTime ?? now.toISOString(),
      completionTime: now.toISOString(),
      conditions: conditionsForPhase('Failed', 'InvalidSpec', message, lt.metadata.generation ?? 0, prev.conditions ?? [], now),
    } as LogTailStatus;
    await this.writeStatus(lt, status);
    await this.o.api
      .createEvent({
        name: `${lt.metadata.name}.${(lt.metadata.uid ?? '').slice(0, 8)}.finished`,
        involved: { kind: 'LogTail', apiVersion: API_VERSION, namespace: lt.metadata.namespace!, name: lt.metadata.name!, uid: lt.metadata.uid },
        type: 'Warning',
        reason: 'Failed',
        message: `InvalidSpec: ${message}`,
      })
      .catch((err: unknown) => this.log.warn('event not recorded', { error: String(err) }));
  }

  private async dropFinalizer(lt: LogTail): Promise<void> {
    if (!(lt.metadata.finalizers ?? []).includes(FINALIZER)) return;
    await this.patchFinalizer(lt, false);
  }

  /**
   * The patch carries a `test` of the finalizer list we saw; when the cache
   * was behind, the server answers 422 and we simply look again shortly.
   * Returns whether the change was made.
   */
  private async patchFinalizer(lt: LogTail, present: boolean): Promise<boolean> {
    const key = `${lt.metadata.namespace}/${lt.metadata.name}`;
    try {
      await this.o.api.setFinalizer(lt.metadata.namespace!, lt.metadata.name!, lt.metadata.finalizers, FINALIZER, present);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      if (err instanceof KubeApiError && (err.status === 422 || err.status === 409)) {
        this.log.debug('finalizer patch raced a newer version; re-reading', { key });
        this.queue.addAfter(key, 300);
        return false;
      }
      throw err;
    }
  }

  private scheduleTtl(lt: LogTail, key: string): void {
    const ttl = lt.spec?.ttlSecondsAfterFinished;
    const done = lt.status?.completionTime;
    if (ttl === undefined || ttl === null || !done) return;
    const due = Date.parse(done) + ttl * 1000;
    const wait = due - Date.now();
    if (wait > 0) {
      this.queue.addAfter(key, Math.min(wait, 2 ** 31 - 1));
      return;
    }
    void this.o.api.deleteLogTail(lt.metadata.namespace!, lt.metadata.name!, lt.metadata.uid!).catch((err: unknown) => {
      this.log.warn('ttl delete failed', { namespace: lt.metadata.namespace, name: lt.metadata.name, error: String(err) });
      this.queue.addRateLimited(key);
    });
  }
}
