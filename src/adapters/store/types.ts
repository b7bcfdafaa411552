import type { Readable } from 'node:stream';
import type { UploadFacts } from '../../core/capture/continuation.ts';
import type { RetryPolicy } from '../../core/spec.ts';
import { captureError } from '../errors.ts';

export interface CreateOptions {
  contentType: string;
  contentEncoding?: string;
  /**
   * Budget for transient failures of this object's writes to a remote store
   * (S3: each part, the final PutObject or CompleteMultipartUpload): a store
   * outage at the commit must not lose what was read. Default: the store's own.
   */
  retry?: RetryPolicy;
  /**
   * The caller makes bytes durable with sync() (ObjectWriter.checkpoints):
   * S3 then cuts parts only there, so every durable boundary is one the
   * caller chose (and knows the log position of).
   */
  checkpoints?: boolean;
}

/** The store's handle on an unfinished object and how much of it is durable. */
export interface DurableUpload {
  /** S3: the multipart upload ID; file store: the temp file's name beside the object. */
  id: string;
  /** S3: parts 1..parts are uploaded. */
  parts?: number;
  /** Object bytes that are durable. */
  objectBytes: number;
}

/** What the store holds of an unfinished object (core/capture/continuation.ts judges it). */
export type { UploadFacts };

/** Writers created with `checkpoints: true` implement this. */
export interface Checkpointing {
  /** `parts`: durable in whole parts of at least the part size (S3); `fsync`: any length, when the caller syncs (file store). */
  readonly mode: 'parts' | 'fsync';
  /**
   * Whether sync() would make more bytes durable: `now` (S3: a full part is
   * waiting), `due` (file store: bytes not yet fsynced; the caller decides
   * when), `none`.
   */
  syncHint(): 'now' | 'due' | 'none';
  /**
   * Makes what was written so far durable where the store can (S3: only a
   * part of at least the part size). Resolves once more may be written;
   * `durable` resolves when that boundary is in the store (undefined: nothing
   * durable yet). Never rejects `durable`: a failed upload fails later writes.
   */
  sync(): Promise<{ durable: Promise<DurableUpload | undefined> }>;
  /** Leaves the unfinished object in the store for a later process and frees local resources (spool, file handle). */
  release(): Promise<void>;
}

export interface CommitMeta {
  /** Of the log bytes as captured. */
  sha256: string;
  /** Of the stored object's bytes (differs from sha256 when contentEncoding compresses). */
  objectSha256: string;
  /**
   * Labels for bucket lifecycle rules (core/object-labels.ts, e.g.
   * `logtail.dev/retention`): S3 object tags, or the file store's sidecar
   * record `<object>.logtail.json`. Set after the commit.
   */
  labels?: Record<string, string>;
}

export interface CommitResult {
  uri: string;
  size: number;
}

/**
 * One object being written. Nothing is visible under the key until commit()
 * resolves; commit never replaces an existing object (KeyExists instead).
 */
export interface ObjectWriter {
  /** Where the object will be once committed. */
  readonly uri: string;
  /** Resolves once the store accepted the chunk: await it, that is the backpressure. Do not mutate the chunk afterwards. */
  write(chunk: Buffer): Promise<void>;
  /**
   * `meta` may be computed once the object exists (a continued upload's
   * checksums are read back from the committed object before they are
   * recorded).
   */
  commit(meta: CommitMeta | ((uri: string) => Promise<CommitMeta>)): Promise<CommitResult>;
  /** Present on writers created with `checkpoints: true`. */
  readonly checkpoints?: Checkpointing;
  /** Discards everything written. Idempotent; a no-op after a successful commit. */
  abort(): Promise<void>;
}

export interface ObjectStore {
  /** Normalized: `file:///abs/root` or `s3://bucket[/prefix]`. */
  readonly url: string;
  /** `key` is relative to the store's root/prefix, e.g. `ns/pod/container/0001.log`. */
  create(key: string, opts: CreateOptions): Promise<ObjectWriter>;
  /** `uri` as returned by commit (a key relative to the root is accepted too). Fails with ObjectNotFound. */
  read(uri: string): Promise<Readable>;
  /** undefined when there is no such object. */
  head(uri: string): Promise<{ size: number } | undefined>;
  /** What the store holds of the unfinished object `u` of `key` (ListParts / stat); throws on store errors. */
  inspectUpload?(key: string, u: DurableUpload): Promise<UploadFacts>;
  /** A writer that continues `u` after its first `u.objectBytes` bytes (S3: parts 1..u.parts; file: truncated there). */
  continueUpload?(key: string, opts: CreateOptions, u: DurableUpload): Promise<ObjectWriter>;
  /** Removes the unfinished object `u` (AbortMultipartUpload / unlink); one already gone is fine. */
  discardUpload?(key: string, u: DurableUpload): Promise<void>;
  /** Deletes one object (spec.retention: Delete) and its labels (the file store's sidecar record); an object already gone is not an error. */
  delete(uri: string): Promise<void>;
  /** Puts checksums and labels on an existing object (as commit does), e.g. one adopted after a restart. */
  label?(uri: string, meta: CommitMeta & { size: number }): Promise<void>;
  /** Start-up check that the store can keep its promise never to overwrite (S3: If-None-Match). */
  verifyConditionalWrites?(): Promise<void>;
  close?(): Promise<void>;
}

/**
 * Callers validate keys; this is the store's own guard against a key that
 * would name something outside its root or prefix (or, on a gateway that maps
 * keys to files, outside its bucket).
 */
export function assertSafeKey(key: string): string[] {
  const refuse = (why: string) => captureError('BadRequest', `refusing object key ${JSON.stringify(key)}: ${why}`);
  if (typeof key !== 'string' || key.length === 0) throw refuse('empty');
  if (Buffer.byteLength(key) > 1024) throw refuse('longer than 1024 bytes');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(key)) throw refuse('control character or backslash');
  if (key.startsWith('/')) throw refuse('absolute');
  const segments = key.split('/');
  for (const s of segments) {
    if (s === '') throw refuse('empty path segment');
    if (s === '.' || s === '..') throw refuse('dot segment');
  }
  return segments;
}
