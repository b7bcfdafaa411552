// The LogTail controller: informers feed a work queue of namespace/name keys;
// reconcile re-reads the LogTail from the cache (never an event's payload),
// owns the finalizer, and starts, stops or forgets one capture daemon per key.
import type { KubernetesListObject, KubernetesObject, V1Pod } from '@kubernetes/client-node';
import type { KubeCredentials } from '../adapters/kube-credentials.ts';
import { type KubeApi, KubeApiError, isNotFound } from '../adapters/kube-api.ts';
import type { ObjectStore } from '../adapters/store/types.ts';
import { API_VERSION, FINALIZER, logTailsPath, resolveSpec, type LogTail, type ResolvedSpec } from '../core/spec.ts';
import { conditionsForPhase, isTerminalPhase, setCondition, type LogTailStatus } from '../core/status.ts';
import { keepFinalizerWhenFinished, objectsToDelete } from '../core/retention.ts';
import { discardUnfinished } from './capture-continuation.ts';
import { openLogStream } from '../adapters/log-stream.ts';
import { HoldReason, holdFinalizer, holdOwner, staleHolds, type HoldOwnerView } from '../core/hold.ts';
import { releaseHold } from './pod-hold.ts';
import { CaptureDaemon, type StopReason } from './capture-daemon.ts';
import { systemCaptureClock } from './capture-ports.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { DEFAULT_MIN_HOLD_MS, FairSlots, Semaphore } from './semaphore.ts';
import { fileSpool } from './truncating-sink.ts';
import type { Sharding } from './sharding.ts';
import { StatusWriter } from './status-writer.ts';
import { informerFor, resourcePath, type ObjectInformer } from './supervised-informer.ts';
import { type ReconcileResult, Result, WorkQueue } from './work-queue.ts';

/** How often a key whose daemon is stopping is looked at again. */
const STOP_POLL_MS = 250;
const RETENTION_SETTLE_MS = 2_000;
export const DEFAULT_STATUS_WRITES_PER_SECOND = 20;

export interface ControllerOptions {
  kc: KubeCredentials;
  api: KubeApi;
  store: ObjectStore;
  logger: Logger;
  metrics?: Metrics;
  /** Empty or undefined: all namespaces. */
  watchNamespaces?: string[];
  maxConcurrentStreams: number;
  /** At most this many streams per namespace (undefined: no cap; the fair share applies either way). */ maxStreamsPerNamespace?: number;
  /** A stream keeps its slot at least this long before preemption may ask it back (--min-stream-hold; default 10 s). */ minStreamHoldMs?: number;
  idleTimeoutMs: number;
  statusIntervalMs: number;
  /** Progress status writes per second, all captures together (default 20); urgent writes are not held back by it. */
  statusWritesPerSecond?: number;
  workers?: number;
  finalizerDeadlineMs?: number;
  /** Where spec.maxBytes captures keep a run's tail until it ends (--spool-dir). */ spoolDir?: string;
  /** --enable-hold-pod: spec.holdPod may put a finalizer on pods (needs `patch pods`). */
  holdPodEnabled?: boolean;
  /** How often stale holds are looked for (default 60 s; also once at start). */
  holdSweepMs?: number;
  /** Sharding (--shard): only the replica that owns a LogTail reconciles it. */
  shard?: Sharding;
}

interface Finished {
  uid: string;
  generation: number;
}

