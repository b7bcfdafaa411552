// Prometheus metrics on a registry of our own: the global default registry
// would be shared with anything else loaded in the process, and tests create
// several operators in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  bytesCaptured: Counter<'namespace'>;
  activeStreams: Gauge;
  activeCaptures: Gauge;
  streamRetries: Counter<'reason'>;
  /** Streams that gave their slot back to a waiting namespace (fair share), by namespace of the LogTail. */
  streamPreemptions: Counter<'namespace'>;
  capturesFinished: Counter<'phase' | 'result'>;
  exitToCompleteSeconds: Histogram;
  storeUploadSeconds: Histogram;
  storeErrors: Counter<'reason'>;
  informerRestarts: Counter<'informer'>;
  workqueueDepth: Gauge;
  /** --shard: live members in this replica's view, and the LogTails this replica owns. */
  shardMembers: Gauge;
  shardOwned: Gauge;
  statusWrites: Counter<'kind'>;
  /** The text exposition for GET /metrics. */
  text(): Promise<string>;
  contentType: string;
}

export interface MetricsOptions {
  /** Process/Node metrics (CPU, memory, event loop lag). Default true. */
  defaultMetrics?: boolean;
}

type Registers = Registry[];
type CaptureMetrics = Pick<Metrics, 'bytesCaptured' | 'activeStreams' | 'activeCaptures' | 'streamRetries' | 'streamPreemptions' | 'capturesFinished' | 'exitToCompleteSeconds'>;
type StoreMetrics = Pick<Metrics, 'storeUploadSeconds' | 'storeErrors'>;
type ControlMetrics = Pick<Metrics, 'informerRestarts' | 'workqueueDepth' | 'shardMembers' | 'shardOwned' | 'statusWrites'>;

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  // Registered in this order (the order of GET /metrics): capture, store, control.
  return {
    registry,
    ...captureMetrics(registers),
    ...storeMetrics(registers),
    ...controlMetrics(registers),
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

/** The captures and their log streams. */
function captureMetrics(registers: Registers): CaptureMetrics {
  return {
    bytesCaptured: new Counter({
      name: 'logtail_bytes_captured_total',
      help: 'Log bytes written to the store, by namespace of the LogTail.',
      labelNames: ['namespace'] as const,
      registers,
    }),
    activeStreams: new Gauge({
      name: 'logtail_active_streams',
      help: 'Container log streams currently open.',
      registers,
    }),
    activeCaptures: new Gauge({
      name: 'logtail_active_captures',
      help: 'LogTails with a running capture.',
      registers,
    }),
    streamRetries: new Counter({
      name: 'logtail_stream_retries_total',
      help: 'Log streams resumed after a break, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    streamPreemptions: new Counter({
      name: 'logtail_stream_preemptions_total',
      help: 'Log streams stopped to give their slot to a namespace holding fewer (fair share); each resumes from its checkpoint. By namespace of the LogTail.',
      labelNames: ['namespace'] as const,
      registers,
    }),
    capturesFinished: new Counter({
      name: 'logtail_captures_finished_total',
      help: 'Captures that reached a final phase, by phase and result.',
      labelNames: ['phase', 'result'] as const,
      registers,
    }),
    exitToCompleteSeconds: new Histogram({
      name: 'logtail_exit_to_complete_seconds',
      help: 'Time from container exit to the capture being complete in the store.',
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
  };
}

/** The object store. */
function storeMetrics(registers: Registers): StoreMetrics {
  return {
    storeUploadSeconds: new Histogram({
      name: 'logtail_store_upload_seconds',
      help: 'Duration of one upload to the object store.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    storeErrors: new Counter({
      name: 'logtail_store_errors_total',
      help: 'Failed object store operations, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}

/** The controller: informers, the work queue, sharding, status writes. */
function controlMetrics(registers: Registers): ControlMetrics {
  return {
    informerRestarts: new Counter({
      name: 'logtail_informer_restarts_total',
      help: 'Informers restarted by their supervisor after an error or a silent watch.',
      labelNames: ['informer'] as const,
      registers,
    }),
    workqueueDepth: new Gauge({
      name: 'logtail_workqueue_depth',
      help: 'Keys waiting in the reconcile queue.',
      registers,
    }),
    shardMembers: new Gauge({
      name: 'logtail_shard_members',
      help: 'With --shard: replicas whose Lease is live in this replica\'s view (itself included).',
      registers,
    }),
    shardOwned: new Gauge({
      name: 'logtail_shard_owned_logtails',
      help: 'With --shard: LogTails whose owner annotation names this replica, as last seen.',
      registers,
    }),
    statusWrites: new Counter({
      name: 'logtail_status_writes_total',
      help: 'LogTail status writes started: urgent (phase, terminal, conditions) or progress (bytes, checkpoint, under --status-writes-per-second).',
      labelNames: ['kind'] as const,
      registers,
    }),
  };
}
