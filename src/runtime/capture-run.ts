// Reads one run of one container into one object. A loop of passes, each
// decided by src/core/capture:
// - while the run is running: a follow stream from the checkpoint;
// - once it has ended: a `tailLines` proof window (core/capture/drain.ts);
//   when that shows more, a read from the checkpoint; when it is
//   inconclusive, again within the retry budget, then Incomplete/DrainUnproven.
// Before and after every request the pod is read again: another UID under
// the pod's name ends the run as PodDeleted, and the run is located by its
// container ID ("current" or "previous", core/capture/runs.ts). After a
// follow stream, the informer's copy showing the run ended stands for the
// read before the proof window (locateInCopy).
import { createHash } from 'node:crypto';
import { CaptureError } from '../adapters/errors.ts';
import { Backoff } from '../adapters/retry.ts';
import type { CommitMeta, DurableUpload, ObjectWriter } from '../adapters/store/types.ts';
import { judgeWindow, proofPlan, type StoredSoFar } from '../core/capture/drain.ts';
import { classifyStreamFailure, giveUpReason, isStoreReason } from '../core/capture/failure.ts';
import { ErrorTail, removedContainerText, responseError } from '../core/capture/kubelet-error.ts';
import type { RunEnd } from '../core/capture/outcome.ts';
import { containerView, locateRun, type ServedRun, viewSummary } from '../core/capture/runs.ts';
import { originLabels } from '../core/object-labels.ts';
import { POLICY_LABEL } from '../core/policy.ts';
import { ResumeFilter, ResumeMismatchError, stampedInLaterSecond } from '../core/resume-filter.ts';
import { type ContainerCapture, Reason, UPLOAD_FORMAT, type UploadCheckpoint, addUncapturedRuns } from '../core/status.ts';
import type { CaptureDaemon } from './capture-daemon.ts';
import { containerStatus, podTerminal } from './capture-ports.ts';
import { ContentSink } from './content-sink.ts';
import { type RunSink, TruncatingSink } from './truncating-sink.ts';
import { isHandover, openForRun, readBack, runKey } from './capture-continuation.ts';
import type { SlotLease } from './semaphore.ts';
import { yieldSlot } from './slot-preemption.ts';

/** Output is batched up to this size while more input is already queued. */
const FLUSH_BYTES = 512 << 10;
/** Reads that add nothing before a run whose end cannot be proven is committed as it is. */
const QUIET_READS_BEFORE_UNPROVEN = 3;
/** Most records a proof window is widened by. */
const MAX_WINDOW_EXTRA = 4096;
/** Why a window during which the run moved between "current" and "previous" proves nothing. */
const MOVED_WHY = 'the run moved between "current" and "previous" during the window';
/** Windows of a moved run asked again at once, without a back-off (a run moves once per restart). */
const MAX_MOVED_WINDOWS = 3;
/** A proof window larger than this is not read to its end (it is inconclusive). */
const WINDOW_MAX_BYTES = 16 << 20;

/** A log response that belongs to another run than the one asked for (RunCapture.foreignStart). */
class ForeignRun extends Error {}

export interface RunTarget {
  name: string;
  init: boolean;
  run: ServedRun;
  /** The pod is gone: only an unfinished object of an earlier process is committed, nothing is read. */
  salvage?: boolean;
}

type Where = { kind: 'run'; run: ServedRun; podTerminal: boolean } | { kind: 'gone'; replaced: boolean } | { kind: 'unavailable'; message: string } | { kind: 'unserved' };

/** `discard`: nothing of it is stored (the upload is aborted). */
type Gap = { reason: string; message: string; discard?: boolean };

export async function captureRun(d: CaptureDaemon, t: RunTarget): Promise<RunEnd> {
  const c = d.entry(t.name, t.run.index, t.init);
  // Slots are shared fairly between namespaces (core/fair-share): this one may wait with slots free (its cap, or older waiters elsewhere).
  if (d.deps.slots.wouldWait(d.ns) && d.status.phase === 'Pending') {
    const cap = d.deps.slots.perNamespaceCap;
    d.setPhase('Pending', 'WaitingForSlot', `waiting for a stream slot (--max-concurrent-streams=${d.deps.slots.capacity}${cap ? `, --max-streams-per-namespace=${cap}` : ''}; ${d.deps.slots.heldBy(d.ns)} held by this namespace)`);
    await d.publish(true);
  }
  const lease = await d.deps.slots.acquireLease(d.ns, d.signal, d);
  d.step('slot acquired', { container: t.name });
  d.deps.metrics?.activeStreams.inc();
  try {
    let opened: Awaited<ReturnType<typeof openForRun>>;
    try {
      opened = await openForRun(d, c, t.run.id, objectKey(d, t));
      d.step('object opened', { container: t.name, continued: opened.resume !== undefined });
    } catch (err) {
      return failRun(d, c, err);
    }
    if (t.salvage && !opened.resume) {
      // The pod is gone and nothing durable could be continued: no object.
      await opened.writer.abort().catch(() => undefined);
      const message = `pod ${d.spec.podName} was deleted before ${t.name} run ${t.run.index} was captured; the unfinished object of an earlier process could not be continued`;
      Object.assign(c, { state: 'Failed', lastError: `PodDeleted: ${message}`, bytes: 0, checkpoint: undefined });
      return { kind: 'failed', reason: 'PodDeleted', message };
    }
    return await new RunCapture(d, t, c, opened.writer, opened.resume, lease).execute();
  } finally {
    // A lease given back by a preemption and not regained holds nothing.
    if (lease.release()) d.deps.metrics?.activeStreams.dec();
  }
}

function objectKey(d: CaptureDaemon, t: RunTarget): string {
  return runKey(d.lt, d.spec, d.status, t.name, t.run.index);
}

function failRun(d: CaptureDaemon, c: ContainerCapture, err: unknown): RunEnd {
  if (d.signal.aborted) throw d.signal.reason;
  const cause = (err as { lastError?: unknown }).lastError ?? err;
  const reason = (cause as { reason?: string }).reason ?? 'InternalError';
  const message = String((cause as Error)?.message ?? cause);
  c.state = 'Failed';
  c.lastError = `${reason}: ${message}`;
  if (isStoreReason(reason)) d.deps.metrics?.storeErrors.inc({ reason });
  return { kind: 'failed', reason: giveUpReason(reason, 0), message };
}

