// Turns the kubelet's `timestamps=true` log stream of one container instance,
// delivered over any number of connections, into the exact bytes of the log.
//
// Each line arrives as `<timestamp><space><content>`. The timestamp is fixed
// width (9 fraction digits) and ends in `Z` or in the runtime's offset
// (`-03:30`): see kubelet-timestamp.ts. Timestamps are compared as instants,
// as bytes only when their offsets are equal. A line
// longer than 16 KiB is stored by the runtime as several records; the kubelet
// writes the timestamp only before the first, but filters every record by
// sinceTime, so a resumed stream may begin inside a long line without any
// prefix. The apiserver truncates sinceTime to the second, so a resumed stream
// replays the whole second of the checkpoint.
//
// The checkpoint names the line in progress by (timestamp, ordinal among lines
// with that exact timestamp, content bytes already emitted). Identical lines
// are real log lines and are never deduplicated by content.
//
// Cost per byte is what limits the operator's throughput: lines are found with
// Buffer.indexOf, output is emitted as (at most) one buffer per push, and no
// object is allocated per line unless a prefix straddles two chunks.

import {
  PREFIX_MAX_LEN,
  TS_MAX_LEN,
  ZONE_AT,
  compareTimestampsAt,
  heldPrefixLength,
  isKubeletTimestamp,
  prefixByteFits,
  prefixLengthAt,
  sinceTimeOf,
  validTimestampAt,
} from './kubelet-timestamp.ts';

export { compareTimestamps, isKubeletTimestamp, sinceTimeOf, stampedInLaterSecond, timestampMs } from './kubelet-timestamp.ts';

/** Position in the log up to which bytes have been emitted. */
export interface Checkpoint {
  /** Timestamp of the line in progress, or of the last line when it is complete. */
  time: string;
  /** Index of that line among lines stamped with exactly `time`, 0-based. */
  ordinal: number;
  /** Content bytes of that line already emitted, its newline included when complete. */
  offset: number;
  /** The line's newline has been emitted. */
  complete: boolean;
}

/** A checkpoint to resume from, e.g. from status; `complete` is informational. */
export type CheckpointInput = Omit<Checkpoint, 'complete'> & { complete?: boolean };

/** A strict resume met a stream that does not contain the checkpoint line. */
export class ResumeMismatchError extends Error {
  /** missing: the checkpoint line is not in the stream; window: a tail response does not reach back past it. */
  readonly kind: 'missing' | 'window';
  constructor(message: string, kind: 'missing' | 'window' = 'missing') {
    super(message);
    this.name = 'ResumeMismatchError';
    this.kind = kind;
  }
}

export interface ResumeFilterOptions {
  /** Emit the timestamp prefixes too (spec.timestamps); otherwise strip them. */
  keepTimestamps: boolean;
  /** Resume an instance whose bytes up to this point are already stored. */
  checkpoint?: CheckpointInput | undefined;
  /**
   * The caller gives up each chunk it pushes: the filter may rearrange bytes
   * inside it (emitted buffers still never change afterwards). Saves a copy
   * and an allocation per chunk when timestamps are stripped.
   */
  inPlace?: boolean;
}

const NL = 10;
/** Where the fraction digits start: `2026-11-27T10:00:05.` is 20 bytes. */
const FRACTION_AT = 20;

function sameBytes(a: Buffer, aAt: number, b: Buffer, bAt: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aAt + i] !== b[bAt + i]) return false;
  return true;
}

/** Every byte from `from` to `to` (inclusive) is a decimal digit. */
function digitsAt(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i <= to; i++) {
    const x = b[i] as number;
    if (x < 48 || x > 57) return false;
  }
  return true;
}

// What a prefix is, relative to the previous line's timestamp.
const TS_BAD = 0; // not a valid timestamp: the line is malformed
const TS_SAME = 1; // the same instant as the previous line: next ordinal
const TS_NEW = 2; // a different instant

