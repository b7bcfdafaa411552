import { expect } from 'chai';
import type { CaptureClock } from '../../../src/runtime/capture-ports.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { StatusWriter, type StatusWriterOptions } from '../../../src/runtime/status-writer.ts';
import { FakeClock, deferred, settle } from './fake-clock.ts';

/** CaptureClock.sleep on the steppable clock. */
function sleeper(fc: FakeClock): CaptureClock {
  return {
    now: () => fc.now(),
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const onAbort = () => {
          fc.clearTimeout(h);
          reject(signal!.reason);
        };
        const h = fc.setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }, ms);
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
  };
}

interface Write {
  key: string;
  snapshot: { v: number };
  at: number;
}

/** A writer over a recording patch; `answer` decides each write's outcome (default: success at once). */
function setup(opts: Partial<StatusWriterOptions> & { answer?: (w: Write) => Promise<void> } = {}) {
  const fc = new FakeClock(0);
  const writes: Write[] = [];
  const kinds: string[] = [];
  const w = new StatusWriter({
    patch: (ns, name, snapshot) => {
      const rec = { key: `${ns}/${name}`, snapshot: snapshot as { v: number }, at: fc.now() };
      writes.push(rec);
      return opts.answer ? opts.answer(rec) : Promise.resolve();
    },
    clock: sleeper(fc),
    logger: silentLogger(),
    writesPerSecond: 10,
    onWrite: (k) => kinds.push(k),
    ...opts,
  });
  return { fc, w, writes, kinds };
}

