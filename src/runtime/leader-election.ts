// Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules:
// - Every write is a replace guarded by the resourceVersion that was read, so
//   of two candidates that saw the same free lease only one wins (409 loses).
// - A candidate never trusts the holder's clock: a lease counts as expired
//   when it has not changed for leaseDurationSeconds *as measured locally*
//   since this candidate first saw its current content.
// - The leader gives up (aborts the signal of its term) when no renewal
//   succeeded for renewDeadlineMs, which is shorter than the lease duration,
//   so it stops before anybody else may start.
import type { V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import { type KubeApi, KubeApiError } from '../adapters/kube-api.ts';
import type { Logger } from './logger.ts';
import { systemClock } from './work-queue.ts';
import type { Clock } from './work-queue.ts';

/** The Lease calls the elector makes; `kubeLeaseApi` implements them over KubeApi. */
export interface LeaseApi {
  readNamespacedLease(param: { name: string; namespace: string }): Promise<V1Lease>;
  createNamespacedLease(param: { namespace: string; body: V1Lease }): Promise<V1Lease>;
  replaceNamespacedLease(param: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease>;
}

export interface LeaderElectorOptions {
  api: LeaseApi;
  namespace: string;
  name: string;
  /** Unique per replica (e.g. pod name). */
  identity: string;
  /** Default 15 s. Written to the lease in whole seconds (rounded up). */
  leaseDurationMs?: number;
  /** Default 10 s. */
  renewDeadlineMs?: number;
  /** Default 2 s. */
  retryPeriodMs?: number;
  logger: Logger;
  /**
   * Called when this replica becomes leader. `signal` aborts when leadership
   * ends. It is not awaited while leading; on a graceful stop the elector
   * waits for its promise before releasing the lease, so work can wind down
   * while the lease still keeps others out.
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called after each term, whether lost or given up by stop. */
  onStoppedLeading: () => void;
  clock?: Clock;
}

const ABORTED = Symbol('aborted');
const TIMED_OUT = Symbol('timed out');

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

/**
 * A MicroTime as the apiserver writes it (RFC 3339 with 6 fraction digits);
 * typed as the Date the client types declare, serialised by JSON as is.
 */
function microTime(ms: number): Date {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

function leasePath(namespace: string, name?: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}

/** The elector's Lease calls through KubeApi; errors carry the HTTP status as `code`, as statusOf expects. */
export function kubeLeaseApi(api: KubeApi): LeaseApi {
  const call = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      if (err instanceof KubeApiError) throw Object.assign(err, { code: err.status });
      throw err;
    }
  };
  return {
    readNamespacedLease: ({ name, namespace }) => call(api.request<V1Lease>('GET', leasePath(namespace, name))),
    createNamespacedLease: ({ namespace, body }) => call(api.request<V1Lease>('POST', leasePath(namespace), { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...body })),
    replaceNamespacedLease: ({ name, namespace, body }) => call(api.request<V1Lease>('PUT', leasePath(namespace, name), { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...body })),
  };
}

function timeString(t: unknown): string {
  if (t instanceof Date) return t.toISOString();
  return t === undefined || t === null ? '' : String(t);
}

export class LeaderElector {
  readonly identity: string;
  readonly #api: LeaseApi;
  readonly #namespace: string;
  readonly #name: string;
  readonly #leaseDurationMs: number;
  readonly #leaseSeconds: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #logger: Logger;
  readonly #onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  readonly #onStoppedLeading: () => void;
  readonly #clock: Clock;

  #running = false;
  #leader = false;
  /** Start time of the last renewal that succeeded (what we wrote as renewTime). */
  #lastRenew = 0;
  /** Last time a read of the lease succeeded. */
  #lastObserved = 0;
  #observedRecord = '';
  #observedAt = 0;

  constructor(opts: LeaderElectorOptions) {
    this.identity = opts.identity;
    this.#api = opts.api;
    this.#namespace = opts.namespace;
    this.#name = opts.name;
    this.#leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.#leaseSeconds = Math.max(1, Math.ceil(this.#leaseDurationMs / 1000));
    this.#renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (!(this.#leaseDurationMs > this.#renewDeadlineMs && this.#renewDeadlineMs > this.#retryPeriodMs && this.#retryPeriodMs > 0)) {
      throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod > 0');
    }
    this.#logger = opts.logger.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    this.#onStartedLeading = opts.onStartedLeading;
    this.#onStoppedLeading = opts.onStoppedLeading;
    this.#clock = opts.clock ?? systemClock;
  }

  /** Leader with a renewal younger than the renew deadline. */
  isLeader(): boolean {
    return this.#leader && this.#clock.now() - this.#lastRenew < this.#renewDeadlineMs;
  }

  /**
   * For a health endpoint: as leader, the lease we hold has not run out; as a
   * candidate, the lease could be read within the last lease duration.
   */
  healthy(): boolean {
    if (!this.#running) return false;
    const now = this.#clock.now();
    if (this.#leader) return now - this.#lastRenew < this.#leaseDurationMs;
    return now - this.#lastObserved < this.#leaseDurationMs + this.#retryPeriodMs;
  }

  /**
   * Campaigns until `signal` aborts: acquires, leads, and after losing the
   * lease campaigns again. Never rejects.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new Error('LeaderElector.run is already running');
    this.#running = true;
    try {
      while (!signal.aborted) {
        if (!(await this.#acquire(signal))) break;
        await this.#lead(signal);
      }
    } catch (err) {
      this.#logger.error('leader election loop failed', { err });
    } finally {
      this.#running = false;
      this.#leader = false;
    }
  }

  async #acquire(signal: AbortSignal): Promise<boolean> {
    this.#logger.info('campaigning for leadership');
    for (;;) {
      if (signal.aborted) return false;
      const ok = await this.#attemptWithin(this.#renewDeadlineMs, signal);
      if (ok === ABORTED) return false;
      if (ok === true) return true;
      if ((await this.#sleep(this.#retryPeriodMs, signal)) === ABORTED) return false;
    }
  }

  async #lead(signal: AbortSignal): Promise<void> {
    this.#leader = true;
    this.#logger.info('became leader');
    const term = new AbortController();
    let work: Promise<void>;
    try {
      work = Promise.resolve(this.#onStartedLeading(term.signal)).catch((err: unknown) => {
        this.#logger.error('onStartedLeading failed', { err });
      });
    } catch (err) {
      this.#logger.error('onStartedLeading failed', { err });
      work = Promise.resolve();
    }

    let lost = false;
    for (;;) {
      if ((await this.#sleep(this.#retryPeriodMs, signal)) === ABORTED) break;
      const left = this.#lastRenew + this.#renewDeadlineMs - this.#clock.now();
      const ok = left > 0 ? await this.#attemptWithin(left, signal) : false;
      if (ok === ABORTED) break;
      if (ok !== true && this.#clock.now() - this.#lastRenew >= this.#renewDeadlineMs) {
        lost = true;
        break;
      }
    }

    this.#leader = false;
    term.abort(new Error(lost ? 'leadership lost' : 'leader election stopped'));
    if (lost) {
      this.#logger.error('lost leadership: no renewal within the renew deadline', { renewDeadlineMs: this.#renewDeadlineMs });
      this.#stopped();
      // The next term must not overlap with the work of this one.
      await work;
      return;
    }
    await work;
    await this.#release();
    this.#stopped();
  }

  #stopped(): void {
    try {
      this.#onStoppedLeading();
    } catch (err) {
      this.#logger.error('onStoppedLeading failed', { err });
    }
  }

  // A request the apiserver never answers must not keep a leader believing
  // it still leads, nor stall a candidate.
  async #attemptWithin(ms: number, signal: AbortSignal): Promise<boolean | typeof ABORTED> {
    let r: boolean | typeof TIMED_OUT | typeof ABORTED;
    try {
      r = await this.#race(this.#tryAcquireOrRenew(), ms, signal);
    } catch (err) {
      this.#logger.warn('lease attempt failed', { err });
      return false;
    }
    if (r === TIMED_OUT) {
      this.#logger.warn('lease request timed out', { timeoutMs: ms });
      return false;
    }
    return r;
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const started = this.#clock.now();
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name: this.#name, namespace: this.#namespace });
    } catch (err) {
      if (statusOf(err) !== 404) {
        this.#logger.warn('could not read lease', { err });
        return false;
      }
      this.#lastObserved = this.#clock.now();
      return this.#create(started);
    }
    this.#lastObserved = this.#clock.now();
    const spec: V1LeaseSpec = lease.spec ?? {};
    this.#observe(spec);
    const holder = spec.holderIdentity ?? '';
    if (holder !== '' && holder !== this.identity && !this.#expired(spec)) return false;

    const mine = holder === this.identity;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: this.#leaseSeconds,
        renewTime: microTime(started),
        acquireTime: mine ? spec.acquireTime : microTime(started),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      const written = await this.#api.replaceNamespacedLease({ name: this.#name, namespace: this.#namespace, body });
      this.#observe(written.spec ?? {});
      this.#lastRenew = started;
      if (!mine) this.#logger.info('acquired lease', { previousHolder: holder || undefined });
      return true;
    } catch (err) {
      if (statusOf(err) === 409) this.#logger.debug('lease changed under us (409); not acquired');
      else this.#logger.warn('could not write lease', { err });
      return false;
    }
  }

  async #create(started: number): Promise<boolean> {
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.#name, namespace: this.#namespace },
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: this.#leaseSeconds,
        acquireTime: microTime(started),
        renewTime: microTime(started),
        leaseTransitions: 0,
      },
    };
    try {
      const created = await this.#api.createNamespacedLease({ namespace: this.#namespace, body });
      this.#observe(created.spec ?? {});
      this.#lastRenew = started;
      this.#logger.info('acquired lease (created it)');
      return true;
    } catch (err) {
      if (statusOf(err) === 409) this.#logger.debug('lease created by another candidate (409)');
      else this.#logger.warn('could not create lease', { err });
      return false;
    }
  }

  #observe(spec: V1LeaseSpec): void {
    const record = JSON.stringify([spec.holderIdentity ?? '', timeString(spec.renewTime), spec.leaseDurationSeconds ?? 0, spec.leaseTransitions ?? 0]);
    if (record !== this.#observedRecord) {
      this.#observedRecord = record;
      this.#observedAt = this.#clock.now();
    }
  }

  #expired(spec: V1LeaseSpec): boolean {
    const seconds = spec.leaseDurationSeconds ?? this.#leaseSeconds;
    return this.#clock.now() >= this.#observedAt + seconds * 1000;
  }

  // Clears the holder so a standby takes over within one retry period instead
  // of waiting for the lease to run out.
  async #release(): Promise<void> {
    const now = this.#clock.now();
    try {
      const read = this.#api.readNamespacedLease({ name: this.#name, namespace: this.#namespace });
      const lease = await this.#race(read, this.#renewDeadlineMs);
      if (lease === TIMED_OUT || lease.spec?.holderIdentity !== this.identity) return;
      const body: V1Lease = {
        ...lease,
        spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: microTime(now), acquireTime: microTime(now) },
      };
      const written = await this.#race(this.#api.replaceNamespacedLease({ name: this.#name, namespace: this.#namespace, body }), this.#renewDeadlineMs);
      if (written !== TIMED_OUT) this.#logger.info('released lease');
    } catch (err) {
      this.#logger.warn('could not release lease; it will expire', { err });
    }
  }

  #race<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT>;
  #race<T>(p: Promise<T>, ms: number, signal: AbortSignal): Promise<T | typeof TIMED_OUT | typeof ABORTED>;
  #race<T>(p: Promise<T>, ms: number, signal?: AbortSignal): Promise<T | typeof TIMED_OUT | typeof ABORTED> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        this.#clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = () => finish(() => resolve(ABORTED));
      const timer = this.#clock.setTimeout(() => finish(() => resolve(TIMED_OUT)), ms);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      p.then(
        (v) => finish(() => resolve(v)),
        (e: unknown) => finish(() => reject(e)),
      );
    });
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void | typeof ABORTED> {
    return this.#race(new Promise<never>(() => {}), ms, signal).then((r) => (r === ABORTED ? ABORTED : undefined));
  }
}
