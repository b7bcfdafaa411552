import { expect } from 'chai';
import { mock } from 'node:test';
import { Backoff, MAX_TIMER_MS, retry, RetryExhaustedError, sleep, type RetryPolicy } from '../../../src/adapters/retry.ts';
import { CaptureError, captureError } from '../../../src/adapters/errors.ts';

function fakeClock() {
  let t = 1_000_000;
  const slept: number[] = [];
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
    slept,
    sleep: async (ms: number) => {
      slept.push(ms);
      t += ms;
    },
  };
}

const noJitter = () => 0.5; // factor 1 + j*(2*0.5-1) = 1
const policy: RetryPolicy = { initialIntervalMs: 100, maxIntervalMs: 1_000, maxElapsedMs: 60_000, jitter: 0.2 };

function networkError(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

describe('adapters/retry', () => {
  describe('Backoff', () => {
    it('grows exponentially from the initial interval and caps at the max', () => {
      const clock = fakeClock();
      const b = new Backoff(policy, { now: clock.now, random: noJitter });
      const delays = Array.from({ length: 7 }, () => b.next());
      expect(delays).to.deep.equal([100, 200, 400, 800, 1000, 1000, 1000]);
    });

    it('applies symmetric jitter within ±jitter and never above maxIntervalMs', () => {
      const low = new Backoff(policy, { random: () => 0 });
      expect(low.next()).to.equal(80);
      const high = new Backoff(policy, { random: () => 0.999999 });
      expect(high.next()).to.equal(120);
      for (let i = 0; i < 10; i++) expect(high.next()).to.be.at.most(1000);
      const def = new Backoff({ initialIntervalMs: 100, maxIntervalMs: 1000, maxElapsedMs: 1e9 }, { random: () => 0 });
      expect(def.next()).to.equal(80, 'default jitter is 0.2');
    });

    it('returns undefined once the budget is spent and shortens the last delay to the deadline', () => {
      const clock = fakeClock();
      const b = new Backoff({ initialIntervalMs: 100, maxIntervalMs: 1000, maxElapsedMs: 1000, jitter: 0 }, { now: clock.now });
      clock.advance(950);
      expect(b.next()).to.equal(50);
      clock.advance(50);
      expect(b.next()).to.equal(undefined);
    });

    it('reset() restarts both the delay sequence and the budget clock', () => {
      const clock = fakeClock();
      const b = new Backoff({ initialIntervalMs: 100, maxIntervalMs: 10_000, maxElapsedMs: 1000, jitter: 0 }, { now: clock.now });
      expect(b.next()).to.equal(100);
      expect(b.next()).to.equal(200);
      clock.advance(1000);
      expect(b.next()).to.equal(undefined);
      b.reset();
      expect(b.count).to.equal(0);
      expect(b.next()).to.equal(100);
    });

    it('supports a constant policy (initial == max) and honours a minimum delay', () => {
      const b = new Backoff({ initialIntervalMs: 500, maxIntervalMs: 500, maxElapsedMs: 1e9, jitter: 0 });
      expect([b.next(), b.next(), b.next()]).to.deep.equal([500, 500, 500]);
      expect(b.next(3000)).to.equal(3000);
    });

    it('rejects invalid policies', () => {
      expect(() => new Backoff({ initialIntervalMs: 10, maxIntervalMs: 5, maxElapsedMs: 1 })).to.throw(RangeError);
      expect(() => new Backoff({ initialIntervalMs: 10, maxIntervalMs: 50, maxElapsedMs: 1, jitter: 2 })).to.throw(RangeError);
      expect(() => new Backoff({ initialIntervalMs: -1, maxIntervalMs: 50, maxElapsedMs: 1 })).to.throw(RangeError);
    });
  });

  describe('retry()', () => {
    it('retries transient failures with growing delays, then returns the value', async () => {
      const clock = fakeClock();
      const seen: number[] = [];
      const retried: Array<[number, number]> = [];
      const result = await retry(
        async (attempt) => {
          seen.push(attempt);
          if (attempt < 4) throw captureError('ServerError', 'boom');
          return 'ok';
        },
        policy,
        { now: clock.now, sleep: clock.sleep, random: noJitter, onRetry: (_e, a, d) => retried.push([a, d]) },
      );
      expect(result).to.equal('ok');
      expect(seen).to.deep.equal([1, 2, 3, 4]);
      expect(clock.slept).to.deep.equal([100, 200, 400]);
      expect(retried).to.deep.equal([
        [1, 100],
        [2, 200],
        [3, 400],
      ]);
    });

    it('rethrows a permanent error at once', async () => {
      const clock = fakeClock();
      let calls = 0;
      const err = captureError('Forbidden', 'no');
      const got = await retry(
        async () => {
          calls++;
          throw err;
        },
        policy,
        { now: clock.now, sleep: clock.sleep },
      ).catch((e: unknown) => e);
      expect(got).to.equal(err);
      expect(calls).to.equal(1);
      expect(clock.slept).to.deep.equal([]);
    });

    it('treats network error codes as transient and other unknown errors as permanent by default', async () => {
      const clock = fakeClock();
      let calls = 0;
      const v = await retry(
        async () => {
          if (++calls < 3) throw networkError();
          return calls;
        },
        policy,
        { now: clock.now, sleep: clock.sleep },
      );
      expect(v).to.equal(3);
      calls = 0;
      const plain = new TypeError('bug');
      const got = await retry(
        async () => {
          calls++;
          throw plain;
        },
        policy,
        { now: clock.now, sleep: clock.sleep },
      ).catch((e: unknown) => e);
      expect(got).to.equal(plain);
      expect(calls).to.equal(1);
    });

    it('uses a custom classifier', async () => {
      const clock = fakeClock();
      let calls = 0;
      const v = await retry(
        async () => {
          if (++calls < 2) throw new Error('odd');
          return 'done';
        },
        policy,
        { now: clock.now, sleep: clock.sleep, classify: () => 'transient' },
      );
      expect(v).to.equal('done');
      expect(calls).to.equal(2);
    });

    it('throws RetryExhaustedError carrying attempts and the last error when the budget is spent', async () => {
      const clock = fakeClock();
      let calls = 0;
      const got = await retry(
        async (attempt) => {
          calls++;
          clock.advance(10); // each attempt takes a while too
          throw captureError('KubeletUnreachable', `dial failed #${attempt}`);
        },
        { initialIntervalMs: 100, maxIntervalMs: 400, maxElapsedMs: 1000, jitter: 0 },
        { now: clock.now, sleep: clock.sleep },
      ).catch((e: unknown) => e);
      expect(got).to.be.instanceOf(RetryExhaustedError);
      const ex = got as RetryExhaustedError;
      expect(ex.attempts).to.equal(calls);
      // 10+100+10+200+10+400+10+260(shortened)+10 = 1010 > 1000
      expect(clock.slept).to.deep.equal([100, 200, 400, 260]);
      expect(ex.attempts).to.equal(5);
      expect(ex.lastError).to.be.instanceOf(CaptureError);
      expect(ex.cause).to.equal(ex.lastError);
      expect(ex.message).to.include('dial failed #5');
      expect(ex.message).to.include('5 attempts');
    });

    it('waits at least a CaptureError retryAfterMs', async () => {
      const clock = fakeClock();
      let calls = 0;
      await retry(
        async () => {
          if (++calls < 2) throw captureError('TooManyRequests', 'slow down', { status: 429, retryAfterMs: 2000 });
        },
        policy,
        { now: clock.now, sleep: clock.sleep, random: noJitter },
      );
      expect(clock.slept).to.deep.equal([2000]);
    });

    it('an abort during a wait rejects promptly with signal.reason (real timers)', async () => {
      const ac = new AbortController();
      const reason = new Error('shutting down');
      const t0 = performance.now();
      setTimeout(() => ac.abort(reason), 30);
      let calls = 0;
      const got = await retry(
        async () => {
          calls++;
          throw captureError('ServerError', 'x');
        },
        { initialIntervalMs: 10_000, maxIntervalMs: 20_000, maxElapsedMs: 60_000 },
        { signal: ac.signal },
      ).catch((e: unknown) => e);
      expect(got).to.equal(reason);
      expect(calls).to.equal(1);
      expect(performance.now() - t0).to.be.below(2000);
    });

    it('does not call fn when the signal is already aborted, and prefers the abort reason over fn errors', async () => {
      const ac = new AbortController();
      ac.abort(new Error('early'));
      let calls = 0;
      const got = await retry(async () => ++calls, policy, { signal: ac.signal }).catch((e: unknown) => e);
      expect((got as Error).message).to.equal('early');
      expect(calls).to.equal(0);

      const ac2 = new AbortController();
      const got2 = await retry(
        async () => {
          ac2.abort(new Error('stop'));
          throw captureError('ServerError', 'x');
        },
        policy,
        { signal: ac2.signal },
      ).catch((e: unknown) => e);
      expect((got2 as Error).message).to.equal('stop');
    });
  });

  describe('sleep()', () => {
    it('resolves after the delay and rejects with the reason on abort', async () => {
      const t0 = performance.now();
      await sleep(20);
      expect(performance.now() - t0).to.be.at.least(15);
      const ac = new AbortController();
      const p = sleep(60_000, ac.signal);
      ac.abort('bye');
      expect(await p.catch((e: unknown) => e)).to.equal('bye');
    });

    it('waits past 2^31-1 ms instead of firing after 1 ms (real timers)', async () => {
      for (const ms of [MAX_TIMER_MS + 1, 2 ** 32, 1000 * 3_600_000, Infinity]) {
        const ac = new AbortController();
        let resolved = false;
        const p = sleep(ms, ac.signal).then(() => (resolved = true), () => undefined);
        await sleep(30);
        expect(resolved, String(ms)).to.equal(false);
        ac.abort();
        await p;
      }
    });

    it('sleeps a long delay in chunks and resolves exactly at its end (mocked timers)', async () => {
      mock.timers.enable({ apis: ['setTimeout'] });
      try {
        const table = [MAX_TIMER_MS, MAX_TIMER_MS + 1, 3 * MAX_TIMER_MS + 5];
        for (const ms of table) {
          let resolved = false;
          const p = sleep(ms).then(() => (resolved = true));
          for (let left = ms - 1; left > 0; ) {
            const step = Math.min(left, MAX_TIMER_MS);
            mock.timers.tick(step);
            left -= step;
            await Promise.resolve();
          }
          expect(resolved, `${ms}: 1 ms early`).to.equal(false);
          mock.timers.tick(1);
          await p;
          expect(resolved, String(ms)).to.equal(true);
        }
      } finally {
        mock.timers.reset();
      }
    });

    it('treats a negative delay as 0 and refuses NaN', async () => {
      await sleep(-5);
      expect(await sleep(NaN).catch((e: unknown) => e)).to.be.instanceOf(RangeError);
    });
  });
});
