// One writer of LogTail status for the whole process. Every capture hands it
// snapshots of its status; the writer decides when they reach the apiserver:
//
// - Coalescing: one pending snapshot per LogTail, the latest wins; at most
//   one write per LogTail in flight, so writes of one LogTail stay in order.
// - Skipping: a snapshot equal to the last one written (or being written)
//   is not written again.
// - Priority: urgent snapshots (phase, conditions, terminal state, anything a
//   reader or a restarted operator must see at once) go first, in the order
//   they came, bounded only by `maxInFlight`; the caller waits for them.
//   Among them, terminal snapshots (the capture's end, what `Complete` waits
//   for) go before the others. Progress writes never hold more than half of
//   `maxInFlight`, so an urgent write always finds a free place soon.
// - Budget: progress snapshots (bytes, checkpoint) share a token bucket of
//   `writesPerSecond` for the whole process, urgent writes drawing on it too;
//   among waiting LogTails the one waiting longest goes first. So with N
//   LogTails streaming, each one's progress reaches status at least every
//   N / writesPerSecond seconds (plus the caller's own interval and one
//   write's duration): the bound on how old a checkpoint in status can be.
//
// The writer does not look inside a snapshot beyond comparing it
// (statusEquals): it writes whatever the capture gives it.
import { Backoff } from '../adapters/retry.ts';
import { statusEquals } from '../core/status.ts';
import type { CaptureClock } from './capture-ports.ts';
import type { Logger } from './logger.ts';

export interface StatusWriterOptions {
  /** Writes one LogTail's status (a merge patch of `status`). A rejection with `status: 404` drops the LogTail's writes; another 4xx (but 408, 429) drops that snapshot; anything else is retried. */
  patch(namespace: string, name: string, snapshot: unknown): Promise<void>;
  clock: CaptureClock;
  logger: Logger;
  /** Progress writes per second, all LogTails together; Infinity: no budget. */
  writesPerSecond: number;
  /** Tokens that may accumulate while idle (default: one second's worth, at least 1). */
  burst?: number;
  /** Writes in flight at once, urgent ones included (default 16). */
  maxInFlight?: number;
  /** A caller of an urgent write waits at most this long while it fails (default 30 s); the write is retried further. */
  urgentWaitMs?: number;
  /** Counted per write started (`urgent` or `progress`). */
  onWrite?: (kind: 'urgent' | 'progress') => void;
}

/** One LogTail's view of the writer. */
export interface StatusChannel {
  /**
   * Queues `snapshot` (the caller must not change it afterwards). Urgent:
   * resolves once it (or a later snapshot) is written, the LogTail is gone,
   * or `urgentWaitMs` passed. `terminal` (urgent only): the capture's last
   * status, written before other urgent ones.
   */
  publish(snapshot: unknown, urgent: boolean, terminal?: boolean): Promise<void>;
  /**
   * The capture has ended. `keepPending`: a snapshot not yet written is still
   * written; otherwise it is dropped. Resolves once nothing of this channel is
   * in flight or pending any more (so whoever writes the status next, with
   * sharding another replica, writes after it), or the LogTail's entry was
   * opened again by a new channel.
   */
  close(keepPending: boolean): Promise<void>;
}

interface Entry {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  /** The snapshot to write next, if any. */
  pending: unknown;
  hasPending: boolean;
  urgent: boolean;
  /** The pending snapshot is the capture's terminal status (urgent, first among urgent). */
  terminal: boolean;
  /** Callers waiting for the pending (urgent) snapshot. */
  waiters: Array<() => void>;
  inFlight: boolean;
  /** Callers waiting for the snapshot in flight. */
  flightWaiters: Array<() => void>;
  /** What is being written, else what was written last. */
  latest: unknown;
  hasLatest: boolean;
  retryAt: number;
  failures: number;
  backoff?: Backoff;
  closed: boolean;
  /** close() callers waiting until nothing is in flight or pending. */
  closeWaiters: Array<() => void>;
}

const RETRY_INITIAL_MS = 250;
const RETRY_MAX_MS = 5000;

