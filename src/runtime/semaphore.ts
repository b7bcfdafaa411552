import { type Holder, mustWait, pickNext, planPreemption } from '../core/fair-share.ts';

// Bounds concurrent log streams (--max-concurrent-streams). Waiters are served
// in arrival order so a busy operator cannot starve an early LogTail.
export class Semaphore {
  private free: number;
  private readonly waiters: Array<{ resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal; onAbort?: () => void }> = [];
  readonly capacity: number;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`semaphore capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.free = capacity;
  }

  get inUse(): number {
    return this.capacity - this.free;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  tryAcquire(): boolean {
    if (this.free > 0 && this.waiters.length === 0) {
      this.free--;
      return true;
    }
    return false;
  }

  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w: (typeof this.waiters)[number] = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.waiters.push(w);
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) {
      if (next.signal && next.onAbort) next.signal.removeEventListener('abort', next.onAbort);
      next.resolve();
      return;
    }
    if (this.free >= this.capacity) throw new Error('semaphore released more often than acquired');
    this.free++;
  }
}

interface FairWaiter {
  namespace: string;
  seq: number;
  resolve: () => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** Time for FairSlots' minimum hold (a CaptureClock fits). */
export interface SlotClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const systemClock: SlotClock = {
  now: () => Date.now(),
  sleep: (ms, signal) => new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    t.unref?.();
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  }),
};

/** --min-stream-hold's default (docs/design.md "Fair share of the stream slots"). */
export const DEFAULT_MIN_HOLD_MS = 10_000;

/** Why a lease's stream is asked to stop: its slot goes to another namespace. */
export class SlotPreempted extends Error {}

/**
 * One slot held by a capture that can give it back (preemption,
 * docs/design.md "Fair share"). While it follows a running container
 * (`following(true)`) the slot may be asked back: `signal` is aborted, the
 * holder stops its stream at once, then calls `giveBack()`, which waits for a
 * slot again as the oldest of its namespace. `release()` at the end.
 */
export class SlotLease {
  readonly namespace: string;
  readonly owner: unknown;
  readonly seq: number;
  /** Grants of this lease (1 = never preempted). */
  grants = 1;
  /** Why the slot was last asked back. */
  reason = '';
  private ctl = new AbortController();
  private readonly slots: FairSlots;
  private readonly id: number;

  constructor(slots: FairSlots, id: number, namespace: string, seq: number, owner: unknown) {
    this.slots = slots;
    this.id = id;
    this.namespace = namespace;
    this.seq = seq;
    this.owner = owner;
  }

  /** Aborted (SlotPreempted) when the slot is asked back. */
  get signal(): AbortSignal {
    return this.ctl.signal;
  }

  get asked(): boolean {
    return this.ctl.signal.aborted;
  }

  /** Whether the slot may be asked back now; returns whether it was asked. */
  following(on: boolean): boolean {
    this.slots.setPreemptible(this.id, on);
    return this.asked;
  }

  /** Gives the slot up and resolves once this lease holds one again (rejects with `signal`'s reason). */
  giveBack(signal?: AbortSignal): Promise<void> {
    this.letGo();
    return this.regain(signal);
  }

  /** giveBack, first half: the slot goes to the waiter the policy serves next. */
  letGo(): void {
    this.slots.drop(this.id, this.namespace);
  }

  /** giveBack, second half: waits as the oldest of its namespace (its first arrival order). */
  async regain(signal?: AbortSignal): Promise<void> {
    await this.slots.enqueue(this.namespace, signal, this.seq);
    this.ctl = new AbortController();
    this.grants++;
    this.slots.hold(this.id, this);
  }

  /** Releases the slot if held; whether it was. */
  release(): boolean {
    return this.slots.drop(this.id, this.namespace);
  }

  /** Called by FairSlots when the plan asks this slot back. */
  ask(reason: string): void {
    this.reason = reason;
    this.ctl.abort(new SlotPreempted(reason));
  }
}

interface LeaseState {
  lease: SlotLease;
  since: number;
  preemptible: boolean;
}

/**
 * The stream slots shared fairly between namespaces (the policy is
 * src/core/fair-share.ts): a freed slot goes to the waiting namespace holding
 * the fewest, a namespace never holds more than `perNamespaceCap`, and a
 * namespace over its share while others wait is asked to give slots back
 * (planPreemption; only slots of leases, held at least `minHoldMs`, while
 * they follow a running container). Same surface as Semaphore for callers
 * without a namespace (they share the namespace "").
 */
export class FairSlots {
  readonly capacity: number;
  readonly perNamespaceCap: number | undefined;
  readonly minHoldMs: number;
  private readonly clock: SlotClock;
  private readonly held = new Map<string, number>();
  private readonly waiters: FairWaiter[] = [];
  private readonly lastServed = new Map<string, number>();
  private readonly leases = new Map<number, LeaseState>();
  private used = 0;
  private seq = 0;
  private grants = 0;
  private leaseIds = 0;
  private recheck: { at: number; ctl: AbortController } | undefined;

  constructor(capacity: number, perNamespaceCap?: number, o: { minHoldMs?: number; clock?: SlotClock } = {}) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`slot capacity must be a positive integer, got ${capacity}`);
    if (perNamespaceCap !== undefined && (!Number.isInteger(perNamespaceCap) || perNamespaceCap < 1)) throw new Error(`per-namespace cap must be a positive integer, got ${perNamespaceCap}`);
    this.capacity = capacity;
    this.perNamespaceCap = perNamespaceCap;
    this.minHoldMs = Math.max(0, o.minHoldMs ?? 0);
    this.clock = o.clock ?? systemClock;
  }

  get inUse(): number {
    return this.used;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  heldBy(namespace: string): number {
    return this.held.get(namespace) ?? 0;
  }

  /** Slots held through leases of `owner` (e.g. one LogTail's captures). */
  heldByOwner(owner: unknown): number {
    let n = 0;
    for (const s of this.leases.values()) if (s.lease.owner === owner) n++;
    return n;
  }

  /** Whether acquiring for `namespace` now would wait (status: Pending, WaitingForSlot). */
  wouldWait(namespace: string): boolean {
    return mustWait(namespace, this.capacity - this.used, this.waiters, this.held, this.perNamespaceCap);
  }

  acquire(signal?: AbortSignal): Promise<void> {
    return this.acquireFor('', signal);
  }

  release(): void {
    this.releaseFor('');
  }

  acquireFor(namespace: string, signal?: AbortSignal): Promise<void> {
    return this.enqueue(namespace, signal, this.seq++);
  }

  /** A slot that may be asked back (SlotLease); `owner` groups leases (heldByOwner). */
  async acquireLease(namespace: string, signal?: AbortSignal, owner?: unknown): Promise<SlotLease> {
    const seq = this.seq++;
    await this.enqueue(namespace, signal, seq);
    const lease = new SlotLease(this, ++this.leaseIds, namespace, seq, owner);
    this.hold(this.leaseIds, lease);
    return lease;
  }

  releaseFor(namespace: string): void {
    const n = this.held.get(namespace) ?? 0;
    if (n <= 0) throw new Error(`slot released for namespace "${namespace}" that holds none`);
    if (n === 1) this.held.delete(namespace);
    else this.held.set(namespace, n - 1);
    this.used--;
    this.grant();
    this.preempt();
  }

  /** Waits for a slot in arrival order `seq` (a preempted lease keeps its first one). */
  enqueue(namespace: string, signal: AbortSignal | undefined, seq: number): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.wouldWait(namespace)) {
      this.take(namespace);
      return Promise.resolve();
    }
    const p = new Promise<void>((resolve, reject) => {
      const w: FairWaiter = { namespace, seq, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        w.onAbort = () => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal.reason);
          // a waiter at the head of its namespace may have blocked nobody, but a cap change might: re-run
          this.grant();
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      const at = this.waiters.findIndex((x) => x.seq > seq);
      if (at < 0) this.waiters.push(w);
      else this.waiters.splice(at, 0, w);
    });
    // a lease waiting again may be older than the waiters that kept a slot free (their cap)
    this.grant();
    this.preempt();
    return p;
  }

  /** Records a lease as holding (its slot already taken). */
  hold(id: number, lease: SlotLease): void {
    this.leases.set(id, { lease, since: this.clock.now(), preemptible: false });
  }

  /** Ends a lease's hold and frees its slot; false when it held none. */
  drop(id: number, namespace: string): boolean {
    if (!this.leases.delete(id)) return false;
    this.releaseFor(namespace);
    return true;
  }

  setPreemptible(id: number, on: boolean): void {
    const s = this.leases.get(id);
    if (!s || s.preemptible === on) return;
    s.preemptible = on;
    if (on) this.preempt();
  }

  private take(namespace: string): void {
    this.lastServed.delete(namespace);
    this.lastServed.set(namespace, this.grants++);
    // only the order matters: forget namespaces not served for the last 4096 grants
    if (this.lastServed.size > 4096) this.lastServed.delete(this.lastServed.keys().next().value!);
    this.held.set(namespace, (this.held.get(namespace) ?? 0) + 1);
    this.used++;
  }

  /** Hands free slots to waiters in the policy's order. */
  private grant(): void {
    while (this.used < this.capacity) {
      const i = pickNext(this.waiters, this.held, this.perNamespaceCap, this.lastServed);
      if (i < 0) return;
      const [w] = this.waiters.splice(i, 1);
      if (w!.signal && w!.onAbort) w!.signal.removeEventListener('abort', w!.onAbort);
      this.take(w!.namespace);
      w!.resolve();
    }
  }

  /** Asks back the slots the plan names; re-runs itself when a held slot reaches the minimum hold. */
  private preempt(): void {
    if (this.waiters.length === 0 || this.leases.size === 0) return;
    const now = this.clock.now();
    const holders: Holder[] = [...this.leases].map(([id, s]) => ({ id, namespace: s.lease.namespace, since: s.since, preemptible: s.preemptible, asked: s.lease.asked }));
    const plan = planPreemption({ capacity: this.capacity, held: this.held, holders, waiters: this.waiters, cap: this.perNamespaceCap, now, minHoldMs: this.minHoldMs });
    for (const id of plan.ask) {
      const s = this.leases.get(id)!;
      const ns = s.lease.namespace;
      const waiting = [...new Set(this.waiters.map((w) => w.namespace))].filter((x) => x !== ns).map((x) => `"${x}" (holds ${this.heldBy(x)})`);
      s.lease.ask(`namespace "${ns}" held ${this.heldBy(ns)} of ${this.capacity} stream slots while ${waiting.join(', ')} waited: over its fair share`);
    }
    if (plan.recheckAt !== undefined) this.recheckAt(plan.recheckAt);
  }

  private recheckAt(at: number): void {
    if (this.recheck && this.recheck.at <= at) return;
    this.recheck?.ctl.abort();
    const r = { at, ctl: new AbortController() };
    this.recheck = r;
    this.clock.sleep(Math.max(0, at - this.clock.now()), r.ctl.signal).then(
      () => {
        if (this.recheck === r) this.recheck = undefined;
        this.preempt();
      },
      () => undefined,
    );
  }
}
