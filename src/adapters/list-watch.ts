// client-node's list+watch machinery (ListWatch in cache.js, Watch in
// watch.js) behind two small interfaces, so that src/runtime (the supervised
// informer) imports no client-node values: it gets a watch transport and a
// ListWatch through the functions here.
import { ListWatch, Watch } from '@kubernetes/client-node';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';

export type WatchCallback = (phase: string, apiObj: any, watchObj?: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any
export type WatchDone = (err: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The part of client-node's Watch that ListWatch uses. */
export interface WatchLike {
  watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: WatchCallback, done: WatchDone): Promise<AbortController>;
}

/** What the supervised informer uses of one ListWatch run. */
export interface ListWatchRun<T extends KubernetesObject> {
  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  on(verb: 'error', cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** client-node's Watch on `kc`: the default transport of the informers. */
export function kubeWatch(kc: KubeConfig): WatchLike {
  return new Watch(kc);
}

// ListWatch wants a Watch instance; this one hands every request to `inner`.
class DelegatingWatch extends Watch {
  readonly #inner: WatchLike;

  constructor(kc: KubeConfig, inner: WatchLike) {
    super(kc);
    this.#inner = inner;
  }

  override watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: WatchCallback, done: WatchDone): Promise<AbortController> {
    return this.#inner.watch(path, queryParams, callback, done);
  }
}

/** A client-node ListWatch (not started) whose watch requests go through `watch`. */
export function newListWatch<T extends KubernetesObject>(o: {
  kc: KubeConfig;
  path: string;
  watch: WatchLike;
  listFn: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string | undefined;
}): ListWatchRun<T> {
  return new ListWatch<T>(o.path, new DelegatingWatch(o.kc, o.watch), o.listFn, false, o.labelSelector);
}
