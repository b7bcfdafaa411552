// The simulated container runtime's log of one container run: what the CRI
// log file holds (records of at most 16 KiB, each stamped, with its stream and
// a partial flag), kept as an index in growable typed arrays plus the content
// bytes in a file (or memory, for tests). A 200 MiB log is a million records:
// as JS objects that would cost hundreds of MiB, as typed arrays ~20 MiB.
import { openSync, writeSync, read as fsRead, closeSync } from 'node:fs';

export const STDOUT = 0;
export const STDERR = 1;
export type StreamId = typeof STDOUT | typeof STDERR;

/** The runtime's maximum record size (containerd splits longer lines into partial records). */
export const MAX_RECORD_BYTES = 16 * 1024;

/** Content is written to the backend in pieces of up to this size. */
const PENDING_MAX = 1 << 20;

const FLAG_STDERR = 1;
const FLAG_PARTIAL = 2;

/** Where a run's content bytes live; offsets are bytes of content, in record order. */
export interface ContentBackend {
  write(buf: Buffer): void;
  read(start: number, end: number): Promise<Buffer>;
  close(): void;
}

export class MemoryContent implements ContentBackend {
  private chunks: Buffer[] = [];
  private starts: number[] = [];
  private size = 0;

  write(buf: Buffer): void {
    if (buf.length === 0) return;
    this.starts.push(this.size);
    this.chunks.push(Buffer.from(buf));
    this.size += buf.length;
  }

  read(start: number, end: number): Promise<Buffer> {
    return Promise.resolve(this.readSync(start, end));
  }

  readSync(start: number, end: number): Buffer {
    const out = Buffer.allocUnsafe(end - start);
    let i = upperBound(this.starts, start) - 1;
    let pos = start;
    while (pos < end && i < this.chunks.length) {
      const c = this.chunks[i]!;
      const cs = this.starts[i]!;
      const from = pos - cs;
      const n = Math.min(c.length - from, end - pos);
      c.copy(out, pos - start, from, from + n);
      pos += n;
      i++;
    }
    return out;
  }

  close(): void {}
}

