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
  private readonly object: Hash = createHash('sha256');
  private readonly gzip: Gzip | undefined;
  private readonly piped: Promise<void> | undefined;
  private failure: unknown;
  bytes = 0;
  objectBytes = 0;

  constructor(writer: ObjectWriter, compression: 'none' | 'gzip') {
    this.writer = writer;
    if (compression === 'gzip') {
      this.gzip = createGzip({ level: 6 });
      const out = new Writable({
        highWaterMark: 1 << 20,
        write: (chunk: Buffer, _enc, cb) => {
          this.object.update(chunk);
          this.objectBytes += chunk.length;
          writer.write(chunk).then(() => cb(), cb);
        },
      });
      this.piped = pipeline(this.gzip, out).catch((err: unknown) => {
        this.failure = err;
        throw err;
      });
      // surfaced through write()/finish(); avoid an unhandled rejection meanwhile
      this.piped.catch(() => undefined);
    }
  }

  async write(b: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    this.content.update(b);
    this.bytes += b.length;
    if (!this.gzip) {
      this.object.update(b);
      this.objectBytes += b.length;
      await this.writer.write(b);
      return;
    }
    if (!this.gzip.write(b)) {
      await Promise.race([once(this.gzip, 'drain'), this.piped]);
    }
    if (this.failure) throw this.failure;
  }

  async finish(): Promise<SinkDigest> {
    if (this.gzip) {
      this.gzip.end();
      await this.piped;
    }
    return {
      sha256: this.content.digest('hex'),
      objectSha256: this.object.digest('hex'),
      bytes: this.bytes,
      objectBytes: this.objectBytes,
    };
  }

  destroy(): void {
    this.gzip?.destroy();
  }
}
