import type { Readable } from 'node:stream';
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
}

export interface CommitMeta {
  /** Of the log bytes as captured. */
  sha256: string;
  /** Of the stored object's bytes (differs from sha256 when contentEncoding compresses). */
  objectSha256: string;
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
  commit(meta: CommitMeta): Promise<CommitResult>;
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
  /** Deletes one object (spec.retention: Delete); an object already gone is not an error. */
  delete(uri: string): Promise<void>;
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
