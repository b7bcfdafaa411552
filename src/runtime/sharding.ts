// Sharding (issue 11 item 7): N replicas split the LogTails, with Kubernetes
// as the coordination engine. Two parts:
// - ShardMembership: one coordination.k8s.io/v1 Lease per replica (labelled
//   with the shard group), renewed every retry period; the other members are
//   read from a labelled list of Leases. A member is live while its Lease has
//   changed within its duration, measured on *our* clock from when we first
//   saw that content (client-go's rule: never trust another replica's clock).
//   A replica that could not renew for the renew deadline (shorter than the
//   lease duration) reports itself lost, and the operator exits before any
//   other replica can consider its Lease expired.
// - Sharding: the controller's gate. The owner of a LogTail is the claim
//   recorded on it (annotation logtail.dev/owner), written as a merge patch
//   carrying the resourceVersion we read (the apiserver answers 409 when the
//   object changed since), so of two replicas only one wins. The pure rules are
//   src/core/shard.ts; docs/design.md "Sharding" has the protocol.
import type { V1Lease } from '@kubernetes/client-node';
import { type KubeApi, KubeApiError } from '../adapters/kube-api.ts';
import { FINALIZER, logTailPath, type LogTail } from '../core/spec.ts';
import { type MemberState, type ObservedLease, OWNER_ANNOTATION, OWNER_SINCE_ANNOTATION, OWNER_TERM_ANNOTATION, SHARD_GROUP_LABEL, SHARD_ID_ANNOTATION, decideClaim, memberLeaseName, memberState, needsOwner } from '../core/shard.ts';
import type { StopReason } from './capture-daemon.ts';
import type { Logger } from './logger.ts';
import { type Clock, type ReconcileResult, Result, systemClock } from './work-queue.ts';

/** The requests sharding makes; `kubeShardApi` implements them over KubeApi. Errors carry `status`. */
export interface ShardApi {
  listLeases(namespace: string, labelSelector: string): Promise<V1Lease[]>;
  createLease(namespace: string, body: V1Lease): Promise<V1Lease>;
  replaceLease(namespace: string, name: string, body: V1Lease): Promise<V1Lease>;
  getLease(namespace: string, name: string): Promise<V1Lease | undefined>;
  /** Sets (owner) or clears (null) the claim; conditional on `resourceVersion` (409 when the LogTail changed). */
  patchOwner(namespace: string, name: string, resourceVersion: string, claim: { owner: string; term: string; since: string } | null): Promise<void>;
}

function leasesPath(namespace: string, name?: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}

export function kubeShardApi(api: KubeApi, timeoutMs = 10_000): ShardApi {
  const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' };
  return {
    listLeases: async (ns, selector) => (await api.request<{ items?: V1Lease[] }>('GET', `${leasesPath(ns)}?labelSelector=${encodeURIComponent(selector)}`, undefined, undefined, timeoutMs)).items ?? [],
    createLease: (ns, body) => api.request<V1Lease>('POST', leasesPath(ns), { ...lease, ...body }, undefined, timeoutMs),
    replaceLease: (ns, name, body) => api.request<V1Lease>('PUT', leasesPath(ns, name), { ...lease, ...body }, undefined, timeoutMs),
    getLease: async (ns, name) => {
      try {
        return await api.request<V1Lease>('GET', leasesPath(ns, name), undefined, undefined, timeoutMs);
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 404) return undefined;
        throw err;
      }
    },
    // A merge patch that carries metadata.resourceVersion is an optimistic update: the apiserver
    // answers 409 Conflict when the object's resourceVersion differs (k8s.io/apiserver v0.37.2
    // pkg/registry/generic/registry/store.go Update: newResourceVersion != existingResourceVersion).
    patchOwner: async (ns, name, resourceVersion, claim) => {
      const annotations = { [OWNER_ANNOTATION]: claim?.owner ?? null, [OWNER_TERM_ANNOTATION]: claim?.term ?? null, [OWNER_SINCE_ANNOTATION]: claim?.since ?? null };
      const body = { metadata: { resourceVersion, annotations } };
      await api.request('PATCH', logTailPath(ns, name), body, 'application/merge-patch+json', timeoutMs);
    },
  };
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { status?: unknown; code?: unknown } | null)?.status ?? (err as { code?: unknown } | null)?.code;
  return typeof s === 'number' ? s : undefined;
}

