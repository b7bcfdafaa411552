// Objects in an S3 bucket (AWS or a compatible gateway). A writer spools what
// it is given to files on local disk and uploads each full part from its file
// (multipart), or the whole object with one PutObject when it stays under one
// part: no part is held in memory, so memory per writer does not depend on
// the part size, the upload queue or how slow the store is.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { CaptureError, captureError, describeError, isNetworkError } from '../errors.ts';
import { RetryExhaustedError, retry, type RetryPolicy } from '../retry.ts';
import { objectTags } from '../../core/object-labels.ts';
import { parseS3Url } from './s3-url.ts';
import { assertSafeKey, type Checkpointing, type CommitMeta, type CommitResult, type CreateOptions, type DurableUpload, type ObjectStore, type ObjectWriter, type UploadFacts } from './types.ts';

export interface S3Options {
  /** e.g. `http://127.0.0.1:7070` for a local gateway; default: AWS. */
  endpoint?: string;
  /** Default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1 (what gateways expect). */
  region?: string;
  forcePathStyle?: boolean;
  /** Default: the SDK's provider chain (env, web identity, profile, IMDS, …). */
  credentials?: S3ClientConfig['credentials'];
  /** Multipart part size; default 8 MiB (S3's minimum is 5 MiB). */
  partSizeBytes?: number;
  /** Parts uploaded concurrently per writer; default 2. A writer's spool holds at most queueSize + 1 parts. */
  queueSize?: number;
  /** Directory for the parts waiting to be uploaded (a cache; an emptyDir in the chart). Default: the OS temporary directory's logtail-spool. */
  spoolDir?: string;
  /** Server-side encryption of every object: SSE-S3 (`AES256`) or SSE-KMS (`aws:kms`, optionally with a key id). */
  sse?: 'AES256' | 'aws:kms';
  /** KMS key id or ARN for `sse: 'aws:kms'`; default: the bucket's or account's default KMS key. */
  sseKmsKeyId?: string;
  /** PEM file of CA certificates trusted for an https endpoint (instead of Node's default roots). */
  caBundle?: string;
}

/** Where the start-up probe writes; no namespace can be named like this (a DNS label cannot start with "."). */
export const CONDITIONAL_WRITE_PROBE_KEY = '.logtail-probes/if-none-match';

/** The SSE request parameters for PutObject / CreateMultipartUpload. */
export function sseParams(opts: Pick<S3Options, 'sse' | 'sseKmsKeyId'>): { ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string } {
  if (opts.sseKmsKeyId && opts.sse !== 'aws:kms') throw captureError('BadRequest', 'an SSE-KMS key id needs server-side encryption aws:kms');
  if (!opts.sse) return {};
  return { ServerSideEncryption: opts.sse, ...(opts.sseKmsKeyId ? { SSEKMSKeyId: opts.sseKmsKeyId } : {}) };
}

const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/**
 * Read size of the file streams a part or a small object is uploaded from
 * (Node's default is 64 KiB). Up to a few reads are held per upload at once
 * (read ahead, the socket's queue, and buffers not yet collected), and at the
 * end of many captures together every writer uploads at once: at 200 commits
 * in the same seconds 64 KiB reads held ~70 MiB (heaptrack,
 * docs/benchmarks.md). 16 KiB matches the request socket's write high-water mark.
 */
export const UPLOAD_READ_BYTES = 16 * 1024;

/** Spool writes smaller than this are gathered per writer first (one such buffer per open object). */
const SPOOL_BATCH = 32 * 1024;

// Enough to ride out a gateway restart between the upload and its
// bookkeeping calls, short enough not to hold a capture up for long.
const METADATA_RETRY: RetryPolicy = { initialIntervalMs: 200, maxIntervalMs: 2_000, maxElapsedMs: 30_000 };

const DENIED_NAMES = new Set([
  'AccessDenied',
  'SignatureDoesNotMatch',
  'InvalidAccessKeyId',
  'NoSuchBucket',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidSecurity',
  'CredentialsProviderError',
]);
const UNAVAILABLE_NAMES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'TimeoutError',
  'ThrottlingException',
  'RequestTimeTooSkewed',
  'NoSuchUpload',
  'ConditionalRequestConflict',
  'OperationAborted',
]);

