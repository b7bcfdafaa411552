// spec.maxBytes: a stage in front of the content sink that keeps the head and
// the tail of a run's log and puts one marker line between them
// (src/core/truncate.ts decides sizes, cuts and the marker). Memory stays
// fixed whatever maxBytes is:
// - the head up to LINE_SLACK before its window's end goes straight through;
// - everything after it waits in a spool file (--spool-dir) until the run
//   ends (at most maxBytes: stored whole) or the log passes maxBytes; then the
//   head is completed from that file and the last TAIL_WINDOW bytes move to a
//   ring file of that size, which keeps the newest tail from there on;
// - at the end the marker and the tail (from the ring file) follow the head.
// What reaches the content sink is the stored content: its sha256, gzip and
// bytes are of head + marker + tail.
import { mkdir, mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureError, describeError } from '../adapters/errors.ts';
import { HeadTracker, type TruncateLayout, headCut, layout, markerLine, tailStart, LINE_SLACK } from '../core/truncate.ts';
import type { ContentSink, SinkDigest } from './content-sink.ts';

/** What a capture run writes its content to: the content sink, or this stage in front of it. */
export interface RunSink {
  write(b: Buffer): Promise<void>;
  finish(): Promise<SinkDigest & { truncatedBytes?: number }>;
  destroy(): void;
}

/** Bytes read back from a spool file at a time (the only buffer this stage allocates). */
const COPY_CHUNK = 64 * 1024;

export const DEFAULT_SPOOL_DIR = join(tmpdir(), 'logtail-spool');

/** Scratch space written and read at positions: a file in the spool directory (tests may use memory). */
export interface Spool {
  writeAt(pos: number, b: Buffer): Promise<void>;
  /** A fresh buffer of `len` bytes from `pos`. */
  readAt(pos: number, len: number): Promise<Buffer>;
  remove(): Promise<void>;
}
export type OpenSpool = () => Promise<Spool>;

/** Spool files in `root` (--spool-dir), one private directory each. */
export function fileSpool(root: string = DEFAULT_SPOOL_DIR): OpenSpool {
  return () => SpoolFile.create(root);
}

/** A file in the spool directory, written and read at positions. */
class SpoolFile implements Spool {
  private readonly dir: string;
  private readonly fh: FileHandle;

  private constructor(dir: string, fh: FileHandle) {
    this.dir = dir;
    this.fh = fh;
  }

  static async create(root: string): Promise<SpoolFile> {
    try {
      await mkdir(root, { recursive: true, mode: 0o700 });
      const dir = await mkdtemp(join(root, 't-'));
      return new SpoolFile(dir, await open(join(dir, 'spool'), 'w+', 0o600));
    } catch (err) {
      throw captureError('StoreUnavailable', `spool directory ${root}: ${describeError(err)}`, { cause: err });
    }
  }

  async writeAt(pos: number, b: Buffer): Promise<void> {
    try {
      for (let done = 0; done < b.length; ) done += (await this.fh.write(b, done, b.length - done, pos + done)).bytesWritten;
    } catch (err) {
      // ENOSPC (the spool's sizeLimit) or EIO: retried or failed like a store outage.
      throw captureError('StoreUnavailable', `spool ${this.dir}: ${describeError(err)}`, { cause: err });
    }
  }

  /** A fresh buffer of `len` bytes from `pos`. */
  async readAt(pos: number, len: number): Promise<Buffer> {
    const b = Buffer.allocUnsafe(len);
    try {
      for (let done = 0; done < len; ) {
        const { bytesRead } = await this.fh.read(b, done, len - done, pos + done);
        if (bytesRead === 0) throw new Error(`short read at ${pos + done}`);
        done += bytesRead;
      }
    } catch (err) {
      throw captureError('StoreUnavailable', `spool ${this.dir}: ${describeError(err)}`, { cause: err });
    }
    return b;
  }