function upperBound(a: number[], v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Content in a file that is also the recorded output the tests hash. Writes
 * are synchronous so that bytes are readable the moment a record is visible.
 */
export class FileContent implements ContentBackend {
  private readonly fd: number;
  private size = 0;
  private closed = false;

  constructor(path: string) {
    this.fd = openSync(path, 'w+');
  }

  write(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      off += writeSync(this.fd, buf, off, buf.length - off, this.size + off);
    }
    this.size += buf.length;
  }

  read(start: number, end: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(end - start);
    return new Promise((resolve, reject) => {
      const step = (got: number) => {
        if (got >= buf.length) return resolve(buf);
        // A closed fd number may already belong to another file.
        if (this.closed) return reject(new Error('log content closed'));
        fsRead(this.fd, buf, got, buf.length - got, start + got, (err, n) => {
          if (err) return reject(err);
          if (n === 0) return reject(new Error(`short read of log content at ${start + got}`));
          step(got + n);
        });
      };
      step(0);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

/** Bytes a record takes in the CRI log file: `TS STREAM TAG content\n`. */
export function criRecordSize(partial: boolean, contentLen: number, offsetMinutes = 0): number {
  // 30 (timestamp; 35 with a numeric offset) + 1 + 6 (stdout|stderr) + 1 + 1 (P|F) + 1 + content (+ '\n' a partial record gets on disk)
  return (offsetMinutes === 0 ? 40 : 45) + contentLen + (partial ? 1 : 0);
}

export class LogStore {
  /** Records visible to readers (committed). */
  committed = 0;
  /** Index of the first record of the current log file (after the last rotation). */
  rotationStart = 0;
  /** Set once the container run has ended and all its output is committed. */
  finished = false;

  private n = 0;
  private cap: number;
  private secs: Float64Array;
  private nsecs: Uint32Array;
  private flags: Uint8Array;
  private offs: Float64Array;
  private pending: Buffer;
  private pendingLen = 0;
  private currentFileSize = 0;
  private waiters: (() => void)[] = [];
  private readonly content: ContentBackend;
  private readonly maxFileSize: number | null;
  /** The runtime stamps this run's records with this fixed UTC offset (minutes; timestampOffset fault). */
  readonly offsetMinutes: number;

  constructor(content: ContentBackend, opts: { maxFileSize?: number | null; offsetMinutes?: number } = {}) {
    this.content = content;
    this.maxFileSize = opts.maxFileSize ?? null;
    this.offsetMinutes = opts.offsetMinutes ?? 0;
    this.cap = 1024;
    this.secs = new Float64Array(this.cap);
    this.nsecs = new Uint32Array(this.cap);
    this.flags = new Uint8Array(this.cap);
    this.offs = new Float64Array(this.cap + 1);
    // Small at first: a simulator plays many quiet containers and a few loud ones.
    this.pending = Buffer.allocUnsafe(16 << 10);
  }

  /** Records appended so far (committed or not). */
  get length(): number {
    return this.n;
  }

  /** Content bytes appended so far. */
  get contentBytes(): number {
    return this.offs[this.n]!;
  }

  sec(i: number): number {
    return this.secs[i]!;
  }
  nsec(i: number): number {
    return this.nsecs[i]!;
  }
  stream(i: number): StreamId {
    return (this.flags[i]! & FLAG_STDERR ? STDERR : STDOUT) as StreamId;
  }
  partial(i: number): boolean {
    return (this.flags[i]! & FLAG_PARTIAL) !== 0;
  }
  /** Content offset of record i (i may equal length: the end). */
  offset(i: number): number {
    return this.offs[i]!;
  }

  /** Whether record i is stamped strictly before (sec, nsec). */
  before(i: number, sec: number, nsec: number): boolean {
    const s = this.secs[i]!;
    return s < sec || (s === sec && this.nsecs[i]! < nsec);
  }

  private grow(): void {
    const cap = this.cap * 2;
    const secs = new Float64Array(cap);
    secs.set(this.secs);
    const nsecs = new Uint32Array(cap);
    nsecs.set(this.nsecs);
    const flags = new Uint8Array(cap);
    flags.set(this.flags);
    const offs = new Float64Array(cap + 1);
    offs.set(this.offs);
    this.secs = secs;
    this.nsecs = nsecs;
    this.flags = flags;
    this.offs = offs;
    this.cap = cap;
  }

  /** Appends one record (content of at most MAX_RECORD_BYTES); visible after commit(). */
  append(sec: number, nsec: number, stream: StreamId, partial: boolean, src: Buffer, start = 0, end = src.length): void {
    if (this.finished) throw new Error('append to a finished log');
    const len = end - start;
    if (this.n === this.cap) this.grow();
    const i = this.n;
    if (i > 0) {
      const ps = this.secs[i - 1]!;
      if (sec < ps || (sec === ps && nsec < this.nsecs[i - 1]!)) throw new Error('log timestamps must not decrease');
    }
    this.secs[i] = sec;
    this.nsecs[i] = nsec;
    this.flags[i] = (stream === STDERR ? FLAG_STDERR : 0) | (partial ? FLAG_PARTIAL : 0);
    this.offs[i + 1] = this.offs[i]! + len;
    this.n = i + 1;
    if (this.pendingLen + len > this.pending.length) {
      this.flushPending();
      if (this.pending.length < PENDING_MAX || len > this.pending.length) this.pending = Buffer.allocUnsafe(Math.max(len, Math.min(PENDING_MAX, this.pending.length * 4)));
    }
    src.copy(this.pending, this.pendingLen, start, end);
    this.pendingLen += len;
    if (this.maxFileSize !== null) {
      this.currentFileSize += criRecordSize(partial, len, this.offsetMinutes);
      // The kubelet rotates on size; a rotated file is invisible to new requests.
      if (this.currentFileSize >= this.maxFileSize) {
        this.rotationStart = this.n;
        this.currentFileSize = 0;
      }
    }
  }

  private flushPending(): void {
    if (this.pendingLen === 0) return;
    this.content.write(this.pending.subarray(0, this.pendingLen));
    this.pendingLen = 0;
  }

  /** Makes appended records visible and wakes followers. */
  commit(): void {
    this.flushPending();
    if (this.committed === this.n) return;
    this.committed = this.n;
    this.wake();
  }

  /** The run ended: commit what is left; followers end once drained. */
  finish(): void {
    if (this.finished) return;
    this.flushPending();
    this.committed = this.n;
    this.finished = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves at the next commit or finish. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  readContent(start: number, end: number): Promise<Buffer> {
    return this.content.read(start, end);
  }

  close(): void {
    this.content.close();
  }

  /** First index in [from, to) whose record is stamped at or after (sec, nsec); timestamps never decrease. */
  firstAtOrAfter(from: number, to: number, sec: number, nsec: number): number {
    let lo = from;
    let hi = to;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.before(mid, sec, nsec)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
