// An informer that keeps itself alive.
//
// What client-node 2.0.1's informer (ListWatch in cache.js, reached through
// src/adapters/list-watch.ts, with our watch transport src/adapters/kube-watch.ts
// in place of its Watch, same contract) does by itself, and what this
// wrapper adds:
// - A watch that ends cleanly is re-opened from the last resourceVersion, with
//   a 1 s..30 s backoff reset by every event. The transport aborts a connection that
//   carried nothing for 30 s (TimeoutError) and ListWatch re-opens it at once,
//   so a healthy watch on a quiet resource reconnects every 30 s.
// - 410 Gone is handled: an `ERROR` event whose Status has code 410 clears the
//   resourceVersion, and when the apiserver then closes the stream the next
//   round relists; a watch request answered with HTTP 410 relists directly.
//   Nothing to add here; the unit test "relists after 410" pins that down.
// - Any other failure (connection refused/reset, a non-200 answer other than
//   410, a failed list) is reported as an `error` event and the informer stops
//   for good. That is what a restarted apiserver produces. This wrapper
//   restarts it with exponential backoff.
// - Nothing notices a watch that hangs (or a list that never answers, the
//   generated client has no request timeout). A watchdog restarts the informer
//   when nothing at all arrived for `watchdogMs`.
// - ListWatch's stop() aborts its request, and the abort comes back later as an
//   `error` event through the old request's done callback, which also aborts
//   whatever request is current by then. So a restart never reuses a ListWatch:
//   each run gets a fresh one talking through a GuardedWatch that, once
//   retired, swallows all callbacks of its requests.
// - A fresh ListWatch starts from an empty cache, so the objects and the
//   add/update/delete callbacks live here: a restart relists and this class
//   diffs the list against what it holds, delivering what was missed while the
//   informer was down (deletes included) and nothing twice.
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { KubeCredentials } from '../adapters/kube-credentials.ts';
import { kubeWatch, newListWatch, type ListWatchRun, type WatchCallback, type WatchDone, type WatchLike } from '../adapters/list-watch.ts';
import { Backoff } from '../adapters/retry.ts';
import type { Logger } from './logger.ts';
import { systemClock } from './work-queue.ts';
import type { Clock, TimerHandle } from './work-queue.ts';

export type InformerVerb = 'add' | 'update' | 'delete';
export type ObjectHandler<T> = (obj: T) => void;

export type { WatchCallback, WatchDone, WatchLike } from '../adapters/list-watch.ts';

export interface RestartInfo {
  informer: string;
  reason: 'error' | 'watchdog';
  restarts: number;
}

export interface SupervisedInformerOptions<T extends KubernetesObject> {
  name: string;
  /** Credentials of the watch requests (our loader, or client-node's KubeConfig: same shape). */
  kc: KubeCredentials;
  /** e.g. /api/v1/pods, /api/v1/namespaces/NS/pods, /apis/logtail.dev/v1alpha1/logtails */
  path: string;
  /** Lists what `path` watches (same namespace, same selector). */
  listFn: () => Promise<KubernetesListObject<T>>;
  logger: Logger;
  /** Applied to the watch; listFn must apply the same selector. */
  labelSelector?: string;
  /** Delay before restarting after an error: initial, doubling, capped. Default 1 s..30 s. */
  restartBackoff?: { initialMs: number; maxMs: number };
  /** Restart when nothing (event, list, watch connection) arrived for this long. Default 5 min. */
  watchdogMs?: number;
  onRestart?: (info: RestartInfo) => void;
  clock?: Clock;
  /** Transport for the watch requests. Default: our watch transport (adapters/kube-watch.ts) on `kc`. Tests pass a fake. */
  watch?: WatchLike;
}

/** What the operator needs from an informer, single- or multi-namespace. */
export interface ObjectInformer<T extends KubernetesObject> {
  readonly name: string;
  on(verb: InformerVerb, cb: ObjectHandler<T>): void;
  off(verb: InformerVerb, cb: ObjectHandler<T>): void;
  /** Resolves after the first successful list; rejects if stop() comes first. */
  start(): Promise<void>;
  stop(): void;
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): T[];
  /** True once the first list has been delivered (stays true across restarts). */
  hasSynced(): boolean;
  /** Listed, watching and not waiting for a restart. */
  healthy(): boolean;
  readonly restarts: number;
}