  async remove(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The last `size` bytes of a stream, in a file: absolute position a is at offset a mod size. */
class RingFile {
  readonly file: Spool;
  readonly size: number;

  constructor(file: Spool, size: number) {
    this.file = file;
    this.size = size;
  }

  async write(at: number, b: Buffer): Promise<void> {
    if (b.length > this.size) {
      at += b.length - this.size;
      b = b.subarray(b.length - this.size);
    }
    const off = at % this.size;
    const first = Math.min(b.length, this.size - off);
    await this.file.writeAt(off, b.subarray(0, first));
    if (first < b.length) await this.file.writeAt(0, b.subarray(first));
  }

  /** `len` bytes from absolute position `at` (within the last `size` bytes written). */
  async read(at: number, len: number): Promise<Buffer> {
    const off = at % this.size;
    const first = Math.min(len, this.size - off);
    const a = await this.file.readAt(off, first);
    return first < len ? Buffer.concat([a, await this.file.readAt(0, len - first)]) : a;
  }
}

export interface TruncateOptions {
  maxBytes: number;
  /** The content carries kubelet timestamp prefixes (spec.timestamps): the marker gets one too. */
  timestamps: boolean;
  /** Where the undecided part and the tail wait; default: files in the OS temporary directory's logtail-spool. */
  openSpool?: OpenSpool;
}

export class TruncatingSink implements RunSink {
  readonly layout: TruncateLayout;
  private readonly inner: ContentSink;
  private readonly timestamps: boolean;
  private readonly openSpool: OpenSpool;
  private readonly tracker = new HeadTracker();
  /** Content bytes received. */
  read = 0;
  /** Content[headSure ..) while the log is within maxBytes. */
  private pending: Spool | undefined;
  /** The newest tail, once the log is past maxBytes. */
  private ring: RingFile | undefined;
  /** Once past maxBytes: the head's length, whether it ends a line, the marker's stamp. */
  private head: { length: number; endsLine: boolean; stamp: string | undefined } | undefined;
  /** Bytes left out, once finished. */
  truncatedBytes = 0;

  constructor(inner: ContentSink, o: TruncateOptions) {
    this.inner = inner;
    this.layout = layout(o.maxBytes);
    this.timestamps = o.timestamps;
    this.openSpool = o.openSpool ?? fileSpool();
  }

  async write(b: Buffer): Promise<void> {
    const l = this.layout;
    if (this.read < l.head) this.tracker.push(b.subarray(0, l.head - this.read));
    if (this.read < l.headSure) {
      // In the head whatever the cut: straight through.
      const n = Math.min(b.length, l.headSure - this.read);
      const through = b.subarray(0, n);
      this.read += n;
      await this.inner.write(through);
      b = b.subarray(n);
      if (b.length === 0) return;
    }
    const at = this.read;
    this.read += b.length;
    if (this.ring) return this.ring.write(at, b);
    this.pending ??= await this.openSpool();
    await this.pending.writeAt(at - l.headSure, b);
    if (this.read > l.maxBytes) await this.startTail();
  }

  /** The log has passed maxBytes: complete the head, keep the last tail-window bytes in a ring. */
  private async startTail(): Promise<void> {
    const l = this.layout;
    const pending = this.pending!;
    const cut = headCut(l, this.tracker.lastNewlineEnd);
    this.head = { length: cut, endsLine: cut === this.tracker.lastNewlineEnd, stamp: this.timestamps ? this.tracker.stampFor(cut) : undefined };
    await this.copy(pending, l.headSure, cut, (b) => this.inner.write(b));
    const ring = new RingFile(await this.openSpool(), l.tail);
    await this.copy(pending, this.read - l.tail, this.read, (b, at) => ring.write(at, b));
    this.ring = ring;
    this.pending = undefined;
    await pending.remove();
  }

  /** Content [from, to) out of the pending file (which starts at headSure), in pieces. */
  private async copy(f: Spool, from: number, to: number, sink: (b: Buffer, at: number) => Promise<void>): Promise<void> {
    for (let at = from; at < to; at += COPY_CHUNK) {
      const n = Math.min(COPY_CHUNK, to - at);
      await sink(await f.readAt(at - this.layout.headSure, n), at);
    }
  }

  async finish(): Promise<SinkDigest & { truncatedBytes: number }> {
    const l = this.layout;
    if (!this.ring) {
      // Within maxBytes: the log whole.
      if (this.pending) await this.copy(this.pending, l.headSure, this.read, (b) => this.inner.write(b));
      await this.pending?.remove();
      this.pending = undefined;
      return { ...(await this.inner.finish()), truncatedBytes: 0 };
    }
    const ring = this.ring;
    const head = this.head!;
    const windowAt = this.read - l.tail;
    const start = tailStart(await ring.read(windowAt, Math.min(l.tail, LINE_SLACK)), l.tail);
    this.truncatedBytes = this.read - head.length - (l.tail - start);
    await this.inner.write(markerLine(l, this.truncatedBytes, head.endsLine, head.stamp));
    for (let at = windowAt + start; at < this.read; at += COPY_CHUNK) await this.inner.write(await ring.read(at, Math.min(COPY_CHUNK, this.read - at)));
    this.ring = undefined;
    await ring.file.remove();
    return { ...(await this.inner.finish()), truncatedBytes: this.truncatedBytes };
  }

  destroy(): void {
    this.inner.destroy();
    void this.pending?.remove();
    void this.ring?.file.remove();
    this.pending = undefined;
    this.ring = undefined;
  }
}