const LINE_START = 0; // expecting a timestamp prefix
const EMIT = 1; // inside a line's content, emitting
const DROP = 2; // inside a line already stored (or unusable), dropping up to its newline
const SKIP = 3; // inside the checkpoint line, dropping the bytes already emitted
const RAW = 4; // inside a line without timestamp, emitting it as is
const PREAMBLE_SKIP = 5; // from-the-top reconnection: dropping untimestamped bytes already emitted

export class ResumeFilter {
  /**
   * Bytes emitted: what is stored, timestamp prefixes included under
   * keepTimestamps. This is the meaning of `bytes` in the LogTail status.
   */
  bytes = 0;
  /** Bytes the container wrote that were emitted (timestamp prefixes excluded). */
  contentBytes = 0;
  /** Lines whose newline has been emitted. */
  lines = 0;
  /** Timestamp of the first line whose start was emitted. */
  firstTimestamp: string | undefined;
  /**
   * Resumed connections that did not contain the checkpoint line (the log was
   * rotated or truncated meanwhile) or contained it shorter than before: bytes
   * between the checkpoint and the next line emitted may be missing.
   */
  gaps = 0;
  /**
   * Lines that did not start with a valid kubelet timestamp in the middle of
   * a connection (emitted as is), or, while resuming, were dropped. A capture
   * with malformed lines is not Complete: the object may hold prefixes, and
   * resume points inside such lines cannot be exact.
   */
  malformedLines = 0;
  /** Description of the latest gap or malformed line. */
  lastAnomaly: string | undefined;

  private readonly keep: boolean;
  private state = LINE_START;
  private started = false;

  // Partial prefix held across chunks (at most 36 bytes).
  private readonly pfx = Buffer.alloc(PREFIX_MAX_LEN);
  private pfxLen = 0;

  // The line in progress (or last line): the checkpoint when not seeking.
  private readonly lastTs = Buffer.alloc(TS_MAX_LEN);
  // Where the latest timestamp lives: a reference into the current chunk,
  // copied into lastTs only at the end of push() (or when read), so a line
  // costs no native copy call.
  private tsBuf: Buffer = this.lastTs;
  private tsAt = 0;
  private tsLen = 0;
  private hasLine = false;
  private ordinal = 0;
  private lineOffset = 0;
  private lineComplete = false;
  private connHasTs = false;
  private connFirstLine = true;

  // Resume target while seeking through a replayed stretch.
  private seeking = false;
  private readonly seekTs = Buffer.alloc(TS_MAX_LEN);
  private seekLen = 0;
  private seekTime = '';
  private seekOrdinal = 0;
  private seekOffset = 0;
  private seekComplete = false;
  private skipLeft = 0;

  // Untimestamped bytes emitted before any timestamped line (a log file that
  // starts inside a long line); a reconnection from the top replays them.
  private preamble = 0;
  private afterPreamble = LINE_START;

  // Output of the current push: one range of the chunk, or a copy once the
  // emitted bytes stop being contiguous.
  private cur: Buffer = Buffer.alloc(0);
  private rs = 0;
  private re = -1;
  private out: Buffer | null = null;
  private outLen = 0;
  private outStart = 0;
  // In-place mode: lines are compacted within the caller's chunk (the caller
  // hands over ownership), so stripping timestamps allocates nothing. `base`
  // is where this chunk's not-yet-emitted region starts.
  private readonly inPlace: boolean;
  private base = 0;
  private emitFn: (b: Buffer) => void = () => {};

  private strict = false;
  private tailWindow = false;