export class StatusWriter {
  private readonly o: Required<Omit<StatusWriterOptions, 'onWrite'>> & Pick<StatusWriterOptions, 'onWrite'>;
  private readonly entries = new Map<string, Entry>();
  /** Entries with an urgent snapshot pending, in arrival order. */
  private readonly urgentQueue = new Set<Entry>();
  /** Entries with a progress snapshot pending. */
  private readonly dirty = new Set<Entry>();
  private tokens: number;
  private refilledAt: number;
  private inFlight = 0;
  /** Progress writes in flight (at most half of maxInFlight). */
  private progressInFlight = 0;
  private timer: { at: number; abort: AbortController } | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(o: StatusWriterOptions) {
    const rate = o.writesPerSecond;
    if (!(rate > 0)) throw new RangeError(`status writer: writesPerSecond must be > 0, got ${rate}`);
    const burst = o.burst ?? (Number.isFinite(rate) ? Math.max(1, rate) : Infinity);
    this.o = { burst, maxInFlight: 16, urgentWaitMs: 30_000, ...o };
    this.tokens = burst;
    this.refilledAt = o.clock.now();
  }

  /** A channel for one LogTail; `written` is the status it has now (not written again). */
  channel(namespace: string, name: string, written?: unknown): StatusChannel {
    const key = `${namespace}/${name}`;
    let e = this.entries.get(key);
    if (!e) {
      e = { key, namespace, name, pending: undefined, hasPending: false, urgent: false, terminal: false, waiters: [], inFlight: false, flightWaiters: [], latest: written, hasLatest: written !== undefined, retryAt: -Infinity, failures: 0, closed: false, closeWaiters: [] };
      this.entries.set(key, e);
    }
    e.closed = false;
    // A new capture of the same LogTail in this process: writes stay in order through this entry.
    wake(e.closeWaiters.splice(0));
    const entry = e;
    return {
      publish: (snapshot, urgent, terminal = false) => this.publish(entry, snapshot, urgent, urgent && terminal),
      close: (keepPending) => this.close(entry, keepPending),
    };
  }

  /** LogTails with a snapshot waiting or being written. */
  get backlog(): number {
    return this.urgentQueue.size + this.dirty.size + this.inFlight;
  }

  /**
   * The longest a progress snapshot of one of `captures` streaming LogTails
   * waits under the budget: captures / writesPerSecond seconds (add the
   * caller's own interval and one write's duration for the age of a
   * checkpoint in status).
   */
  progressBoundMs(captures: number): number {
    return Number.isFinite(this.o.writesPerSecond) ? (captures / this.o.writesPerSecond) * 1000 : 0;
  }

  /**
   * Writes everything pending now, ignoring the budget (at shutdown, so the
   * last checkpoints are in status); resolves when nothing is pending or
   * after `deadlineMs`.
   */
  async flush(deadlineMs: number): Promise<void> {
    for (const e of this.dirty) this.makeUrgent(e);
    this.pump();
    if (this.backlog === 0) return;
    const ac = new AbortController();
    const idle = new Promise<void>((r) => this.idleWaiters.push(r));
    await Promise.race([idle, this.o.clock.sleep(deadlineMs, ac.signal).catch(() => undefined)]);
    ac.abort();
  }

  private publish(e: Entry, snapshot: unknown, urgent: boolean, terminal: boolean): Promise<void> {
    if (e.closed) return Promise.resolve();
    const same = e.hasPending ? statusEquals(e.pending, snapshot) : e.hasLatest && statusEquals(e.latest, snapshot);
    if (same && !(urgent && (e.hasPending || e.inFlight))) return Promise.resolve();
    if (!same) {
      e.pending = snapshot;
      e.hasPending = true;
    }
    if (terminal && e.hasPending) e.terminal = true;
    if (urgent) this.makeUrgent(e);
    else if (!e.urgent) this.dirty.add(e);
    if (!urgent) {
      this.pump();
      return Promise.resolve();
    }
    // Equal to the snapshot in flight (nothing pending): wait for that write.
    const list = e.hasPending ? e.waiters : e.flightWaiters;
    const done = this.waitOn(e, list);
    this.pump();
    return done;
  }