class RunCapture {
  private readonly d: CaptureDaemon;
  private readonly t: RunTarget;
  private readonly c: ContainerCapture;
  private readonly writer: ObjectWriter;
  private readonly sink: RunSink;
  /** The hashing/compressing stage under `sink` (the same object without spec.maxBytes): what is durable is counted here. */
  private readonly content: ContentSink;
  private filter: ResumeFilter;
  private readonly backoff: Backoff;
  private readonly firstTimestampBefore: string | undefined;
  private run: ServedRun;
  /** What the object lacks, reported at commit (the first note, or what ended the run). */
  private gap: Gap | undefined;
  /** Reading this run is over (a gap ended it). */
  private stopped = false;
  /** Records added to the proof window after windows that did not reach back far enough. */
  private windowExtra = 0;
  /**
   * "current" answered with a later run's log (ForeignRun) while the pod
   * status still showed this ended run there: the kubelet has moved on, so
   * the run is located at "previous" from then on.
   */
  private movedOn = false;
  /** Windows of this run during which it moved (MAX_MOVED_WINDOWS). */
  private movedWindows = 0;
  /** Consecutive reads of an ended run whose end cannot be proven that added nothing. */
  private quietReads = 0;
  /** An ended run nothing of which was read yet is read from the top before any window (drainStep). */
  private readBeforeWindow = true;
  /** The run ended by the pod's phase, its terminated state never written. */
  private endedByPhase = false;
  /** A resumed request may continue past a missing checkpoint (the log was rotated). */
  private relaxed = false;
  /**
   * The last read started at the top of the log and stored bytes, and no read
   * of the pod since has shown ours still there: should another pod of the
   * same name show up now, those bytes may be that pod's.
   */
  private unconfirmedFromTop = false;
  /**
   * Something of this run was read: a request answered with its log (even an
   * empty one), or bytes an earlier process made durable. A run that ends
   * without that is not committed: it is listed in status.uncapturedRuns.
   */
  private answered: boolean;
  /** The last error text the kubelet appended to a 200 body (core/capture/kubelet-error.ts), kept for the run's final message. */
  private kubeletError: string | undefined;
  /** A read of the pod made at the end of a follow pass, for the next pass to use. */
  private located: Where | undefined;
  /** The last read after a request was the informer's copy (locateInCopy), no direct read since. */
  private fromCopy = false;
  private pieces: Buffer[] = [];
  private pendingBytes = 0;
  /** A relaxed read's bytes are held (not in the sink): the filter is ahead of the object. */
  private holding = false;
  /** When bytes were last made durable (or the run began). */
  private lastSync: number;
  /** The stream slot; a follow pass may be asked to give it back (slot-preemption.ts). */
  private readonly lease: SlotLease | undefined;

  constructor(d: CaptureDaemon, t: RunTarget, c: ContainerCapture, writer: ObjectWriter, resume?: UploadCheckpoint, lease?: SlotLease) {
    this.d = d;
    this.lease = lease;
    this.t = t;
    this.c = c;
    this.writer = writer;
    this.run = t.run;
    this.lastSync = d.clock.now();
    this.answered = resume !== undefined;
    this.content = new ContentSink(writer, d.spec.compression, resume ? { bytes: resume.bytes, objectBytes: resume.objectBytes } : undefined);
    // spec.maxBytes: head + marker + tail, before hashing and compression.
    const maxBytes = d.spec.maxBytes;
    this.sink = maxBytes === undefined ? this.content : new TruncatingSink(this.content, { maxBytes, timestamps: d.spec.timestamps, ...(d.deps.openSpool ? { openSpool: d.deps.openSpool } : {}) });
    // inPlace: the socket's chunks are ours; stripping timestamps then
    // compacts each chunk instead of copying it.
    this.filter = new ResumeFilter({ keepTimestamps: d.spec.timestamps, inPlace: true, checkpoint: resume?.checkpoint });
    this.backoff = new Backoff(d.spec.retry, { now: () => d.clock.now() });
    this.firstTimestampBefore = c.firstTimestamp;
    if (resume) {
      // Continued where the durable bytes end (capture-continuation.ts): the
      // filter resumes from their log position, as after a cut connection.
      const f = this.filter;
      f.bytes = resume.bytes;
      f.lines = resume.lines;
      f.malformedLines = resume.malformedLines ?? 0;
      f.firstTimestamp = c.firstTimestamp;
      if (resume.gap) {
        const at = resume.gap.indexOf(': ');
        this.gap = at > 0 ? { reason: resume.gap.slice(0, at), message: resume.gap.slice(at + 2) } : { reason: 'LogGap', message: resume.gap };
      }
      Object.assign(c, { bytes: resume.bytes, lines: resume.lines, checkpoint: { ...resume.checkpoint }, state: 'Streaming', lastError: undefined });
      return;
    }
    // A new object: from the top of the run (an earlier process's unfinished
    // object, if any, was not continuable and has been reported).
    Object.assign(c, { bytes: 0, lines: 0, checkpoint: undefined, state: 'Streaming', lastError: undefined, truncatedBytes: undefined, upload: undefined });
  }

  async execute(): Promise<RunEnd> {
    try {
      await this.announce();
      await this.passes();
      await this.confirmPod();
      if (this.gap && !this.gap.discard && this.filter.bytes === 0 && (!this.answered || this.gap.reason === Reason.ContainerRemoved)) return await this.uncaptured(this.gap);
      if (this.gap?.discard) {
        this.sink.destroy();
        this.c.upload = undefined;
        await this.writer.abort();
        this.c.state = 'Failed';
        this.c.lastError = `${this.gap.reason}: ${this.gap.message}`;
        this.c.bytes = 0;
        return { kind: 'failed', ...this.gap };
      }
      this.recordTermination();
      return await this.commit();
    } catch (err) {
      if (isHandover(this.d.signal)) {
        await this.handover();
        throw this.d.signal.reason;
      }
      this.sink.destroy();
      this.c.upload = undefined;
      await this.writer.abort().catch((e: unknown) => this.d.log.warn('abort of upload failed', { error: String(e) }));
      return failRun(this.d, this.c, err);
    }
  }

