// One capture daemon per LogTail: it owns that LogTail's log streams from the
// first sight of the pod to the committed objects, and is the only writer of
// the LogTail's status while it runs. It is cancelled through an AbortSignal
// whose reason is a typed StopRequest, so every exit path knows why it stops.
import { createHash } from 'node:crypto';
import type { KubeConfig, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { CaptureError } from '../adapters/errors.ts';
import { type KubeApi, isTransientApiError } from '../adapters/kube-api.ts';
import { openLogStream } from '../adapters/log-stream.ts';
import { Backoff, sleep } from '../adapters/retry.ts';
import type { ObjectStore, ObjectWriter } from '../adapters/store/types.ts';
import { renderKey } from '../core/key-template.ts';
import { ResumeFilter, ResumeMismatchError, stampedInLaterSecond } from '../core/resume-filter.ts';
import { selectContainers, type LogTail, type ResolvedSpec } from '../core/spec.ts';
import { type ContainerCapture, type LogTailStatus, conditionsForPhase, isTerminalPhase, statusEquals } from '../core/status.ts';
import { ContentSink } from './content-sink.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { Semaphore } from './semaphore.ts';

/** Output is batched up to this size while more input is already queued. */
const FLUSH_BYTES = 512 << 10;
/** Lines asked for when draining an ended instance (see captureInstance). */
const DRAIN_TAIL_LINES = 500;

export type StopReason = 'Deleted' | 'SpecChanged' | 'OperatorExiting' | 'PodGone' | 'LostLeadership';

export class StopRequest extends Error {
  readonly reason: StopReason;
  constructor(reason: StopReason) {
    super(`capture stopped: ${reason}`);
    this.name = 'StopRequest';
    this.reason = reason;
  }
}

export interface PodSource {
  get(name: string, namespace: string): V1Pod | undefined;
}

export interface DaemonDeps {
  kc: KubeConfig;
  api: KubeApi;
  store: ObjectStore;
  pods: PodSource;
  slots: Semaphore;
  logger: Logger;
  metrics?: Metrics;
  idleTimeoutMs: number;
  statusIntervalMs: number;
  now?: () => Date;
}

type InstanceEnd =
  | { kind: 'stored' }
  | { kind: 'partial'; reason: string; message: string }
  | { kind: 'failed'; reason: string; message: string };

function containerStatus(pod: V1Pod, name: string): V1ContainerStatus | undefined {
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].find((s) => s.name === name);
}