  private makeUrgent(e: Entry): void {
    this.dirty.delete(e);
    if (!e.hasPending) return;
    e.urgent = true;
    this.urgentQueue.add(e);
  }

  /** Resolves when the snapshot `list` belongs to is written (or dropped), or after urgentWaitMs. */
  private waitOn(e: Entry, list: Array<() => void>): Promise<void> {
    const ac = new AbortController();
    return new Promise<void>((resolve) => {
      list.push(resolve);
      this.o.clock.sleep(this.o.urgentWaitMs, ac.signal).then(
        () => {
          this.o.logger.warn('status write still failing; the capture goes on, the write is retried', { key: e.key, failures: e.failures });
          resolve();
        },
        () => undefined,
      );
    }).finally(() => ac.abort());
  }

  private close(e: Entry, keepPending: boolean): Promise<void> {
    e.closed = true;
    const settled = new Promise<void>((r) => e.closeWaiters.push(r));
    if (!keepPending && e.hasPending) {
      this.dropPending(e);
      wake(e.waiters.splice(0));
    }
    this.settle(e);
    this.pump();
    return settled;
  }

  /** Forgets a closed entry with nothing left to write; wakes flush() when nothing is left anywhere. */
  private settle(e: Entry): void {
    if (e.closed && !e.hasPending && !e.inFlight) {
      if (this.entries.get(e.key) === e) this.entries.delete(e.key);
      wake(e.closeWaiters.splice(0));
    }
    if (this.backlog === 0) {
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of idle) w();
    }
  }

  private refill(now: number): void {
    const rate = this.o.writesPerSecond;
    if (!Number.isFinite(rate)) {
      this.tokens = Infinity;
      return;
    }
    this.tokens = Math.min(this.o.burst, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
  }

  /** Starts every write that may start now, then arms a timer for the next one. */
  private pump(): void {
    const now = this.o.clock.now();
    this.refill(now);
    while (this.inFlight < this.o.maxInFlight) {
      const e = this.nextUrgent(now) ?? this.nextProgress(now);
      if (!e) break;
      this.start(e);
    }
    this.arm(now);
  }

  private nextUrgent(now: number): Entry | undefined {
    let first: Entry | undefined;
    for (const e of this.urgentQueue) {
      if (e.inFlight || e.retryAt > now) continue;
      if (e.terminal) return e;
      first ??= e;
    }
    return first;
  }

  private nextProgress(now: number): Entry | undefined {
    if (this.tokens < 1 || this.progressInFlight >= this.progressCap()) return undefined;
    // The set keeps the order in which entries became dirty: the one waiting longest first.
    for (const e of this.dirty) if (!e.inFlight && e.retryAt <= now) return e;
    return undefined;
  }

  private progressCap(): number {
    return Math.max(1, Math.floor(this.o.maxInFlight / 2));
  }

  private start(e: Entry): void {
    const snapshot = e.pending;
    const urgent = e.urgent;
    const terminal = e.terminal;
    this.dropPending(e);
    e.inFlight = true;
    e.flightWaiters = e.waiters;
    e.waiters = [];
    e.latest = snapshot;
    e.hasLatest = true;
    this.inFlight++;
    if (!urgent) this.progressInFlight++;
    // Urgent writes spend tokens too (progress then waits), at most a burst into debt.
    this.tokens = Math.max(-this.o.burst, this.tokens - 1);
    this.o.onWrite?.(urgent ? 'urgent' : 'progress');
    this.o.patch(e.namespace, e.name, snapshot).then(
      () => {
        if (!urgent) this.progressInFlight--;
        this.written(e);
      },
      (err: unknown) => {
        if (!urgent) this.progressInFlight--;
        this.failed(e, snapshot, urgent, terminal, err);
      },
    );
  }

  /** Forgets the snapshot waiting to be written for `e` (taken by a write, or nobody will read it). */
  private dropPending(e: Entry): void {
    e.pending = undefined;
    e.hasPending = false;
    e.urgent = false;
    e.terminal = false;
    this.urgentQueue.delete(e);
    this.dirty.delete(e);
  }

  private written(e: Entry): void {
    e.inFlight = false;
    e.failures = 0;
    e.backoff?.reset();
    e.retryAt = -Infinity;
    this.inFlight--;
    wake(e.flightWaiters.splice(0));
    this.settle(e);
    this.pump();
  }

  private failed(e: Entry, snapshot: unknown, urgent: boolean, terminal: boolean, err: unknown): void {
    e.inFlight = false;
    this.inFlight--;
    if ((err as { status?: number }).status === 404) {
      // The LogTail is gone: nobody reads this status any more.
      this.dropPending(e);
      e.closed = true;
      wake(e.flightWaiters.splice(0));
      wake(e.waiters.splice(0));
      this.settle(e);
      this.pump();
      return;
    }
    const status = (err as { status?: number }).status ?? 0;
    // 409 Conflict is a refusal of this moment (e.g. an admission webhook), not of the snapshot: retried.
    if (status >= 400 && status < 500 && status !== 408 && status !== 409 && status !== 429) {
      // Refused as it is (invalid, forbidden, too large): retrying the same
      // snapshot cannot help; a later snapshot is tried as usual.
      this.o.logger.warn('status write refused; this snapshot is dropped', { key: e.key, status, error: String(err) });
      e.hasLatest = false;
      e.latest = undefined;
      wake(e.flightWaiters.splice(0));
      if (!e.hasPending) this.settle(e);
      this.pump();
      return;
    }
    e.failures++;
    // The one retry module's delays (exponential; no jitter: the global write budget already spreads the writes); no budget: a status write is retried until it lands or the LogTail is gone.
    e.backoff ??= new Backoff({ initialIntervalMs: RETRY_INITIAL_MS, maxIntervalMs: RETRY_MAX_MS, maxElapsedMs: Infinity, jitter: 0 }, { now: () => this.o.clock.now() });
    e.retryAt = this.o.clock.now() + (e.backoff.next() ?? RETRY_MAX_MS);
    // What was written is unknown: compare later snapshots with nothing.
    e.hasLatest = false;
    e.latest = undefined;
    if (!e.hasPending) {
      e.pending = snapshot;
      e.hasPending = true;
      if (terminal) e.terminal = true;
    }
    // Its waiters now wait for the pending snapshot (the same one, or a later one that supersedes it).
    e.waiters = e.flightWaiters.splice(0).concat(e.waiters);
    if (urgent || e.urgent) this.makeUrgent(e);
    else this.dirty.add(e);
    if (e.failures === 1 || e.failures % 10 === 0) this.o.logger.warn('status write failed; retrying', { key: e.key, failures: e.failures, error: String(err) });
    this.pump();
  }

  /** One timer, for the earliest moment a waiting write may start. */
  private arm(now: number): void {
    let at = Infinity;
    if (this.inFlight < this.o.maxInFlight) {
      for (const e of this.urgentQueue) if (!e.inFlight) at = Math.min(at, e.retryAt);
      if (this.dirty.size > 0 && this.progressInFlight < this.progressCap()) {
        const tokenAt = this.tokens >= 1 ? now : now + ((1 - this.tokens) * 1000) / this.o.writesPerSecond;
        for (const e of this.dirty) if (!e.inFlight) at = Math.min(at, Math.max(tokenAt, e.retryAt));
      }
    }
    if (at === Infinity || (this.timer && this.timer.at <= at)) return;
    this.timer?.abort.abort();
    const abort = new AbortController();
    const timer = { at, abort };
    this.timer = timer;
    this.o.clock.sleep(Math.max(0, at - now), abort.signal).then(
      () => {
        if (this.timer === timer) this.timer = undefined;
        this.pump();
      },
      () => undefined,
    );
  }
}

function wake(ws: Array<() => void>): void {
  for (const w of ws) w();
}
