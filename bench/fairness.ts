// npm run bench -- fairness [--slots 8 --large 24 --small 4 --large-seconds 40 --min-hold 10]
// Fair share of stream slots (issue 11 item 3): namespace "large" fills every
// slot with long captures and queues more; then namespace "small" asks for a
// few short ones. Measured: for each small capture, LogTail created → phase
// Streaming (from the bench's watch); while small captures wait or run, how
// many streams each namespace holds (phase Streaming, sampled every 200 ms).
// With fair share a small capture gets the first slot freed, ahead of the
// large namespace's older waiters, and "large" gives slots back once its
// streams have held them --min-stream-hold (preemption).
import { join } from 'node:path';
import { applyJson, finish, kubectl, load1, logTail, parseOptions, quantile, simPod, sleep, spread, startOperator, table, watch, withCluster } from './lib.ts';

export async function fairnessBench(argv: string[]): Promise<void> {
  const o = parseOptions('fairness', argv, {
    slots: { default: 8, help: 'the operator\'s --max-concurrent-streams' },
    large: { default: 24, help: 'long captures in namespace "large" (3 × slots: a queue of its own)' },
    small: { default: 4, help: 'short captures in namespace "small", asked for once "large" holds every slot' },
    'large-seconds': { default: 40, help: 'how long each large container writes (100 lines/s)' },
    'min-hold': { default: 10, help: 'the operator\'s --min-stream-hold in seconds (its default is 10)' },
  });
  await withCluster(async (state, dir) => {
    for (const ns of ['large', 'small']) await kubectl(state, ['create', 'namespace', ns]);
    const op = await startOperator(state, dir, { name: 'op-fairness', store: `file://${join(dir, 'store')}`, args: ['--watch-namespaces', 'large,small', '--max-concurrent-streams', String(o.slots), '--min-stream-hold', `${o['min-hold']}s`] });
    const phase = new Map<string, string>();
    const created = new Map<string, number>();
    const streamingAt = new Map<string, number>();
    /** LogTails seen waiting after a preemption (Pending/WaitingForSlot, message "preempted: …"). */
    const preempted = new Set<string>();
    const w = watch(state, '/apis/logtail.dev/v1alpha1/logtails', (ev, at) => {
      const key = `${ev.object.metadata.namespace}/${ev.object.metadata.name}`;
      const p = (ev.object.status as { phase?: string } | undefined)?.phase ?? '';
      phase.set(key, p);
      const st = ev.object.status as { reason?: string; message?: string } | undefined;
      if (st?.reason === 'WaitingForSlot' && st.message?.startsWith('preempted:')) preempted.add(key);
      if ((p === 'Streaming' || p === 'Complete') && !streamingAt.has(key)) streamingAt.set(key, at);
    });
    const holding = (ns: string) => [...phase].filter(([k, p]) => k.startsWith(`${ns}/`) && p === 'Streaming').length;
    const samples: Array<{ t: number; large: number; small: number }> = [];
    const l0 = load1();
    try {
      const largeLines = Math.round(o['large-seconds'] * 100);
      for (let i = 1; i <= o.large; i++) {
        await applyJson(state, simPod('large', `l-${i}`, { containers: { main: { lines: largeLines, lineBytes: 100, linesPerSecond: 100, exitCode: 0 } } }));
        await applyJson(state, logTail('large', `l-${i}`, { podName: `l-${i}` }));
      }
      const fullBy = Date.now() + 120_000;
      while (holding('large') < o.slots) {
        if (Date.now() > fullBy) throw new Error(`large holds ${holding('large')} of ${o.slots} slots after 120 s`);
        await sleep(200);
      }
      const t0 = Date.now();
      for (let i = 1; i <= o.small; i++) {
        await applyJson(state, simPod('small', `s-${i}`, { containers: { main: { lines: 20, lineBytes: 100, linesPerSecond: 100, exitCode: 0 } } }));
        created.set(`small/s-${i}`, Date.now());
        await applyJson(state, logTail('small', `s-${i}`, { podName: `s-${i}` }));
      }
      const doneBy = Date.now() + (o['large-seconds'] * 3 + 120) * 1000;
      while ([...created.keys()].some((k) => !streamingAt.has(k))) {
        if (Date.now() > doneBy) throw new Error('small captures did not start');
        samples.push({ t: (Date.now() - t0) / 1000, large: holding('large'), small: holding('small') });
        await sleep(200);
      }
      // the preempted captures' status writes may arrive after the small ones started
      await sleep(2000);
    } finally {
      w.close();
      await op.stop();
    }
    const starts = [...created].map(([k, t]) => (streamingAt.get(k)! - t) / 1000);
    // how the slots were split while small captures were asking
    const maxSmall = Math.max(0, ...samples.map((s) => s.small));
    const largeWhenSmallMax = samples.find((s) => s.small === maxSmall)?.large ?? holding('large');
    const largePreempted = [...preempted].filter((k) => k.startsWith('large/')).length;
    table(['small captures', 'start p50 s', 'start p99 s', 'spread s', 'large streams when small held most', 'small streams then', 'large captures preempted', 'slots', 'load1 at start'], [[o.small, quantile(starts, 0.5), quantile(starts, 0.99), spread(starts), largeWhenSmallMax, maxSmall, largePreempted, o.slots, l0]]);
    console.log('a small capture waits at most until large\'s streams have held their slots --min-hold (then large gives slots back), not for a large stream to end');
    finish('fairness', { options: o, starts, samples, preempted: [...preempted] }, { small_ns_start_p99_s: quantile(starts, 0.99), large_ns_active: largeWhenSmallMax, small_ns_active: maxSmall, large_ns_preempted: largePreempted });
  });
}