// The transport of one run. It never rejects (ListWatch drops the promise of
// the done callback that calls it), reports activity for the watchdog, and
// when its run is replaced it aborts every request, including one still
// connecting, and swallows their callbacks so the old ListWatch goes quiet.
// (The generation checks in SupervisedInformer would also drop anything a
// retired run delivers; this keeps it from even trying to reconnect.)
class GuardedWatch implements WatchLike {
  readonly #inner: WatchLike;
  readonly #onActivity: () => void;
  readonly #onConnected: () => void;
  readonly #open = new Set<AbortController>();
  #retired = false;

  constructor(inner: WatchLike, onActivity: () => void, onConnected: () => void) {
    this.#inner = inner;
    this.#onActivity = onActivity;
    this.#onConnected = onConnected;
  }

  async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: WatchCallback,
    done: WatchDone,
  ): Promise<AbortController> {
    const outer = new AbortController();
    if (this.#retired) {
      outer.abort();
      return outer;
    }
    this.#open.add(outer);
    let finished = false;
    const live = () => !this.#retired && !outer.signal.aborted;
    const guardedCallback: WatchCallback = (phase, obj, watchObj) => {
      if (!live()) return;
      this.#onActivity();
      callback(phase, obj, watchObj);
    };
    const guardedDone: WatchDone = (err) => {
      if (finished) return;
      finished = true;
      this.#open.delete(outer);
      if (live()) done(err);
    };
    let inner: AbortController;
    try {
      // Bookmarks keep the resourceVersion fresh on quiet resources, so a
      // reconnect rarely falls behind the apiserver's watch cache.
      inner = await this.#inner.watch(path, { ...queryParams, allowWatchBookmarks: true }, guardedCallback, guardedDone);
    } catch (err) {
      // ListWatch calls watch() from a done callback and drops the promise; a
      // rejection here (e.g. credentials that fail to load) would be unhandled.
      guardedDone(err);
      return outer;
    }
    if (!live()) {
      inner.abort();
    } else {
      outer.signal.addEventListener('abort', () => inner.abort(), { once: true });
      if (!finished) this.#onConnected();
    }
    return outer;
  }

  retire(): void {
    this.#retired = true;
    for (const c of this.#open) c.abort();
    this.#open.clear();
  }
}

interface Run<T extends KubernetesObject> {
  gen: number;
  lw: ListWatchRun<T>;
  guard: GuardedWatch;
  listed: boolean;
}

function keyOf(obj: KubernetesObject): { ns: string; name: string } {
  return { ns: obj.metadata?.namespace ?? '', name: obj.metadata?.name ?? '' };
}

function sameVersion(a: KubernetesObject, b: KubernetesObject): boolean {
  const rv = a.metadata?.resourceVersion;
  return rv !== undefined && rv !== null && rv === b.metadata?.resourceVersion;
}

export class SupervisedInformer<T extends KubernetesObject> implements ObjectInformer<T> {
  readonly name: string;
  readonly #path: string;
  readonly #listFn: () => Promise<KubernetesListObject<T>>;
  readonly #logger: Logger;
  readonly #labelSelector: string | undefined;
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #watchdogMs: number;
  readonly #onRestart: ((info: RestartInfo) => void) | undefined;
  readonly #clock: Clock;
  readonly #transport: WatchLike;

  readonly #objects = new Map<string, Map<string, T>>();
  readonly #handlers: Record<InformerVerb, ObjectHandler<T>[]> = { add: [], update: [], delete: [] };

  #run: Run<T> | undefined;
  #gen = 0;
  #running = false;
  #synced = false;
  #sync: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } | undefined;
  /** Restart delays since the last successful list: the retry module's exponential sequence, no jitter, no budget. */
  #backoff: Backoff;
  #restarts = 0;
  #restartTimer: TimerHandle | undefined;
  #watchdogTimer: TimerHandle | undefined;
  #lastActivity = 0;

