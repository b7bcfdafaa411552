// One capture daemon per LogTail: it owns that LogTail's log streams from the
// first sight of the pod to the committed objects, and is the only writer of
// the LogTail's status while it runs. It is cancelled through an AbortSignal
// whose reason is a typed StopRequest, so every exit path knows why it stops.
//
// The daemon is a thin loop: it observes the pod, asks src/core/capture what
// to do (which run, whether it will restart, the outcome), and acts. Reading
// one run into one object is capture-run.ts.
import type { V1Pod } from '@kubernetes/client-node';
import { type RetryPolicy, RetryExhaustedError, retry } from '../adapters/retry.ts';
import { isTransientApiError } from '../adapters/kube-api.ts';
import { type Captured, type ContainerView, containerView, locateRun, nextRun, viewSummary, willRestart } from '../core/capture/runs.ts';
import { type Outcome, type RunEnd, decidedByCopy, deletedBeforeTerminated, outcome, worse } from '../core/capture/outcome.ts';
import { selectContainers, type LogTail, type ResolvedSpec } from '../core/spec.ts';
import { type ContainerCapture, type LogTailStatus, addUncapturedRuns, completeBlocker, conditionsForPhase, isTerminalPhase, setCondition, trimContainerEntries, truncation, truncationMessage } from '../core/status.ts';
import { HoldReason } from '../core/hold.ts';
import { PodHold } from './pod-hold.ts';
import { type CaptureClock, type DaemonDeps, containerStatus, podTerminal, systemCaptureClock } from './capture-ports.ts';
import { captureRun } from './capture-run.ts';
import type { LogMeta, Logger } from './logger.ts';
import { type StatusChannel, StatusWriter } from './status-writer.ts';

export type { DaemonDeps, PodSource } from './capture-ports.ts';

/**
 * Why a daemon stops. `OperatorExiting`, `LostLeadership` and `ShardMoved`
 * (sharding: the LogTail's owner hands it to another replica, the hash moved
 * it) hand the capture to another process: unfinished objects stay in the
 * store with a final checkpoint (capture-continuation.ts); the others abort them.
 */
export type StopReason = 'Deleted' | 'SpecChanged' | 'OperatorExiting' | 'PodGone' | 'LostLeadership' | 'ShardMoved';

export class StopRequest extends Error {
  readonly reason: StopReason;
  constructor(reason: StopReason) {
    super(`capture stopped: ${reason}`);
    this.name = 'StopRequest';
    this.reason = reason;
  }
}

/** A fresh read of the pod the capture is bound to. */
/** `gone`: no pod of that name (`replaced: false`), or one with another UID (`replaced: true`). */
export type PodObservation = { kind: 'pod'; pod: V1Pod } | { kind: 'gone'; replaced: boolean } | { kind: 'unavailable'; message: string };

/** Policy for direct pod reads: short, and bounded by the terminated-state budget. */
const POD_READ_INITIAL_MS = 200;


function lostMessage(name: string, from: number, to: number): string {
  const which = from === to ? `run ${from}` : `runs ${from}-${to}`;
  return `${name}: ${which} no longer served by the kubelet (it serves only the newest ended run); not captured`;
}