/** A MicroTime as the apiserver writes it (6 fraction digits). */
function microTime(ms: number): Date {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

function timeString(t: unknown): string {
  return t instanceof Date ? t.toISOString() : t === undefined || t === null ? '' : String(t);
}

export interface ShardMembershipOptions {
  api: ShardApi;
  namespace: string;
  /** Shard group: the label value every member's Lease carries (e.g. the operator's lease id). */
  group: string;
  /** This replica's id (the pod name in-cluster). */
  id: string;
  /** Default 15 s. Renew deadline = 2/3 of it, retry period = 2/15 of it. */
  leaseDurationMs?: number;
  /** The pod this replica runs in: the Lease gets it as owner, so the garbage collector removes the Lease with the pod. */
  pod?: { name: string; uid: string };
  logger: Logger;
  clock?: Clock;
}

export class ShardMembership {
  readonly id: string;
  readonly namespace: string;
  readonly leaseName: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  /** Called when the set of members, a member's state, or our own term changed (the controller looks at every key again). */
  onChange: () => void = () => {};
  /**
   * Called when this replica could not renew its Lease within the renew
   * deadline: every capture must stop now. The replica keeps trying; once it
   * renews again it starts a new term, in which its earlier claims are dead.
   */
  onLost: () => void = () => {};
  readonly #o: ShardMembershipOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  #lease: V1Lease | undefined;
  #lastRenew = -Infinity;
  /** Our current term (leaseTermOf our Lease); '' before the first renewal. */
  #term = '';
  /** The next renewal starts a new term (at start-up, and after we fenced ourselves). */
  #newTerm = true;
  /** Per member id: the Lease content last seen and since when (our clock). */
  readonly #seen = new Map<string, ObservedLease & { record: string }>();
  /** Member ids asked about that have no Lease: since when they are missing (our clock). */
  readonly #missing = new Map<string, number>();
  #signature = '';
  #running = false;
  #timer: unknown;
  #fenceTimer: unknown;
  #loop: Promise<void> = Promise.resolve();

  constructor(o: ShardMembershipOptions) {
    this.#o = o;
    this.id = o.id;
    this.namespace = o.namespace;
    this.leaseName = memberLeaseName(o.group, o.id);
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = Math.floor((this.leaseDurationMs * 2) / 3);
    this.retryPeriodMs = Math.max(100, Math.floor((this.leaseDurationMs * 2) / 15));
    this.#log = o.logger.child({ shard: o.id, lease: `${o.namespace}/${this.leaseName}` });
    this.#clock = o.clock ?? systemClock;
  }

  get #selector(): string {
    return `${SHARD_GROUP_LABEL}=${this.#o.group.slice(0, 63)}`;
  }

  /** This replica's current term; claims carry it. */
  get term(): string {
    return this.#term;
  }

  /** Renewed within the renew deadline, in the current term: may start and keep work. */
  isLive(): boolean {
    return this.#running && !this.#newTerm && this.#clock.now() - this.#lastRenew < this.renewDeadlineMs;
  }

  healthy(): boolean {
    return this.isLive();
  }

  /** Members whose Lease is live in this replica's view (this one included while it is live). */
  live(): string[] {
    const now = this.#clock.now();
    const out = [...this.#seen.entries()].filter(([id, l]) => id !== this.id && memberState(l, undefined, this.leaseDurationMs, now) === 'live').map(([id]) => id);
    if (this.isLive()) out.push(this.id);
    return out.sort();
  }

  /** How this replica sees member `id`, for a claim made in `term` (undefined: any term; see core/shard.ts memberState). */
  state(id: string, term?: string): MemberState {
    if (id === this.id) return this.isLive() && (term === undefined || term === this.#term) ? 'live' : 'dead';
    const lease = this.#seen.get(id);
    if (!lease && !this.#missing.has(id)) this.#missing.set(id, this.#clock.now());
    return memberState(lease, this.#missing.get(id), this.leaseDurationMs, this.#clock.now(), term);
  }

  /** Creates or renews our Lease and reads the members once; then keeps doing so every retry period. */
  async start(): Promise<void> {
    this.#running = true;
    await this.#tick();
    this.#schedule();
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#loop = this.#tick().finally(() => this.#schedule());
    }, this.retryPeriodMs);
  }

  /** Stops renewing and releases the Lease (holder cleared): the others take our LogTails at once. Call after every capture has stopped. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#clock.clearTimeout(this.#timer);
    this.#clock.clearTimeout(this.#fenceTimer);
    await this.#loop.catch(() => undefined);
    if (this.#newTerm || !this.#lease) return;
    try {
      const released = { ...this.#lease, spec: { ...this.#lease.spec, holderIdentity: undefined, renewTime: microTime(this.#clock.now()) } };
      await this.#o.api.replaceLease(this.namespace, this.leaseName, released);
      this.#log.info('released shard lease');
    } catch (err) {
      this.#log.warn('could not release the shard lease; it will expire', { error: String(err) });
    }
  }

  async #tick(): Promise<void> {
    // Side by side: a slow list must not hold the next renewal back.
    await Promise.all([this.#renew(), this.#list()]);
    const sig = `${this.#term}:${this.isLive()};${this.#stateSignature()}`;
    if (sig !== this.#signature) {
      this.#signature = sig;
      this.#log.info('shard members', { live: this.live(), term: this.#term });
      this.onChange();
    }
  }

  #stateSignature(): string {
    const ids = new Set([...this.#seen.keys(), ...this.#missing.keys()]);
    return [...ids].sort().map((id) => `${id}=${this.state(id)}`).join(',');
  }

  /**
   * Fires at the renew deadline after the last successful renewal (a timer of
   * its own, so a slow tick cannot delay it): from then on this replica is not
   * live and starts a new term when it renews again.
   */
  #armFence(renewedAt: number): void {
    this.#clock.clearTimeout(this.#fenceTimer);
    this.#fenceTimer = this.#clock.setTimeout(() => this.#fence(`not renewed within the renew deadline (${this.renewDeadlineMs} ms)`), renewedAt + this.renewDeadlineMs - this.#clock.now());
  }

  #fence(why: string): void {
    if (!this.#running || this.#newTerm) return;
    this.#clock.clearTimeout(this.#fenceTimer);
    this.#newTerm = true;
    this.#log.error('shard term over: stopping every capture of this replica', { why, term: this.#term });
    this.onLost();
  }

  /** Our Lease renewed from `base`; in a new term, leaseTransitions counts it. */
  #renewed(base: V1Lease, started: number, newTerm: boolean): V1Lease {
    const spec = { holderIdentity: this.id, leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000), renewTime: microTime(started) };
    if (!newTerm) return { ...base, spec: { ...base.spec, ...spec } };
    return { ...base, spec: { ...base.spec, ...spec, acquireTime: microTime(started), leaseTransitions: (base.spec?.leaseTransitions ?? -1) + 1 } };
  }

  /** One renewal: a replace guarded by the resourceVersion we hold (re-read on 409); create when missing. Bounded by the renew deadline. */
  async #renew(): Promise<void> {
    const started = this.#clock.now();
    // Decided when the request is made: a renewal of the old term that is answered after the fence fired must not revive that term.
    const newTerm = this.#newTerm;
    const api = this.#o.api;
    // A Lease that vanished (deleted) is created again only as a new term: its UID changes, and so does the term.
    const create = () => (newTerm ? this.#create(started) : Promise.reject(new LeaseGone()));
    const attempt = async (): Promise<V1Lease> => {
      const base = this.#lease ?? (await api.getLease(this.namespace, this.leaseName));
      if (!base) return create();
      try {
        return await api.replaceLease(this.namespace, this.leaseName, this.#renewed(base, started, newTerm));
      } catch (err) {
        if (statusOf(err) !== 409 && statusOf(err) !== 404) throw err;
        const fresh = await api.getLease(this.namespace, this.leaseName);
        return fresh ? api.replaceLease(this.namespace, this.leaseName, this.#renewed(fresh, started, newTerm)) : create();
      }
    };
    try {
      const lease = await this.#within(attempt(), this.renewDeadlineMs);
      if (lease === TIMED_OUT) {
        this.#log.warn('shard lease renewal timed out', { timeoutMs: this.renewDeadlineMs });
        return;
      }
      this.#lease = lease;
      if (!this.#running) return;
      if (this.#newTerm && !newTerm) return; // the old term ended while this renewal was in flight: the next one starts a new term
      this.#lastRenew = started;
      if (newTerm) {
        this.#term = leaseTermOf(lease);
        this.#newTerm = false;
        this.#log.info('shard term started', { term: this.#term });
      }
      this.#armFence(started);
    } catch (err) {
      this.#lease = undefined;
      if (err instanceof LeaseGone) {
        this.#fence('our shard Lease was deleted');
        return;
      }
      this.#log.warn('shard lease renewal failed', { error: String(err) });
    }
  }

  async #create(started: number): Promise<V1Lease> {
    const pod = this.#o.pod;
    const body: V1Lease = {
      metadata: {
        name: this.leaseName,
        namespace: this.namespace,
        labels: { [SHARD_GROUP_LABEL]: this.#o.group.slice(0, 63) },
        annotations: { [SHARD_ID_ANNOTATION]: this.id },
        ...(pod ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid }] } : {}),
      },
      spec: { holderIdentity: this.id, leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000), renewTime: microTime(started), acquireTime: microTime(started), leaseTransitions: 0 },
    };
    return this.#o.api.createLease(this.namespace, body);
  }

  async #list(): Promise<void> {
    let leases: V1Lease[];
    try {
      const r = await this.#within(this.#o.api.listLeases(this.namespace, this.#selector), this.renewDeadlineMs);
      if (r === TIMED_OUT) return;
      leases = r;
    } catch (err) {
      this.#log.warn('listing shard leases failed', { error: String(err) });
      return;
    }
    const now = this.#clock.now();
    const present = new Set<string>();
    for (const l of leases) {
      const holder = l.spec?.holderIdentity ?? '';
      // The id annotation names the member also after it released its Lease (holder cleared).
      const id = l.metadata?.annotations?.[SHARD_ID_ANNOTATION] ?? holder;
      if (!id) continue;
      const term = leaseTermOf(l);
      const record = JSON.stringify([holder, timeString(l.spec?.renewTime), l.spec?.leaseDurationSeconds ?? 0, term]);
      const prev = this.#seen.get(id);
      present.add(id);
      if (!prev || prev.record !== record) this.#seen.set(id, { holder, durationMs: (l.spec?.leaseDurationSeconds ?? 15) * 1000, observedAt: now, term, record });
      this.#missing.delete(id);
    }
    for (const id of [...this.#seen.keys()]) {
      if (present.has(id)) continue;
      // The Lease is gone (deleted with its pod): missing from now on.
      this.#seen.delete(id);
      this.#missing.set(id, now);
    }
  }

  #within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
    return new Promise((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => resolve(TIMED_OUT), ms);
      p.then(
        (v) => {
          this.#clock.clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          this.#clock.clearTimeout(timer);
          reject(e);
        },
      );
    });
  }
}