  constructor(opts: ResumeFilterOptions) {
    this.keep = opts.keepTimestamps;
    this.inPlace = opts.inPlace ?? false;
    const cp = opts.checkpoint;
    if (cp !== undefined) {
      if (!isKubeletTimestamp(cp.time)) throw new Error(`checkpoint time "${String(cp.time)}" is not a kubelet timestamp`);
      if (!Number.isSafeInteger(cp.ordinal) || cp.ordinal < 0) throw new Error('checkpoint ordinal must be a non-negative integer');
      if (!Number.isSafeInteger(cp.offset) || cp.offset < 0) throw new Error('checkpoint offset must be a non-negative integer');
      this.seeking = true;
      this.seekLen = this.seekTs.write(cp.time, 'latin1');
      this.seekTime = cp.time;
      this.seekOrdinal = cp.ordinal;
      this.seekOffset = cp.offset;
      this.seekComplete = cp.complete ?? false;
    }
  }

  /** True while a resumed connection has not yet reached the checkpoint line. */
  get resuming(): boolean {
    return this.seeking;
  }

  /** Position up to which bytes were emitted; undefined before the first timestamped line. */
  checkpoint(): Checkpoint | undefined {
    if (this.seeking) {
      return { time: this.seekTime, ordinal: this.seekOrdinal, offset: this.seekOffset, complete: this.seekComplete };
    }
    if (!this.hasLine) return undefined;
    return { time: this.tsString(), ordinal: this.ordinal, offset: this.lineOffset, complete: this.lineComplete };
  }

  /** sinceTime for the next request (the checkpoint's second, as the apiserver truncates anyway); undefined: from the top. */
  sinceTime(): string | undefined {
    const cp = this.checkpoint();
    return cp === undefined ? undefined : sinceTimeOf(cp.time);
  }

  /**
   * A new response starts: the first one at the top of the log (or at the
   * constructor's checkpoint), later ones at sinceTime(). Whatever the
   * previous connection left half-read is discarded.
   */
  beginConnection(opts: { strict?: boolean; tailWindow?: boolean } = {}): void {
    // strict: a resumed stream that does not contain the checkpoint line is
    // refused (ResumeMismatchError) instead of continuing with a gap; used
    // where the kubelet may be serving another run of the container.
    // tailWindow: the response is a `tailLines` window, not a `sinceTime`
    // replay; it is refused unless it starts before the checkpoint (implies strict).
    this.tailWindow = opts.tailWindow ?? false;
    this.strict = (opts.strict ?? false) || this.tailWindow;
    const cutInside = this.state;
    this.pfxLen = 0;
    this.connHasTs = false;
    this.connFirstLine = true;
    this.state = LINE_START;
    if (this.started && !this.seeking) {
      if (this.hasLine) {
        this.materializeTs();
        this.seekLen = this.lastTs.copy(this.seekTs, 0, 0, this.tsLen);
        this.seekTime = this.tsString();
        this.seekOrdinal = this.ordinal;
        this.seekOffset = this.lineOffset;
        this.seekComplete = this.lineComplete;
        this.seeking = true;
      } else if (this.preamble > 0) {
        this.afterPreamble = cutInside === RAW || (cutInside === PREAMBLE_SKIP && this.afterPreamble === RAW) ? RAW : LINE_START;
        this.skipLeft = this.preamble;
        this.state = PREAMBLE_SKIP;
      }
    }
    this.started = true;
  }