export class CaptureDaemon {
  readonly key: string;
  /** `namespace/podName` of the pod this capture follows. */
  readonly podKey: string;
  readonly generation: number;
  readonly lt: LogTail;
  readonly spec: ResolvedSpec;
  readonly deps: DaemonDeps;
  readonly clock: CaptureClock;
  readonly log: Logger;
  readonly status: LogTailStatus;
  private readonly abort = new AbortController();
  private lastWrite = -Infinity;
  /** The process-wide status writer's channel for this LogTail (status-writer.ts). */
  private readonly statusOut: StatusChannel;
  /** One waker per waiting task (every container task waits on its own). */
  private readonly wakers = new Set<() => void>();
  private lastRetryEvent = -Infinity;
  /** spec.holdPod's finalizer on the pod (pod-hold.ts), once the capture is bound to the pod. */
  private hold: PodHold | undefined;
  /**
   * The earliest deletion request seen on our pod (deletionTimestamp minus its
   * grace period). The kubelet's final delete (grace 0) moves
   * deletionTimestamp to the moment the pod is fully terminated; a held pod
   * keeps showing that, so the first request is remembered here.
   */
  private deletionRequested: number | undefined;
  /** A run's end (committed, or uncaptured) not yet handed to the status writer (runEnded). */
  private runEndUnwritten = false;
  /** Debug timing of the end of the capture: each step after the last follow stream ended (endStep). */
  private endSteps: Array<[string, number]> = [];
  done: Promise<void> = Promise.resolve();
  /** When this daemon was created (clock ms): the origin of its step timings. */
  private readonly createdAt: number;