  constructor(opts: SupervisedInformerOptions<T>) {
    this.name = opts.name;
    this.#path = opts.path;
    this.#listFn = opts.listFn;
    this.#logger = opts.logger.child({ informer: opts.name });
    this.#labelSelector = opts.labelSelector;
    this.#initialMs = opts.restartBackoff?.initialMs ?? 1000;
    this.#maxMs = opts.restartBackoff?.maxMs ?? 30_000;
    this.#backoff = this.#newBackoff();
    this.#watchdogMs = opts.watchdogMs ?? 5 * 60_000;
    this.#onRestart = opts.onRestart;
    this.#clock = opts.clock ?? systemClock;
    this.#transport = opts.watch ?? kubeWatch(opts.kc);
  }

  get restarts(): number {
    return this.#restarts;
  }

  on(verb: InformerVerb, cb: ObjectHandler<T>): void {
    this.#handlers[verb].push(cb);
  }

  off(verb: InformerVerb, cb: ObjectHandler<T>): void {
    const i = this.#handlers[verb].indexOf(cb);
    if (i >= 0) this.#handlers[verb].splice(i, 1);
  }

  start(): Promise<void> {
    if (!this.#sync) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // A caller that doesn't await start() must not turn stop() into an
      // unhandled rejection.
      promise.catch(() => {});
      this.#sync = { promise, resolve, reject };
      if (this.#synced) resolve();
    }
    if (!this.#running) {
      this.#running = true;
      this.#launch();
      this.#armWatchdog();
    }
    return this.#sync.promise;
  }

  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#retireRun();
    if (this.#restartTimer !== undefined) this.#clock.clearTimeout(this.#restartTimer);
    if (this.#watchdogTimer !== undefined) this.#clock.clearTimeout(this.#watchdogTimer);
    this.#restartTimer = undefined;
    this.#watchdogTimer = undefined;
    if (this.#sync && !this.#synced) {
      this.#sync.reject(new Error(`informer ${this.name} stopped before its first list`));
    }
    this.#sync = undefined;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#objects.get(namespace ?? '')?.get(name);
  }

  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.#objects.get(namespace)?.values() ?? [])];
    const out: T[] = [];
    for (const m of this.#objects.values()) out.push(...m.values());
    return out;
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  healthy(): boolean {
    return (
      this.#running &&
      this.#restartTimer === undefined &&
      this.#run?.listed === true &&
      this.#clock.now() - this.#lastActivity < this.#watchdogMs
    );
  }

  #launch(): void {
    const gen = ++this.#gen;
    this.#lastActivity = this.#clock.now();
    const guard = new GuardedWatch(
      this.#transport,
      () => this.#touch(gen),
      () => {
        // List and watch both work again: the next failure backs off from the start.
        if (gen === this.#gen) this.#backoff.reset();
        this.#touch(gen);
      },
    );
    const lw = newListWatch<T>({ path: this.#path, watch: guard, listFn: () => this.#list(gen), labelSelector: this.#labelSelector });
    const run: Run<T> = { gen, lw, guard, listed: false };
    this.#run = run;
    lw.on('add', (o) => this.#upsert(gen, o));
    lw.on('update', (o) => this.#upsert(gen, o));
    lw.on('delete', (o) => this.#remove(gen, o));
    lw.on('error', (err) => this.#failed(gen, err));
    lw.start().catch((err: unknown) => this.#failed(gen, err));
  }

  async #list(gen: number): Promise<KubernetesListObject<T>> {
    const list = await this.#listFn();
    if (gen !== this.#gen || !this.#running) throw new Error('informer run was replaced');
    this.#replaceAll(list.items ?? []);
    const run = this.#run;
    if (run) run.listed = true;
    this.#touch(gen);
    if (!this.#synced) {
      this.#synced = true;
      this.#logger.debug('informer synced', { objects: list.items?.length ?? 0 });
      this.#sync?.resolve();
    }
    return list;
  }

  // The list is the truth: drop what it no longer has, then add/update.
  #replaceAll(items: T[]): void {
    const fresh = new Map<string, Set<string>>();
    for (const o of items) {
      const { ns, name } = keyOf(o);
      let names = fresh.get(ns);
      if (!names) fresh.set(ns, (names = new Set()));
      names.add(name);
    }
    const gone: T[] = [];
    for (const [ns, m] of this.#objects) {
      const names = fresh.get(ns);
      for (const [name, o] of m) if (!names?.has(name)) gone.push(o);
    }
    for (const o of gone) this.#delete(o);
    for (const o of items) this.#apply(o);
  }

  #upsert(gen: number, obj: T): void {
    if (gen !== this.#gen) return;
    this.#apply(obj);
  }

  #remove(gen: number, obj: T): void {
    if (gen !== this.#gen) return;
    this.#delete(obj);
  }

  // ListWatch re-announces the objects of every list it makes; only a change
  // relative to what this informer holds is delivered.
  #apply(obj: T): void {
    const { ns, name } = keyOf(obj);
    let m = this.#objects.get(ns);
    if (!m) this.#objects.set(ns, (m = new Map()));
    const old = m.get(name);
    if (old && sameVersion(old, obj)) return;
    m.set(name, obj);
    this.#emit(old ? 'update' : 'add', obj);
  }

  #delete(obj: T): void {
    const { ns, name } = keyOf(obj);
    const m = this.#objects.get(ns);
    const old = m?.get(name);
    if (!m || !old) return;
    m.delete(name);
    if (m.size === 0) this.#objects.delete(ns);
    this.#emit('delete', obj);
  }

  #emit(verb: InformerVerb, obj: T): void {
    for (const cb of [...this.#handlers[verb]]) {
      try {
        cb(obj);
      } catch (err) {
        this.#logger.error('informer handler threw', { verb, object: `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`, err });
      }
    }
  }

  #newBackoff(): Backoff {
    const policy = { initialIntervalMs: this.#initialMs, maxIntervalMs: Math.max(this.#initialMs, this.#maxMs), maxElapsedMs: Infinity, jitter: 0 };
    // The budget is unbounded, so its clock never matters.
    return new Backoff(policy, { now: () => 0 });
  }

  #touch(gen: number): void {
    if (gen === this.#gen) this.#lastActivity = this.#clock.now();
  }

  #failed(gen: number, err: unknown): void {
    if (gen !== this.#gen || !this.#running || this.#restartTimer !== undefined) return;
    const delayMs = this.#backoff.next() ?? this.#maxMs;
    this.#logger.warn('informer failed; restarting', { err, delayMs, restarts: this.#restarts });
    this.#scheduleRestart('error', delayMs);
  }

  #scheduleRestart(reason: RestartInfo['reason'], delayMs: number): void {
    this.#retireRun();
    this.#restartTimer = this.#clock.setTimeout(() => {
      this.#restartTimer = undefined;
      if (!this.#running) return;
      this.#restarts++;
      try {
        this.#onRestart?.({ informer: this.name, reason, restarts: this.#restarts });
      } catch (err) {
        this.#logger.error('onRestart threw', { err });
      }
      this.#launch();
    }, delayMs);
  }

  #retireRun(): void {
    const run = this.#run;
    if (!run) return;
    this.#run = undefined;
    // A new generation makes every callback of the old run a no-op.
    this.#gen++;
    run.guard.retire();
    run.lw.stop().catch(() => {});
  }

  #armWatchdog(): void {
    if (!this.#running) return;
    const idle = this.#clock.now() - this.#lastActivity;
    const wait = Math.max(this.#watchdogMs - idle, 1);
    this.#watchdogTimer = this.#clock.setTimeout(() => {
      this.#watchdogTimer = undefined;
      if (!this.#running) return;
      if (this.#restartTimer === undefined && this.#clock.now() - this.#lastActivity >= this.#watchdogMs) {
        this.#logger.warn('informer silent; restarting', { silentMs: this.#clock.now() - this.#lastActivity, restarts: this.#restarts });
        this.#scheduleRestart('watchdog', 0);
      }
      this.#armWatchdog();
    }, wait);
  }
}

export interface MultiNamespaceInformerOptions<T extends KubernetesObject>
  extends Omit<SupervisedInformerOptions<T>, 'path' | 'listFn'> {
  namespaces: string[];
  path: (namespace: string) => string;
  listFn: (namespace: string) => Promise<KubernetesListObject<T>>;
}

/** One supervised informer per namespace behind the interface of one. */
export class MultiNamespaceInformer<T extends KubernetesObject> implements ObjectInformer<T> {
  readonly name: string;
  readonly #informers = new Map<string, SupervisedInformer<T>>();

  constructor(opts: MultiNamespaceInformerOptions<T>) {
    this.name = opts.name;
    const namespaces = [...new Set(opts.namespaces)];
    if (namespaces.length === 0) throw new Error(`informer ${opts.name}: no namespaces given`);
    for (const ns of namespaces) {
      this.#informers.set(
        ns,
        new SupervisedInformer<T>({
          ...opts,
          name: `${opts.name}/${ns}`,
          path: opts.path(ns),
          listFn: () => opts.listFn(ns),
        }),
      );
    }
  }

  get namespaces(): string[] {
    return [...this.#informers.keys()];
  }

  get restarts(): number {
    let n = 0;
    for (const i of this.#informers.values()) n += i.restarts;
    return n;
  }

  on(verb: InformerVerb, cb: ObjectHandler<T>): void {
    for (const i of this.#informers.values()) i.on(verb, cb);
  }

  off(verb: InformerVerb, cb: ObjectHandler<T>): void {
    for (const i of this.#informers.values()) i.off(verb, cb);
  }

  async start(): Promise<void> {
    await Promise.all([...this.#informers.values()].map((i) => i.start()));
  }

  stop(): void {
    for (const i of this.#informers.values()) i.stop();
  }

  get(name: string, namespace?: string): T | undefined {
    if (namespace !== undefined) return this.#informers.get(namespace)?.get(name, namespace);
    for (const i of this.#informers.values()) {
      const o = i.get(name);
      if (o) return o;
    }
    return undefined;
  }

  list(namespace?: string): T[] {
    if (namespace !== undefined) return this.#informers.get(namespace)?.list(namespace) ?? [];
    return [...this.#informers.values()].flatMap((i) => i.list());
  }

  hasSynced(): boolean {
    return [...this.#informers.values()].every((i) => i.hasSynced());
  }

  healthy(): boolean {
    return [...this.#informers.values()].every((i) => i.healthy());
  }
}

/** API path of a resource collection, optionally in one namespace. */
export function resourcePath(r: { group?: string; version: string; plural: string; namespace?: string }): string {
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  return r.namespace ? `${base}/namespaces/${r.namespace}/${r.plural}` : `${base}/${r.plural}`;
}

export interface InformerForOptions<T extends KubernetesObject> extends Omit<SupervisedInformerOptions<T>, 'path' | 'listFn'> {
  /** Watch only these namespaces (one watch each); empty or absent: the whole cluster. */
  namespaces?: string[];
  /** Called with undefined for the cluster-wide path. */
  path: (namespace?: string) => string;
  listFn: (namespace?: string) => Promise<KubernetesListObject<T>>;
}

/** A cluster-wide informer, or one per namespace when `namespaces` is set. */
export function informerFor<T extends KubernetesObject>(opts: InformerForOptions<T>): ObjectInformer<T> {
  const { namespaces, path, listFn, ...rest } = opts;
  if (namespaces && namespaces.length > 0) {
    return new MultiNamespaceInformer<T>({ ...rest, namespaces, path: (ns) => path(ns), listFn: (ns) => listFn(ns) });
  }
  return new SupervisedInformer<T>({ ...rest, path: path(undefined), listFn: () => listFn(undefined) });
}
