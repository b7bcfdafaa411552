// The one retry module. The `backoff` package supplies the exponential delay
// sequence; what it lacks and we need is added here: symmetric jitter, a time
// budget, cancellation, and permanent-vs-transient classification.
import { ExponentialStrategy } from 'backoff';
import type { RetryPolicy } from '../core/spec.ts';
import { CaptureError, classify as defaultClassify, describeError } from './errors.ts';

export type { RetryPolicy };

export interface BackoffOptions {
  now?: () => number;
  /** Uniform in [0, 1); injectable so tests can pin the jitter. */
  random?: () => number;
}

function validatePolicy(p: RetryPolicy): void {
  const finiteNonNeg = (n: number) => Number.isFinite(n) && n >= 0;
  if (!finiteNonNeg(p.initialIntervalMs) || !finiteNonNeg(p.maxIntervalMs) || !(p.maxElapsedMs >= 0)) {
    throw new RangeError(`invalid retry policy ${JSON.stringify(p)}`);
  }
  if (p.maxIntervalMs < p.initialIntervalMs) {
    throw new RangeError(`retry policy: maxIntervalMs ${p.maxIntervalMs} < initialIntervalMs ${p.initialIntervalMs}`);
  }
  if (p.jitter !== undefined && !(p.jitter >= 0 && p.jitter <= 1)) {
    throw new RangeError(`retry policy: jitter ${p.jitter} is not within 0..1`);
  }
}

/**
 * Delays for a caller that runs its own loop. The budget clock starts at
 * construction and restarts on reset(): call reset() whenever an attempt made
 * progress, so the budget measures time spent failing, not uptime.
 */
export class Backoff {
  readonly policy: Readonly<RetryPolicy>;
  private readonly strategy: ExponentialStrategy;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly jitter: number;
  private startedAt: number;
  private attempts = 0;

  constructor(policy: RetryPolicy, opts: BackoffOptions = {}) {
    validatePolicy(policy);
    this.policy = { ...policy };
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.jitter = policy.jitter ?? 0.2;
    // The package rejects initialDelay < 1 and maxDelay <= initialDelay; a
    // constant policy (initial == max) is legitimate for us, so give it room
    // and clamp to maxIntervalMs below. Its own randomisation only ever
    // lengthens a delay (and past maxDelay), hence factor 0 and our jitter.
    const initialDelay = Math.max(1, policy.initialIntervalMs);
    this.strategy = new ExponentialStrategy({
      initialDelay,
      maxDelay: Math.max(initialDelay + 1, policy.maxIntervalMs),
      randomisationFactor: 0,
    });
    this.startedAt = this.now();
  }

  /** Milliseconds since construction or the last reset(). */
  elapsedMs(): number {
    return this.now() - this.startedAt;
  }

  /** Delays handed out since construction or the last reset(). */
  get count(): number {
    return this.attempts;
  }

  /**
   * The next delay, or undefined when the budget is spent. A delay never
   * reaches past the budget's end: the last one is shortened so one final
   * attempt happens at the deadline.
   */
  next(minDelayMs = 0): number | undefined {
    const remaining = this.policy.maxElapsedMs - this.elapsedMs();
    if (remaining <= 0) return undefined;
    const nominal = Math.min(this.strategy.next(), this.policy.maxIntervalMs);
    const factor = 1 + this.jitter * (2 * this.random() - 1);
    let delay = Math.min(Math.round(nominal * factor), this.policy.maxIntervalMs);
    delay = Math.max(delay, minDelayMs, 0);
    this.attempts++;
    return Math.min(delay, remaining);
  }

  reset(): void {
    this.strategy.reset();
    this.attempts = 0;
    this.startedAt = this.now();
  }
}

export class RetryExhaustedError extends Error {
  readonly attempts: number;
  readonly elapsedMs: number;
  declare readonly cause: unknown;

  constructor(attempts: number, elapsedMs: number, lastError: unknown) {
    super(
      `gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} in ${Math.round(elapsedMs)} ms: ${describeError(lastError)}`,
      { cause: lastError },
    );
    this.name = 'RetryExhaustedError';
    this.attempts = attempts;
    this.elapsedMs = elapsedMs;
  }

  get lastError(): unknown {
    return this.cause;
  }
}

/** Longest delay setTimeout honours: Node fires a longer one after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * setTimeout as a promise that rejects with `signal.reason` as soon as the
 * signal aborts. Waits longer than MAX_TIMER_MS are slept in chunks (so a
 * huge delay waits, instead of firing after 1 ms); Infinity waits for the
 * signal; a negative delay is 0; NaN is refused.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (Number.isNaN(ms)) return Promise.reject(new RangeError('sleep: delay is NaN'));
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let left = Math.max(0, ms);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const arm = () => {
      const chunk = Math.min(left, MAX_TIMER_MS);
      timer = setTimeout(() => {
        left -= chunk;
        if (left > 0) return arm();
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, chunk);
    };
    arm();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryOptions {
  signal?: AbortSignal;
  classify?: (err: unknown) => 'transient' | 'permanent';
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

/**
 * Calls `fn` (attempt numbers from 1) until it resolves, a permanent error
 * is thrown (rethrown as is), the budget is spent (RetryExhaustedError with
 * the last error as cause), or `signal` aborts (rejects with signal.reason).
 * A CaptureError's retryAfterMs lengthens the following delay.
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  opts: RetryOptions = {},
): Promise<T> {
  const { signal } = opts;
  const classifyErr = opts.classify ?? defaultClassify;
  const wait = opts.sleep ?? sleep;
  const backoff = new Backoff(policy, { now: opts.now, random: opts.random });
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (err) {
      // Whatever fn threw while being cancelled, the cancellation is the news.
      signal?.throwIfAborted();
      if (classifyErr(err) === 'permanent') throw err;
      const minDelay = err instanceof CaptureError ? (err.retryAfterMs ?? 0) : 0;
      const delay = backoff.next(minDelay);
      if (delay === undefined) throw new RetryExhaustedError(attempt, backoff.elapsedMs(), err);
      opts.onRetry?.(err, attempt, delay);
      await wait(delay, signal);
    }
  }
}