  constructor(lt: LogTail, spec: ResolvedSpec, deps: DaemonDeps) {
    this.lt = lt;
    this.spec = spec;
    this.deps = deps;
    this.clock = deps.clock ?? systemCaptureClock;
    this.createdAt = this.clock.now();
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
      startTime: prev.startTime ?? new Date(this.clock.now()).toISOString(),
    } as LogTailStatus;
    // Without a shared writer (unit tests), a private one with no budget.
    const writer = deps.statusWriter ?? new StatusWriter({ patch: (ns, name, st) => deps.api.patchLogTailStatus(ns, name, st), clock: this.clock, logger: this.log, writesPerSecond: Infinity });
    this.statusOut = writer.channel(lt.metadata.namespace!, lt.metadata.name!, lt.status);
  }

  /**
   * A debug line per step of the capture (docs/benchmarks.md "One stream"):
   * `ms` since the daemon was created, `at` the wall clock, so a benchmark
   * can line the steps up with its own clock.
   */
  step(step: string, meta?: LogMeta): void {
    const now = this.clock.now();
    this.log.debug('capture step', { step, ms: now - this.createdAt, at: now, ...meta });
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get ns(): string {
    return this.lt.metadata.namespace!;
  }

  start(): void {
    this.step('daemon started');
    this.deps.metrics?.activeCaptures.inc();
    // A snapshot not yet written is kept unless someone else now owns the status (deleted, another leader, spec changed).
    let keepPending = true;
    this.done = this.run()
      .catch((err: unknown) => {
        if (err instanceof StopRequest) {
          keepPending = err.reason === 'OperatorExiting' || err.reason === 'PodGone';
          this.log.info('capture stopped', { stopReason: err.reason });
          return;
        }
        this.log.error('capture crashed', { error: String((err as Error)?.stack ?? err) });
      })
      // A status write still in flight belongs to this daemon: `done` waits for it (at most 30 s), so whoever
      // captures this LogTail next (this process or, with sharding, another replica) writes after it.
      .then(() => Promise.race([this.statusOut.close(keepPending), this.clock.sleep(30_000).catch(() => undefined)]))
      .finally(() => this.deps.metrics?.activeCaptures.dec());
  }

  /** The pod informer saw a change of our pod: every waiting task re-evaluates now. */
  podChanged(): void {
    this.cachedPod();
    if (this.hold) void this.hold.sync().catch(() => undefined);
    const ws = [...this.wakers];
    this.wakers.clear();
    for (const w of ws) w();
  }

  /** Requests the stop; returns at once. `done` settles when the daemon has stopped (its uploads aborted). */
  requestStop(reason: StopReason): void {
    if (!this.abort.signal.aborted) this.abort.abort(new StopRequest(reason));
  }

  /** Cancels the capture and waits for it, bounded by `deadlineMs`. */
  async stop(reason: StopReason, deadlineMs = 20_000): Promise<void> {
    this.requestStop(reason);
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.done, new Promise<void>((r) => (t = setTimeout(r, deadlineMs)))]);
    if (t) clearTimeout(t);
  }

  /** Waits for a pod event (or `maxMs`); rejects when the capture is stopped. */
  async waitPodChange(maxMs: number): Promise<void> {
    const signal = this.abort.signal;
    signal.throwIfAborted();
    const inner = new AbortController();
    const wake = () => inner.abort();
    this.wakers.add(wake);
    const onAbort = () => inner.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.clock.sleep(maxMs, inner.signal).catch(() => undefined);
    } finally {
      this.wakers.delete(wake);
      signal.removeEventListener('abort', onAbort);
    }
    signal.throwIfAborted();
  }

  /**
   * Waits on pod events until `seen()` holds or `maxMs` passed (no polling:
   * `seen` is asked again on each event of our pod); true when it holds.
   */
  async waitUntil(seen: () => boolean, maxMs: number): Promise<boolean> {
    const deadline = this.clock.now() + maxMs;
    while (!seen()) {
      const left = deadline - this.clock.now();
      if (left <= 0) return false;
      await this.waitPodChange(left);
    }
    return true;
  }

  // ------------------------------------------------------------ pod reads

  /** The pod this capture is bound to, from the cache; a pod with another UID under the same name is not ours. */
  cachedPod(): V1Pod | undefined {
    const pod = this.deps.pods.get(this.spec.podName, this.ns);
    if (pod && this.status.podUID && pod.metadata?.uid !== this.status.podUID) return undefined;
    if (pod) this.noteDeletion(pod);
    return pod;
  }

  private noteDeletion(pod: V1Pod): void {
    const at = pod.metadata?.deletionTimestamp;
    if (!at) return;
    const requested = new Date(at).getTime() - (pod.metadata?.deletionGracePeriodSeconds ?? 0) * 1000;
    if (Number.isFinite(requested) && (this.deletionRequested === undefined || requested < this.deletionRequested)) this.deletionRequested = requested;
  }

  /** The policy for direct reads: the spec's terminated-state budget, starting short. */
  private readPolicy(): RetryPolicy {
    const p = this.spec.terminatedRetry;
    return { initialIntervalMs: Math.min(POD_READ_INITIAL_MS, p.initialIntervalMs), maxIntervalMs: p.maxIntervalMs, maxElapsedMs: p.maxElapsedMs };
  }

  /**
   * A direct GET, so a stale cache cannot decide; transient API errors (429,
   * 5xx, an apiserver restart) are retried within the terminated-state budget
   * and then reported as `unavailable`, never thrown.
   */
  async observePod(): Promise<PodObservation> {
    try {
      const pod = await retry(() => this.deps.api.getPod(this.ns, this.spec.podName), this.readPolicy(), {
        signal: this.signal,
        classify: (e) => (isTransientApiError(e) ? 'transient' : 'permanent'),
        now: () => this.clock.now(),
        sleep: (ms, s) => this.clock.sleep(ms, s),
      });
      if (!pod) return { kind: 'gone', replaced: false };
      if (this.status.podUID && pod.metadata?.uid !== this.status.podUID) return { kind: 'gone', replaced: true };
      this.noteDeletion(pod);
      return { kind: 'pod', pod };
    } catch (err) {
      this.signal.throwIfAborted();
      const e = err instanceof RetryExhaustedError ? err.lastError : err;
      return { kind: 'unavailable', message: `the apiserver did not answer a read of pod ${this.spec.podName}: ${String((e as Error)?.message ?? e)}` };
    }
  }

  /** Cache first, then a direct read when the cache has nothing. */
  async currentPod(): Promise<PodObservation> {
    const pod = this.cachedPod();
    return pod ? { kind: 'pod', pod } : this.observePod();
  }

  // ---------------------------------------------------------------- status

  setPhase(phase: LogTailStatus['phase'], reason: string, message: string): void {
    this.status.phase = phase;
    this.status.reason = reason;
    this.status.message = message;
    this.status.conditions = conditionsForPhase(phase, reason, message, this.generation, this.status.conditions ?? [], new Date(this.clock.now()));
  }

  /** spec.maxBytes: the Truncated condition, True once a run was stored cut. */
  truncatedCondition(): void {
    if (this.spec.maxBytes === undefined) return;
    const t = truncation(this.status.containers);
    const c = t.runs > 0
      ? { status: 'True' as const, reason: 'Truncated', message: truncationMessage(t) }
      : { status: 'False' as const, reason: 'WithinMaxBytes', message: `no run was longer than spec.maxBytes=${this.spec.maxBytes}` };
    this.status.conditions = setCondition(this.status.conditions, { type: 'Truncated', ...c, observedGeneration: this.generation }, new Date(this.clock.now()));
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

  /**
   * Hands a snapshot of the status to the status writer. `urgent` (phase
   * changes, terminal state, what a restart must find): written first and
   * awaited. Otherwise (progress) at most once per --status-interval from
   * here, and the writer spreads those under its global budget.
   */
  async publish(urgent = false, terminal = false): Promise<void> {
    this.totals();
    if (!urgent && this.clock.now() - this.lastWrite < this.deps.statusIntervalMs * 0.8) return;
    this.lastWrite = this.clock.now();
    // An urgent snapshot carries every run's end recorded so far.
    if (urgent) this.runEndUnwritten = false;
    await this.statusOut.publish(structuredClone(this.status), urgent, terminal);
  }

  /**
   * A run ended (its entry `Stored`, `Gap`, or listed as uncaptured): the
   * entry goes out with the next urgent write. That is at once while the
   * capture goes on (flushRunEnd: before waiting for the next run, before
   * reading it, when another container is still being captured); after the
   * capture's last run it is the terminal status, one write instead of two
   * (docs/design.md *The end of a capture*).
   */
  runEnded(): void {
    this.runEndUnwritten = true;
  }

  /** Hands a run's end to the status writer now (queued in order, not awaited). */
  private flushRunEnd(): void {
    if (this.runEndUnwritten && !this.signal.aborted) void this.publish(true);
  }

  /** Debug timing: `streamEnded` (a follow stream ended) starts a new record; the others add to it. */
  endStep(step: string): void {
    if (step === 'streamEnded') this.endSteps = [];
    this.endSteps.push([step, this.clock.now()]);
  }

  /** One debug line: the milliseconds each step took after the last follow stream ended. */
  private logEndSteps(): void {
    const s = this.endSteps;
    if (s.length === 0) return;
    const steps: Record<string, number> = {};
    for (let i = 1; i < s.length; i++) {
      const [name, at] = s[i]!;
      const key = name in steps ? `${name}#${i}` : name;
      steps[key] = at - s[i - 1]![1];
    }
    this.log.debug('capture end timing', { ms: steps, totalMs: s[s.length - 1]![1] - s[0]![1], first: s[0]![0] });
  }

  async event(type: 'Normal' | 'Warning', reason: string, message: string, name?: string): Promise<void> {
    const lane = this.deps.events;
    await lane?.acquire();
    try {
      await this.deps.api.createEvent({
        name,
        involved: { kind: 'LogTail', apiVersion: 'logtail.dev/v1alpha1', namespace: this.ns, name: this.lt.metadata.name!, uid: this.lt.metadata.uid },
        type,
        reason,
        message,
      });
    } catch (err) {
      this.log.warn('event not recorded', { reason, error: String(err) });
    } finally {
      lane?.release();
    }
  }

  /** A `Retrying` Warning, at most one per 10 s. */
  retryEvent(message: string): void {
    if (this.clock.now() - this.lastRetryEvent < 10_000) return;
    this.lastRetryEvent = this.clock.now();
    void this.event('Warning', 'Retrying', message);
  }

  entry(name: string, restart: number, init: boolean): ContainerCapture {
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
    const ticker = new AbortController();
    const tick = async () => {
      while (!ticker.signal.aborted) {
        await this.clock.sleep(this.deps.statusIntervalMs, ticker.signal);
        if (!isTerminalPhase(this.status.phase)) void this.publish(false);
      }
    };
    const ticking = tick().catch(() => undefined);
    try {
      await this.runCapture();
    } finally {
      ticker.abort();
      await ticking;
    }
  }

  private async runCapture(): Promise<void> {
    if (this.status.phase === 'Pending' && this.status.reason !== 'WaitingForPod') {
      this.setPhase('Pending', 'WaitingForPod', `waiting for pod ${this.spec.podName}`);
      // Written first (the writer keeps one LogTail's writes in order), not
      // awaited: a pod that exists already is read at once, not after a PATCH.
      void this.publish(true).then(() => this.step('status WaitingForPod written'), () => undefined);
    }
    const pod = await this.waitForPod();
    if (!pod) return;
    this.step('pod found');
    if (!this.status.podUID) this.status.podUID = pod.metadata!.uid;
    if (this.spec.holdPod) await this.startHold();
    const selection = selectContainers(this.spec.containers, pod.spec ?? { containers: [] });
    if (!selection.ok) {
      await this.finish({ phase: 'Failed', reason: 'InvalidSpec', message: `pod ${this.spec.podName}: ${selection.message}`, result: 'Unknown', exitCode: undefined });
      return;
    }
    let capturing = selection.containers.length;
    const ends = await Promise.all(
      selection.containers.map((c) =>
        this.captureContainer(c.name, c.init)
          .catch((err: unknown): RunEnd => {
            if (this.signal.aborted) throw this.signal.reason;
            return { kind: 'failed', reason: (err as { reason?: string }).reason ?? 'InternalError', message: String((err as Error)?.message ?? err) };
          })
          .finally(() => {
            // Another container is still being captured: this one's last run goes to status now.
            if (--capturing > 0) this.flushRunEnd();
          }),
      ),
    );
    this.signal.throwIfAborted();
    await this.conclude(ends);
  }

  /** The pod, once it exists; undefined after a terminal status was written. Transient API errors only delay. */
  private async waitForPod(): Promise<V1Pod | undefined> {
    const created = Date.parse(String(this.lt.metadata.creationTimestamp ?? this.status.startTime));
    const deadline = (Number.isFinite(created) ? created : this.clock.now()) + this.spec.podNotFoundTimeoutMs;
    // One direct read when the cache has no pod, and one more at the deadline;
    // in between the pod informer's events wake us (no polling per LogTail).
    let checkedDirect = false;
    while (true) {
      let pod = this.cachedPod();
      if (!pod && (!checkedDirect || this.clock.now() >= deadline)) {
        checkedDirect = true;
        const seen = await this.observePod();
        if (seen.kind === 'pod') pod = seen.pod;
        else if (seen.kind === 'unavailable') this.log.warn('pod read failed while waiting for the pod', { error: seen.message });
        else if (this.status.podUID && this.unfinished().length > 0) {
          // Gone while no process was capturing it: what an earlier process
          // made durable is committed as it is.
          await this.salvage();
          return undefined;
        } else if (this.status.podUID) {
          // We had bound to a pod that no longer exists (or was replaced).
          await this.finish({ phase: 'Failed', reason: 'PodDeleted', message: `pod ${this.spec.podName} (uid ${this.status.podUID}) was deleted before its log was captured`, result: 'Unknown', exitCode: undefined });
          return undefined;
        }
      }
      if (pod) return pod;
      if (this.clock.now() >= deadline && !this.status.podUID) {
        await this.finish({ phase: 'Failed', reason: 'PodNotFound', message: `pod ${this.spec.podName} not found in namespace ${this.ns} within ${Math.round(this.spec.podNotFoundTimeoutMs / 1000)} s`, result: 'Unknown', exitCode: undefined });
        return undefined;
      }
      await this.waitPodChange(Math.min(2000, Math.max(50, deadline - this.clock.now())));
    }
  }

  /** Entries of runs an earlier process left unfinished with a durable checkpoint (containers[].upload). */
  private unfinished(name?: string): ContainerCapture[] {
    return this.status.containers.filter((c) => c.upload !== undefined && (name === undefined || c.name === name) && (c.state === 'Streaming' || c.state === 'Waiting' || c.state === 'Terminated'));
  }

  /** The unfinished run of `name`, continued: with the pod gone, reading ends at once and the durable bytes are committed. */
  private async salvageRun(c: ContainerCapture): Promise<RunEnd> {
    return captureRun(this, { name: c.name, init: c.init, run: { index: c.restart, id: c.upload!.containerID, previous: false, ended: false }, salvage: true });
  }

  /**
   * An unfinished run of an earlier process that the kubelet no longer
   * serves (or whose pod is gone) is committed with what is durable, as a gap,
   * before the capture goes on with the runs that are served.
   */
  private async salvageUnserved(name: string): Promise<void> {
    for (const open of this.unfinished(name)) {
      const seen = await this.currentPod();
      if (seen.kind === 'unavailable') return;
      if (seen.kind === 'pod' && locateRun(containerView(containerStatus(seen.pod, name)), open.upload!.containerID)) continue;
      await this.salvageRun(open);
    }
  }

  /** The pod is gone: every unfinished object is committed as it is, then the outcome. */
  private async salvage(): Promise<void> {
    const ends = new Map<string, RunEnd>();
    for (const c of this.status.containers) if (!ends.has(c.name)) ends.set(c.name, this.resumePoint(c.name).end);
    for (const c of this.unfinished()) ends.set(c.name, worse(ends.get(c.name) ?? { kind: 'stored' }, await this.salvageRun(c)));
    this.signal.throwIfAborted();
    await this.conclude([...ends.values()]);
  }

  /** Where an earlier process of this capture stopped: the last run it finished. */
  private resumePoint(name: string): { last: Captured | undefined; end: RunEnd } {
    const done = this.status.containers.filter((c) => c.name === name && (c.state === 'Stored' || c.state === 'Gap' || c.state === 'Failed'));
    const lost = (this.status.uncapturedRuns ?? []).filter((r) => r.container === name);
    let end: RunEnd = { kind: 'stored' };
    for (const c of done) if (c.state !== 'Stored') end = worse(end, { kind: c.state === 'Gap' ? 'partial' : 'failed', reason: (c.lastError ?? 'LogGap').split(':')[0]!, message: c.lastError ?? '' });
    for (const r of lost) end = worse(end, { kind: 'partial', reason: r.reason, message: lostMessage(name, r.fromRestart, r.toRestart) });
    const indexes = [...done.map((c) => c.restart), ...lost.map((r) => r.toRestart)];
    if (indexes.length === 0) return { last: undefined, end };
    return { last: { index: Math.max(...indexes), id: '' }, end };
  }

  /** Captures every run of one container until it will not run again. */
  private async captureContainer(name: string, init: boolean): Promise<RunEnd> {
    await this.salvageUnserved(name);
    let { last, end } = this.resumePoint(name);
    while (true) {
      this.signal.throwIfAborted();
      const seen = await this.currentPod();
      const open = seen.kind === 'gone' ? this.unfinished(name)[0] : undefined;
      if (open) return worse(end, await this.salvageRun(open));
      if (seen.kind === 'gone') return worse(end, { kind: last ? 'partial' : 'failed', reason: 'PodDeleted', message: `pod ${this.spec.podName} was deleted` });
      if (seen.kind === 'unavailable') {
        this.flushRunEnd();
        await this.waitPodChange(2000);
        continue;
      }
      const pod = seen.pod;
      const view = containerView(containerStatus(pod, name));
      const decision = nextRun(view, last);
      if (decision.kind === 'wait') {
        if (!last && podTerminal(pod)) {
          // The pod ended without ever running this container (e.g. an init
          // container failed first). Nothing was written, nothing is missing.
          Object.assign(this.entry(name, 0, init), { state: 'Waiting', reason: 'NeverStarted' });
          return end;
        }
        if (last && !this.mayRunAgain(pod, name, init, last.index)) return end;
        this.flushRunEnd();
        await this.waitPodChange(2000);
        continue;
      }
      if (decision.lost) {
        // Reported as ranges (status.uncapturedRuns, capped), never guessed.
        const { from, to } = decision.lost;
        Object.assign(this.status, addUncapturedRuns(this.status, { container: name, init, fromRestart: from, toRestart: to, reason: 'LogGap' }));
        end = worse(end, { kind: 'partial', reason: 'LogGap', message: lostMessage(name, from, to) });
      }
      // What the decision was made from: a later diagnosis of a run lost or misread needs it.
      this.log.info('run chosen', { container: name, restart: decision.run.index, containerID: decision.run.id, previous: decision.run.previous, lost: decision.lost, seen: viewSummary(view) });
      this.flushRunEnd();
      const runEnd = await captureRun(this, { name, init, run: decision.run });
      end = worse(end, runEnd);
      // A container restarted for weeks must not grow the status past etcd's limit.
      const trimmed = trimContainerEntries(this.status.containers, this.status.storedRunsDropped ?? 0);
      this.status.containers = trimmed.containers;
      if (trimmed.storedRunsDropped > 0) this.status.storedRunsDropped = trimmed.storedRunsDropped;
      last = { index: decision.run.index, id: decision.run.id };
      if (runEnd.kind === 'failed' && runEnd.reason !== 'LogGap') return end;
    }
  }

  /** After run `index` ended: will the kubelet start this container again? */
  private mayRunAgain(pod: V1Pod, name: string, init: boolean, index: number): boolean {
    const spec = init ? pod.spec?.initContainers?.find((c) => c.name === name) : undefined;
    return willRestart({
      init,
      sidecar: init && spec?.restartPolicy === 'Always',
      podPolicy: pod.spec?.restartPolicy,
      exitCode: this.status.containers.find((c) => c.name === name && c.restart === index)?.exitCode,
      podTerminal: podTerminal(pod),
    });
  }

  private async conclude(ends: RunEnd[]): Promise<void> {
    const finals = new Map<string, ContainerCapture>();
    for (const c of this.status.containers) {
      const prev = finals.get(c.name);
      if (!prev || c.restart > prev.restart) finals.set(c.name, c);
    }
    const seen = await this.outcomeRead(ends, [...finals.values()]);
    const stored = this.status.containers.filter((c) => !!c.object).length;
    const o = outcome({
        ends,
        storedAny: stored > 0,
        storedCount: stored,
        podPhase: seen.kind === 'pod' ? seen.pod.status?.phase : undefined,
        podGone: seen.kind === 'gone',
        podDeleted: seen.kind === 'pod' && deletedBeforeTerminated({
          ...(this.deletionRequested !== undefined ? { deletionTimestamp: new Date(this.deletionRequested), deletionGracePeriodSeconds: 0 } : { deletionTimestamp: seen.pod.metadata?.deletionTimestamp, deletionGracePeriodSeconds: seen.pod.metadata?.deletionGracePeriodSeconds }),
          finishedAts: [...finals.values()].map((c) => c.finishedAt),
        }),
        lastExitCodes: [...finals.values()].map((c) => c.exitCode),
    });
    // Every object stored, and still not Complete: malformed lines, uncaptured runs.
    const blocker = o.phase === 'Complete' ? completeBlocker(this.status.containers, this.status) : undefined;
    await this.finish(blocker ? { ...o, phase: 'Incomplete', ...blocker } : o);
  }

  /**
   * The pod read the outcome is decided from: the informer's copy when it
   * already shows every container's last captured run ended (decidedByCopy
   * says why that is as good as a read now), else a direct read.
   */
  private async outcomeRead(ends: RunEnd[], finals: ContainerCapture[]): Promise<PodObservation> {
    const pod = this.cachedPod();
    if (pod) {
      const views: Record<string, ContainerView | undefined> = {};
      for (const f of finals) views[f.name] = containerView(containerStatus(pod, f.name));
      if (decidedByCopy({ ends, finals, views })) {
        this.endStep('outcomeFromCache');
        return { kind: 'pod', pod };
      }
    }
    const seen = await this.observePod();
    this.endStep('outcomeRead');
    return seen;
  }

  // ------------------------------------------------------------------ hold

  /** The PodHeld condition; written with the next status write. */
  private setHoldCondition(status: 'True' | 'False', reason: string, message: string): void {
    this.status.conditions = setCondition(this.status.conditions, { type: 'PodHeld', status, reason, message, observedGeneration: this.generation }, new Date(this.clock.now()));
  }

  /** spec.holdPod: place the hold (or say why not) once the capture is bound to its pod. */
  private async startHold(): Promise<void> {
    const hold = this.deps.hold;
    if (!hold) {
      this.setHoldCondition('False', HoldReason.HoldNotPermitted, 'spec.holdPod is set but this operator cannot hold pods: capturing without a hold');
      return;
    }
    this.hold = new PodHold({
      api: hold.api,
      enabled: hold.enabled,
      logger: this.log,
      clock: this.clock,
      namespace: this.ns,
      podName: this.spec.podName,
      logTailUid: this.lt.metadata.uid!,
      holdTimeoutMs: this.spec.holdTimeoutMs,
      podUid: () => this.status.podUID,
      previous: () => this.status.conditions?.find((c) => c.type === 'PodHeld')?.reason,
      setCondition: (status, reason, message) => {
        this.setHoldCondition(status, reason, message);
        if (!isTerminalPhase(this.status.phase)) void this.publish(true).catch(() => undefined);
      },
      event: (type, reason, message) => void this.event(type, reason, message),
      signal: this.signal,
    });
    await this.hold.sync();
  }

  /** Terminal status, then exactly one terminal event (its name is derived from the LogTail's UID). */
  private async finish(o: Outcome): Promise<void> {
    if (this.hold) {
      // The pod may go once the hold is released: what was committed must be in status first (a restart
      // with the pod gone could not find the object otherwise). Without a hold the terminal write carries it.
      await this.publish(true);
      this.endStep('storedWritten');
      // Every object is committed (or the capture ended otherwise): the pod may go.
      await this.hold.sync(true).catch((err: unknown) => this.log.warn('hold not released; the controller will', { error: String(err) }));
    }
    this.status.result = o.result;
    this.status.exitCode = o.exitCode;
    this.status.completionTime = new Date(this.clock.now()).toISOString();
    this.setPhase(o.phase, o.reason, o.message);
    this.truncatedCondition();
    await this.publish(true, true);
    this.endStep('terminalWritten');
    this.step('terminal status written', { phase: o.phase });
    this.deps.metrics?.capturesFinished.inc({ phase: o.phase, result: o.result });
    const exits = this.status.containers.map((c) => Date.parse(c.finishedAt ?? '')).filter((t) => Number.isFinite(t));
    if (o.phase === 'Complete' && exits.length > 0) this.deps.metrics?.exitToCompleteSeconds.observe(Math.max(0, (this.clock.now() - Math.max(...exits)) / 1000));
    const uid = this.lt.metadata.uid ?? this.lt.metadata.name!;
    // After the terminal status, never before it: the event does not delay `Complete`.
    await this.event(o.phase === 'Complete' ? 'Normal' : 'Warning', o.phase, `${o.reason}: ${o.message}`, `${this.lt.metadata.name}.${uid.slice(0, 8)}.finished`);
    this.step('terminal event created');
    this.endStep('event');
    this.logEndSteps();
    this.log.info('capture finished', { phase: o.phase, result: o.result, reason: o.reason, bytes: this.status.bytes, retries: this.status.retries });
  }
}
