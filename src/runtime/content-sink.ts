// What the capture writes flows through here: sha256 of the content as stored
// (before compression), optional gzip, sha256 of the object's bytes, then the
// store's writer. Every write waits for the store to accept it, so a slow store
// slows the log stream instead of growing memory.
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, type Gzip } from 'node:zlib';
import type { ObjectWriter } from '../adapters/store/types.ts';

export interface SinkDigest {
  sha256: string;
  objectSha256: string;
  bytes: number;
  objectBytes: number;
}

export class ContentSink {
  private readonly writer: ObjectWriter;
  private readonly content: Hash = createHash('sha256');
  /** The object's bytes are the content's when not compressed: one hash then serves both (sha256 is most of the CPU per byte). */
  private readonly object: Hash | undefined;
  private readonly gzipped: boolean;
  /** The gzip member being written (every durable boundary ends one: endMember). */
  private member: { gzip: Gzip; piped: Promise<void> } | undefined;
  private members = 0;
  private failure: unknown;
  /** Totals, including what a continued object held before (`start`). */
  bytes = 0;
  objectBytes = 0;
  /** The hashes cover only bytes written through this sink, not a continued object's first `start` bytes. */
  readonly partial: boolean;

  /** `start`: a continued object already holds this much (its hashes are not known here). */
  constructor(writer: ObjectWriter, compression: 'none' | 'gzip', start?: { bytes: number; objectBytes: number }) {
    this.writer = writer;
    this.gzipped = compression === 'gzip';
    this.object = this.gzipped ? createHash('sha256') : undefined;
    this.bytes = start?.bytes ?? 0;
    this.objectBytes = start?.objectBytes ?? 0;
    this.partial = this.objectBytes > 0;
    // A continued object ends with a whole member already.
    if (this.partial) this.members = 1;
  }

  private openMember(): { gzip: Gzip; piped: Promise<void> } {
    const gzip = createGzip({ level: 6 });
    const out = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, cb) => {
        this.object!.update(chunk);
        this.objectBytes += chunk.length;
        this.writer.write(chunk).then(() => cb(), cb);
      },
    });
    const piped = pipeline(gzip, out).catch((err: unknown) => {
      this.failure = err;
      throw err;
    });
    // surfaced through write()/finish(); avoid an unhandled rejection meanwhile
    piped.catch(() => undefined);
    this.members++;
    this.member = { gzip, piped };
    return this.member;
  }

  async write(b: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    this.content.update(b);
    this.bytes += b.length;
    if (!this.gzipped) {
      this.objectBytes += b.length;
      await this.writer.write(b);
      return;
    }
    const m = this.member ?? this.openMember();
    if (!m.gzip.write(b)) {
      await Promise.race([once(m.gzip, 'drain'), m.piped]);
    }
    if (this.failure) throw this.failure;
  }

  /**
   * Ends the gzip member in progress: everything written so far is then in
   * the writer as whole members (concatenated members are one gzip file,
   * RFC 1952 section 2.2), so the object may end here and be continued.
   */
  async endMember(): Promise<void> {
    const m = this.member;
    if (!m) return;
    this.member = undefined;
    m.gzip.end();
    await m.piped;
    if (this.failure) throw this.failure;
  }

  async finish(): Promise<SinkDigest> {
    // An empty log still makes a valid (empty) gzip file.
    if (this.gzipped && this.members === 0) this.openMember();
    await this.endMember();
    const sha256 = this.content.digest('hex');
    return {
      sha256,
      objectSha256: this.object ? this.object.digest('hex') : sha256,
      bytes: this.bytes,
      objectBytes: this.objectBytes,
    };
  }

  destroy(): void {
    this.member?.gzip.destroy();
  }
}