  /**
   * Feeds the next bytes of the current connection; calls `emit` (zero or
   * more times, never with an empty buffer) with the log bytes they complete.
   * Emitted buffers may share memory with `chunk`; emitted bytes never change
   * afterwards, and the chunk itself is modified only in `inPlace` mode.
   */
  push(chunk: Buffer, emit: (b: Buffer) => void): void {
    if (!this.started) this.beginConnection();
    const n = chunk.length;
    if (n === 0) return;
    this.cur = chunk;
    this.emitFn = emit;
    this.re = -1;
    this.out = null;
    this.base = 0;
    let pos = 0;
    while (pos < n) {
      switch (this.state) {
        case EMIT: {
          const nl = chunk.indexOf(NL, pos);
          const end = nl === -1 ? n : nl + 1;
          this.take(pos, end);
          this.contentBytes += end - pos;
          this.lineOffset += end - pos;
          if (nl !== -1) {
            this.lines++;
            this.lineComplete = true;
            this.state = LINE_START;
          }
          pos = end;
          break;
        }
        case LINE_START:
          pos = this.lineStart(chunk, pos, n);
          break;
        case DROP: {
          const nl = chunk.indexOf(NL, pos);
          if (nl === -1) {
            pos = n;
          } else {
            pos = nl + 1;
            this.state = LINE_START;
          }
          break;
        }
        case SKIP:
          pos = this.skip(chunk, pos, n);
          break;
        case RAW: {
          const nl = chunk.indexOf(NL, pos);
          const end = nl === -1 ? n : nl + 1;
          this.take(pos, end);
          this.contentBytes += end - pos;
          if (!this.hasLine) this.preamble += end - pos;
          if (nl !== -1) {
            this.lines++;
            this.state = LINE_START;
          }
          pos = end;
          break;
        }
        case PREAMBLE_SKIP: {
          const k = Math.min(this.skipLeft, n - pos);
          this.skipLeft -= k;
          pos += k;
          if (this.skipLeft === 0) {
            this.state = this.afterPreamble;
            this.connFirstLine = false;
          }
          break;
        }
      }
    }
    this.flush();
    this.materializeTs();
    this.cur = Buffer.alloc(0);
  }

  private materializeTs(): void {
    if (this.tsBuf !== this.lastTs) {
      this.tsBuf.copy(this.lastTs, 0, this.tsAt, this.tsAt + this.tsLen);
      this.tsBuf = this.lastTs;
      this.tsAt = 0;
    }
  }

  private tsString(): string {
    return this.tsBuf.toString('latin1', this.tsAt, this.tsAt + this.tsLen);
  }

  private lineStart(chunk: Buffer, pos: number, n: number): number {
    if (this.pfxLen === 0) {
      const plen = prefixLengthAt(chunk, pos, n);
      if (plen > 0) return this.wholePrefix(chunk, pos, plen);
      if (plen === 0) {
        this.untimestamped(false);
        return pos;
      }
    }
    return this.heldPrefix(chunk, pos, n);
  }

  // The fast path: a prefix of `plen` bytes and a content byte are in the chunk.
  private wholePrefix(chunk: Buffer, pos: number, plen: number): number {
    const kind = this.classify(chunk, pos, plen - 1);
    if (kind === TS_BAD) {
      this.untimestamped(false);
      return pos;
    }
    if (this.commit(chunk, pos, plen - 1, kind === TS_SAME) && this.keep) this.take(pos, pos + plen);
    return pos + plen;
  }

  // The slow path: the prefix straddles chunks; keep what matches so far.
  private heldPrefix(chunk: Buffer, pos: number, n: number): number {
    while (pos < n && this.pfxLen < heldPrefixLength(this.pfx, this.pfxLen)) {
      const b = chunk[pos] as number;
      if (!prefixByteFits(this.pfxLen, b, this.pfx)) {
        this.untimestamped(true);
        return pos;
      }
      this.pfx[this.pfxLen++] = b;
      pos++;
    }
    // Commit only once a content byte is here, so a line whose prefix was
    // read but none of whose content was emitted does not count as started.
    const plen = this.pfxLen;
    if (plen === heldPrefixLength(this.pfx, plen) && pos < n) {
      const kind = this.classify(this.pfx, 0, plen - 1);
      if (kind === TS_BAD) {
        this.untimestamped(true);
        return pos;
      }
      this.pfxLen = 0;
      if (this.commit(this.pfx, 0, plen - 1, kind === TS_SAME) && this.keep) this.emitCopy(this.pfx, plen);
    }
    return pos;
  }