interface SdkErrorShape {
  name?: unknown;
  Code?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/** Maps an SDK (or network) error to a CaptureError. */
export function classifyS3Error(err: unknown, what: string): CaptureError {
  if (err instanceof CaptureError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
  const name = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : '';
  const status = e.$metadata?.httpStatusCode;
  const msg = `${what}: ${describeError(err)}${name && !describeError(err).includes(name) ? ` (${name})` : ''}`;
  const opts = { cause: err, ...(status === undefined ? {} : { status }) };
  if (status === 412 || name === 'PreconditionFailed') return captureError('KeyExists', msg, opts);
  if (name === 'ExpiredToken' || name === 'TokenRefreshRequired') return captureError('StoreDenied', msg, { ...opts, kind: 'transient' });
  if (DENIED_NAMES.has(name) || status === 401 || status === 403) return captureError('StoreDenied', msg, opts);
  if (name === 'NoSuchKey' || name === 'NotFound') return captureError('ObjectNotFound', msg, opts);
  if (UNAVAILABLE_NAMES.has(name) || (status !== undefined && (status >= 500 || status === 429 || status === 409))) {
    return captureError('StoreUnavailable', msg, opts);
  }
  if (status === 404) return captureError('ObjectNotFound', msg, opts);
  if (isNetworkError(err)) return captureError('StoreUnavailable', msg, opts);
  if (status !== undefined && status >= 400) return captureError('BadRequest', msg, opts);
  return captureError('StoreUnavailable', msg, { ...opts, kind: 'permanent' });
}

export { parseS3Url } from './s3-url.ts';

function isNoSuchUpload(err: unknown): boolean {
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
  return e.name === 'NoSuchUpload' || e.Code === 'NoSuchUpload';
}

export class S3Store implements ObjectStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly spoolDir: string;
  private readonly sse: ReturnType<typeof sseParams>;

  constructor(url: string, opts: S3Options = {}) {
    const { bucket, prefix } = parseS3Url(url);
    this.bucket = bucket;
    this.prefix = prefix;
    this.url = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
    this.partSize = opts.partSizeBytes ?? DEFAULT_PART_SIZE;
    this.queueSize = opts.queueSize ?? 2;
    this.spoolDir = opts.spoolDir ?? join(tmpdir(), 'logtail-spool');
    this.sse = sseParams(opts);
    let ca: Buffer | undefined;
    if (opts.caBundle) {
      try {
        ca = readFileSync(opts.caBundle);
      } catch (err) {
        throw captureError('BadRequest', `S3 CA bundle ${opts.caBundle}: ${describeError(err)}`);
      }
    }
    this.client = new S3Client({
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      ...(opts.forcePathStyle !== undefined ? { forcePathStyle: opts.forcePathStyle } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      // Checksums of our own (sha256 tags) cover the content; the SDK's
      // default CRC trailers are not supported by every gateway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Without these a dead connection holds a part upload (and so the
      // commit) forever; the SDK retries the TimeoutError they produce.
      requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000, ...(ca ? { httpsAgent: new HttpsAgent({ keepAlive: true, ca }) } : {}) },
    });
  }

  private objectKey(key: string): string {
    assertSafeKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private uriFor(objectKey: string): string {
    return `s3://${this.bucket}/${objectKey}`;
  }

  /** The bucket key of a URI of this store (or of a key relative to its prefix). */
  private uriKey(uri: string): string {
    if (!uri.startsWith('s3://')) return this.objectKey(uri);
    const own = `s3://${this.bucket}/${this.prefix ? `${this.prefix}/` : ''}`;
    if (!uri.startsWith(own)) throw captureError('BadRequest', `refusing ${uri}: outside ${this.url}`);
    return this.objectKey(uri.slice(own.length));
  }

  async create(key: string, opts: CreateOptions): Promise<ObjectWriter> {
    const objectKey = this.objectKey(key);
    return new S3Writer(this.client, this.bucket, objectKey, this.uriFor(objectKey), opts, this.partSize, this.queueSize, this.sse, this.spoolDir);
  }

  /** Every part of an upload (ListParts, 1000 a page); undefined when the upload does not exist. */
  private async listParts(Key: string, UploadId: string): Promise<{ number: number; size: number; etag: string | undefined }[] | undefined> {
    const out: { number: number; size: number; etag: string | undefined }[] = [];
    let marker: string | undefined;
    for (let page = 0; page < 20; page++) {
      let res;
      try {
        res = await retry(() => this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key, UploadId, MaxParts: 1000, ...(marker ? { PartNumberMarker: marker } : {}) })), METADATA_RETRY, {
          classify: (e) => (isNoSuchUpload(e) ? 'permanent' : classifyS3Error(e, '').kind),
        });
      } catch (err) {
        const cause = err instanceof Error && err.name === 'RetryExhaustedError' ? err.cause : err;
        if (isNoSuchUpload(cause)) return undefined;
        throw classifyS3Error(cause, `list the parts of upload ${UploadId} of ${this.uriFor(Key)}`);
      }
      for (const p of res.Parts ?? []) out.push({ number: p.PartNumber ?? 0, size: p.Size ?? 0, etag: p.ETag });
      if (!res.IsTruncated || !res.NextPartNumberMarker) return out;
      marker = String(res.NextPartNumberMarker);
    }
    return out;
  }

  async inspectUpload(key: string, u: DurableUpload): Promise<UploadFacts> {
    const parts = await this.listParts(this.objectKey(key), u.id);
    return parts ? { kind: 'parts', parts: parts.map((p) => ({ number: p.number, size: p.size })) } : { kind: 'gone' };
  }

  /** Continues upload `u.id` after its parts 1..u.parts (their ETags from ListParts); later part numbers are uploaded again. */
  async continueUpload(key: string, opts: CreateOptions, u: DurableUpload): Promise<ObjectWriter> {
    const objectKey = this.objectKey(key);
    const n = u.parts ?? 0;
    const parts = (await this.listParts(objectKey, u.id)) ?? [];
    const kept = parts.filter((p) => p.number >= 1 && p.number <= n).sort((a, b) => a.number - b.number);
    const bytes = kept.reduce((sum, p) => sum + p.size, 0);
    if (kept.length !== n || bytes !== u.objectBytes) {
      throw captureError('StoreUnavailable', `upload ${u.id} of ${this.uriFor(objectKey)} changed while it was being continued`, { kind: 'permanent' });
    }
    const w = new S3Writer(this.client, this.bucket, objectKey, this.uriFor(objectKey), { ...opts, checkpoints: true }, this.partSize, this.queueSize, this.sse, this.spoolDir);
    w.continueFrom(u.id, kept.map((p) => ({ PartNumber: p.number, ETag: p.etag })), bytes);
    return w;
  }

  async discardUpload(key: string, u: DurableUpload): Promise<void> {
    const Key = this.objectKey(key);
    await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: u.id })).catch((err: unknown) => {
      if (isNoSuchUpload(err) || (err as SdkErrorShape).$metadata?.httpStatusCode === 404) return;
      throw classifyS3Error(err, `abort multipart upload ${u.id} of ${this.uriFor(Key)}`);
    });
  }

  async read(uri: string): Promise<Readable> {
    const Key = this.uriKey(uri);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      return out.Body as Readable;
    } catch (err) {
      throw classifyS3Error(err, `read ${this.uriFor(Key)}`);
    }
  }

  async head(uri: string): Promise<{ size: number } | undefined> {
    const Key = this.uriKey(uri);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return { size: out.ContentLength ?? 0 };
    } catch (err) {
      const ce = classifyS3Error(err, `head ${this.uriFor(Key)}`);
      if (ce.reason === 'ObjectNotFound') return undefined;
      throw ce;
    }
  }

  /** DeleteObject (S3 answers 204 for a key that does not exist, too). */
  async delete(uri: string): Promise<void> {
    const Key = this.uriKey(uri);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      const ce = classifyS3Error(err, `delete ${this.uriFor(Key)}`);
      if (ce.reason !== 'ObjectNotFound') throw ce;
    }
  }

  /** Tags an existing object (one adopted after a restart) as commit does. */
  async label(uri: string, meta: CommitMeta & { size: number }): Promise<void> {
    const Key = this.uriKey(uri);
    await putTags(this.client, this.bucket, Key, this.uriFor(Key), meta);
  }

  /**
   * Proves that the server refuses a write carrying `If-None-Match: *` to a key
   * that exists, on both paths the writers use (PutObject and
   * CompleteMultipartUpload): "never overwrite" rests on it. One tiny object is
   * kept at CONDITIONAL_WRITE_PROBE_KEY under the prefix; nothing is deleted
   * (the operator has no delete permission). Throws a permanent BadRequest
   * naming the server's behaviour when it accepts an overwrite.
   */
  async verifyConditionalWrites(): Promise<void> {
    const Key = this.objectKey(CONDITIONAL_WRITE_PROBE_KEY);
    const uri = this.uriFor(Key);
    const Body = Buffer.from('LogTail checks at start-up that this store refuses to overwrite an object sent with If-None-Match: *.\n');
    const put = () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentType: 'text/plain', IfNoneMatch: '*', ...this.sse }));
    const refused = (err: unknown) => classifyS3Error(err, '').reason === 'KeyExists';
    const ignores = (how: string) =>
      captureError(
        'BadRequest',
        `the S3 store at ${this.url} does not honour "If-None-Match: *": ${how} replaced the existing object ${uri} instead of failing with 412 Precondition Failed. ` +
          'LogTail never overwrites a stored log and relies on the server for that; refusing to run on this store (use a server that supports conditional writes, such as Amazon S3 or the Versity S3 gateway 1.8)',
        { kind: 'permanent' },
      );
    // First write: creates the probe object, or finds it from an earlier start (already a refusal).
    let created = false;
    try {
      await put();
      created = true;
    } catch (err) {
      if (!refused(err)) throw classifyS3Error(err, `probe If-None-Match on ${uri}`);
    }
    if (created) {
      try {
        await put();
      } catch (err) {
        if (!refused(err)) throw classifyS3Error(err, `probe If-None-Match on ${uri}`);
        created = false;
      }
      if (created) throw ignores('a second PutObject with If-None-Match: *');
    }
    // The multipart path: a one-part upload completed onto the existing key must be refused too.
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key, ContentType: 'text/plain', ...this.sse })).catch((err: unknown) => {
      throw classifyS3Error(err, `probe multipart If-None-Match on ${uri}`);
    });
    let completed = false;
    try {
      const part = await this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key, UploadId, PartNumber: 1, Body }));
      try {
        await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
        completed = true;
      } catch (err) {
        if (!refused(err)) throw classifyS3Error(err, `probe multipart If-None-Match on ${uri}`);
      }
    } finally {
      if (!completed) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId })).catch(() => undefined);
    }
    if (completed) throw ignores('CompleteMultipartUpload with If-None-Match: *');
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** The object's tags: checksums and labels (core/object-labels.ts), replacing any it had. */
async function putTags(client: S3Client, Bucket: string, Key: string, uri: string, meta: CommitMeta): Promise<void> {
  await retry(() => client.send(new PutObjectTaggingCommand({ Bucket, Key, Tagging: { TagSet: objectTags(meta, meta.labels) } })), METADATA_RETRY, {
    classify: (e) => classifyS3Error(e, '').kind,
  }).catch((err: unknown) => {
    throw classifyS3Error(err instanceof Error && err.name === 'RetryExhaustedError' ? err.cause : err, `tag ${uri} (the object exists, untagged)`);
  });
}