  /**
   * The capture goes to another process (operator exiting, leadership lost,
   * shard moved): what was read is made durable where the store can, the
   * checkpoint written, and the unfinished object left for the next owner.
   */
  private async handover(): Promise<void> {
    // A capture under spec.maxBytes is never continued (see checkpoint()): aborted, read again from the top.
    const cps = this.d.spec.maxBytes === undefined ? this.writer.checkpoints : undefined;
    try {
      // A held (relaxed) read's bytes are not confirmed as ours: the last checkpoint stands.
      if (cps && !this.holding) {
        await this.flush();
        await this.checkpoint(true);
      }
    } catch (err) {
      this.d.log.warn('final checkpoint failed; the last one stands', { container: this.t.name, error: String(err) });
    }
    this.sink.destroy();
    await (cps ? cps.release() : this.writer.abort()).catch((e: unknown) => this.d.log.warn('release of upload failed', { error: String(e) }));
    await this.d.publish(true);
  }

  /**
   * Makes the bytes written so far durable when due (file store: every
   * --status-interval and at the end of each read; S3: each time a part is
   * full) and records the log position at their end as the checkpoint a
   * later process continues from. Only right after a flush: then the
   * object's bytes end exactly at the filter's position.
   */
  private async checkpoint(final: boolean): Promise<void> {
    const cps = this.writer.checkpoints;
    // spec.maxBytes: the tail waits in a local spool until the run ends, so
    // no durable prefix matches a log position past the head: not continued.
    if (!cps || this.holding || this.d.spec.maxBytes !== undefined) return;
    const cp = this.filter.checkpoint();
    if (!cp || this.content.bytes !== this.filter.bytes || this.pendingBytes > 0) return;
    const hint = cps.syncHint();
    const unsynced = this.content.bytes > (this.c.upload?.bytes ?? 0);
    const due = final || this.d.clock.now() - this.lastSync >= this.d.deps.statusIntervalMs;
    if (!(hint === 'now' || (cps.mode === 'fsync' && unsynced && due))) return;
    this.lastSync = this.d.clock.now();
    await this.content.endMember();
    const f = this.filter;
    const at: Omit<UploadCheckpoint, 'id' | 'parts' | 'objectBytes'> = {
      format: UPLOAD_FORMAT,
      containerID: this.run.id,
      bytes: f.bytes,
      lines: f.lines,
      ...(f.malformedLines > 0 ? { malformedLines: f.malformedLines } : {}),
      checkpoint: { time: cp.time, ordinal: cp.ordinal, offset: cp.offset },
      ...(this.gap ? { gap: `${this.gap.reason}: ${this.gap.message}`.slice(0, 2048) } : {}),
    };
    const { durable } = await cps.sync();
    const record = (u: DurableUpload | undefined) => {
      if (!u || u.objectBytes <= (this.c.upload?.objectBytes ?? 0) || this.c.state !== 'Streaming') return;
      // The CRD bounds these (a status the apiserver refuses would lose every other field too).
      if (u.id.length > 1024 || at.containerID.length > 256) return;
      this.c.upload = { ...at, id: u.id, objectBytes: u.objectBytes, ...(u.parts !== undefined ? { parts: u.parts } : {}) } as UploadCheckpoint;
    };
    if (final) record(await durable);
    else void durable.then(record);
  }

  /**
   * Nothing of the run was read (the kubelet had removed its container, or no
   * longer served it, before any request was answered with its log): no
   * object, the run is listed in status.uncapturedRuns with the reason.
   */
  private async uncaptured(g: Gap): Promise<RunEnd> {
    const d = this.d;
    await this.writer.abort();
    d.status.containers = d.status.containers.filter((x) => x !== this.c);
    const { name, init } = this.t;
    const index = this.run.index;
    Object.assign(d.status, addUncapturedRuns(d.status, { container: name, init, fromRestart: index, toRestart: index, reason: g.reason }));
    // Written in order, not awaited (the next run may be served only for seconds); after the last run, with the terminal status.
    d.runEnded();
    return { kind: 'partial', reason: g.reason, message: g.message };
  }

  private async announce(): Promise<void> {
    const d = this.d;
    if (d.status.phase !== 'Pending') return;
    d.setPhase('Streaming', 'Streaming', `capturing the log of pod ${d.spec.podName}`);
    // Not awaited: the first read must not wait for the apiserver (a status
    // write took seconds under load while the run's log was still served).
    void d.publish(true);
    void d.event('Normal', 'Streaming', `capturing the log of pod ${d.spec.podName}`);
  }

  /** Until the run is drained (proven), or a gap ends it. */
  private async passes(): Promise<void> {
    while (!this.stopped) {
      this.d.signal.throwIfAborted();
      // A follow pass that just read the pod hands its read on: no second GET.
      const where = this.located ?? (await this.locate());
      if (!this.located) this.d.step('pod read before a pass', { container: this.t.name });
      this.located = undefined;
      if (where.kind !== 'run') {
        this.end(this.gapFor(where));
        return;
      }
      this.run = where.run;
      if (!this.run.ended && !this.endedByPhase) await this.followPass(where.podTerminal);
      else if (await this.drainStep()) return;
    }
  }

  /** A gap the capture continues past (e.g. a rotated log): reported, reading goes on. */
  private note(g: Gap): void {
    if (!this.gap) this.gap = g;
  }

  /** A gap that ends reading this run; an earlier note is kept in the message. */
  private end(g: Gap): void {
    this.stopped = true;
    const prev = this.gap;
    this.gap = prev && !g.discard ? { ...g, message: `${g.message}; ${prev.message}` } : g;
    if (this.kubeletError && !g.discard) this.gap = { ...this.gap, message: `${this.gap.message}; ${this.kubeletError}` };
  }

  private gapFor(where: Exclude<Where, { kind: 'run' }>): Gap {
    const { name } = this.t;
    const pod = this.d.spec.podName;
    if (where.kind === 'gone') {
      if (where.replaced && this.unconfirmedFromTop) {
        return { reason: 'PodDeleted', message: `pod ${pod} was replaced by another pod of the same name right as ${name} was read; nothing stored`, discard: true };
      }
      const message = where.replaced ? `pod ${pod} was replaced by another pod of the same name while ${name} was captured` : `pod ${pod} was deleted while ${name} was captured; its log may be cut short`;
      return { reason: 'PodDeleted', message };
    }
    const kept = this.answered ? 'stored what was read' : 'nothing of it was read';
    if (where.kind === 'unavailable') return { reason: 'ApiUnavailable', message: `${name} run ${this.run.index}: ${where.message}; ${kept}` };
    return { reason: 'LogGap', message: `${name} run ${this.run.index}: the kubelet no longer serves it (the pod's status no longer names container ${this.run.id}); ${kept}` };
  }

