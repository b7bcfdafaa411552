import { expect } from 'chai';
import { memoryLogger } from '../../../src/runtime/logger.ts';
import { Result, WorkQueue } from '../../../src/runtime/work-queue.ts';
import { FakeClock, deferred, settle } from './fake-clock.ts';

describe('runtime/WorkQueue', () => {
  let queues: WorkQueue[] = [];
  function makeQueue(opts: ConstructorParameters<typeof WorkQueue>[0] = {}): WorkQueue {
    const q = new WorkQueue(opts);
    queues.push(q);
    return q;
  }
  afterEach(async () => {
    await Promise.all(queues.map((q) => q.shutdown()));
    queues = [];
  });

  it('acts on the handler\'s Result: requeue after N ms, rate-limited requeue, done', async () => {
    const clock = new FakeClock();
    const q = makeQueue({ clock, baseDelayMs: 100, maxDelayMs: 1000 });
    const calls: [string, number][] = [];
    const results = new Map([
      ['ns/after', [Result.after(5000), Result.done]],
      ['ns/limited', [Result.requeue, Result.requeue, Result.done]],
      ['ns/done', [Result.done]],
    ]);
    q.run((key) => {
      calls.push([key, clock.now()]);
      return Promise.resolve(results.get(key)!.shift());
    }, 2);
    const t0 = clock.now();
    for (const k of results.keys()) q.add(k);
    await clock.advance(10_000);
    const at = (k: string) => calls.filter(([key]) => key === k).map(([, t]) => t - t0);
    expect(at('ns/after')).to.deep.equal([0, 5000]);
    expect(at('ns/limited'), 'base delay, then doubled').to.deep.equal([0, 100, 300]);
    expect(at('ns/done')).to.deep.equal([0]);
    expect(q.numRequeues('ns/limited'), 'a done result forgets the failures').to.equal(0);
  });

  it('handles a key added several times while it waits only once', async () => {
    const q = makeQueue({ clock: new FakeClock() });
    q.add('ns/a');
    q.add('ns/a');
    q.add('ns/b');
    q.add('ns/a');
    expect(q.len()).to.equal(2);
    const seen: string[] = [];
    q.run(async (key) => {
      seen.push(key);
    }, 2);
    await settle();
    expect(seen).to.deep.equal(['ns/a', 'ns/b']);
    expect(q.len()).to.equal(0);
  });

  it('never gives one key to two workers, and reruns a key added during its handling once', async () => {
    const q = makeQueue({ clock: new FakeClock() });
    let active = 0;
    let maxActive = 0;
    let calls = 0;
    const gate = deferred();
    q.run(async () => {
      calls++;
      active++;
      maxActive = Math.max(maxActive, active);
      if (calls === 1) await gate.promise;
      active--;
    }, 4);
    q.add('ns/a');
    await settle();
    expect(calls).to.equal(1);
    expect(q.isProcessing('ns/a')).to.equal(true);
    q.add('ns/a');
    q.add('ns/a');
    q.add('ns/a');
    await settle();
    expect(calls, 'no second worker while the first still handles the key').to.equal(1);
    expect(q.len(), 'a processing key is not queued').to.equal(0);
    gate.resolve();
    await settle();
    expect(calls, 'the adds during processing collapse into one rerun').to.equal(2);
    expect(maxActive).to.equal(1);
  });

  it('runs different keys in parallel, up to the concurrency', async () => {
    const q = makeQueue({ clock: new FakeClock() });
    let active = 0;
    let maxActive = 0;
    const gate = deferred();
    q.run(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await gate.promise;
      active--;
    }, 2);
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    await settle();
    expect(active).to.equal(2);
    expect(q.len()).to.equal(2);
    gate.resolve();
    await settle();
    expect(active).to.equal(0);
    expect(maxActive).to.equal(2);
  });

  it('requeues a failing key with exponential delays up to the cap, and logs each failure', async () => {
    const clock = new FakeClock();
    const { logger, lines } = memoryLogger();
    const q = makeQueue({ clock, logger, baseDelayMs: 200, maxDelayMs: 1000 });
    const start = clock.now();
    const at: number[] = [];
    q.run(async () => {
      at.push(clock.now() - start);
      throw new Error('boom');
    }, 1);
    q.add('ns/a');
    await clock.advance(5000);
    // 0, +200, +400, +800, +1000, +1000 ...
    expect(at.slice(0, 6)).to.deep.equal([0, 200, 600, 1400, 2400, 3400]);
    expect(q.numRequeues('ns/a')).to.equal(at.length);
    const failures = lines.filter((l) => l.key === 'ns/a' && l.level === 'error');
    expect(failures.length).to.equal(at.length);
    expect((failures[0]?.err as { message: string }).message).to.equal('boom');
  });

  it('forgets the failures of a key once its handler succeeds', async () => {
    const clock = new FakeClock();
    const q = makeQueue({ clock, baseDelayMs: 100, maxDelayMs: 10_000 });
    let fail = 3;
    let calls = 0;
    q.run(async () => {
      calls++;
      if (fail-- > 0) throw new Error('not yet');
    }, 1);
    q.add('k');
    await clock.advance(100 + 200 + 400);
    expect(calls).to.equal(4);
    expect(q.numRequeues('k')).to.equal(0);
    expect(q.addRateLimited('k'), 'delay starts from the base again').to.equal(100);
  });

  it('addAfter delays the key and keeps the earliest of several delays', async () => {
    const clock = new FakeClock();
    const q = makeQueue({ clock });
    const at: number[] = [];
    const start = clock.now();
    q.run(async () => {
      at.push(clock.now() - start);
    }, 1);
    q.addAfter('k', 1000);
    q.addAfter('k', 300);
    q.addAfter('k', 2000);
    await clock.advance(299);
    expect(at).to.deep.equal([]);
    await clock.advance(5000);
    expect(at).to.deep.equal([300]);
  });

  it('shutdown waits for running handlers and hands out no more keys', async () => {
    const q = makeQueue({ clock: new FakeClock() });
    const gate = deferred();
    const started: string[] = [];
    let finished = 0;
    q.run(async (key) => {
      started.push(key);
      await gate.promise;
      finished++;
    }, 1);
    q.add('a');
    q.add('b');
    await settle();
    let shutDown = false;
    const done = q.shutdown().then(() => (shutDown = true));
    await settle();
    expect(shutDown, 'still waiting for the running handler').to.equal(false);
    q.add('c');
    gate.resolve();
    await done;
    expect(finished).to.equal(1);
    expect(started).to.deep.equal(['a']);
  });

  it('reports its depth', async () => {
    const depths: number[] = [];
    const q = makeQueue({ clock: new FakeClock(), onDepth: (d) => depths.push(d) });
    q.add('a');
    q.add('b');
    q.run(async () => {}, 1);
    await settle();
    expect(depths).to.deep.equal([1, 2, 1, 0]);
  });
});