describe('runtime/StatusWriter', () => {
  it('coalesces progress snapshots of one LogTail: the latest wins', async () => {
    const { fc, w, writes } = setup({ writesPerSecond: 1, burst: 1 });
    const ch = w.channel('ns', 'a');
    for (let v = 1; v <= 5; v++) void ch.publish({ v }, false);
    await settle();
    expect(writes.map((x) => x.snapshot.v), 'the first uses the one token').to.deep.equal([1]);
    await fc.advance(1000);
    expect(writes.map((x) => x.snapshot.v), '2..4 were replaced by 5 before a token came').to.deep.equal([1, 5]);
    await fc.advance(5000);
    expect(writes).to.have.length(2);
  });

  it('skips a snapshot equal to the status it has or to the last one written', async () => {
    const { fc, w, writes } = setup();
    const ch = w.channel('ns', 'a', { v: 1 });
    await ch.publish({ v: 1 }, true);
    void ch.publish({ v: 1 }, false);
    await fc.advance(1000);
    expect(writes, 'equal to the status the LogTail had').to.deep.equal([]);
    await ch.publish({ v: 2 }, true);
    void ch.publish({ v: 2 }, false);
    await ch.publish({ v: 2 }, true);
    await fc.advance(1000);
    expect(writes.map((x) => x.snapshot.v)).to.deep.equal([2]);
  });

  it('writes urgent snapshots before progress ones, even with the budget spent', async () => {
    const { fc, w, writes, kinds } = setup({ writesPerSecond: 1, burst: 1 });
    const chans = ['a', 'b', 'c'].map((n) => w.channel('ns', n));
    for (const [i, ch] of chans.entries()) void ch.publish({ v: i }, false);
    await settle();
    expect(writes.map((x) => x.key)).to.deep.equal(['ns/a']);
    const urgent = w.channel('ns', 'u').publish({ v: 9 }, true);
    let done = false;
    void urgent.then(() => (done = true));
    await settle();
    expect(writes.map((x) => x.key), 'the urgent write did not wait for a token').to.deep.equal(['ns/a', 'ns/u']);
    expect(done, 'the caller of an urgent write waits for it').to.equal(true);
    expect(kinds).to.deep.equal(['progress', 'urgent']);
    // The urgent write spent a token too: b waits about 2 s, not 1 s.
    await fc.advance(1000);
    expect(writes).to.have.length(2);
    await fc.advance(1000);
    expect(writes.map((x) => x.key)).to.deep.equal(['ns/a', 'ns/u', 'ns/b']);
  });

  it('urgent writes of many LogTails go in arrival order, at most maxInFlight at once', async () => {
    const held: Array<() => void> = [];
    const { w, writes } = setup({
      maxInFlight: 2,
      answer: () => {
        const d = deferred();
        held.push(d.resolve);
        return d.promise;
      },
    });
    const done = ['a', 'b', 'c', 'd'].map((n, i) => w.channel('ns', n).publish({ v: i }, true));
    await settle();
    expect(writes.map((x) => x.key)).to.deep.equal(['ns/a', 'ns/b']);
    held.shift()!();
    await settle();
    expect(writes.map((x) => x.key)).to.deep.equal(['ns/a', 'ns/b', 'ns/c']);
    while (held.length) {
      held.shift()!();
      await settle();
    }
    await Promise.all(done);
    expect(writes.map((x) => x.key)).to.deep.equal(['ns/a', 'ns/b', 'ns/c', 'ns/d']);
  });

  it('a terminal snapshot goes before other urgent ones that came earlier', async () => {
    const held: Array<() => void> = [];
    const { w, writes } = setup({
      maxInFlight: 1,
      answer: () => {
        const d = deferred();
        held.push(d.resolve);
        return d.promise;
      },
    });
    const done = [w.channel('ns', 'a').publish({ v: 1 }, true), w.channel('ns', 'b').publish({ v: 2 }, true), w.channel('ns', 'c').publish({ v: 3 }, true), w.channel('ns', 'd').publish({ v: 4 }, true, true)];
    await settle();
    expect(writes.map((x) => x.key), 'a took the one place').to.deep.equal(['ns/a']);
    while (held.length) {
      held.shift()!();
      await settle();
    }
    await Promise.all(done);
    expect(writes.map((x) => x.key), 'd (terminal) before b and c').to.deep.equal(['ns/a', 'ns/d', 'ns/b', 'ns/c']);
  });

  it('progress writes hold at most half of maxInFlight: an urgent write finds a place at once', async () => {
    const held: Array<() => void> = [];
    const { w, writes, kinds } = setup({
      maxInFlight: 4,
      writesPerSecond: 100,
      burst: 100,
      answer: () => {
        const d = deferred();
        held.push(d.resolve);
        return d.promise;
      },
    });
    for (let i = 0; i < 6; i++) void w.channel('ns', `p${i}`).publish({ v: i }, false);
    await settle();
    expect(writes.map((x) => x.key), 'two progress writes in flight, the others wait').to.deep.equal(['ns/p0', 'ns/p1']);
    void w.channel('ns', 't').publish({ v: 9 }, true, true);
    await settle();
    expect(writes.map((x) => x.key).slice(2)).to.deep.equal(['ns/t']);
    expect(kinds).to.deep.equal(['progress', 'progress', 'urgent']);
    while (held.length) {
      held.shift()!();
      await settle();
    }
    expect(writes.length, 'every progress write went out in the end').to.equal(7);
  });

  it('keeps one write per LogTail in flight; an urgent caller does not wait for a later progress write', async () => {
    const held: Array<() => void> = [];
    const { fc, w, writes } = setup({
      writesPerSecond: 1,
      burst: 1,
      answer: () => {
        const d = deferred();
        held.push(d.resolve);
        return d.promise;
      },
    });
    const ch = w.channel('ns', 'a');
    let urgentDone = false;
    void ch.publish({ v: 1 }, true).then(() => (urgentDone = true));
    void ch.publish({ v: 2 }, false);
    await settle();
    expect(writes.map((x) => x.snapshot.v), 'v2 waits for v1 to be written').to.deep.equal([1]);
    held.shift()!();
    await settle();
    expect(urgentDone, 'v1 is written; v2 (progress, no token yet) does not hold the caller').to.equal(true);
    await fc.advance(2000);
    expect(writes.map((x) => x.snapshot.v)).to.deep.equal([1, 2]);
    held.shift()!();
  });

  it('spreads progress of 100 LogTails under the budget; each is written at least every N / rate seconds', async () => {
    const rate = 10;
    const n = 100;
    const { fc, w, writes } = setup({ writesPerSecond: rate });
    const chans = Array.from({ length: n }, (_, i) => w.channel('ns', `c${i}`));
    let v = 0;
    // every capture offers new progress every 2 s (the --status-interval ticker) for 120 s
    for (let t = 0; t < 120_000; t += 2000) {
      for (const ch of chans) void ch.publish({ v: ++v }, false);
      await fc.advance(2000);
    }
    const seconds = 120;
    expect(writes.length, 'the budget holds').to.be.at.most(rate * seconds + rate);
    expect(writes.length, 'and is used').to.be.at.least(rate * seconds * 0.9);
    const bound = (n / rate) * 1000;
    expect(w.progressBoundMs(n)).to.equal(bound);
    for (let i = 0; i < n; i++) {
      const at = writes.filter((x) => x.key === `ns/c${i}`).map((x) => x.at);
      const gaps = at.slice(1).map((t, k) => t - at[k]!);
      expect(Math.max(...gaps), `c${i}: longest interval between its writes`).to.be.at.most(bound + 2000);
      expect(at[0]!, `c${i}: first write`).to.be.at.most(bound + 2000);
    }
  });

  it('retries a failed write, keeps its caller waiting until it succeeds, and drops a LogTail that is gone (404)', async () => {
    let fail = 2;
    const { fc, w, writes } = setup({
      answer: (x) => {
        if (x.key === 'ns/gone') return Promise.reject(Object.assign(new Error('not found'), { status: 404 }));
        return fail-- > 0 ? Promise.reject(Object.assign(new Error('boom'), { status: 500 })) : Promise.resolve();
      },
    });
    let done = false;
    void w.channel('ns', 'a').publish({ v: 1 }, true).then(() => (done = true));
    await settle();
    expect(writes).to.have.length(1);
    expect(done).to.equal(false);
    await fc.advance(250);
    expect(writes).to.have.length(2);
    expect(done).to.equal(false);
    await fc.advance(500);
    expect(writes).to.have.length(3);
    expect(done).to.equal(true);
    const gone = w.channel('ns', 'gone');
    await gone.publish({ v: 1 }, true);
    void gone.publish({ v: 2 }, false);
    await fc.advance(10_000);
    expect(writes.filter((x) => x.key === 'ns/gone')).to.have.length(1);
    expect(w.backlog).to.equal(0);
  });

  it('drops a snapshot the apiserver refuses (422) instead of retrying it; the next one is written', async () => {
    const { fc, w, writes } = setup({ answer: (x) => (x.snapshot.v === 1 ? Promise.reject(Object.assign(new Error('invalid'), { status: 422 })) : Promise.resolve()) });
    const ch = w.channel('ns', 'a');
    let done = false;
    void ch.publish({ v: 1 }, true).then(() => (done = true));
    await fc.advance(10_000);
    expect(writes.map((x) => x.snapshot.v), 'not retried').to.deep.equal([1]);
    expect(done, 'its caller does not wait').to.equal(true);
    expect(w.backlog).to.equal(0);
    await ch.publish({ v: 2 }, true);
    expect(writes.map((x) => x.snapshot.v)).to.deep.equal([1, 2]);
  });

  it('retries a snapshot answered 409 Conflict (a refusal of the moment, e.g. an admission webhook) until it lands', async () => {
    let refusals = 0;
    const { fc, w, writes } = setup({ answer: () => (refusals++ < 5 ? Promise.reject(Object.assign(new Error('conflict'), { status: 409 })) : Promise.resolve()) });
    let done = false;
    void w.channel('ns', 'a').publish({ v: 1 }, true).then(() => (done = true));
    await fc.advance(60_000);
    expect(writes.map((x) => x.snapshot.v), 'the same snapshot, six times').to.deep.equal([1, 1, 1, 1, 1, 1]);
    expect(done).to.equal(true);
    expect(w.backlog).to.equal(0);
  });

  it('a closed channel settles only once its write in flight is answered', async () => {
    let answer!: () => void;
    const { fc, w } = setup({ answer: () => new Promise<void>((r) => (answer = r)) });
    const ch = w.channel('ns', 'a');
    void ch.publish({ v: 1 }, true);
    await fc.advance(10);
    let settled = false;
    void ch.close(true).then(() => (settled = true));
    await fc.advance(1000);
    expect(settled, 'not while the write is in flight').to.equal(false);
    answer();
    await fc.advance(10);
    expect(settled).to.equal(true);
  });

  it('an urgent caller stops waiting after urgentWaitMs; the write goes on being retried', async () => {
    let ok = false;
    const { fc, w, writes } = setup({ urgentWaitMs: 3000, answer: () => (ok ? Promise.resolve() : Promise.reject(new Error('timeout'))) });
    let done = false;
    void w.channel('ns', 'a').publish({ v: 1 }, true).then(() => (done = true));
    await fc.advance(2900);
    expect(done).to.equal(false);
    await fc.advance(200);
    expect(done).to.equal(true);
    const before = writes.length;
    ok = true;
    await fc.advance(6000);
    expect(writes.length).to.be.above(before);
    expect(w.backlog).to.equal(0);
  });

  it('close(false) drops what is pending, close(true) keeps it; flush writes everything pending at once', async () => {
    const { fc, w, writes } = setup({ writesPerSecond: 1, burst: 1 });
    void w.channel('ns', 'first').publish({ v: 0 }, false);
    await settle();
    const drop = w.channel('ns', 'drop');
    const keep = w.channel('ns', 'keep');
    void drop.publish({ v: 1 }, false);
    void keep.publish({ v: 2 }, false);
    drop.close(false);
    keep.close(true);
    await fc.advance(5000);
    expect(writes.map((x) => x.key)).to.deep.equal(['ns/first', 'ns/keep']);
    const chans = Array.from({ length: 5 }, (_, i) => w.channel('ns', `g${i}`));
    for (const ch of chans) void ch.publish({ v: 3 }, false);
    await settle();
    expect(writes.filter((x) => x.key.startsWith('ns/g')).length, 'one token for five').to.equal(1);
    const flushed = w.flush(1000);
    await settle();
    await flushed;
    expect(writes.filter((x) => x.key.startsWith('ns/g')).length, 'all five without waiting for tokens').to.equal(5);
    expect(fc.now()).to.equal(5000);
  });
});