  /**
   * Where the run is, from the informer's copy of our pod, when that copy
   * shows the run ended (else undefined: read the pod). Used after a follow
   * stream, as the read before the proof window: runs only move on (current,
   * previous, gone), so a run at the same place in this earlier copy and in
   * the direct read after the window was there during the window too, as
   * with a direct read before it; and that read after the window confirms
   * our pod (by UID) after the follow request as well (unconfirmedFromTop
   * stays set until a direct read; confirmPod() reads directly if none came).
   */
  private locateInCopy(): Where | undefined {
    const pod = this.d.cachedPod();
    if (!pod) return undefined;
    const run = locateRun(containerView(containerStatus(pod, this.t.name)), this.run.id);
    if (!run?.ended) return undefined;
    this.fromCopy = true;
    return { kind: 'run', run: { ...run, index: this.run.index, previous: run.previous || this.movedOn }, podTerminal: podTerminal(pod) };
  }

  /**
   * A read from the top stored bytes and only the informer's copy was read
   * after it (the drain then ended without its direct read, e.g. a window
   * request refused for good): read the pod now, as the read after the follow
   * request would have, before anything is committed.
   */
  private async confirmPod(): Promise<void> {
    if (!this.fromCopy || !this.unconfirmedFromTop) return;
    const where = await this.locate();
    if (where.kind === 'gone' || where.kind === 'unavailable') this.end(this.gapFor(where));
  }

  /** A fresh read of the pod, and where the run is served now. */
  private async locate(): Promise<Where> {
    this.fromCopy = false;
    const seen = await this.d.observePod();
    if (seen.kind === 'unavailable') return seen;
    if (seen.kind === 'gone') return seen;
    // Our pod exists after the last read: that read was of our pod (two pods
    // of one name never exist at once).
    this.unconfirmedFromTop = false;
    const view = containerView(containerStatus(seen.pod, this.t.name));
    const run = locateRun(view, this.run.id);
    if (!run) {
      this.d.log.info('run no longer in the pod status', { container: this.t.name, restart: this.run.index, containerID: this.run.id, seen: viewSummary(view) });
      return { kind: 'unserved' };
    }
    return { kind: 'run', run: { ...run, index: this.run.index, previous: run.previous || this.movedOn }, podTerminal: podTerminal(seen.pod) };
  }

  // ------------------------------------------------------------- passes

  /** Follows the running run from the checkpoint until its stream ends. */
  private async followPass(terminal: boolean): Promise<void> {
    // Only a running container's follow stream may be preempted: it stops like a cut connection (read and checkpointed) and resumes from the checkpoint.
    this.lease?.following(true);
    const r = await this.read(true);
    this.d.endStep('streamEnded');
    if (this.lease?.following(false) && !this.stopped) return yieldSlot(this.d, this.lease, this.t.name);
    if (r.error) return this.onFailure(r.error, r.progressed, false);
    if (this.stopped) return;
    const where = (await this.endFromCopy()) ?? (await this.locate());
    this.d.endStep('located');
    if (where.kind !== 'run') {
      this.end(this.gapFor(where));
      return;
    }
    if (where.run.ended) {
      this.located = where;
      return;
    }
    if (where.podTerminal || terminal) {
      // The phase can turn terminal before state.terminated is written:
      // wait for it within the terminated-state budget.
      if (!(await this.awaitTerminated())) this.endedByPhase = true;
      return;
    }
    // The kubelet ends a follow stream once the runtime says the container
    // is no longer running; the pod status says so only after its next
    // relist and status write (docs/design.md *The end of a capture*). The
    // retry's wait is spent on the pod's events: the run shown ended there is
    // the container's exit, not a failure, and nothing is counted.
    await this.onFailure(new CaptureError('StreamEnded', 'transient', `the log stream of ${this.t.name} ended while the container is still running`), r.progressed, false, () => this.endShown(true));
    // The pod's event showed the end within the retry's wait: the next pass starts from that copy.
    this.located ??= this.locateInCopy();
  }

  /**
   * After a follow stream ended: where the run is, from the informer's copy
   * once that shows the run ended, waiting on the pod's events at most the
   * retry policy's first interval (the kubelet ends the stream at the
   * container's exit, before its status says so: step 7 in docs/design.md).
   * Undefined when the copy does not show it by then: read the pod.
   */
  private async endFromCopy(): Promise<Where | undefined> {
    await this.d.waitUntil(() => this.endShown(false), this.d.spec.retry.initialIntervalMs);
    return this.locateInCopy();
  }

  /**
   * The informer's copy of our pod shows this run ended (`orTerminal`: or the
   * pod's phase terminal); the next pass then reads the pod directly. Only
   * that evidence ends a wait early: a copy that lacks the pod or the run may
   * just be behind, and the wait then runs its course.
   */
  private endShown(orTerminal: boolean): boolean {
    const pod = this.d.cachedPod();
    if (!pod) return false;
    if (orTerminal && podTerminal(pod)) return true;
    return locateRun(containerView(containerStatus(pod, this.t.name)), this.run.id)?.ended === true;
  }

  /** True when the pod showed the run ended within the terminated-state budget. */
  private async awaitTerminated(): Promise<boolean> {
    const b = new Backoff(this.d.spec.terminatedRetry, { now: () => this.d.clock.now() });
    for (let delay = b.next(); delay !== undefined; delay = b.next()) {
      // Woken by the pod's event showing the run ended; the back-off only bounds the wait for one.
      await this.d.waitUntil(() => this.endShown(false), delay);
      const where = this.locateInCopy() ?? (await this.locate());
      if (where.kind !== 'run') return false;
      if (where.run.ended) {
        // Handed on: the drain's first pass needs no second read.
        this.located = where;
        return true;
      }
    }
    this.c.lastError = `TerminatedStateMissing: ${this.t.name} has no terminated state after ${Math.round(this.d.spec.terminatedRetry.maxElapsedMs / 1000)} s`;
    return false;
  }

