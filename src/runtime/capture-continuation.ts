// Continuation of an object an earlier process of this capture left
// unfinished (operator restart, SIGKILL, new leader, upgrade). The earlier
// process recorded in status (containers[].upload) what was durable in the
// store and the log position at its end; here the store is asked what it
// holds now, core/capture/continuation.ts decides, and the run either
// continues after the durable bytes or, reported, is read again from the top
// with whatever the earlier process left removed.
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { captureError } from '../adapters/errors.ts';
import { retry } from '../adapters/retry.ts';
import type { CommitMeta, CreateOptions, DurableUpload, ObjectWriter } from '../adapters/store/types.ts';
import { judgeContinuation, parseUploadRecord } from '../core/capture/continuation.ts';
import { renderKey } from '../core/key-template.ts';
import type { LogTail, ResolvedSpec } from '../core/spec.ts';
import type { ContainerCapture, LogTailStatus, UploadCheckpoint } from '../core/status.ts';
import type { ObjectStore } from '../adapters/store/types.ts';
import type { Logger } from './logger.ts';
import type { CaptureDaemon, StopReason } from './capture-daemon.ts';

/** Stops that hand the capture to another process: the upload stays, with a final checkpoint. */
const HANDOVER: ReadonlySet<StopReason> = new Set<StopReason>(['OperatorExiting', 'LostLeadership', 'ShardMoved']);

export function isHandover(signal: AbortSignal): boolean {
  const r = (signal.reason as { reason?: StopReason } | undefined)?.reason;
  return signal.aborted && r !== undefined && HANDOVER.has(r);
}

export interface OpenedRun {
  writer: ObjectWriter;
  /** The checkpoint continued from; undefined for a new object. */
  resume?: UploadCheckpoint;
}

export function durableOf(u: UploadCheckpoint): DurableUpload {
  return { id: u.id, objectBytes: u.objectBytes, ...(u.parts !== undefined ? { parts: u.parts } : {}) };
}

function createOptions(d: CaptureDaemon): CreateOptions {
  // The same budget covers the writes of the object (S3 parts and the commit): a store outage is retried, not the end.
  const retry = { initialIntervalMs: 500, maxIntervalMs: 10_000, maxElapsedMs: d.spec.retry.maxElapsedMs };
  return { contentType: 'text/plain; charset=utf-8', contentEncoding: d.spec.compression === 'gzip' ? 'gzip' : undefined, checkpoints: true, retry };
}

function storeRetry<T>(d: CaptureDaemon, op: () => Promise<T>): Promise<T> {
  return retry(op, { initialIntervalMs: 500, maxIntervalMs: 10_000, maxElapsedMs: d.spec.retry.maxElapsedMs }, {
    signal: d.signal,
    classify: (e) => ((e as { kind?: string }).kind === 'permanent' ? 'permanent' : 'transient'),
    now: () => d.clock.now(),
    sleep: (ms, s) => d.clock.sleep(ms, s),
  });
}

/**
 * The writer for run `runId` of entry `c`: a continuation of the upload its
 * checkpoint names when the store still holds exactly that, else a new object.
 */
