// spec.maxBytes: what a capture keeps of a run's log that is larger than the
// cap, and the marker line it puts in place of what it left out. Pure; the
// streaming mechanism is runtime/truncating-sink.ts.
//
// The rule, on the content as stored (after the timestamp filter, before
// compression): a log of at most maxBytes bytes is stored whole. A longer one
// is stored as HEAD + MARKER + TAIL, at most maxBytes bytes in all:
// - room is reserved for the longest marker this maxBytes can need (RESERVE);
//   the rest is split in half: a head window of the first HEAD_WINDOW bytes
//   and a tail window of the last TAIL_WINDOW bytes (the tail gets the odd byte);
// - the head is its window cut after the window's last newline, when that
//   newline lies within LINE_SLACK bytes of the window's end; otherwise (a
//   line longer than that, or no newline) the whole window, cut mid-line;
// - the tail is its window from just after the window's first newline, when
//   that newline lies within LINE_SLACK bytes of the window's start and is
//   not the window's last byte; otherwise the whole window;
// - both parts are therefore never empty, and the marker states exactly how
//   many bytes lie between them.
import { PREFIX_MAX_LEN, prefixLengthAt, validTimestampAt } from './kubelet-timestamp.ts';

/** Smallest accepted spec.maxBytes: both parts and the longest marker fit with room to spare. */
export const MIN_MAX_BYTES = 1024;
/** Largest accepted spec.maxBytes (1 TiB): a bound for the CRD; the tail is spooled to disk, never held in memory. */
export const MAX_MAX_BYTES = 2 ** 40;
/** How far a cut may move to land on a line boundary (and the most bytes of the head the sink holds back). */
export const LINE_SLACK = 64 * 1024;
/** Digits of the largest count a marker can state (Number.MAX_SAFE_INTEGER). */
const MAX_COUNT = Number.MAX_SAFE_INTEGER;

const NL = 0x0a;

export interface TruncateLayout {
  maxBytes: number;
  /** Bytes reserved for the marker (its longest form for this maxBytes). */
  reserve: number;
  /** The head window: the first `head` bytes of the log. */
  head: number;
  /** The tail window: the last `tail` bytes of the log. */
  tail: number;
  /** Bytes of the head window that are in the head whatever the cut: head - LINE_SLACK (at least 0). */
  headSure: number;
}

/** The marker's words, without a timestamp prefix. */
export function markerText(leftOut: number, maxBytes: number): string {
  return `[logtail: truncated, ${leftOut} bytes left out (spec.maxBytes=${maxBytes})]\n`;
}

export function layout(maxBytes: number): TruncateLayout {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < MIN_MAX_BYTES || maxBytes > MAX_MAX_BYTES) {
    throw new RangeError(`maxBytes must be an integer between ${MIN_MAX_BYTES} and ${MAX_MAX_BYTES}, got ${maxBytes}`);
  }
  // A newline ending a cut line, a timestamp prefix and the text with the largest count.
  const reserve = 1 + PREFIX_MAX_LEN + Buffer.byteLength(markerText(MAX_COUNT, maxBytes));
  const room = maxBytes - reserve;
  const head = Math.floor(room / 2);
  return { maxBytes, reserve, head, tail: room - head, headSure: Math.max(0, head - LINE_SLACK) };
}

/**
 * Length of the head, from the end of the last line that ended inside the
 * head window (0 when none did).
 */
export function headCut(l: TruncateLayout, lastNewlineEnd: number): number {
  return lastNewlineEnd > 0 && lastNewlineEnd >= l.head - LINE_SLACK ? lastNewlineEnd : l.head;
}

/**
 * Where the tail starts inside the tail window of `windowLength` bytes;
 * `start` holds the window's first bytes (at least min(windowLength, LINE_SLACK)).
 */
export function tailStart(start: Buffer, windowLength: number): number {
  const nl = start.subarray(0, Math.min(start.length, windowLength, LINE_SLACK)).indexOf(NL);
  return nl >= 0 && nl + 1 < windowLength ? nl + 1 : 0;
}

/**
 * The marker line. `headEndsLine`: the head ends with a newline (else the
 * marker starts with one, so it is a line of its own). `stamp`: under
 * spec.timestamps, the kubelet timestamp of the head's last line with a valid
 * one, printed before the words as the kubelet prints its prefix: the marker
 * is then a well-formed timestamped line, in time order with the lines around
 * it. Without a stamp, the words alone.
 */
export function markerLine(l: TruncateLayout, leftOut: number, headEndsLine: boolean, stamp?: string): Buffer {
  const line = `${headEndsLine ? '' : '\n'}${stamp ? `${stamp} ` : ''}${markerText(leftOut, l.maxBytes)}`;
  return Buffer.from(line, 'latin1');
}