  /** One step of draining an ended run; true when it is finished (drained, or given up). */
  private async drainStep(): Promise<boolean> {
    const plan = proofPlan(this.stored());
    if (this.readBeforeWindow && plan.kind === 'window' && !this.answered && this.filter.bytes === 0 && !this.filter.checkpoint()) {
      // Nothing of the run read yet: a window could only prove its log empty,
      // and a log with lines needs this read and a window after it anyway. So
      // the read comes first (one request and one pod read fewer before the
      // first byte); the window after it proves the end, of an empty log too.
      this.readBeforeWindow = false;
      const r = await this.read(false);
      if (r.error) await this.onFailure(r.error, r.progressed, true);
      return this.stopped;
    }
    this.readBeforeWindow = false;
    if (plan.kind === 'impossible') {
      const r = await this.read(false);
      if (r.error) return this.onFailure(r.error, r.progressed, true).then(() => this.stopped);
      if (this.stopped) return true;
      // Nothing can prove this end; a read that adds nothing may still have
      // been cut, so a few are asked before the run is committed as it is.
      this.quietReads = r.progressed ? 0 : this.quietReads + 1;
      if (this.quietReads >= QUIET_READS_BEFORE_UNPROVEN) this.end({ reason: 'DrainUnproven', message: `${this.t.name} run ${this.run.index}: ${plan.why}` });
      else if (!r.progressed) await this.d.clock.sleep(this.backoff.next() ?? 0, this.d.signal);
      return this.stopped;
    }
    const verdict = await this.proofWindow(plan.tailLines + this.windowExtra);
    if (this.stopped) return true;
    if (verdict.kind === 'failed') {
      // A failed request (kubelet unreachable, 5xx, ...), not an inconclusive proof: its own reason and budget.
      await this.onFailure(verdict.error, false, true);
      return this.stopped;
    }
    if (verdict.kind === 'drained') {
      // An empty log that an earlier process of this capture saw lines in: rotated away.
      if (this.filter.bytes === 0 && this.firstTimestampBefore) {
        this.end({ reason: 'LogGap', message: `${this.t.name} run ${this.run.index}: an earlier read saw its log start at ${this.firstTimestampBefore}; the kubelet now serves none of it (rotated)` });
      }
      return true;
    }
    if (verdict.kind === 'more') {
      const r = await this.read(false);
      if (r.error) await this.onFailure(r.error, r.progressed, true);
      else if (this.stopped) return true;
      // The window showed more than a read from the checkpoint brings (e.g. a
      // window starting inside a long line): that is no proof either way.
      else if (!r.progressed) await this.countFailure('DrainUnproven', `${verdict.why}, but a read from the checkpoint adds nothing`, false);
      return this.stopped;
    }
    this.d.log.debug('drain not proven yet', { container: this.t.name, restart: this.run.index, why: verdict.why });
    // Lines longer than one record before the last line: reach further back.
    if (verdict.wider) this.windowExtra = Math.min(MAX_WINDOW_EXTRA, Math.max(1, this.windowExtra * 2));
    // The run moved (the next run was created): asked again at once where it
    // is now, not after a back-off (the GC removes it when that next run ends).
    if (verdict.why === MOVED_WHY && this.movedWindows++ < MAX_MOVED_WINDOWS) return false;
    await this.countFailure('DrainUnproven', verdict.why, false);
    return this.stopped;
  }

  private stored(): StoredSoFar {
    const cp = this.filter.checkpoint();
    return { checkpoint: cp, bytes: this.filter.bytes, lines: this.filter.lines };
  }