function podTerminal(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

function iso(d: Date | string | undefined): string | undefined {
  if (d === undefined) return undefined;
  return typeof d === 'string' ? d : d.toISOString();
}

/**
 * Has instance `k` (the run whose restartCount is k) started? During the
 * back-off after run k-1 the kubelet already reports restartCount k with a
 * waiting state: run k has not started then, and "current" still serves k-1.
 */
function instanceStarted(st: V1ContainerStatus | undefined, k: number): boolean {
  if (!st) return false;
  const rc = st.restartCount ?? 0;
  return rc > k || (rc === k && (!!st.state?.running || !!st.state?.terminated));
}

/** The terminated state of instance `k` of a container, if the pod says it has ended. */
function terminatedOf(st: V1ContainerStatus | undefined, k: number) {
  if (!st) return undefined;
  const rc = st.restartCount ?? 0;
  if (rc === k) return st.state?.terminated;
  if (rc === k + 1) return st.lastState?.terminated;
  return undefined;
}

export class CaptureDaemon {
  readonly key: string;
  /** `namespace/podName` of the pod this capture follows. */
  readonly podKey: string;
  readonly generation: number;
  private readonly lt: LogTail;
  private readonly spec: ResolvedSpec;
  private readonly deps: DaemonDeps;
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private status: LogTailStatus;
  private written: LogTailStatus | undefined;
  private lastWrite = 0;
  private writing: Promise<void> = Promise.resolve();
  private podWake: (() => void) | undefined;
  private lastRetryEvent = 0;
  done: Promise<void> = Promise.resolve();

  constructor(lt: LogTail, spec: ResolvedSpec, deps: DaemonDeps) {
    this.lt = lt;
    this.spec = spec;
    this.deps = deps;
    this.key = `${lt.metadata.namespace}/${lt.metadata.name}`;
    this.podKey = `${lt.metadata.namespace}/${spec.podName}`;
    this.generation = lt.metadata.generation ?? 0;
    this.log = deps.logger.child({ namespace: lt.metadata.namespace, name: lt.metadata.name });
    // Status is durable memory: retry counts, the bound pod UID and finished
    // objects survive an operator restart through it.
    const prev = (lt.status ?? {}) as Partial<LogTailStatus>;
    this.status = {
      ...prev,
      phase: prev.phase ?? 'Pending',
      retries: prev.retries ?? 0,
      bytes: prev.bytes ?? 0,
      containers: (prev.containers ?? []).map((c) => ({ ...c })),
      conditions: prev.conditions ?? [],
      observedGeneration: this.generation,
      startTime: prev.startTime ?? this.now().toISOString(),
    } as LogTailStatus;
    this.written = lt.status as LogTailStatus | undefined;
  }

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  start(): void {
    this.deps.metrics?.activeCaptures.inc();
    this.done = this.run()
      .catch((err: unknown) => {
        if (err instanceof StopRequest) {
          this.log.info('capture stopped', { stopReason: err.reason });
          return;
        }
        this.log.error('capture crashed', { error: String((err as Error)?.stack ?? err) });
      })
      .finally(() => this.deps.metrics?.activeCaptures.dec());
  }

  /** The pod informer saw a change of our pod: re-evaluate now instead of at the next poll. */
  podChanged(): void {
    const w = this.podWake;
    this.podWake = undefined;
    w?.();
  }

  /** Cancels the capture (open uploads are aborted) and waits for it, bounded by `deadlineMs`. */
  async stop(reason: StopReason, deadlineMs = 20_000): Promise<void> {
    if (!this.abort.signal.aborted) this.abort.abort(new StopRequest(reason));
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.done, new Promise<void>((r) => (t = setTimeout(r, deadlineMs)))]);
    if (t) clearTimeout(t);
  }

  private async waitPodChange(maxMs: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const signal = this.abort.signal;
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal.reason);
      };
      const t = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, maxMs);
      this.podWake = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private ns(): string {
    return this.lt.metadata.namespace!;
  }

  /** The pod this capture is bound to, from the cache; a pod with another UID under the same name is not ours. */
  private cachedPod(): V1Pod | undefined {
    const pod = this.deps.pods.get(this.spec.podName, this.ns());
    if (pod && this.status.podUID && pod.metadata?.uid !== this.status.podUID) return undefined;
    return pod;
  }

  /** A direct GET, so a stale cache cannot stall a decision; `undefined` means our pod is gone. */
  private async freshPod(): Promise<V1Pod | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        const pod = await this.deps.api.getPod(this.ns(), this.spec.podName);
        if (pod && this.status.podUID && pod.metadata?.uid !== this.status.podUID) return undefined;
        return pod;
      } catch (err) {
        if (!isTransientApiError(err) || attempt >= 5) throw err;
        await sleep(Math.min(200 * 2 ** attempt, 3000), this.abort.signal);
      }
    }
  }

  // ---------------------------------------------------------------- status

  private setPhase(phase: LogTailStatus['phase'], reason: string, message: string): void {
    this.status.phase = phase;
    this.status.reason = reason;
    this.status.message = message;
    this.status.conditions = conditionsForPhase(phase, reason, message, this.generation, this.status.conditions ?? [], this.now());
  }

  private totals(): void {
    let bytes = 0;
    let retries = 0;
    for (const c of this.status.containers) {
      bytes += c.bytes ?? 0;
      retries += c.streamRetries ?? 0;
    }
    this.status.bytes = bytes;
    this.status.retries = retries;
  }

  /** Writes status if it changed; `urgent` bypasses the throttle (phase changes, terminal state). */
  private async publish(urgent = false): Promise<void> {
    this.totals();
    if (!urgent && Date.now() - this.lastWrite < this.deps.statusIntervalMs * 0.8) return;
    const snapshot = structuredClone(this.status);
    if (this.written && statusEquals(this.written, snapshot)) return;
    this.lastWrite = Date.now();
    this.writing = this.writing.then(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.deps.api.patchLogTailStatus(this.ns(), this.lt.metadata.name!, snapshot);
          this.written = snapshot;
          return;
        } catch (err) {
          // A 404 means the LogTail is gone: nobody reads this status any more.
          if ((err as { status?: number }).status === 404) return;
          if (!urgent || attempt >= 8) {
            this.log.warn('status write failed', { error: String(err) });
            return;
          }
          await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 5000)));
        }
      }
    });
    if (urgent) await this.writing;
  }

  private async event(type: 'Normal' | 'Warning', reason: string, message: string, name?: string): Promise<void> {
    try {
      await this.deps.api.createEvent({
        name,
        involved: { kind: 'LogTail', apiVersion: 'logtail.dev/v1alpha1', namespace: this.ns(), name: this.lt.metadata.name!, uid: this.lt.metadata.uid },
        type,
        reason,
        message,
      });
    } catch (err) {
      this.log.warn('event not recorded', { reason, error: String(err) });
    }
  }

  private entry(name: string, restart: number, init: boolean): ContainerCapture {
    let c = this.status.containers.find((x) => x.name === name && x.restart === restart);
    if (!c) {
      c = { name, init, restart, state: 'Waiting', bytes: 0, lines: 0, streamRetries: 0 } as ContainerCapture;
      this.status.containers.push(c);
    }
    return c;
  }

  // ---------------------------------------------------------------- main flow

  private async run(): Promise<void> {
    // Progress (bytes, checkpoint) reaches status on a clock, not only when
    // bytes flow: a container that went quiet must still show what we have.
    const ticker = setInterval(() => {
      if (!isTerminalPhase(this.status.phase)) void this.publish(false);
    }, this.deps.statusIntervalMs);
    try {
      await this.runCapture();
    } finally {
      clearInterval(ticker);
    }
  }

  private async runCapture(): Promise<void> {
    const signal = this.abort.signal;
    if (this.status.phase === 'Pending' && this.status.reason !== 'WaitingForPod') {
      this.setPhase('Pending', 'WaitingForPod', `waiting for pod ${this.spec.podName}`);
      await this.publish(true);
    }
    const pod = await this.waitForPod();
    if (!pod) return;
    if (!this.status.podUID) this.status.podUID = pod.metadata!.uid;

    const selection = selectContainers(this.spec.containers, pod.spec ?? { containers: [] });
    if (!selection.ok) {
      await this.finish('Failed', 'InvalidSpec', `pod ${this.spec.podName}: ${selection.message}`, 'Unknown');
      return;
    }
    const outcomes = await Promise.all(selection.containers.map((c) => this.captureContainer(c.name, c.init).catch((err: unknown) => {
      if (signal.aborted) throw signal.reason;
      return { kind: 'failed', reason: (err as CaptureError).reason ?? 'InternalError', message: String((err as Error).message ?? err) } as InstanceEnd;
    })));
    signal.throwIfAborted();
    await this.conclude(outcomes);
  }

  private async waitForPod(): Promise<V1Pod | undefined> {
    const created = Date.parse(this.lt.metadata.creationTimestamp ? String(iso(this.lt.metadata.creationTimestamp)) : this.status.startTime!);
    const deadline = (Number.isFinite(created) ? created : Date.now()) + this.spec.podNotFoundTimeoutMs;
    let checkedDirect = 0;
    while (true) {
      let pod = this.cachedPod();
      if (!pod && Date.now() - checkedDirect > 5000) {
        checkedDirect = Date.now();
        pod = await this.freshPod();
      }
      if (pod) return pod;
      if (this.status.podUID) {
        // We had bound to a pod that no longer exists (or was replaced).
        await this.finish('Failed', 'PodDeleted', `pod ${this.spec.podName} (uid ${this.status.podUID}) was deleted before its log was captured`, 'Unknown');
        return undefined;
      }
      if (Date.now() >= deadline) {
        await this.finish('Failed', 'PodNotFound', `pod ${this.spec.podName} not found in namespace ${this.ns()} within ${Math.round(this.spec.podNotFoundTimeoutMs / 1000)} s`, 'Unknown');
        return undefined;
      }
      await this.waitPodChange(Math.min(2000, Math.max(50, deadline - Date.now())));
    }
  }

  /** Captures every instance of one container until it will not run again. */
  private async captureContainer(name: string, init: boolean): Promise<InstanceEnd> {
    const signal = this.abort.signal;
    let worst: InstanceEnd = { kind: 'stored' };
    const note = (e: InstanceEnd) => {
      const rank = { stored: 0, partial: 1, failed: 2 } as const;
      if (rank[e.kind] > rank[worst.kind]) worst = e;
    };
    // Resume point after an operator restart: the first instance without a stored object.
    const done = this.status.containers.filter((c) => c.name === name && (c.state === 'Stored' || c.state === 'Gap' || c.state === 'Failed'));
    let k = done.length > 0 ? Math.max(...done.map((c) => c.restart)) + 1 : -1;
    for (const c of done) if (c.state !== 'Stored') note({ kind: c.state === 'Gap' ? 'partial' : 'failed', reason: c.lastError ?? 'LogGap', message: c.lastError ?? '' });

    while (true) {
      signal.throwIfAborted();
      // Wait until instance k (or the first one we can see) has started.
      let pod = this.cachedPod() ?? (await this.freshPod());
      if (!pod) {
        note({ kind: k < 0 ? 'failed' : 'partial', reason: 'PodDeleted', message: `pod ${this.spec.podName} was deleted` });
        return worst;
      }
      const st = containerStatus(pod, name);
      const rc = st?.restartCount ?? 0;
      const started = k < 0 ? !!st && (!!st.state?.running || !!st.state?.terminated || (rc > 0 && !!st.lastState?.terminated)) : instanceStarted(st, k);
      if (!started) {
        if (podTerminal(pod)) {
          // The pod ended without ever running this container (e.g. an init container failed first).
          // Nothing was written, so nothing is missing: not a gap.
          const c = this.entry(name, Math.max(k, 0), init);
          c.state = 'Waiting';
          c.reason = 'NeverStarted';
          return worst;
        }
        await this.waitPodChange(2000);
        continue;
      }
      if (k < 0) {
        // First sight: the kubelet still serves the previous instance, not older ones.
        k = st!.lastState?.terminated && rc > 0 ? rc - 1 : rc;
        if (k > 0) {
          for (let lost = 0; lost < k; lost++) {
            const g = this.entry(name, lost, init);
            g.state = 'Gap';
            g.lastError = 'LogGap: instance no longer served by the kubelet (it keeps only the current and previous one)';
          }
          note({ kind: 'partial', reason: 'LogGap', message: `${name}: ${k} earlier instance(s) were no longer served by the kubelet` });
        }
      }
      if (rc > k + 1) {
        for (let lost = k; lost < rc - 1; lost++) {
          const g = this.entry(name, lost, init);
          g.state = 'Gap';
          g.lastError = 'LogGap: instance no longer served by the kubelet (it keeps only the current and previous one)';
        }
        note({ kind: 'partial', reason: 'LogGap', message: `${name}: restarted faster than it could be captured` });
        k = rc - 1;
      }

      const end = await this.captureInstance(name, init, k);
      note(end);
      pod = this.cachedPod() ?? (await this.freshPod());
      if (!pod) return worst;
      if (end.kind === 'failed' && end.reason !== 'LogGap') return worst;
      // A later run already exists (we started with "previous", or it
      // restarted meanwhile): capture it, whatever the pod's phase says now.
      if (instanceStarted(containerStatus(pod, name), k + 1)) {
        k += 1;
        continue;
      }
      // Will this container run again?
      const entry = this.entry(name, k, init);
      const restartable = init ? pod.spec?.initContainers?.find((c) => c.name === name)?.restartPolicy === 'Always' : true;
      const policy = pod.spec?.restartPolicy ?? 'Always';
      const exitedOk = entry.exitCode === 0;
      const again = restartable && !podTerminal(pod) && (policy === 'Always' || (policy === 'OnFailure' && !exitedOk) || (init && !exitedOk && policy !== 'Never'));
      if (!again) return worst;
      // Wait for the next instance to start (restartCount alone is not enough:
      // it already counts the ended run during the back-off), or for the pod's end.
      while (true) {
        const p = this.cachedPod() ?? (await this.freshPod());
        if (!p) return worst;
        if (instanceStarted(containerStatus(p, name), k + 1)) break;
        if (podTerminal(p)) return worst;
        await this.waitPodChange(2000);
      }
      k += 1;
    }
  }

  private async openWriter(key: string): Promise<ObjectWriter> {
    const backoff = new Backoff({ initialIntervalMs: 500, maxIntervalMs: 10_000, maxElapsedMs: this.spec.retry.maxElapsedMs });
    while (true) {
      try {
        return await this.deps.store.create(key, { contentType: 'text/plain; charset=utf-8', contentEncoding: this.spec.compression === 'gzip' ? 'gzip' : undefined });
      } catch (err) {
        if (!(err instanceof CaptureError) || err.kind !== 'transient') throw err;
        const d = backoff.next();
        if (d === undefined) throw err;
        await sleep(d, this.abort.signal);
      }
    }
  }

  /** Streams one container instance into one object; resumes exactly after every transient break. */
  private async captureInstance(name: string, init: boolean, k: number): Promise<InstanceEnd> {
    const signal = this.abort.signal;
    const c = this.entry(name, k, init);
    const key = renderKey(this.spec.keyTemplate, {
      namespace: this.ns(),
      logtail: this.lt.metadata.name!,
      pod: this.spec.podName,
      container: name,
      uid: this.status.podUID!,
      restart: k,
      date: this.status.startTime!.slice(0, 10),
    }, { compression: this.spec.compression });

    if (this.deps.slots.inUse >= this.deps.slots.capacity && this.status.phase === 'Pending') {
      this.setPhase('Pending', 'WaitingForSlot', `waiting for a free stream slot (--max-concurrent-streams=${this.deps.slots.capacity})`);
      await this.publish(true);
    }
    await this.deps.slots.acquire(signal);
    this.deps.metrics?.activeStreams.inc();
    let writer: ObjectWriter | undefined;
    let sink: ContentSink | undefined;
    try {
      writer = await this.openWriter(key);
      sink = new ContentSink(writer, this.spec.compression);
      // The object is rewritten from the top on every (re)start of the
      // operator: what an earlier process uploaded was never committed.
      const firstTimestampBefore = c.firstTimestamp;
      c.bytes = 0;
      c.lines = 0;
      c.checkpoint = undefined;
      c.state = 'Streaming';
      c.lastError = undefined;
      if (this.status.phase === 'Pending') {
        this.setPhase('Streaming', 'Streaming', `capturing the log of pod ${this.spec.podName}`);
        await this.publish(true);
        await this.event('Normal', 'Streaming', `capturing the log of pod ${this.spec.podName}`);
      }
      // inPlace: the socket's chunks are ours; stripping timestamps then
      // compacts each chunk instead of copying it.
      const filter = new ResumeFilter({ keepTimestamps: this.spec.timestamps, inPlace: true });
      const streamStart = Date.now();
      const backoff = new Backoff({ initialIntervalMs: this.spec.retry.initialIntervalMs, maxIntervalMs: this.spec.retry.maxIntervalMs, maxElapsedMs: this.spec.retry.maxElapsedMs });
      let gap: { reason: string; message: string } | undefined;
      let terminatedSeen = false;
      let instanceEnd: string | undefined;
      let relaxed = false;
      let tailFailed = false;
      const pieces: Buffer[] = [];
      let pendingBytes = 0;
      const emit = (b: Buffer) => {
        pieces.push(b);
        pendingBytes += b.length;
      };
      const flushPending = async () => {
        const batch = pieces.splice(0, pieces.length);
        const n = pendingBytes;
        pendingBytes = 0;
        for (const piece of batch) await sink!.write(piece);
        this.deps.metrics?.bytesCaptured.inc({ namespace: this.ns() }, n);
      };

      stream: while (true) {
        signal.throwIfAborted();
        let pod = this.cachedPod();
        let st = pod ? containerStatus(pod, name) : undefined;
        if (terminatedSeen || terminatedOf(st, k)) {
          // The instance has ended and the container may be restarted any
          // moment: decide between "current" and "previous" on a fresh read
          // taken right before the request, not on a cache that may lag.
          pod = (await this.freshPod()) ?? pod;
          st = pod ? containerStatus(pod, name) : undefined;
        }
        const previous = (st?.restartCount ?? 0) > k;
        const terminatedAtOpen = terminatedSeen || !!terminatedOf(st, k) || (!!pod && podTerminal(pod) && previous);
        const endedAt = terminatedOf(st, k)?.finishedAt;
        if (endedAt) instanceEnd = iso(endedAt);
        let progressed = false;
        // Draining an ended instance: first try a small tailLines window
        // instead of replaying the whole last second (which, for a container
        // that wrote fast, can be most of its log).
        const useTail = terminatedAtOpen && !tailFailed && filter.checkpoint() !== undefined;
        try {
          const stream = await openLogStream(this.deps.kc, {
            namespace: this.ns(),
            pod: this.spec.podName,
            container: name,
            follow: !useTail,
            timestamps: true,
            sinceTime: useTail ? undefined : filter.sinceTime(),
            tailLines: useTail ? DRAIN_TAIL_LINES : undefined,
            previous: previous || undefined,
            idleTimeoutMs: this.deps.idleTimeoutMs,
            signal,
          });
          filter.beginConnection({ strict: terminatedAtOpen && !previous && !relaxed, tailWindow: useTail });
          this.log.debug('log stream open', { container: name, restart: k, previous, terminatedAtOpen, tail: useTail, sinceTime: filter.sinceTime(), rc: st?.restartCount, state: Object.keys(st?.state ?? {})[0] });
          for await (const chunk of stream) {
            filter.push(chunk, emit);
            // Batch while the network is ahead of us (fewer, larger hash and
            // store calls); write at once when nothing more is waiting.
            if (pendingBytes >= FLUSH_BYTES || (pendingBytes > 0 && stream.queuedBytes === 0)) {
              await flushPending();
              progressed = true;
            }
            c.bytes = filter.bytes;
            c.lines = filter.lines;
            if (!c.firstTimestamp && filter.firstTimestamp) c.firstTimestamp = filter.firstTimestamp;
            const cp = filter.checkpoint();
            c.checkpoint = cp ? { time: cp.time, ordinal: cp.ordinal, offset: cp.offset } : undefined;
          }
          if (pendingBytes > 0) {
            await flushPending();
            progressed = true;
          }
          c.bytes = filter.bytes;
          c.lines = filter.lines;
          const cp = filter.checkpoint();
          if (instanceEnd && cp && stampedInLaterSecond(cp.time, instanceEnd) && !gap) {
            // Lines stamped in a later second than the instance's end cannot
            // be its own: the kubelet served the next run. Say so, never hide it.
            gap = { reason: 'LogGap', message: `${name} instance ${k}: the stream carried lines stamped ${cp.time}, after the instance finished at ${instanceEnd}` };
          }
          if (filter.gaps > 0 && !gap) {
            gap = { reason: 'LogGap', message: `${name}: ${filter.lastAnomaly ?? 'the resumed stream did not continue where the last one stopped'}` };
          }
          if (filter.resuming) {
            // The response ended before it reached our resume point: an early
            // end (a cut the proxy turned into a clean end), not the end of
            // the log. A rotated log would show later lines instead.
            if (useTail) {
              tailFailed = true;
              continue stream;
            }
            if (terminatedAtOpen) throw new CaptureError('StreamEnded', 'transient', `the log stream of ${name} ended before reaching the resume point ${filter.sinceTime() ?? ''}`);
          }
          if (filter.firstTimestamp && firstTimestampBefore && filter.firstTimestamp !== firstTimestampBefore && !gap) {
            gap = { reason: 'LogGap', message: `${name}: the log starts at ${filter.firstTimestamp}, an earlier run of the capture saw it start at ${firstTimestampBefore} (rotated by the kubelet)` };
          }
          // The instance had ended before this pass began. A pass that still
          // brought new bytes may itself have been cut short by a proxy, so
          // only a pass that adds nothing proves the log is drained.
          if (terminatedAtOpen) {
            if (!progressed) break stream;
            continue stream;
          }
          const state = await this.awaitTerminated(name, k);
          this.log.debug('log stream ended cleanly', { container: name, restart: k, bytes: filter.bytes, progressed, state });
          if (state === 'gone') {
            gap = { reason: 'PodDeleted', message: `pod ${this.spec.podName} was deleted while ${name} was running; its log may be cut short` };
            break stream;
          }
          if (state === 'terminated') {
            terminatedSeen = true;
            continue stream; // one more pass from the checkpoint drains anything written after our stream ended
          }
          throw new CaptureError('StreamEnded', 'transient', `the log stream of ${name} ended while the container is still running`);
        } catch (err) {
          if (signal.aborted) throw signal.reason;
          // What the filter emitted before the break is part of the log: store it.
          if (pendingBytes > 0) {
            await flushPending();
            progressed = true;
          }
          if (err instanceof ResumeMismatchError && useTail) {
            // The window did not reach back to our checkpoint (or did not
            // contain it): fall back to the sinceTime replay, which decides.
            tailFailed = true;
            this.log.debug('tail window insufficient; replaying from the checkpoint second', { container: name, restart: k, error: err.message });
            continue stream;
          }
          if (err instanceof ResumeMismatchError) {
            // The kubelet served the next run as "current" before the pod's
            // status showed the restart. Once the status shows it, the next
            // pass asks for "previous"; if it never does, the log was rotated
            // and we continue with a recorded gap.
            const fresh = await this.freshPod();
            const rcNow = fresh ? (containerStatus(fresh, name)?.restartCount ?? 0) : 0;
            if (rcNow <= k) {
              await this.waitPodChange(1000);
              const again = await this.freshPod();
              if (!again || (containerStatus(again, name)?.restartCount ?? 0) <= k) relaxed = true;
            }
            this.log.info('resume point not in the served log; re-reading', { container: name, restart: k, relaxed, error: err.message });
            continue stream;
          }
          const ce = err instanceof CaptureError ? err : new CaptureError('KubeletUnreachable', 'transient', String((err as Error)?.message ?? err), { cause: err });
          if (ce.reason === 'PodNotFound' || ce.reason === 'ContainerNotFound' || ce.reason === 'BadRequest') {
            const pod2 = await this.freshPod();
            if (!pod2) {
              gap = { reason: 'PodDeleted', message: `pod ${this.spec.podName} was deleted while its log was being captured` };
              break stream;
            }
            if (ce.reason === 'BadRequest' && previous) {
              gap = { reason: 'LogGap', message: `${name} instance ${k}: the kubelet no longer serves it (${ce.message})` };
              break stream;
            }
          }
          if (ce.kind === 'permanent') {
            c.lastError = `${ce.reason}: ${ce.message}`;
            if (filter.bytes > 0) {
              gap = { reason: ce.reason, message: ce.message };
              break stream;
            }
            throw ce;
          }
          c.streamRetries = (c.streamRetries ?? 0) + 1;
          c.lastError = `${ce.reason}: ${ce.message}`;
          this.deps.metrics?.streamRetries.inc({ reason: ce.reason });
          // A connection that carried bytes, or one that only sat idle (a quiet
          // container looks exactly like that), does not eat into the budget.
          if (progressed || ce.reason === 'StreamStalled') backoff.reset();
          const delay = backoff.next();
          if (delay === undefined) {
            const msg = `gave up on ${name} after ${c.streamRetries} retries within ${Math.round(this.spec.retry.maxElapsedMs / 1000)} s: ${ce.message}`;
            if (filter.bytes > 0) {
              gap = { reason: ce.reason === 'StreamEnded' || ce.reason === 'StreamStalled' ? 'LogGap' : 'KubeletUnreachable', message: msg };
              break stream;
            }
            throw new CaptureError(ce.reason === 'WaitingToStart' ? 'KubeletUnreachable' : ce.reason === 'ServerError' || ce.reason === 'TooManyRequests' ? 'KubeletUnreachable' : ce.reason, 'permanent', msg);
          }
          this.log.info('log stream retry', { container: name, reason: ce.reason, delayMs: Math.round(delay), attempt: c.streamRetries, error: ce.message });
          if (Date.now() - this.lastRetryEvent > 10_000) {
            this.lastRetryEvent = Date.now();
            void this.event('Warning', 'Retrying', `${name}: ${ce.message}; retrying in ${Math.round(delay)} ms (retry ${c.streamRetries})`);
          }
          await this.publish(c.streamRetries === 1);
          await sleep(delay, signal);
        }
      }

      // Exit code and timing of this instance (seed #2: the phase can turn
      // terminal before state.terminated is written).
      await this.recordTermination(name, k, c);
      const digest = await sink.finish();
      const t0 = Date.now();
      this.log.debug('instance streamed', { container: name, restart: k, bytes: digest.bytes, streamMs: t0 - streamStart });
      const committed = await this.commitOrAdopt(writer, digest);
      this.deps.metrics?.storeUploadSeconds.observe((Date.now() - t0) / 1000);
      this.log.debug('instance committed', { container: name, restart: k, commitMs: Date.now() - t0 });
      if (committed.size !== digest.objectBytes) {
        throw new CaptureError('SizeMismatch', 'permanent', `store reports ${committed.size} bytes for ${committed.uri}, ${digest.objectBytes} were written`);
      }
      c.object = { uri: committed.uri, size: committed.size, sha256: digest.sha256, objectSha256: digest.objectSha256 };
      c.bytes = digest.bytes;
      c.checkpoint = undefined;
      if (gap) {
        c.state = 'Gap';
        c.lastError = `${gap.reason}: ${gap.message}`;
        await this.publish(true);
        return { kind: 'partial', ...gap };
      }
      c.state = 'Stored';
      await this.publish(true);
      return { kind: 'stored' };
    } catch (err) {
      sink?.destroy();
      if (writer) await writer.abort().catch((e: unknown) => this.log.warn('abort of upload failed', { error: String(e) }));
      if (signal.aborted) throw signal.reason;
      const ce = err as CaptureError;
      c.state = 'Failed';
      c.lastError = `${ce.reason ?? 'Error'}: ${ce.message ?? String(err)}`;
      if (['KeyExists', 'StoreDenied', 'StoreUnavailable', 'SizeMismatch'].includes(ce.reason)) this.deps.metrics?.storeErrors.inc({ reason: ce.reason });
      if (ce.reason === 'KeyExists') return { kind: 'failed', reason: 'KeyExists', message: ce.message };
      if (ce.reason === 'StoreDenied' || ce.reason === 'StoreUnavailable') return { kind: 'failed', reason: 'StoreUnavailable', message: ce.message };
      return { kind: 'failed', reason: ce.reason ?? 'InternalError', message: ce.message ?? String(err) };
    } finally {
      this.deps.slots.release();
      this.deps.metrics?.activeStreams.dec();
    }
  }

  /**
   * Commits; if the key exists already, the object may be our own from before
   * an operator crash (committed, status not yet written). Identical bytes are
   * adopted; anything else stays a KeyExists failure, never an overwrite.
   */
  private async commitOrAdopt(writer: ObjectWriter, digest: { sha256: string; objectSha256: string; objectBytes: number }): Promise<{ uri: string; size: number }> {
    try {
      return await writer.commit({ sha256: digest.sha256, objectSha256: digest.objectSha256 });
    } catch (err) {
      if (!(err instanceof CaptureError) || err.reason !== 'KeyExists') throw err;
      const existing = await this.deps.store.head(writer.uri).catch(() => undefined);
      if (!existing || existing.size !== digest.objectBytes) throw err;
      const h = createHash('sha256');
      for await (const chunk of await this.deps.store.read(writer.uri)) h.update(chunk as Buffer);
      if (h.digest('hex') !== digest.objectSha256) throw err;
      await writer.abort().catch(() => undefined);
      this.log.info('adopted an identical object committed before a restart', { uri: writer.uri });
      return { uri: writer.uri, size: existing.size };
    }
  }

  /**
   * After a clean end of stream: is instance k over? Reads the cache first,
   * then the API, with the terminated-state retry budget (seed #2).
   */
  private async awaitTerminated(name: string, k: number): Promise<'terminated' | 'running' | 'gone'> {
    const pod = this.cachedPod();
    if (pod) {
      const st = containerStatus(pod, name);
      if (terminatedOf(st, k) || (st?.restartCount ?? 0) > k) return 'terminated';
      // "running" in the cache may only mean the informer is behind the
      // kubelet: the direct read below decides.
    }
    const policy = this.spec.terminatedRetry;
    const backoff = new Backoff({ initialIntervalMs: policy.initialIntervalMs, maxIntervalMs: policy.maxIntervalMs, maxElapsedMs: policy.maxElapsedMs });
    while (true) {
      const fresh = await this.freshPod();
      if (!fresh) return 'gone';
      const st = containerStatus(fresh, name);
      if (terminatedOf(st, k) || (st?.restartCount ?? 0) > k) return 'terminated';
      if (podTerminal(fresh)) {
        // Phase says done, state.terminated not written yet: wait for it.
        const d = backoff.next();
        if (d === undefined) return 'terminated';
        await sleep(d, this.abort.signal);
        continue;
      }
      if (fresh.metadata?.deletionTimestamp) {
        await this.waitPodChange(1000);
        continue;
      }
      return 'running';
    }
  }

  private async recordTermination(name: string, k: number, c: ContainerCapture): Promise<void> {
    const policy = this.spec.terminatedRetry;
    const backoff = new Backoff({ initialIntervalMs: policy.initialIntervalMs, maxIntervalMs: policy.maxIntervalMs, maxElapsedMs: policy.maxElapsedMs });
    let pod = this.cachedPod();
    while (true) {
      const st = pod ? containerStatus(pod, name) : undefined;
      const t = terminatedOf(st, k);
      if (t) {
        c.exitCode = t.exitCode;
        c.reason = t.reason;
        c.startedAt = iso(t.startedAt);
        c.finishedAt = iso(t.finishedAt);
        c.state = 'Terminated';
        return;
      }
      if (st?.state?.running && (st.restartCount ?? 0) === k && pod && !podTerminal(pod)) return; // still running (gave up on a stream)
      const d = backoff.next();
      if (d === undefined) {
        c.lastError = c.lastError ?? `TerminatedStateMissing: ${name} has no terminated state after ${Math.round(policy.maxElapsedMs / 1000)} s`;
        return;
      }
      await sleep(d, this.abort.signal);
      pod = (await this.freshPod()) ?? undefined;
      if (!pod) return;
    }
  }

  private async conclude(outcomes: InstanceEnd[]): Promise<void> {
    const pod = await this.freshPod().catch(() => undefined);
    const failed = outcomes.filter((o) => o.kind === 'failed');
    const partial = outcomes.filter((o) => o.kind === 'partial');
    const storedAny = this.status.containers.some((c) => !!c.object);
    let phase: LogTailStatus['phase'];
    let reason: string;
    let message: string;
    if (failed.length > 0 && !storedAny) {
      phase = 'Failed';
      reason = failed[0]!.reason;
      message = failed.map((f) => f.message).join('; ');
    } else if (failed.length > 0 || partial.length > 0) {
      phase = 'Incomplete';
      const first = failed[0] ?? partial[0]!;
      reason = first.reason;
      message = [...failed, ...partial].map((f) => f.message).join('; ');
    } else {
      phase = 'Complete';
      reason = 'Captured';
      message = `stored ${this.status.containers.filter((c) => c.object).length} object(s)`;
    }
    // The pod's outcome, never guessed: a vanished pod is Unknown.
    let result: LogTailStatus['result'] = 'Unknown';
    const finals = new Map<string, ContainerCapture>();
    for (const c of this.status.containers) {
      const prev = finals.get(c.name);
      if (!prev || c.restart > prev.restart) finals.set(c.name, c);
    }
    const exitCodes = [...finals.values()].map((c) => c.exitCode);
    if (pod?.status?.phase === 'Succeeded') result = 'Succeeded';
    else if (pod?.status?.phase === 'Failed') result = 'Failed';
    else if (pod && exitCodes.length > 0 && exitCodes.every((e) => e !== undefined)) result = exitCodes.some((e) => e !== 0) ? 'Failed' : 'Succeeded';
    if (!pod || partial.some((p) => p.reason === 'PodDeleted')) {
      if (reason === 'Captured') reason = 'PodDeleted';
      if (!pod) result = 'Unknown';
    }
    const nonZero = exitCodes.find((e) => e !== undefined && e !== 0);
    this.status.exitCode = nonZero ?? (exitCodes.every((e) => e === 0) && exitCodes.length > 0 ? 0 : undefined);
    await this.finish(phase, reason, message, result);
  }

  /** Terminal status, then exactly one terminal event (its name is derived from the LogTail's UID). */
  private async finish(phase: LogTailStatus['phase'], reason: string, message: string, result: LogTailStatus['result']): Promise<void> {
    if (!isTerminalPhase(phase)) throw new Error(`finish() with non-terminal phase ${phase}`);
    this.status.result = result;
    this.status.completionTime = this.now().toISOString();
    this.setPhase(phase, reason, message);
    await this.publish(true);
    this.deps.metrics?.capturesFinished.inc({ phase, result });
    const exits = this.status.containers.map((c) => Date.parse(c.finishedAt ?? '')).filter((t) => Number.isFinite(t));
    if (phase === 'Complete' && exits.length > 0) this.deps.metrics?.exitToCompleteSeconds.observe(Math.max(0, (Date.now() - Math.max(...exits)) / 1000));
    const uid = this.lt.metadata.uid ?? this.lt.metadata.name!;
    await this.event(phase === 'Complete' ? 'Normal' : 'Warning', phase, `${reason}: ${message}`, `${this.lt.metadata.name}.${uid.slice(0, 8)}.finished`);
    this.log.info('capture finished', { phase, result, reason, bytes: this.status.bytes, retries: this.status.retries });
  }
}