/** The valid kubelet timestamp text at `p` of `b` (a line start), if there is one whole. */
export function stampAt(b: Buffer, p: number, end = b.length): string | undefined {
  const n = prefixLengthAt(b, p, end);
  if (n <= 0 || !validTimestampAt(b, p, n - 1)) return undefined;
  return b.toString('latin1', p, p + n - 1);
}

/**
 * Follows the head window as it streams: where the last line ended, and the
 * timestamp of the last line (started before that end) that had a valid one.
 * Holds at most one prefix (36 bytes).
 */
export class HeadTracker {
  /** Bytes seen. */
  pos = 0;
  /** Position just after the last newline seen (0: none). */
  lastNewlineEnd = 0;
  /** Stamp of the last line with a valid one among the lines ended by lastNewlineEnd. */
  stampAtLastNewline: string | undefined;
  /** Stamp of the last line with a valid one among all lines started. */
  lastStamp: string | undefined;
  private held = Buffer.alloc(PREFIX_MAX_LEN + 1);
  private heldLen = 0;
  /** Still collecting the current line's first bytes. */
  private collecting = true;

  push(b: Buffer): void {
    let i = 0;
    while (i < b.length) {
      if (this.collecting) {
        // A line's first bytes (its newline included) until a prefix can be judged.
        const room = this.held.length - this.heldLen;
        const nlAt = b.subarray(i, i + room).indexOf(NL);
        const n = nlAt >= 0 ? nlAt + 1 : Math.min(room, b.length - i);
        b.copy(this.held, this.heldLen, i, i + n);
        this.heldLen += n;
        i += n;
        this.pos += n;
        if (nlAt >= 0) this.lineEnded();
        else if (this.heldLen === this.held.length) this.closePrefix();
        continue;
      }
      const nl = b.indexOf(NL, i);
      if (nl < 0) {
        this.pos += b.length - i;
        return;
      }
      this.pos += nl + 1 - i;
      i = nl + 1;
      this.lineEnded();
    }
  }

  /** The newline before `pos` ended a line. */
  private lineEnded(): void {
    if (this.collecting) this.closePrefix();
    this.lastNewlineEnd = this.pos;
    this.stampAtLastNewline = this.lastStamp;
    this.collecting = true;
    this.heldLen = 0;
  }

  private closePrefix(): void {
    const s = stampAt(this.held, 0, this.heldLen);
    if (s !== undefined) this.lastStamp = s;
    this.collecting = false;
  }

  /** The stamp for a head cut at `cut`: of the lines ending there, or (a mid-line cut) of every line started. */
  stampFor(cut: number): string | undefined {
    if (cut === this.lastNewlineEnd) return this.stampAtLastNewline;
    if (this.collecting && this.heldLen > 0) {
      const s = stampAt(this.held, 0, this.heldLen);
      if (s !== undefined) return s;
    }
    return this.lastStamp;
  }
}

/**
 * What the capture stores of `content` under maxBytes, computed on the whole
 * buffer: the reference the streaming sink is tested against (and what a
 * test computes from a container's recorded output). `timestamps`: the
 * content carries kubelet timestamp prefixes (spec.timestamps).
 */
export function truncateWhole(content: Buffer, maxBytes: number, timestamps: boolean): { stored: Buffer; truncatedBytes: number } {
  if (content.length <= maxBytes) return { stored: content, truncatedBytes: 0 };
  const l = layout(maxBytes);
  const window = content.subarray(0, l.head);
  const lastNl = window.lastIndexOf(NL);
  const cut = headCut(l, lastNl + 1);
  const head = content.subarray(0, cut);
  const tailWindow = content.subarray(content.length - l.tail);
  const tail = tailWindow.subarray(tailStart(tailWindow, tailWindow.length));
  const leftOut = content.length - head.length - tail.length;
  let stamp: string | undefined;
  if (timestamps) {
    // Line starts inside the head (cut mid-line: the cut line's start counts too).
    // Each judged on its first PREFIX_MAX_LEN + 1 bytes (newline included), within the head.
    for (let p = 0; p < head.length; ) {
      const nl = content.indexOf(NL, p);
      const lineEnd = nl < 0 ? content.length : nl + 1;
      const s = stampAt(content, p, Math.min(p + PREFIX_MAX_LEN + 1, lineEnd, head.length));
      if (s !== undefined) stamp = s;
      if (lineEnd >= head.length) break;
      p = lineEnd;
    }
  }
  const marker = markerLine(l, leftOut, head[head.length - 1] === NL, stamp);
  return { stored: Buffer.concat([head, marker, tail]), truncatedBytes: leftOut };
}