export async function openForRun(d: CaptureDaemon, c: ContainerCapture, runId: string, key: string): Promise<OpenedRun> {
  const opts = createOptions(d);
  const fresh = async (): Promise<OpenedRun> => ({ writer: await storeRetry(d, () => d.deps.store.create(key, opts)) });
  const rec = c.upload;
  if (rec === undefined) return fresh();
  const store = d.deps.store;
  let verdict = judgeContinuation({ record: rec, runId });
  if (verdict.kind === 'inspect') {
    if (!store.inspectUpload || !store.continueUpload) {
      verdict = { kind: 'reread', reason: 'CheckpointFormat', message: `the store ${store.url} cannot continue an object`, discard: false };
    } else {
      const u = durableOf(verdict.record);
      const facts = await storeRetry(d, () => store.inspectUpload!(key, u));
      verdict = judgeContinuation({ record: rec, runId, facts });
    }
  }
  if (verdict.kind === 'continue') {
    const u = durableOf(verdict.record);
    const writer = await storeRetry(d, () => store.continueUpload!(key, opts, u));
    d.log.info('continuing an object an earlier process left', { container: c.name, restart: c.restart, objectBytes: u.objectBytes, bytes: verdict.record.bytes });
    return { writer, resume: verdict.record };
  }
  if (verdict.kind === 'inspect') throw new Error('unreachable');
  // Not continued: say so, remove what is left (it is ours and useless), read from the top.
  c.upload = undefined;
  const parsed = parseUploadRecord(rec);
  if (verdict.discard && typeof parsed !== 'string' && store.discardUpload) {
    await store.discardUpload(key, durableOf(parsed)).catch((err: unknown) => d.log.warn('could not remove the unfinished object an earlier process left', { error: String(err) }));
  }
  const message = `${c.name} run ${c.restart}: ${verdict.message}; reading the run again from the top`;
  d.log.warn('not continued', { reason: verdict.reason, message });
  if (d.status.phase === 'Streaming') d.setPhase('Streaming', 'NotContinued', message);
  await d.publish(true);
  await d.event('Warning', 'NotContinued', `${verdict.reason}: ${message}`);
  const opened = await fresh();
  return opened;
}

/**
 * Checksums of a continued object, read back from the store once it is
 * committed: the earlier process's hash state did not survive it. The sizes
 * must be what the capture counted.
 */
export async function readBack(d: CaptureDaemon, uri: string, want: { bytes: number; objectBytes: number }): Promise<CommitMeta> {
  const object = createHash('sha256');
  const content = createHash('sha256');
  let objectBytes = 0;
  let bytes = 0;
  const source = await d.deps.store.read(uri);
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      content.update(chunk);
      bytes += chunk.length;
      cb();
    },
  });
  const count = async function* (src: AsyncIterable<Buffer>) {
    for await (const chunk of src) {
      object.update(chunk);
      objectBytes += chunk.length;
      yield chunk;
    }
  };
  if (d.spec.compression === 'gzip') await pipeline(source, count, createGunzip(), sink);
  else await pipeline(source, count, sink);
  if (objectBytes !== want.objectBytes || bytes !== want.bytes) {
    throw captureError('SizeMismatch', `${uri} reads back as ${objectBytes} bytes (${bytes} of log), ${want.objectBytes} (${want.bytes}) were written`);
  }
  return { sha256: content.digest('hex'), objectSha256: object.digest('hex') };
}

/** The store key of run `restart` of container `container` of this LogTail. */
export function runKey(lt: LogTail, spec: ResolvedSpec, status: Pick<LogTailStatus, 'podUID' | 'startTime'>, container: string, restart: number): string {
  const vars = { namespace: lt.metadata.namespace!, logtail: lt.metadata.name!, pod: spec.podName, container, uid: status.podUID!, restart, date: status.startTime!.slice(0, 10) };
  return renderKey(spec.keyTemplate, vars, { compression: spec.compression });
}

/**
 * A LogTail deleted before its capture finished: the unfinished objects its
 * status names are removed (a daemon stopped with `Deleted` aborts its own;
 * this covers those it never reopened, e.g. deleted while no operator ran).
 * Removing one already gone is fine.
 */
export async function discardUnfinished(store: ObjectStore, lt: LogTail, spec: ResolvedSpec, log: Logger): Promise<void> {
  const st = lt.status as Partial<LogTailStatus> | undefined;
  if (!st?.podUID || !st.startTime || !store.discardUpload) return;
  for (const c of st.containers ?? []) {
    const u = c.upload === undefined ? undefined : parseUploadRecord(c.upload);
    if (u === undefined || typeof u === 'string') continue;
    try {
      await store.discardUpload(runKey(lt, spec, st, c.name, c.restart), durableOf(u));
    } catch (err) {
      log.warn('unfinished object of a deleted LogTail not removed', { container: c.name, restart: c.restart, error: String(err) });
    }
  }
}