const TIMED_OUT = Symbol('timed out');

class LeaseGone extends Error {}

/**
 * A member's term: its Lease's UID (a deleted and re-created Lease is a new
 * one) and leaseTransitions (counted up at each new term).
 */
export function leaseTermOf(l: V1Lease): string {
  return `${(l.metadata?.uid ?? '').slice(0, 8)}.${l.spec?.leaseTransitions ?? 0}`;
}

/** What the gate needs from the controller about this replica's own captures. */
export interface LocalCaptures {
  /** Asks the key's capture (if one runs here) to stop; true once none of the key runs here any more. */
  stop(key: string, reason: StopReason): boolean;
}

export interface ShardingOptions {
  membership: ShardMembership;
  api: ShardApi;
  logger: Logger;
  /** The number of LogTails this replica owns, whenever it changes. */
  onOwned?: (n: number) => void;
  clock?: Clock;
}

/** The controller's gate: only the owner of a LogTail reconciles it. */
export class Sharding {
  readonly #m: ShardMembership;
  readonly #api: ShardApi;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #onOwned: (n: number) => void;
  /** Keys whose claim (as last seen) is ours. */
  readonly #owned = new Set<string>();

  constructor(o: ShardingOptions) {
    this.#m = o.membership;
    this.#api = o.api;
    this.#log = o.logger;
    this.#clock = o.clock ?? systemClock;
    this.#onOwned = o.onOwned ?? (() => {});
  }

