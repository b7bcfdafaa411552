// client-node's ListWatch (cache.js) behind two small interfaces, so that
// src/runtime (the supervised informer) imports no client-node values: it gets
// a watch transport and a ListWatch through the functions here.
//
// Imported by path, not from the package's index (which loads every module of
// client-node, KubeConfig and the generated API clients included). cache.js
// itself loads informer.js → watch.js (undici) and serializer.js (the
// generated models); that is the price of keeping client-node's ListWatch.
// The watch requests go through our own transport (kube-watch.ts), so
// client-node's Watch is only the base class ListWatch's type asks for.
import { ListWatch } from '@kubernetes/client-node/dist/cache.js';
import { Watch } from '@kubernetes/client-node/dist/watch.js';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { KubeCredentials } from './kube-credentials.ts';
import { KubeWatch } from './kube-watch.ts';

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

/** Our watch transport (kube-watch.ts) on `creds`: the default transport of the informers. */
export function kubeWatch(creds: KubeCredentials): WatchLike {
  return new KubeWatch(creds);
}

// Watch's constructor only stores its config, which only Watch.watch (never
// called here: it is overridden) reads, through these two methods. This
// stand-in (not a KubeConfig: that would load config.js) says so if that changes.
const unused = (): never => {
  throw new Error('DelegatingWatch: client-node Watch used its config; every request must go through the inner transport');
};
const NO_CONFIG = { getCurrentCluster: unused, applySecurityAuthentication: unused } as unknown as KubeConfig;

// ListWatch wants a Watch instance; this one hands every request to `inner`.
class DelegatingWatch extends Watch {
  readonly #inner: WatchLike;

  constructor(inner: WatchLike) {
    super(NO_CONFIG);
    this.#inner = inner;
  }

  override watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: WatchCallback, done: WatchDone): Promise<AbortController> {
    return this.#inner.watch(path, queryParams, callback, done);
  }
}

/** A client-node ListWatch (not started) whose watch requests go through `watch`. */
export function newListWatch<T extends KubernetesObject>(o: {
  path: string;
  watch: WatchLike;
  listFn: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string | undefined;
}): ListWatchRun<T> {
  return new ListWatch<T>(o.path, new DelegatingWatch(o.watch), o.listFn, false, o.labelSelector);
}