export class Controller {
  private readonly o: ControllerOptions;
  private readonly log: Logger;
  private readonly queue: WorkQueue;
  private readonly slots: FairSlots;
  /** The one writer of every capture's status (coalescing, priority, a global budget). */
  readonly statusWriter: StatusWriter;
  private readonly daemons = new Map<string, CaptureDaemon>();
  /** The same daemons by `namespace/podName`, for pod events. */
  private readonly daemonsByPod = new Map<string, Set<CaptureDaemon>>();
  /** Keys whose daemon finished, until the cache shows the terminal status it wrote. */
  private readonly finished = new Map<string, Finished>();
  /** Keys whose daemon was asked to stop: until it has, or until the finalizer deadline. */
  private readonly stopping = new Map<string, { deadline: number; settled: boolean }>();
  /** Keys deleted mid-capture whose objects are deleted once the last status write had time to arrive. */
  private readonly settling = new Set<string>();
  private ltInformer: ObjectInformer<LogTail> | undefined;
  private podInformer: ObjectInformer<V1Pod> | undefined;
  private running = false;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(o: ControllerOptions) {
    this.o = o;
    this.log = o.logger;
    this.queue = new WorkQueue({ name: 'logtails', logger: o.logger, baseDelayMs: 250, maxDelayMs: 60_000, onDepth: (n) => o.metrics?.workqueueDepth.set(n) });
    this.slots = new FairSlots(o.maxConcurrentStreams, o.maxStreamsPerNamespace, { minHoldMs: o.minStreamHoldMs ?? DEFAULT_MIN_HOLD_MS });
    this.statusWriter = new StatusWriter({
      patch: (ns, name, status) => o.api.patchLogTailStatus(ns, name, status),
      clock: systemCaptureClock,
      logger: o.logger,
      writesPerSecond: o.statusWritesPerSecond ?? DEFAULT_STATUS_WRITES_PER_SECOND,
      onWrite: (kind) => o.metrics?.statusWrites.inc({ kind }),
    });
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
    // Lists go through the same client as every other request (KubeApi).
    const list = <T extends KubernetesObject>(path: string) => this.o.api.request<KubernetesListObject<T>>('GET', path);
    const lt = informerFor<LogTail>({
      name: 'logtails',
      kc,
      namespaces,
      path: (ns) => logTailsPath(ns),
      listFn: (ns) => list<LogTail>(logTailsPath(ns)),
      logger: this.log,
      onRestart: () => this.o.metrics?.informerRestarts.inc({ informer: 'logtails' }),
    });
    const pods = informerFor<V1Pod>({
      name: 'pods',
      kc,
      namespaces,
      path: (ns) => resourcePath({ version: 'v1', plural: 'pods', namespace: ns }),
      listFn: (ns) => list<V1Pod>(resourcePath({ version: 'v1', plural: 'pods', namespace: ns })),
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
    this.resync();
    // Holds whose LogTail is gone (deleted while no operator ran) or finished: at start, then every minute.
    const sweep = () => void this.sweepHolds().catch((err: unknown) => this.log.warn('stale hold sweep failed', { error: String(err) }));
    sweep();
    this.sweepTimer = setInterval(sweep, this.o.holdSweepMs ?? 60_000);
    this.sweepTimer.unref();
  }

  /** Asks every running capture to stop (sharding: this replica's Lease lapsed); the keys are looked at again as they stop. */
  stopCaptures(reason: StopReason): void {
    for (const key of [...this.daemons.keys()]) this.requestStop(key, reason);
  }

  /** Every LogTail's key is looked at again (sharding: the members changed). */
  resync(): void {
    for (const obj of this.ltInformer?.list() ?? []) this.queue.add(`${obj.metadata?.namespace}/${obj.metadata?.name}`);
  }

  /** Stops taking work, then stops every capture with `reason` (uploads aborted, status checkpointed). */
  async stop(reason: StopReason = 'OperatorExiting', deadlineMs = 20_000): Promise<void> {
    this.running = false;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    const t0 = Date.now();
    const q = this.queue.shutdown();
    await Promise.all([...this.daemons.values()].map((d) => d.stop(reason, deadlineMs)));
    // The last progress (checkpoints) of the stopped captures, without the budget, within what is left of the deadline.
    if (reason === 'OperatorExiting') await this.statusWriter.flush(Math.max(0, deadlineMs - (Date.now() - t0)));
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

  /**
   * One look at a key. Returns what should happen next (the work queue acts
   * on it); never waits for a daemon to stop: a stop is requested, and the
   * key is looked at again until the daemon has stopped or its deadline passed.
   */
  async reconcile(key: string): Promise<ReconcileResult> {
    const slash = key.indexOf('/');
    const lt = this.getLogTail(key.slice(0, slash), key.slice(slash + 1));
    if (!lt) {
      // Gone: nothing is held for it, so nothing waits for the daemon.
      this.requestStop(key, 'Deleted');
      this.finished.delete(key);
      this.o.shard?.forget(key);
      return Result.done;
    }
    if (this.o.shard) {
      // Not ours (or being claimed, released, handed over): the gate says what happens to the key.
      const held = await this.o.shard.gate(key, lt, { stop: (k, reason) => this.requestStop(k, reason) });
      if (held) return held;
    }
    if (lt.metadata.deletionTimestamp) {
      // The finalizer is held until the capture has aborted its upload (or the deadline passed),
      // and with retention Delete until its objects are deleted.
      const hadDaemon = this.daemons.has(key);
      if (!this.requestStop(key, 'Deleted')) return Result.after(STOP_POLL_MS);
      const spec = resolveSpec(lt.spec);
      if (spec.ok) await discardUnfinished(this.o.store, lt, spec.spec, this.log);
      const pending = (await this.deleteObjects(key, lt, hadDaemon)) ?? (await this.releaseHoldOf(lt, 'the LogTail is being deleted'));
      return pending ?? this.dropFinalizer(lt);
    }
    if (isTerminalPhase(lt.status?.phase)) {
      // Our daemon wrote this status and is finishing; its end looks at the key again.
      if (this.daemons.has(key)) return Result.done;
      this.finished.delete(key);
      const held = await this.releaseHoldOf(lt, 'the capture has ended');
      if (held) return held;
      const dropped = keepFinalizerWhenFinished(lt) ? Result.done : await this.dropFinalizer(lt);
      return dropped.kind === 'done' ? this.ttl(lt) : dropped;
    }
    return this.ensureCapture(key, lt);
  }

  /**
   * Asks the key's daemon to stop, without waiting for it. True once no
   * daemon of the key is running any more, or the stop deadline has passed.
   */
  private requestStop(key: string, reason: StopReason): boolean {
    const d = this.daemons.get(key);
    if (d) {
      d.requestStop(reason);
      this.removeDaemon(key);
      const entry = { deadline: Date.now() + (this.o.finalizerDeadlineMs ?? 20_000), settled: false };
      this.stopping.set(key, entry);
      void d.done.then(() => {
        entry.settled = true;
        this.queue.add(key);
      });
    }
    const s = this.stopping.get(key);
    if (!s) return true;
    if (!s.settled && Date.now() < s.deadline) return false;
    this.stopping.delete(key);
    return true;
  }

  private async ensureCapture(key: string, lt: LogTail): Promise<ReconcileResult> {
    // A daemon of this key that is still stopping must be gone before another starts.
    if (this.stopping.has(key) && !this.requestStop(key, 'Deleted')) return Result.after(STOP_POLL_MS);
    const generation = lt.metadata.generation ?? 0;
    const daemon = this.daemons.get(key);
    if (daemon) {
      if (daemon.generation === generation) return Result.done;
      // The CRD makes spec immutable; this only happens without its validation.
      this.requestStop(key, 'SpecChanged');
      await this.failInvalid(lt, 'the spec changed while the capture was running; LogTail specs are immutable, delete and recreate it');
      return Result.done;
    }
    const f = this.finished.get(key);
    // Our daemon wrote a terminal status the cache hasn't delivered yet: starting again would capture twice.
    if (f && f.uid === lt.metadata.uid && f.generation === generation) return Result.after(500);
    const resolved = resolveSpec(lt.spec);
    if (!resolved.ok) {
      await this.failInvalid(lt, resolved.message);
      return Result.done;
    }
    const step = (s: string) => this.log.debug('capture step', { namespace: lt.metadata.namespace, name: lt.metadata.name, step: s, at: Date.now() });
    step('reconcile');
    if (!(lt.metadata.finalizers ?? []).includes(FINALIZER)) {
      const added = await this.patchFinalizer(lt, true);
      if (!added.applied) return added.next;
      step('finalizer added');
    }
    if (this.running) this.startDaemon(key, lt, resolved.spec);
    return Result.done;
  }

  /**
   * Capture events in flight at once, all captures (DaemonDeps.events): they
   * are reports, kept from crowding out pod reads and status writes when many
   * captures end together.
   */
  private readonly eventLane = new Semaphore(4);

  private startDaemon(key: string, lt: LogTail, spec: ResolvedSpec): void {
    const kc = this.o.kc;
    const d = new CaptureDaemon(lt, spec, {
      api: this.o.api,
      logs: { open: (req) => openLogStream(kc, req) },
      store: this.o.store,
      pods: { get: (n, namespace) => this.getPod(n, namespace) },
      slots: this.slots,
      logger: this.log,
      metrics: this.o.metrics,
      idleTimeoutMs: this.o.idleTimeoutMs,
      statusIntervalMs: this.o.statusIntervalMs,
      openSpool: fileSpool(this.o.spoolDir),
      hold: { api: this.o.api, enabled: this.o.holdPodEnabled ?? false },
      statusWriter: this.statusWriter,
      events: this.eventLane,
    });
    this.addDaemon(key, d);
    d.start();
    const uid = lt.metadata.uid!;
    const generation = lt.metadata.generation ?? 0;
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

  /**
   * retention Delete: deletes every object the status lists; undefined once
   * done, else when to look again. A capture stopped by this deletion writes
   * its last status as it stops; the deletion waits RETENTION_SETTLE_MS for
   * that write to reach the cache (a bounded wait, not a proof).
   */
  private async deleteObjects(key: string, lt: LogTail, stoppedNow: boolean): Promise<ReconcileResult | undefined> {
    if (!keepFinalizerWhenFinished(lt)) return undefined;
    if (stoppedNow && !this.settling.has(key)) {
      this.settling.add(key);
      return Result.after(RETENTION_SETTLE_MS);
    }
    this.settling.delete(key);
    for (const uri of objectsToDelete(lt)) {
      try {
        await this.o.store.delete(uri);
      } catch (err) {
        this.log.warn('retention Delete: object not deleted; the finalizer stays', { key, uri, error: String(err) });
        return Result.requeue;
      }
    }
    this.log.info('retention Delete: stored objects deleted', { key, objects: objectsToDelete(lt).length });
    return undefined;
  }

  private async dropFinalizer(lt: LogTail): Promise<ReconcileResult> {
    if (!(lt.metadata.finalizers ?? []).includes(FINALIZER)) return Result.done;
    return (await this.patchFinalizer(lt, false)).next;
  }

  /**
   * The patch carries a `test` of the finalizer list we saw; when the cache
   * was behind, the server answers 422 and we simply look again shortly.
   */
  private async patchFinalizer(lt: LogTail, present: boolean): Promise<{ applied: boolean; next: ReconcileResult }> {
    try {
      await this.o.api.setFinalizer(lt.metadata.namespace!, lt.metadata.name!, lt.metadata.finalizers, FINALIZER, present);
      return { applied: true, next: Result.done };
    } catch (err) {
      // Gone meanwhile: its delete event brings the key back if anything is left to do.
      if (isNotFound(err)) return { applied: false, next: Result.done };
      if (err instanceof KubeApiError && (err.status === 422 || err.status === 409)) {
        this.log.debug('finalizer patch raced a newer version; re-reading', { key: `${lt.metadata.namespace}/${lt.metadata.name}` });
        return { applied: false, next: Result.after(300) };
      }
      throw err;
    }
  }

  /**
   * Releases this LogTail's hold when the pod (cache) still carries it: the
   * LogTail is being deleted (before its own finalizer goes), or finished
   * without its daemon releasing it. undefined once nothing is held, else
   * when to look again (the LogTail's finalizer stays meanwhile).
   */
  private async releaseHoldOf(lt: LogTail, why: string): Promise<ReconcileResult | undefined> {
    const uid = lt.metadata.uid;
    const ns = lt.metadata.namespace!;
    const podName = lt.spec?.podName;
    if (!uid || !podName || lt.spec?.holdPod !== true) return undefined;
    const deleting = !!lt.metadata.deletionTimestamp;
    // Finished: the daemon released it before its terminal status; only a pod still showing it is looked at.
    // Deleting: always a direct read, so a cache that lags behind the hold cannot let the LogTail go first.
    if (!deleting && !(this.getPod(podName, ns)?.metadata?.finalizers ?? []).includes(holdFinalizer(uid))) return undefined;
    try {
      const r = await releaseHold(this.o.api, { namespace: ns, name: podName, uid: lt.status?.podUID }, uid);
      if (r !== 'done') return undefined;
      this.log.info('hold released', { namespace: ns, name: lt.metadata.name, pod: podName, why });
      if (!deleting) await this.markReleased(lt, why);
      return undefined;
    } catch (err) {
      this.log.warn('hold not released; trying again', { namespace: ns, name: lt.metadata.name, pod: podName, error: String(err) });
      return Result.requeue;
    }
  }

  /** The PodHeld condition of a finished LogTail whose hold the controller released (no daemon writes its status). */
  private async markReleased(lt: LogTail, why: string): Promise<void> {
    const conditions = setCondition(lt.status?.conditions, { type: 'PodHeld', status: 'False', reason: HoldReason.Released, message: why, observedGeneration: lt.metadata.generation ?? 0 }, new Date());
    await this.o.api.patchLogTailStatus(lt.metadata.namespace!, lt.metadata.name!, { conditions }).catch((err: unknown) => this.log.warn('PodHeld condition not written', { error: String(err) }));
  }

  /** Releases every hold on a cached pod whose LogTail (by UID) is gone or finished; needs synced caches. */
  private async sweepHolds(): Promise<void> {
    if (!this.ready()) return;
    const owners = new Map<string, HoldOwnerView>();
    for (const lt of this.ltInformer!.list()) if (lt.metadata.uid) owners.set(lt.metadata.uid, { finished: isTerminalPhase(lt.status?.phase) && !this.daemons.has(`${lt.metadata.namespace}/${lt.metadata.name}`) });
    const pods = this.podInformer!.list().map((p) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata?.uid, finalizers: p.metadata?.finalizers }));
    for (const h of staleHolds(pods, owners)) {
      const r = await releaseHold(this.o.api, h, holdOwner(h.finalizer)!);
      this.log.info('stale hold released', { namespace: h.namespace, pod: h.name, finalizer: h.finalizer, why: h.why, result: r });
    }
  }

  /** ttlSecondsAfterFinished: look again when it is due, then delete the LogTail. */
  private async ttl(lt: LogTail): Promise<ReconcileResult> {
    const ttl = lt.spec?.ttlSecondsAfterFinished;
    const done = lt.status?.completionTime;
    if (ttl === undefined || ttl === null || !done) return Result.done;
    const wait = Date.parse(done) + ttl * 1000 - Date.now();
    if (wait > 0) return Result.after(Math.min(wait, 2 ** 31 - 1));
    try {
      await this.o.api.deleteLogTail(lt.metadata.namespace!, lt.metadata.name!, lt.metadata.uid!);
      return Result.done;
    } catch (err) {
      this.log.warn('ttl delete failed', { namespace: lt.metadata.namespace, name: lt.metadata.name, error: String(err) });
      return Result.requeue;
    }
  }
}