  get id(): string {
    return this.#m.id;
  }

  owned(): number {
    return this.#owned.size;
  }

  /** The LogTail is gone. */
  forget(key: string): void {
    if (this.#owned.delete(key)) this.#onOwned(this.#owned.size);
  }

  #mark(key: string, mine: boolean): void {
    const had = this.#owned.has(key);
    if (mine) this.#owned.add(key);
    else this.#owned.delete(key);
    if (had !== mine) this.#onOwned(this.#owned.size);
  }

  /**
   * Undefined: this replica owns the LogTail, reconcile it. Otherwise what the
   * work queue should do with the key (the claim was written, released, or the
   * LogTail is another replica's).
   */
  async gate(key: string, lt: LogTail, local: LocalCaptures): Promise<ReconcileResult | undefined> {
    const owner = lt.metadata.annotations?.[OWNER_ANNOTATION] ?? '';
    const termText = lt.metadata.annotations?.[OWNER_TERM_ANNOTATION];
    const ownerTerm = termText || undefined;
    const myTerm = this.#m.term;
    const d = decideClaim({
      me: this.#m.id,
      meLive: this.#m.isLive(),
      uid: lt.metadata.uid ?? key,
      owner,
      ownerTerm,
      myTerm,
      ownerState: owner && owner !== this.#m.id ? this.#m.state(owner, ownerTerm) : 'unknown',
      live: this.#m.live(),
      needsOwner: needsOwner(lt, FINALIZER),
    });
    this.#mark(key, owner === this.#m.id && ownerTerm === myTerm);
    switch (d.kind) {
      case 'work':
        return undefined;
      case 'wait':
        // Our Lease is not fresh: start nothing (our captures were stopped when it lapsed); a new term looks at every key again.
        return Result.done;
      case 'leave':
        // A capture of a LogTail that is not (or no longer) ours must not run here.
        local.stop(key, 'ShardMoved');
        return Result.done;
      case 'claim':
        if (!local.stop(key, 'ShardMoved')) return Result.after(250);
        return this.#writeOwner(key, lt, { owner: this.#m.id, term: myTerm, since: new Date(this.#clock.now()).toISOString() }, d.from ? `from ${d.from} (term ${ownerTerm ?? '?'} over)` : 'unowned');
      case 'release':
        // The capture stops (ShardMoved: uploads aborted, status checkpointed) before the claim is let go.
        if (!local.stop(key, 'ShardMoved')) return Result.after(250);
        return this.#writeOwner(key, lt, null, `to ${d.to}`);
    }
  }

  async #writeOwner(key: string, lt: LogTail, claim: { owner: string; term: string; since: string } | null, why: string): Promise<ReconcileResult> {
    const rv = lt.metadata.resourceVersion;
    if (!rv) return Result.after(500);
    const owner = claim?.owner ?? null;
    try {
      await this.#api.patchOwner(lt.metadata.namespace!, lt.metadata.name!, rv, claim);
    } catch (err) {
      const s = statusOf(err);
      if (s === 404) return Result.done;
      // 409: the LogTail changed since our cache saw it (another claim, or a status write): look again.
      if (s === 409) return Result.after(300);
      throw err;
    }
    this.#mark(key, owner === this.#m.id);
    this.#log.info(owner ? 'claimed LogTail' : 'released LogTail', { key, why });
    // The informer delivers the update and the key is looked at again.
    return Result.done;
  }
}
