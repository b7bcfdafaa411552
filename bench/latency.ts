// npm run bench -- latency [--runs 50 --lines 20 --lps 100]
// Finalize latency (issue 11 item 6): short pods one after another, each with
// its LogTail created first; for each, the time from the container's end to
// the LogTail's Complete phase as seen on a watch.
// The container's end: status finishedAt has one-second resolution, so the
// precise instant used is the timestamp of the container's last log line
// (nanoseconds, written just before the exit; so the figure is an upper bound).
// Also reported: from the pod update that shows the container terminated, as
// the bench's own watch received it.
import { join } from 'node:path';
import { apiRequest, applyJson, finish, kubectl, load1, logTail, median, parseOptions, quantile, simPod, sleep, spread, startOperator, table, watch, withCluster } from './lib.ts';

interface Run {
  i: number;
  lastLineMs: number;
  finishedAtS: number;
  podTerminatedSeenMs: number;
  completeSeenMs: number;
}

function parseStampMs(line: string): number {
  // 2026-11-29T10:00:00.123456789Z: Date keeps milliseconds; add the rest
  const m = line.match(/^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)/);
  if (!m) throw new Error(`no timestamp in ${JSON.stringify(line.slice(0, 40))}`);
  const frac = Number(`0.${m[2] ?? '0'}`);
  return Date.parse(`${m[1]}${m[3]}`) + frac * 1000;
}

export async function latencyBench(argv: string[]): Promise<void> {
  const o = parseOptions('latency', argv, {
    runs: { default: 50, help: 'short pods, one after another' },
    lines: { default: 20, help: 'lines each container writes' },
    lps: { default: 100, help: 'lines per second (20 at 100/s: the container runs ~0.2 s, the stream is open when it ends)' },
  });
  const ns = 'latency';
  await withCluster(async (state, dir) => {
    await kubectl(state, ['create', 'namespace', ns]);
    const op = await startOperator(state, dir, { name: 'op-latency', store: `file://${join(dir, 'store')}`, args: ['--watch-namespaces', ns] });
    const podSeen = new Map<string, number>();
    const completeSeen = new Map<string, number>();
    const wPods = watch(state, `/api/v1/namespaces/${ns}/pods`, (ev, at) => {
      const cs = (ev.object.status as { containerStatuses?: Array<{ state?: { terminated?: unknown } }> } | undefined)?.containerStatuses;
      if (cs?.[0]?.state?.terminated && !podSeen.has(ev.object.metadata.name)) podSeen.set(ev.object.metadata.name, at);
    });
    const wLts = watch(state, `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails`, (ev, at) => {
      if ((ev.object.status as { phase?: string } | undefined)?.phase === 'Complete' && !completeSeen.has(ev.object.metadata.name)) completeSeen.set(ev.object.metadata.name, at);
    });
    const runs: Run[] = [];
    const loads: number[] = [];
    try {
      for (let i = 1; i <= o.runs; i++) {
        const name = `short-${i}`;
        loads.push(load1());
        await applyJson(state, logTail(ns, name, { podName: name }));
        await applyJson(state, simPod(ns, name, { containers: { main: { lines: o.lines, lineBytes: 100, linesPerSecond: o.lps, exitCode: 0 } } }));
        const deadline = Date.now() + 60_000;
        while (!completeSeen.has(name) || !podSeen.has(name)) {
          if (Date.now() > deadline) throw new Error(`${name}: not Complete within 60 s`);
          await sleep(20);
        }
        const pod = await apiRequest<{ status: { containerStatuses: Array<{ state: { terminated: { finishedAt: string } } }> } }>(state, 'GET', `/api/v1/namespaces/${ns}/pods/${name}`);
        const log = await apiRequest<string>(state, 'GET', `/api/v1/namespaces/${ns}/pods/${name}/log?container=main&timestamps=true&tailLines=1`);
        const run: Run = {
          i,
          lastLineMs: parseStampMs(String(log).trim()),
          finishedAtS: Date.parse(pod.status.containerStatuses[0]!.state.terminated.finishedAt) / 1000,
          podTerminatedSeenMs: podSeen.get(name)!,
          completeSeenMs: completeSeen.get(name)!,
        };
        if (Math.floor(run.lastLineMs / 1000) > run.finishedAtS) throw new Error(`${name}: last line stamped after finishedAt`);
        runs.push(run);
        console.log(`${name}: last line → Complete ${((run.completeSeenMs - run.lastLineMs) / 1000).toFixed(3)} s, pod terminated seen → Complete ${((run.completeSeenMs - run.podTerminatedSeenMs) / 1000).toFixed(3)} s`);
        await kubectl(state, ['delete', 'pod', name, '-n', ns, '--wait=false']);
      }
    } finally {
      wPods.close();
      wLts.close();
      await op.stop();
    }
    const fromEnd = runs.map((r) => (r.completeSeenMs - r.lastLineMs) / 1000);
    const fromSeen = runs.map((r) => (r.completeSeenMs - r.podTerminatedSeenMs) / 1000);
    const statusLag = runs.map((r) => (r.podTerminatedSeenMs - r.lastLineMs) / 1000);
    console.log('');
    table(['interval (s)', 'p50', 'p99', 'spread'], [
      ['container end (last line) → Complete', quantile(fromEnd, 0.5), quantile(fromEnd, 0.99), spread(fromEnd)],
      ['pod terminated seen → Complete', quantile(fromSeen, 0.5), quantile(fromSeen, 0.99), spread(fromSeen)],
      ['container end → pod terminated seen', quantile(statusLag, 0.5), quantile(statusLag, 0.99), spread(statusLag)],
    ]);
    const p50 = quantile(fromEnd, 0.5);
    const p99 = quantile(fromEnd, 0.99);
    console.log(`load average (1 min) during the runs: median ${median(loads)}, ${spread(loads)}`);
    console.log(`goal p50 < 1 s: ${p50 < 1 ? 'met' : 'NOT met'}; p99 < 2 s: ${p99 < 2 ? 'met' : 'NOT met'} (in this run)`);
    finish('latency', { options: o, runs, loads }, { runs: runs.length, p50_s: p50, p99_s: p99 });
  });
}