type State = 'open' | 'committing' | 'committed' | 'aborted' | 'failed' | 'released';

/** One multipart part waiting in (or being written to) the spool. */
interface SpoolPart {
  path: string;
  number: number;
  bytes: number;
}

/**
 * Writes go to files in a spool directory (one file per part); a full part is
 * uploaded from its file and the file removed. No part is ever held in
 * memory: what a writer holds is a file handle, a 32 KiB batch of small
 * writes not yet in the file (SPOOL_BATCH) and a few small objects, and
 * its spool use is at most (queueSize + 1) parts. Small objects go up with one
 * PutObject from the file at commit. The spool is a cache: after a crash only
 * what the store holds counts.
 */
class S3Writer implements ObjectWriter {
  readonly uri: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly key: string;
  private readonly opts: CreateOptions;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly sse: ReturnType<typeof sseParams>;
  private readonly spoolRoot: string;
  private dir: string | undefined;
  private file: FileHandle | undefined;
  private part: SpoolPart | undefined;
  /** Number of the part being spooled (1-based; S3 part numbers and spool file names). */
  private partNumber = 0;
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private inflight: Array<Promise<void>> = [];
  /** Bytes written by the capture and not yet in the part's file (spoolWrite). */
  private batch: Buffer | undefined;
  private batchLen = 0;
  private state: State = 'open';
  private bytes = 0;
  private failure: CaptureError | undefined;
  readonly checkpoints: Checkpointing | undefined;
  private readonly retryPolicy: RetryPolicy;