  /** Asks for the last `n` records of the ended run; the run must be where it was before and after. */
  private async proofWindow(n: number, confirming = false): Promise<Exclude<ReturnType<typeof judgeWindow>, { kind: 'confirm' }> | { kind: 'failed'; error: unknown }> {
    const before = this.run;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      const stream = await this.d.deps.logs.open(this.request({ follow: false, tailLines: n }));
      for await (const chunk of stream) {
        chunks.push(Buffer.from(chunk));
        size += chunk.length;
        if (size > WINDOW_MAX_BYTES) {
          stream.close();
          return { kind: 'inconclusive', why: `the window is larger than ${WINDOW_MAX_BYTES} bytes` };
        }
      }
    } catch (err) {
      this.d.signal.throwIfAborted();
      return { kind: 'failed', error: err };
    }
    this.d.endStep('window');
    this.d.step('proof window read', { container: this.t.name, tailLines: n, bytes: size });
    const where = await this.locate();
    this.d.endStep('windowLocated');
    this.d.step('pod read after the window', { container: this.t.name });
    if (where.kind !== 'run') {
      const g = this.gapFor(where);
      this.end(g);
      return { kind: 'inconclusive', why: g.message };
    }
    // The run moved between "current" and "previous" during the window (the
    // next run was created): the window may be either run's log.
    const moved = where.run.previous !== before.previous;
    const body = Buffer.concat(chunks, size);
    const verdict = responseError(body, this.removedText());
    if (verdict.kind === 'whole' || verdict.kind === 'trailing') {
      // The kubelet no longer has the container (the text names its ID): nothing more can be read or proven.
      this.removed();
      return { kind: 'inconclusive', why: 'the kubelet had removed the container' };
    }
    if (moved && !this.filter.checkpoint()) return { kind: 'inconclusive', why: MOVED_WHY };
    if (verdict.kind === 'text') return { kind: 'inconclusive', why: `the kubelet ended the window with an error: ${verdict.text.slice(0, 300)}` };
    const judged = judgeWindow(body, this.stored(), n, confirming);
    this.d.step('proof window judged', { container: this.t.name, verdict: judged.kind });
    // A window that proves the end ends with our checkpoint line (its
    // nanosecond timestamp, ordinal and length): another run's log cannot, so
    // it is this run's even if the run moved. Anything else from a moved
    // window says nothing (it may be the next run's).
    if (moved && judged.kind !== 'drained') return { kind: 'inconclusive', why: MOVED_WHY };
    // A single stored line: proven only by a second window, one record wider, holding it alone.
    if (judged.kind === 'confirm') return this.proofWindow(judged.tailLines, true);
    // Only a window proving the end counts as a read of this run (it may be another run's: foreignStart).
    if (judged.kind === 'drained') this.answered = true;
    return judged;
  }

  private request(o: { follow: boolean; tailLines?: number }) {
    const resuming = this.filter.checkpoint() !== undefined || this.filter.bytes > 0;
    return {
      namespace: this.d.ns,
      pod: this.d.spec.podName,
      container: this.t.name,
      follow: o.follow,
      timestamps: true,
      sinceTime: o.tailLines === undefined && resuming ? this.filter.sinceTime() : undefined,
      tailLines: o.tailLines,
      previous: this.run.previous || undefined,
      idleTimeoutMs: this.d.deps.idleTimeoutMs,
      // A follow stream also stops when its slot is asked back.
      signal: o.follow && this.lease ? AbortSignal.any([this.d.signal, this.lease.signal]) : this.d.signal,
    };
  }

  /** The text the kubelet answers (200) for this run once its container is removed; undefined without a container ID. */
  private removedText(): Buffer | undefined {
    return this.run.id.includes('://') ? removedContainerText(this.run.id) : undefined;
  }

  /** The kubelet answered that the run's container is gone: reading it is over. */
  private removed(): void {
    const { name } = this.t;
    const what = `${name} run ${this.run.index}: the kubelet had removed its container ${this.run.id} (its GC keeps one dead container per container) and answered "unable to retrieve container logs"`;
    this.end({ reason: Reason.ContainerRemoved, message: this.filter.bytes > 0 ? `${what}; stored what was read before, its end is not proven` : `${what}; nothing of it was read` });
  }

  /** One request read through the resume filter into the object. */
  private async read(follow: boolean): Promise<{ progressed: boolean; fromTop: boolean; error?: unknown }> {
    const fromTop = this.filter.checkpoint() === undefined && this.filter.bytes === 0;
    const before = this.filter.bytes;
    // A relaxed read (past a missing checkpoint) is the one read that cannot
    // tell our pod's log from another's: it is bounded (no follow), held in
    // memory, and stored only if the pod is still ours afterwards.
    const hold = this.relaxed;
    this.relaxed = false;
    this.holding = hold;
    let error: unknown;
    /** A read of our pod by UID made while this read from the top was open (confirmWhileOpen). */
    let confirmed: Promise<boolean> | undefined;
    const readEnded = new AbortController();
    // The kubelet's error text arrives in a 200 body after the last newline
    // (core/capture/kubelet-error.ts): held back, never stored.
    const tail = new ErrorTail(this.removedText());
    try {
      const stream = await this.d.deps.logs.open(this.request({ follow: follow && !hold }));
      this.d.step('log stream open', { container: this.t.name, follow, fromTop });
      // Every resumed request is strict: a stream without our checkpoint line
      // is another run, another pod, or a rotated log, decided in onMismatch.
      this.filter.beginConnection({ strict: !hold });
      // A read from the top of an ended run: its first line shows whose log it is.
      let unchecked = fromTop;
      const check = (): void => {
        if (!unchecked || (this.filter.firstTimestamp === undefined && this.pendingBytes === 0)) return;
        unchecked = false;
        const foreign = this.foreignStart();
        if (foreign) {
          stream.close();
          throw new ForeignRun(foreign);
        }
      };
      let first = true;
      for await (const chunk of stream) {
        if (first) {
          first = false;
          this.d.step('first log bytes', { container: this.t.name });
        }
        for (const piece of tail.push(chunk)) this.filter.push(piece, this.emit);
        check();
        if (!hold && (this.pendingBytes >= FLUSH_BYTES || (this.pendingBytes > 0 && stream.queuedBytes === 0))) {
          if (fromTop && !confirmed) confirmed = this.confirmWhileOpen(readEnded.signal);
          await this.flush();
          await this.checkpoint(false);
        }
      }
      this.d.step('log stream ended', { container: this.t.name, wireBytes: stream.bytesReceived });
      const end = tail.end();
      if (end.rest.length) this.filter.push(end.rest, this.emit);
      check();
      this.afterConnection();
      if (!end.matched && end.dropped.length === 0) this.answered = true;
      if (end.matched) this.removed();
      else if (end.dropped.length > 0) throw this.appendedError(end.dropped);
      else if (this.filter.resuming) throw new CaptureError('StreamEnded', 'transient', `the log stream of ${this.t.name} ended before reaching the resume point ${this.filter.sinceTime() ?? ''}`);
    } catch (err) {
      if (this.d.signal.aborted) throw this.d.signal.reason;
      error = err;
      if (err instanceof ForeignRun) this.dropRead();
    }
    // The stream is over: a confirmation not begun yet is not needed (the read after it confirms).
    readEnded.abort();
    // What the filter emitted before a break is part of the log: store it.
    if (hold) await this.releaseHeld();
    else await this.flush();
    this.holding = false;
    if (!this.stopped) await this.checkpoint(true);
    this.d.step('read stored', { container: this.t.name, bytes: this.filter.bytes });
    if (fromTop && this.filter.bytes > 0) this.unconfirmedFromTop = !(await confirmed);
    return { progressed: this.filter.bytes > before, fromTop, error };
  }

  /**
   * A read of the pod by UID made while a read from the top is still open
   * one --status-interval after it brought bytes (its request was answered):
   * our pod then means our pod when the request was made (it was ours at the
   * check before too, and two pods of one name never exist at once).
   * Otherwise only the read after the stream confirmed it, and a pod
   * replaced under a long stream, the new one seen first, discarded
   * everything read of the old one (F15). A read shorter than that pays no
   * extra request (the read after it confirms it, as before). Not awaited by
   * the stream (no stall while the apiserver is slow); the read's end awaits
   * it if it has begun. True when it saw our pod.
   */
  private async confirmWhileOpen(readEnded: AbortSignal): Promise<boolean> {
    try {
      await this.d.clock.sleep(this.d.deps.statusIntervalMs, AbortSignal.any([this.d.signal, readEnded]));
      const seen = await this.d.observePod();
      this.d.step('pod read while a read from the top was open', { container: this.t.name, ours: seen.kind === 'pod' });
      return seen.kind === 'pod';
    } catch {
      // The read ended first, or the capture is stopping: nothing confirmed.
      return false;
    }
  }

  /**
   * Whether a read from the top of an ended run began with another run's log:
   * a first line stamped in a later second than the run's `finishedAt`. The
   * kubelet resolves "current" and "previous" from its own status, which can
   * be ahead of the pod status the run was chosen from (the apiserver's copy
   * lags under load): e.g. the status still names run 0 in lastState while
   * the kubelet's "previous" is run 1. A log response does not name its
   * container; the timestamps (the runtime's clock, like finishedAt) do.
   */
  private foreignStart(): string | undefined {
    const first = this.filter.firstTimestamp;
    const finished = this.run.terminated?.finishedAt;
    if (!this.run.ended || !first || !finished || !stampedInLaterSecond(first, finished)) return undefined;
    const which = this.run.previous ? '"previous"' : '"current"';
    return `${this.t.name} run ${this.run.index}: the kubelet answered ${which} with a log that begins at ${first}, after the run finished (${finished}): another run's (the kubelet's status is ahead of the pod status the capture saw); not stored`;
  }

  /** Forgets what a read of another run's log brought (nothing of it was flushed: foreignStart is checked first). */
  private dropRead(): void {
    this.pieces = [];
    this.pendingBytes = 0;
    this.filter = new ResumeFilter({ keepTimestamps: this.d.spec.timestamps, inPlace: true });
  }

  /**
   * The kubelet ended a 200 body with error text after the last newline (the
   * container gone under a follow stream): not stored; the run's end is not
   * proven, so the read is retried like a failed one.
   */
  private appendedError(dropped: Buffer): CaptureError {
    const text = dropped.subarray(0, 300).toString('latin1').replace(/[^\x20-\x7e]/g, '?');
    this.kubeletError = `the kubelet ended a log response with an error instead of log lines (not stored): ${text}`;
    return new CaptureError('ServerError', 'transient', `${this.t.name}: ${this.kubeletError}`);
  }

  /** Stores what a relaxed read emitted if the pod is still ours; otherwise drops it and ends the run. */
  private async releaseHeld(): Promise<void> {
    const where = await this.locate();
    if (where.kind === 'gone' || where.kind === 'unavailable') {
      this.pieces = [];
      this.pendingBytes = 0;
      this.end(this.gapFor(where));
      return;
    }
    await this.flush();
  }

  private readonly emit = (b: Buffer): void => {
    this.pieces.push(b);
    this.pendingBytes += b.length;
  };

  private async flush(): Promise<void> {
    const batch = this.pieces;
    const n = this.pendingBytes;
    this.pieces = [];
    this.pendingBytes = 0;
    for (const piece of batch) await this.sink.write(piece);
    if (n > 0) this.d.deps.metrics?.bytesCaptured.inc({ namespace: this.d.ns }, n);
    const c = this.c;
    // Stored content: under spec.maxBytes never more than the cap (the final figure comes at the commit).
    c.bytes = Math.min(this.filter.bytes, this.d.spec.maxBytes ?? Infinity);
    c.lines = this.filter.lines;
    if (this.filter.malformedLines > 0) c.malformedLines = this.filter.malformedLines;
    if (!c.firstTimestamp && this.filter.firstTimestamp) {
      // Durable at once: a restarted operator reads the run again from the
      // top and can tell a rotated log only by this.
      c.firstTimestamp = this.filter.firstTimestamp;
      // Queued in order before any later checkpoint write; the read does not wait for it.
      void this.d.publish(true);
    }
    const cp = this.filter.checkpoint();
    c.checkpoint = cp ? { time: cp.time, ordinal: cp.ordinal, offset: cp.offset } : undefined;
  }

  /** Anomalies a finished connection may reveal: they become the run's gap, never hidden. */
  private afterConnection(): void {
    const f = this.filter;
    const cp = f.checkpoint();
    const endedAt = this.run.terminated?.finishedAt;
    if (endedAt && cp && stampedInLaterSecond(cp.time, endedAt)) {
      this.note({ reason: 'LogGap', message: `${this.t.name} run ${this.run.index}: the stream carried lines stamped ${cp.time}, after the run finished at ${endedAt}` });
    }
    if (f.gaps > 0) this.note({ reason: 'LogGap', message: `${this.t.name}: ${f.lastAnomaly ?? 'the resumed stream did not continue where the last one stopped'}` });
    if (f.firstTimestamp && this.firstTimestampBefore && f.firstTimestamp !== this.firstTimestampBefore) {
      this.note({ reason: 'LogGap', message: `${this.t.name}: the log starts at ${f.firstTimestamp}, an earlier run of the capture saw it start at ${this.firstTimestampBefore} (rotated by the kubelet)` });
    }
  }

  // ------------------------------------------------------------- failures

  private async onFailure(err: unknown, progressed: boolean, runEnded: boolean, ended?: () => boolean): Promise<void> {
    if (err instanceof ResumeMismatchError) return this.onMismatch(err);
    // Asked again once the pod status has caught up (the next pass locates the run anew), within the retry budget.
    if (err instanceof ForeignRun) {
      // "current" served a later run: the kubelet has moved on, so this ended run is "previous" now (runs
      // only move on), whatever an older pod status still says. Asked there at once: it is served only
      // until that later run ends (the GC), and the pod status can take seconds to catch up (F14).
      if (!this.run.previous && !this.movedOn) {
        this.movedOn = true;
        // Nothing of it was read (the foreign bytes were dropped): read from the top, no window first.
        this.readBeforeWindow = true;
        this.d.log.info('run moved on: asking "previous" at once', { container: this.t.name, restart: this.run.index, error: err.message });
        return;
      }
      return this.countFailure('LogGap', err.message, false);
    }
    const ce = err instanceof CaptureError ? err : new CaptureError('KubeletUnreachable', 'transient', String((err as Error)?.message ?? err), { cause: err });
    if (ce.reason === 'PodNotFound' || ce.reason === 'ContainerNotFound' || ce.reason === 'BadRequest') {
      const where = await this.locate();
      if (where.kind !== 'run') {
        this.end(this.gapFor(where));
        return;
      }
      if (ce.reason === 'BadRequest' && this.run.previous) {
        this.end({ reason: 'LogGap', message: `${this.t.name} run ${this.run.index}: the kubelet no longer serves it (${ce.message})` });
        return;
      }
    }
    const action = classifyStreamFailure({ reason: ce.reason, kind: ce.kind, progressed, runEnded });
    if (action.kind === 'reopen') {
      this.backoff.reset();
      return;
    }
    if (action.kind === 'give-up') {
      this.c.lastError = `${ce.reason}: ${ce.message}`;
      if (this.filter.bytes > 0) this.end({ reason: giveUpReason(ce.reason, this.filter.bytes), message: ce.message });
      else throw ce;
      return;
    }
    if (action.resetBudget) this.backoff.reset();
    await this.countFailure(ce.reason, ce.message, true, ce.retryAfterMs, ended);
  }

  /**
   * A failure: counted, reported, and retried after a delay while the budget
   * lasts. `ended`: the delay is spent waiting for the pod's events, and when
   * they show the run ended (`ended()` holds) it was no failure: nothing is
   * counted and the next pass goes on at once.
   */
  private async countFailure(reason: string, message: string, stream: boolean, minDelayMs = 0, ended?: () => boolean): Promise<void> {
    const delay = this.backoff.next(minDelayMs);
    if (delay !== undefined && ended && (await this.d.waitUntil(ended, delay))) return;
    const c = this.c;
    c.streamRetries = (c.streamRetries ?? 0) + 1;
    c.lastError = `${reason}: ${message}`;
    this.d.deps.metrics?.streamRetries.inc({ reason });
    if (delay === undefined) {
      const msg = `gave up on ${this.t.name} after ${c.streamRetries} retries within ${Math.round(this.d.spec.retry.maxElapsedMs / 1000)} s: ${message}`;
      if (this.filter.bytes > 0 || !stream) this.end({ reason: stream ? giveUpReason(reason, this.filter.bytes) : reason, message: msg });
      else throw new CaptureError(giveUpReason(reason, 0) as CaptureError['reason'], 'permanent', msg);
      return;
    }
    // With `ended` the delay has passed already.
    const wait = ended ? 0 : delay;
    this.d.log.info('log stream retry', { container: this.t.name, reason, delayMs: Math.round(wait), attempt: c.streamRetries, error: message });
    this.d.retryEvent(`${this.t.name}: ${message}; retrying in ${Math.round(wait)} ms (retry ${c.streamRetries})`);
    await this.d.publish(c.streamRetries === 1);
    if (wait > 0) await this.d.clock.sleep(wait, this.d.signal);
  }

  /**
   * A resumed stream did not contain the checkpoint line. Another pod: the
   * run ends as PodDeleted. The run moved ("current" now serves a newer run):
   * the next pass asks where it is now. Otherwise, once a moment has passed
   * without either, the log was rotated: continue with a recorded gap.
   */
  private async onMismatch(err: ResumeMismatchError): Promise<void> {
    const before = this.run;
    let where = await this.locate();
    if (where.kind === 'run' && where.run.previous === before.previous) {
      await this.d.waitPodChange(1000);
      where = await this.locate();
      if (where.kind === 'run' && where.run.previous === before.previous) this.relaxed = true;
    }
    if (where.kind !== 'run') this.end(this.gapFor(where));
    this.d.log.info('resume point not in the served log', { container: this.t.name, restart: this.run.index, relaxed: this.relaxed, error: err.message });
  }

  // ------------------------------------------------------------- the end

  private recordTermination(): void {
    const term = this.run.terminated;
    if (!term) return;
    Object.assign(this.c, { exitCode: term.exitCode, reason: term.reason, startedAt: term.startedAt, finishedAt: term.finishedAt, state: 'Terminated' });
  }

  private async commit(): Promise<RunEnd> {
    const digest = await this.sink.finish();
    this.d.step('content finished', { container: this.t.name });
    const t0 = this.d.clock.now();
    // A continued object's checksums come from reading it back once committed
    // (still before they are recorded or tagged): the hash state of the
    // process that wrote its first bytes is gone.
    let verified: CommitMeta | undefined;
    const meta = this.content.partial ? async (uri: string) => (verified = await readBack(this.d, uri, digest)) : { sha256: digest.sha256, objectSha256: digest.objectSha256 };
    const committed = await this.commitOrAdopt(digest, meta);
    this.d.endStep('committed');
    this.d.deps.metrics?.storeUploadSeconds.observe((this.d.clock.now() - t0) / 1000);
    this.d.step('object committed', { container: this.t.name, size: committed.size });
    if (committed.size !== digest.objectBytes) {
      throw new CaptureError('SizeMismatch', 'permanent', `store reports ${committed.size} bytes for ${committed.uri}, ${digest.objectBytes} were written`);
    }
    if (this.content.partial && !verified) verified = await readBack(this.d, committed.uri, digest);
    const sums = verified ?? { sha256: digest.sha256, objectSha256: digest.objectSha256 };
    const c = this.c;
    c.object = { uri: committed.uri, size: committed.size, sha256: sums.sha256, objectSha256: sums.objectSha256 };
    c.bytes = digest.bytes;
    c.checkpoint = undefined;
    if (digest.truncatedBytes) {
      c.truncatedBytes = digest.truncatedBytes;
      this.d.truncatedCondition();
    }
    c.upload = undefined;
    if (this.gap) {
      c.state = 'Gap';
      c.lastError = `${this.gap.reason}: ${this.gap.message}`;
      this.d.runEnded();
      return { kind: 'partial', reason: this.gap.reason, message: this.gap.message };
    }
    c.state = 'Stored';
    // Queued in order, not awaited (the next run may be served only until the one after it ends);
    // after the capture's last run it goes out with the terminal status (CaptureDaemon.runEnded).
    this.d.runEnded();
    return { kind: 'stored' };
  }

  /**
   * Commits; if the key exists already, the object may be our own from before
   * an operator crash (committed, status not yet written). Identical bytes are
   * adopted; anything else stays a KeyExists failure, never an overwrite.
   */
  private async commitOrAdopt(digest: { sha256: string; objectSha256: string; objectBytes: number }, sums: CommitMeta | ((uri: string) => Promise<CommitMeta>)): Promise<{ uri: string; size: number }> {
    const { writer } = this;
    const store = this.d.deps.store;
    const d = this.d;
    // For bucket lifecycle rules: S3 tags, the file store's sidecar record.
    const labels = originLabels({ namespace: d.ns, logtail: d.lt.metadata.name!, retention: d.spec.retention, pod: d.spec.podName, container: this.t.name, policy: d.lt.metadata.labels?.[POLICY_LABEL] });
    const meta = typeof sums === 'function' ? async (uri: string) => ({ ...(await sums(uri)), labels }) : { ...sums, labels };
    try {
      return await writer.commit(meta);
    } catch (err) {
      if (!(err instanceof CaptureError) || err.reason !== 'KeyExists') throw err;
      const existing = await store.head(writer.uri).catch(() => undefined);
      if (!existing || existing.size !== digest.objectBytes) throw err;
      const h = createHash('sha256');
      for await (const chunk of await store.read(writer.uri)) h.update(chunk as Buffer);
      if (h.digest('hex') !== digest.objectSha256) throw err;
      await writer.abort().catch(() => undefined);
      // The crash may have come before its tags or record were written.
      await store.label?.(writer.uri, { sha256: digest.sha256, objectSha256: digest.objectSha256, labels, size: existing.size });
      this.d.log.info('adopted an identical object committed before a restart', { uri: writer.uri });
      return { uri: writer.uri, size: existing.size };
    }
  }

}
