import { mustWait, overShare, pickNext } from '../core/fair-share.ts';

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

/**
 * The stream slots shared fairly between namespaces (the policy is
 * src/core/fair-share.ts): a freed slot goes to the waiting namespace holding
 * the fewest, a namespace never holds more than `perNamespaceCap`, and
 * `overShare()` names the namespaces holding more than their share while
 * others wait. Same surface as Semaphore for callers without a namespace
 * (they share the namespace "").
 */
export class FairSlots {
  readonly capacity: number;
  readonly perNamespaceCap: number | undefined;
  private readonly held = new Map<string, number>();
  private readonly waiters: FairWaiter[] = [];
  private readonly lastServed = new Map<string, number>();
  private used = 0;
  private seq = 0;
  private grants = 0;

  constructor(capacity: number, perNamespaceCap?: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`slot capacity must be a positive integer, got ${capacity}`);
    if (perNamespaceCap !== undefined && (!Number.isInteger(perNamespaceCap) || perNamespaceCap < 1)) throw new Error(`per-namespace cap must be a positive integer, got ${perNamespaceCap}`);
    this.capacity = capacity;
    this.perNamespaceCap = perNamespaceCap;
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

  /** Whether acquiring for `namespace` now would wait (status: Pending, WaitingForSlot). */
  wouldWait(namespace: string): boolean {
    return mustWait(namespace, this.capacity - this.used, this.waiters, this.held, this.perNamespaceCap);
  }

  /** Namespaces over their fair share while others wait, and by how many slots. */
  overShare(): Map<string, number> {
    return overShare(this.capacity, this.held, this.waiters, this.perNamespaceCap);
  }

  acquire(signal?: AbortSignal): Promise<void> {
    return this.acquireFor('', signal);
  }

  release(): void {
    this.releaseFor('');
  }

  acquireFor(namespace: string, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.wouldWait(namespace)) {
      this.take(namespace);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const w: FairWaiter = { namespace, seq: this.seq++, resolve, reject, signal, onAbort: undefined };
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
      this.waiters.push(w);
    });
  }

  releaseFor(namespace: string): void {
    const n = this.held.get(namespace) ?? 0;
    if (n <= 0) throw new Error(`slot released for namespace "${namespace}" that holds none`);
    if (n === 1) this.held.delete(namespace);
    else this.held.set(namespace, n - 1);
    this.used--;
    this.grant();
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
}
