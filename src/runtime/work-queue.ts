// A keyed, rate-limited work queue with client-go's guarantees: a key is
// handled by at most one worker at a time, a key waiting in the queue is there
// once however often it is added, and a key added while it is being handled
// runs again after the handler returns (so no change is lost to a race).
import { Backoff } from '../adapters/retry.ts';
import type { Logger } from './logger.ts';
import { silentLogger } from './logger.ts';

export type TimerHandle = unknown;

/** Time source, injectable so tests can step time instead of sleeping. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface WorkQueueOptions {
  name?: string;
  logger?: Logger;
  /** First delay of addRateLimited; doubles per consecutive failure. Default 200 ms. */
  baseDelayMs?: number;
  /** Cap of the per-key delay. Default 60 s. */
  maxDelayMs?: number;
  clock?: Clock;
  /** Called with len() whenever it changes (for the depth gauge). */
  onDepth?: (depth: number) => void;
}

/**
 * What a handler wants next for its key, as controller-runtime's
 * `reconcile.Result`: nothing (`done`, also what `undefined` means), another
 * run after `requeueAfterMs`, or another run after the key's rate-limited
 * backoff (`requeue`). A handler that throws is requeued rate-limited too.
 */
export type ReconcileResult = { kind: 'done' } | { kind: 'requeueAfter'; ms: number } | { kind: 'requeue' };

export const Result = {
  done: { kind: 'done' } as ReconcileResult,
  requeue: { kind: 'requeue' } as ReconcileResult,
  after: (ms: number): ReconcileResult => ({ kind: 'requeueAfter', ms }),
};

export type KeyHandler = (key: string) => Promise<ReconcileResult | void>;

export class WorkQueue {
  readonly name: string;
  readonly #logger: Logger;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #clock: Clock;
  readonly #onDepth: ((depth: number) => void) | undefined;

  /** Ready keys in FIFO order; never contains a key that is processing. */
  #ready: string[] = [];
  /** Keys that need a run: those in #ready plus processing keys added again. */
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  /** Per key: its backoff since the last success (the retry module's exponential sequence, no jitter, no budget). */
  readonly #failures = new Map<string, Backoff>();
  readonly #delayed = new Map<string, { at: number; timer: TimerHandle }>();
  #waiters: Array<(key: string | undefined) => void> = [];
  #workers: Promise<void>[] = [];
  #shuttingDown = false;
  #lastDepth = -1;

  constructor(opts: WorkQueueOptions = {}) {
    this.name = opts.name ?? 'workqueue';
    this.#logger = opts.logger ?? silentLogger();
    this.#baseDelayMs = opts.baseDelayMs ?? 200;
    this.#maxDelayMs = opts.maxDelayMs ?? 60_000;
    this.#clock = opts.clock ?? systemClock;
    this.#onDepth = opts.onDepth;
  }

  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#take(key);
      waiter(key);
      return;
    }
    this.#ready.push(key);
    this.#depthChanged();
  }

  /** Adds the key after `ms`; of several pending delays for a key the earliest wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.#clock.now() + ms;
    const pending = this.#delayed.get(key);
    if (pending) {
      if (pending.at <= at) return;
      this.#clock.clearTimeout(pending.timer);
    }
    const timer = this.#clock.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { at, timer });
  }

  /** Adds the key after its exponential backoff delay, and counts the failure. */
  addRateLimited(key: string): number {
    let b = this.#failures.get(key);
    if (!b) {
      b = new Backoff({ initialIntervalMs: this.#baseDelayMs, maxIntervalMs: Math.max(this.#baseDelayMs, this.#maxDelayMs), maxElapsedMs: Infinity, jitter: 0 }, { now: () => this.#clock.now() });
      this.#failures.set(key, b);
    }
    const delay = b.next() ?? this.#maxDelayMs;
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets the key's failure count (its next addRateLimited waits baseDelayMs). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.#failures.get(key)?.count ?? 0;
  }

  /** Keys ready to be handled (not counting delayed or processing ones). */
  len(): number {
    return this.#ready.length;
  }

  isProcessing(key: string): boolean {
    return this.#processing.has(key);
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /**
   * Starts `concurrency` workers. A handler that resolves forgets the key's
   * failures; one that throws is logged and the key is re-added rate-limited.
   */
  run(handler: KeyHandler, concurrency: number): void {
    if (this.#workers.length > 0) throw new Error(`work queue ${this.name} is already running`);
    if (this.#shuttingDown) throw new Error(`work queue ${this.name} is shut down`);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`concurrency must be a positive integer, got ${concurrency}`);
    for (let i = 0; i < concurrency; i++) this.#workers.push(this.#worker(handler));
  }

  /** Stops handing out keys and resolves once every running handler has returned. */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    for (const { timer } of this.#delayed.values()) this.#clock.clearTimeout(timer);
    this.#delayed.clear();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w(undefined);
    await Promise.all(this.#workers);
  }

  async #worker(handler: KeyHandler): Promise<void> {
    for (;;) {
      const key = await this.#get();
      if (key === undefined) return;
      try {
        const result = (await handler(key)) ?? Result.done;
        this.#act(key, result);
      } catch (err) {
        const requeues = this.numRequeues(key);
        const delayMs = this.#shuttingDown ? undefined : this.addRateLimited(key);
        this.#logger.error('handler failed; key requeued with backoff', { queue: this.name, key, requeues: requeues + 1, delayMs, err });
      } finally {
        this.#done(key);
      }
    }
  }

  /** Acts on a handler's result, as controller-runtime does on reconcile.Result. */
  #act(key: string, result: ReconcileResult): void {
    if (result.kind === 'requeue') {
      if (!this.#shuttingDown) this.addRateLimited(key);
      return;
    }
    this.forget(key);
    if (result.kind === 'requeueAfter' && !this.#shuttingDown) this.addAfter(key, result.ms);
  }

  #get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    const key = this.#ready.shift();
    if (key !== undefined) {
      this.#take(key);
      this.#depthChanged();
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #take(key: string): void {
    this.#dirty.delete(key);
    this.#processing.add(key);
  }

  #done(key: string): void {
    this.#processing.delete(key);
    if (!this.#dirty.has(key) || this.#shuttingDown) return;
    // Added while it was being handled: it runs again, but only now.
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#take(key);
      waiter(key);
      return;
    }
    this.#ready.push(key);
    this.#depthChanged();
  }

  #depthChanged(): void {
    const depth = this.#ready.length;
    if (depth === this.#lastDepth) return;
    this.#lastDepth = depth;
    this.#onDepth?.(depth);
  }
}
