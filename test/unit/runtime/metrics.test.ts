import { expect } from 'chai';
import { register as globalRegistry } from 'prom-client';
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
});