  /**
   * The timestamp at `at` against the previous line's on this connection.
   * Consecutive lines usually differ only in the last fraction digits, so
   * the byte comparison runs from the end (zone first) and exits early; when
   * the rest of the head equals the previous (valid) timestamp, only the
   * differing digits need checking. Anything else is validated in full, and
   * a timestamp with another offset is compared as an instant.
   */
  private classify(buf: Buffer, at: number, len: number): number {
    if (!this.connHasTs || len !== this.tsLen) return this.classifyNew(buf, at, len);
    const ts = this.tsBuf;
    const tsAt = this.tsAt;
    let i = len - 1;
    while (i >= 0 && buf[at + i] === ts[tsAt + i]) i--;
    if (i < 0) return TS_SAME;
    if (i >= ZONE_AT) return this.classifyNew(buf, at, len);
    if (i >= FRACTION_AT && sameBytes(buf, at, ts, tsAt, FRACTION_AT)) return digitsAt(buf, at + FRACTION_AT, at + i) ? TS_NEW : TS_BAD;
    return validTimestampAt(buf, at, len) ? TS_NEW : TS_BAD;
  }

  private classifyNew(buf: Buffer, at: number, len: number): number {
    if (!validTimestampAt(buf, at, len)) return TS_BAD;
    if (!this.connHasTs) return TS_NEW;
    return compareTimestampsAt(buf, at, len, this.tsBuf, this.tsAt, this.tsLen) === 0 ? TS_SAME : TS_NEW;
  }

  // A line starts without a valid timestamp prefix.
  private untimestamped(held: boolean): void {
    const first = this.connFirstLine;
    this.connFirstLine = false;
    if (this.seeking) {
      // On a resumed connection the first such line is the tail of a long
      // line begun before the checkpoint's second: stored already.
      if (!first) this.anomaly(false, 'line without timestamp while resuming; dropped');
      this.pfxLen = 0;
      this.state = DROP;
      return;
    }
    if (!(first && !this.hasLine)) {
      this.anomaly(false, 'line without timestamp prefix; stored as is');
    }
    if (held && this.pfxLen > 0) {
      this.contentBytes += this.pfxLen;
      if (!this.hasLine) this.preamble += this.pfxLen;
      this.emitCopy(this.pfx, this.pfxLen);
    }
    this.pfxLen = 0;
    this.state = RAW;
  }

  // A prefix is complete and content follows. Returns whether the line's
  // start is to be emitted (so the caller emits the prefix under keep).
  private commit(buf: Buffer, at: number, len: number, same: boolean): boolean {
    this.connFirstLine = false;
    if (this.tailWindow && !this.connHasTs) this.checkTailWindow(buf, at, len);
    this.recordTimestamp(buf, at, len, same);
    if (this.seeking && !this.reachSeek(buf, at, len)) return false;
    this.hasLine = true;
    this.lineOffset = 0;
    this.lineComplete = false;
    this.state = EMIT;
    if (this.firstTimestamp === undefined) this.firstTimestamp = this.tsString();
    return true;
  }

  // A tail response may start in the middle of a run of lines sharing the
  // checkpoint's timestamp, where ordinals would be wrong: accept it only if
  // its first line is strictly older than the checkpoint.
  private checkTailWindow(buf: Buffer, at: number, len: number): void {
    if (!this.seeking || compareTimestampsAt(this.seekTs, 0, this.seekLen, buf, at, len) <= 0) {
      throw new ResumeMismatchError('the tail response does not reach back past the checkpoint', 'window');
    }
  }

  private recordTimestamp(buf: Buffer, at: number, len: number, same: boolean): void {
    if (same) {
      this.ordinal++;
      return;
    }
    if (buf === this.pfx || this.inPlace) {
      // pfx is refilled by the next straddling prefix, and in-place
      // compaction may overwrite these bytes: copy now (a JS loop, no
      // native call per line).
      const ts = this.lastTs;
      for (let i = 0; i < len; i++) ts[i] = buf[at + i] as number;
      this.tsBuf = ts;
      this.tsAt = 0;
    } else {
      this.tsBuf = buf;
      this.tsAt = at;
    }
    this.tsLen = len;
    this.ordinal = 0;
    this.connHasTs = true;
  }