  constructor(client: S3Client, bucket: string, key: string, uri: string, opts: CreateOptions, partSize: number, queueSize: number, sse: ReturnType<typeof sseParams>, spoolRoot: string) {
    this.client = client;
    this.bucket = bucket;
    this.key = key;
    this.uri = uri;
    this.opts = opts;
    this.partSize = partSize;
    this.queueSize = queueSize;
    this.sse = sse;
    this.spoolRoot = spoolRoot;
    this.retryPolicy = opts.retry ?? METADATA_RETRY;
    this.checkpoints = opts.checkpoints
      ? { mode: 'parts', syncHint: () => (this.part && this.part.bytes >= this.partSize ? 'now' : 'none'), sync: () => this.sync(), release: () => this.release() }
      : undefined;
  }

  /** A continued upload: parts 1..parts.length are in the store, `bytes` long in all. */
  continueFrom(uploadId: string, parts: CompletedPart[], bytes: number): void {
    this.uploadId = uploadId;
    this.parts.push(...parts);
    this.partNumber = parts.length;
    this.bytes = bytes;
  }

  /**
   * Under checkpoints a part is cut only here, once it holds at least the
   * part size: every part boundary is a point the caller knows the log
   * position of. `durable` resolves when every part up to this one is uploaded.
   */
  private async sync(): Promise<{ durable: Promise<DurableUpload | undefined> }> {
    if (this.failure) throw this.failure;
    if (this.state !== 'open') throw captureError('BadRequest', `sync on a ${this.state} writer for ${this.uri}`);
    if (!this.part || this.part.bytes < this.partSize) return { durable: Promise.resolve(undefined) };
    const parts = this.part.number;
    const objectBytes = this.bytes;
    const uploads = [...this.inflight];
    await this.sealPart();
    const pending = [...uploads, ...this.inflight];
    const durable = Promise.all(pending).then(() => (this.failure || !this.uploadId ? undefined : { id: this.uploadId, parts, objectBytes }));
    return { durable };
  }

