import { expect } from 'chai';
import { Counter, Gauge, Histogram, register as globalRegistry, type Metric } from 'prom-client';
import { createMetrics } from '../../../src/runtime/metrics.ts';

describe('runtime/metrics', () => {
  it('exposes every LogTail metric and the process metrics in the text format', async () => {
    const m = createMetrics();
    m.bytesCaptured.inc({ namespace: 'team-a' }, 1234);
    m.activeStreams.set(3);
    m.activeCaptures.set(2);
    m.streamRetries.inc({ reason: 'eof' });
    m.capturesFinished.inc({ phase: 'Succeeded', result: 'complete' });
    m.exitToCompleteSeconds.observe(0.7);
    m.storeUploadSeconds.observe(1.5);
    m.storeErrors.inc({ reason: 'PreconditionFailed' });
    m.informerRestarts.inc({ informer: 'pods' });
    m.workqueueDepth.set(5);
    const text = await m.text();
    for (const line of [
      'logtail_bytes_captured_total{namespace="team-a"} 1234',
      'logtail_active_streams 3',
      'logtail_active_captures 2',
      'logtail_stream_retries_total{reason="eof"} 1',
      'logtail_captures_finished_total{phase="Succeeded",result="complete"} 1',
      'logtail_exit_to_complete_seconds_bucket{le="1"} 1',
      'logtail_exit_to_complete_seconds_count 1',
      'logtail_store_upload_seconds_sum 1.5',
      'logtail_store_errors_total{reason="PreconditionFailed"} 1',
      'logtail_informer_restarts_total{informer="pods"} 1',
      'logtail_workqueue_depth 5',
    ]) {
      expect(text).to.contain(line);
    }
    expect(text).to.match(/^process_cpu_user_seconds_total /m);
    expect(text).to.match(/^nodejs_eventloop_lag_seconds /m);
    expect(m.contentType).to.match(/^text\/plain/);
  });

  it('gives each call its own registry, not the global one', async () => {
    const a = createMetrics({ defaultMetrics: false });
    const b = createMetrics({ defaultMetrics: false });
    a.workqueueDepth.set(7);
    expect(await b.text()).to.contain('logtail_workqueue_depth 0');
    expect(await globalRegistry.metrics()).not.to.contain('logtail_');
  });

  // The metric catalogue is a contract (dashboards and alerts name these):
  // every metric of the interface, its name, type, help text, labels and
  // buckets, and nothing else in the registry.
  it('registers exactly this catalogue of metrics (field, name, type, help, labels, buckets)', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const want: Array<[string, string, string, string, string[], number[]?]> = [
      ['bytesCaptured', 'logtail_bytes_captured_total', 'counter', 'Log bytes written to the store, by namespace of the LogTail.', ['namespace']],
      ['activeStreams', 'logtail_active_streams', 'gauge', 'Container log streams currently open.', []],
      ['activeCaptures', 'logtail_active_captures', 'gauge', 'LogTails with a running capture.', []],
      ['streamRetries', 'logtail_stream_retries_total', 'counter', 'Log streams resumed after a break, by reason.', ['reason']],
      ['streamPreemptions', 'logtail_stream_preemptions_total', 'counter', 'Log streams stopped to give their slot to a namespace holding fewer (fair share); each resumes from its checkpoint. By namespace of the LogTail.', ['namespace']],
      ['capturesFinished', 'logtail_captures_finished_total', 'counter', 'Captures that reached a final phase, by phase and result.', ['phase', 'result']],
      ['exitToCompleteSeconds', 'logtail_exit_to_complete_seconds', 'histogram', 'Time from container exit to the capture being complete in the store.', [], [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]],
      ['storeUploadSeconds', 'logtail_store_upload_seconds', 'histogram', 'Duration of one upload to the object store.', [], [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]],
      ['storeErrors', 'logtail_store_errors_total', 'counter', 'Failed object store operations, by reason.', ['reason']],
      ['informerRestarts', 'logtail_informer_restarts_total', 'counter', 'Informers restarted by their supervisor after an error or a silent watch.', ['informer']],
      ['workqueueDepth', 'logtail_workqueue_depth', 'gauge', 'Keys waiting in the reconcile queue.', []],
      ['shardMembers', 'logtail_shard_members', 'gauge', "With --shard: replicas whose Lease is live in this replica's view (itself included).", []],
      ['shardOwned', 'logtail_shard_owned_logtails', 'gauge', 'With --shard: LogTails whose owner annotation names this replica, as last seen.', []],
      ['statusWrites', 'logtail_status_writes_total', 'counter', 'LogTail status writes started: urgent (phase, terminal, conditions) or progress (bytes, checkpoint, under --status-writes-per-second).', ['kind']],
    ];
    const metricFields = Object.entries(m).filter(([, v]) => v instanceof Counter || v instanceof Gauge || v instanceof Histogram);
    const got = metricFields.map(([field, v]) => {
      const metric = v as Metric & { name: string; help: string; labelNames: string[]; upperBounds?: number[] };
      const type = metric instanceof Counter ? 'counter' : metric instanceof Gauge ? 'gauge' : 'histogram';
      const row: [string, string, string, string, string[], number[]?] = [field, metric.name, type, metric.help, [...metric.labelNames]];
      if (metric.upperBounds) row.push([...metric.upperBounds]);
      return row;
    });
    expect(got).to.deep.equal(want);
    // the registry holds these and nothing else, with the same help and type
    const registered = (await m.registry.getMetricsAsJSON()).map((x) => [x.name, x.type, x.help]);
    expect(registered).to.deep.equal(want.map(([, name, type, help]) => [name, type, help]));
  });
});