  // While seeking: false drops (or skips into) the line; true emits it.
  private reachSeek(buf: Buffer, at: number, len: number): boolean {
    const c = compareTimestampsAt(buf, at, len, this.seekTs, 0, this.seekLen);
    const atCheckpoint = c === 0 && this.ordinal === this.seekOrdinal;
    if (c < 0 || (c === 0 && this.ordinal < this.seekOrdinal)) {
      this.state = DROP;
      return false;
    }
    if (this.strict && !atCheckpoint) {
      // Nothing of this line was emitted and the seek state is intact, so
      // the caller can retry the resume on another request.
      throw new ResumeMismatchError(`resumed stream lacks the checkpoint line ${this.seekTime}#${this.seekOrdinal}; it continues at ${this.tsString()}`);
    }
    this.seeking = false;
    this.hasLine = true;
    if (!atCheckpoint) {
      this.anomaly(true, `resumed stream lacks the checkpoint line ${this.seekTime}#${this.seekOrdinal}; continuing at ${this.tsString()}`);
      return true;
    }
    this.lineOffset = this.seekOffset;
    this.lineComplete = this.seekComplete;
    if (this.seekOffset === 0) return true;
    this.skipLeft = this.seekOffset;
    this.state = SKIP;
    return false;
  }

  private skip(chunk: Buffer, pos: number, n: number): number {
    const limit = Math.min(n, pos + this.skipLeft);
    const nl = chunk.indexOf(NL, pos);
    if (nl !== -1 && nl < limit) {
      // The line ends within the bytes already emitted of it: exactly at
      // their end when the checkpoint line was complete, else it shrank.
      if (nl + 1 - pos !== this.skipLeft) {
        this.anomaly(true, `checkpoint line ${this.seekTime}#${this.seekOrdinal} is shorter than the ${this.seekOffset} bytes already stored`);
      }
      this.skipLeft = 0;
      this.lineComplete = true;
      this.state = LINE_START;
      return nl + 1;
    }
    this.skipLeft -= limit - pos;
    if (this.skipLeft === 0) this.state = EMIT;
    return limit;
  }

  private anomaly(gap: boolean, message: string): void {
    if (gap) this.gaps++;
    else this.malformedLines++;
    this.lastAnomaly = message;
  }

  private take(s: number, e: number): void {
    this.bytes += e - s;
    if (this.out === null) {
      if (this.re === -1) {
        this.rs = s;
        this.re = e;
        return;
      }
      if (this.re === s) {
        this.re = e;
        return;
      }
      if (this.inPlace) {
        // Moving bytes left, never past what was already emitted.
        this.out = this.cur;
        this.outStart = this.base;
        this.cur.copyWithin(this.outStart, this.rs, this.re);
        this.outLen = this.re - this.rs;
      } else {
        this.out = Buffer.allocUnsafe(this.cur.length);
        this.outStart = 0;
        this.outLen = this.cur.copy(this.out, 0, this.rs, this.re);
      }
    }
    if (this.inPlace) {
      this.cur.copyWithin(this.outStart + this.outLen, s, e);
      this.outLen += e - s;
    } else {
      this.outLen += this.cur.copy(this.out, this.outLen, s, e);
    }
  }

  private flush(): void {
    if (this.out !== null) {
      if (this.outLen > 0) this.emitFn(this.out.subarray(this.outStart, this.outStart + this.outLen));
      if (this.inPlace) this.base = this.outStart + this.outLen;
    } else if (this.re > this.rs) {
      this.emitFn(this.rs === 0 && this.re === this.cur.length ? this.cur : this.cur.subarray(this.rs, this.re));
      this.base = this.re;
    }
    this.out = null;
    this.re = -1;
  }

  // Held bytes live in a reused buffer: emit a copy, after whatever is pending.
  private emitCopy(src: Buffer, len: number): void {
    this.flush();
    this.bytes += len;
    this.emitFn(Buffer.from(src.subarray(0, len)));
  }
}