  /** Leaves the multipart upload in the store for the next owner; removes only the local spool. */
  private async release(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'released';
    await Promise.all(this.inflight).catch(() => undefined);
    await this.removeSpool();
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.state !== 'open') throw captureError('BadRequest', `write on a ${this.state} writer for ${this.uri}`);
    this.bytes += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const part = this.part ?? (await this.openPart());
      // Under checkpoints a part grows past the part size until sync() cuts it.
      const n = this.checkpoints ? chunk.length - off : Math.min(chunk.length - off, this.partSize - part.bytes);
      await this.spoolWrite(chunk, off, n);
      part.bytes += n;
      off += n;
      if (part.bytes >= this.partSize && !this.checkpoints) await this.sealPart();
      if (this.failure) throw this.failure;
    }
  }

  /**
   * Small writes are gathered in one SPOOL_BATCH buffer per writer and reach
   * the spool file a batch at a time: a slow log delivers chunks of a few KiB,
   * and one file write per chunk for 1,000 streams is thousands of round trips
   * a second through libuv's four threads. Larger writes go straight through.
   */
  private async spoolWrite(chunk: Buffer, off: number, n: number): Promise<void> {
    if (n >= SPOOL_BATCH && this.batchLen === 0) return this.fileWrite(chunk, off, n);
    this.batch ??= Buffer.allocUnsafe(SPOOL_BATCH);
    while (n > 0) {
      const k = Math.min(n, SPOOL_BATCH - this.batchLen);
      chunk.copy(this.batch, this.batchLen, off, off + k);
      this.batchLen += k;
      off += k;
      n -= k;
      if (this.batchLen === SPOOL_BATCH) await this.drainBatch();
    }
  }

  /** Writes the gathered bytes to the part's file (before it is closed). */
  private async drainBatch(): Promise<void> {
    const len = this.batchLen;
    if (len === 0) return;
    this.batchLen = 0;
    await this.fileWrite(this.batch!, 0, len);
  }

  private async fileWrite(chunk: Buffer, off: number, n: number): Promise<void> {
    for (let done = 0; done < n; ) {
      try {
        const { bytesWritten } = await this.file!.write(chunk, off + done, n - done);
        done += bytesWritten;
      } catch (err) {
        // ENOSPC (the spool's sizeLimit) or EIO: the capture retries or fails as for a store outage
        throw captureError('StoreUnavailable', `spool ${this.part!.path} for ${this.uri}: ${describeError(err)}`, { cause: err });
      }
    }
  }

  private async openPart(): Promise<SpoolPart> {
    try {
      if (!this.dir) {
        await mkdir(this.spoolRoot, { recursive: true, mode: 0o700 });
        this.dir = await mkdtemp(join(this.spoolRoot, 'w-'));
      }
      const number = this.partNumber + 1;
      const path = join(this.dir, String(number));
      this.file = await open(path, 'w', 0o600);
      this.partNumber = number;
      this.part = { path, number, bytes: 0 };
      return this.part;
    } catch (err) {
      throw captureError('StoreUnavailable', `spool directory ${this.spoolRoot}: ${describeError(err)}`, { cause: err });
    }
  }

  /** Hands the filled part to an upload; waits while queueSize uploads are running (spool bound, backpressure). */
  private async sealPart(): Promise<void> {
    const part = this.part!;
    await this.drainBatch();
    await this.file!.close();
    this.file = undefined;
    this.part = undefined;
    if (!this.uploadId) {
      const out = await retry(
        () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, ContentType: this.opts.contentType, ...(this.opts.contentEncoding ? { ContentEncoding: this.opts.contentEncoding } : {}), ...this.sse })),
        this.retryPolicy,
        { classify: (e) => classifyS3Error(e, '').kind },
      ).catch((err: unknown) => {
        throw classifyS3Error(err instanceof Error && err.name === 'RetryExhaustedError' ? err.cause : err, `start multipart upload of ${this.uri}`);
      });
      this.uploadId = out.UploadId;
    }
    const number = part.number;
    const p = this.uploadPart(part, number).catch((err: unknown) => {
      this.failure ??= classifyS3Error(err, `upload part ${number} of ${this.uri}`);
    });
    this.inflight.push(p);
    void p.finally(() => (this.inflight = this.inflight.filter((x) => x !== p)));
    while (this.inflight.length >= this.queueSize) await Promise.race(this.inflight);
  }

  private async uploadPart(part: SpoolPart, PartNumber: number): Promise<void> {
    const out = await retry(
      () => this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId, PartNumber, ContentLength: part.bytes, Body: createReadStream(part.path, { highWaterMark: UPLOAD_READ_BYTES }) })),
      this.retryPolicy,
      { classify: (e) => classifyS3Error(e, '').kind },
    ).catch((err: unknown) => {
      throw err instanceof Error && err.name === 'RetryExhaustedError' ? err.cause : err;
    });
    this.parts.push({ PartNumber, ETag: out.ETag });
    await rm(part.path, { force: true });
  }

  /** The last part (or the whole object, when it never reached one part) goes up; then Complete with If-None-Match. */
  private async finishUpload(): Promise<void> {
    const last = this.part;
    if (this.file) {
      await this.drainBatch();
      await this.file.close();
    }
    this.file = undefined;
    this.part = undefined;
    const guard = { IfNoneMatch: '*' };
    if (!this.uploadId) {
      // A fresh body per attempt. A retry after a PUT that landed but whose
      // answer was lost gets 412 (KeyExists): the caller adopts identical bytes.
      await this.retried(() =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key, Body: last ? createReadStream(last.path, { highWaterMark: UPLOAD_READ_BYTES }) : Buffer.alloc(0), ContentLength: last?.bytes ?? 0, ContentType: this.opts.contentType, ...(this.opts.contentEncoding ? { ContentEncoding: this.opts.contentEncoding } : {}), ...this.sse, ...guard })),
      );
      return;
    }
    if (last && last.bytes > 0) await this.uploadPart(last, last.number);
    while (this.inflight.length > 0) await Promise.all(this.inflight);
    if (this.failure) throw this.failure;
    const Parts = [...this.parts].sort((a, b) => a.PartNumber! - b.PartNumber!);
    await this.retried(() => this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId, MultipartUpload: { Parts }, ...guard })));
  }

  /** `send` retried on transient store errors within this writer's budget; the last error when it is spent. */
  private async retried<T>(send: () => Promise<T>): Promise<T> {
    return retry(send, this.retryPolicy, { classify: (e) => classifyS3Error(e, '').kind }).catch((err: unknown) => {
      if (!(err instanceof RetryExhaustedError)) throw err;
      const last = classifyS3Error(err.cause, `upload ${this.uri}`);
      throw captureError(last.reason, `${last.message} (gave up after ${err.attempts} attempts in ${Math.round(err.elapsedMs / 1000)} s)`, { cause: err.cause, kind: 'permanent' });
    });
  }

  private async removeSpool(): Promise<void> {
    this.batchLen = 0;
    this.batch = undefined;
    await this.file?.close().catch(() => undefined);
    this.file = undefined;
    if (this.dir) await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  async commit(metaOf: CommitMeta | ((uri: string) => Promise<CommitMeta>)): Promise<CommitResult> {
    if (this.failure) throw this.failure;
    if (this.state !== 'open') throw captureError('BadRequest', `commit on a ${this.state} writer for ${this.uri}`);
    this.state = 'committing';
    try {
      await this.finishUpload();
    } catch (err) {
      this.state = 'failed';
      await this.abortMultipart().catch(() => undefined);
      throw this.failure ?? classifyS3Error(err, `upload ${this.uri}`);
    } finally {
      await this.removeSpool();
    }
    // The object is visible from here on; the rest verifies and annotates it.
    this.state = 'committed';
    const head = await retry(
      () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key })),
      METADATA_RETRY,
      { classify: (e) => classifyS3Error(e, '').kind },
    ).catch((err: unknown) => {
      throw classifyS3Error(err instanceof Error && err.name === 'RetryExhaustedError' ? err.cause : err, `verify ${this.uri}`);
    });
    if (head.ContentLength !== this.bytes) {
      throw captureError('SizeMismatch', `${this.uri} holds ${head.ContentLength} bytes after upload, ${this.bytes} were written`);
    }
    const meta = typeof metaOf === 'function' ? await metaOf(this.uri) : metaOf;
    // Checksums go on as tags, not as user metadata: metadata can only be
    // changed by copying the object onto itself, which rewrites it after the
    // IfNoneMatch guard has been passed, so a concurrent writer's object could
    // be silently replaced (and a copy of a large object costs a full read and
    // write on the store). Tags are a sub-resource: setting them leaves the
    // content and its ETag alone.
    // The labels (logtail.dev/retention, namespace, …) ride along for bucket lifecycle rules.
    await putTags(this.client, this.bucket, this.key, this.uri, meta);
    return { uri: this.uri, size: this.bytes };
  }

  async abort(): Promise<void> {
    if (this.state === 'committed' || this.state === 'aborted' || this.state === 'committing' || this.state === 'released') return;
    this.state = 'aborted';
    await Promise.all(this.inflight).catch(() => undefined);
    await this.removeSpool();
    await this.abortMultipart();
  }

  // Read through a call: TypeScript would keep a narrowing across awaits.
  private currentState(): State {
    return this.state;
  }

  private async abortMultipart(): Promise<void> {
    const UploadId = this.uploadId;
    if (!UploadId) return;
    await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId })).catch((err: unknown) => {
      const name = (err as SdkErrorShape).name;
      // Already aborted, or completed.
      if (name === 'NoSuchUpload' || (err as SdkErrorShape).$metadata?.httpStatusCode === 404) return;
      throw classifyS3Error(err, `abort multipart upload of ${this.uri}`);
    });
  }
}
