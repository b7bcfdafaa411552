// Turns a container's script into log records on a clock, the way a program
// writing lines and containerd's log pipe would: each line is stamped when it
// is written, lines longer than 16 KiB become 16 KiB partial records (each with
// its own, slightly later timestamp), and a last line without a newline is
// written as a partial record when the stream ends.
import { MAX_RECORD_BYTES, STDERR, type LogStore, type StreamId } from './log-store.ts';
import type { ContainerScript, Segment } from './script.ts';
import { splitNs } from './time.ts';

/** Gap between the stamps of consecutive chunks of one long line. */
const CHUNK_STEP_NS = 1000n;

const FILLER = Buffer.from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789');

export interface StepResult {
  /** Every line of the script has been written. */
  done: boolean;
  /** When the next line is due; null if more is due now (the byte budget ran out). */
  nextDue: bigint | null;
}

/**
 * One run of one container. `step(now)` writes every line due at `now` (up to
 * a byte budget, so a fast script cannot starve the event loop).
 */
export class OutputGenerator {
  private seg = 0;
  private lineInSeg = 0;
  private lineNo = 0;
  private segStart: bigint | null = null;
  private last: bigint | null = null;
  private groupTs = 0n;
  private template: Buffer | null = null;
  private textRep = 0;
  private textPos = 0;
  private readonly script: ContainerScript;
  private readonly startNs: bigint;
  private readonly label: string;

  constructor(script: ContainerScript, startNs: bigint, container: string, run: number) {
    this.script = script;
    this.startNs = startNs;
    this.label = ` ${container} run=${run} `;
  }

  /** Timestamp of the last record written, if any. */
  get lastTimestamp(): bigint | null {
    return this.last;
  }

  /** Lines written so far in this run. */
  get linesWritten(): number {
    return this.lineNo;
  }

  private hasMore(s: Segment): boolean {
    if (s.kind === 'generated') return this.lineInSeg < s.lines;
    return s.text.length > 0 && this.textRep < s.repeat;
  }

  private startSegment(s: Segment): void {
    this.segStart = (this.last ?? this.startNs) + BigInt(Math.round(s.pauseSeconds * 1e9));
    this.lineInSeg = 0;
    this.textRep = 0;
    this.textPos = 0;
    this.template = null;
    if (s.kind === 'generated') {
      const t = Buffer.allocUnsafe(s.lineBytes);
      for (let i = 0; i < s.lineBytes - 1; i++) t[i] = FILLER[i % FILLER.length]!;
      if (s.lineBytes - 1 > 10) t.write(this.label, 10, s.lineBytes - 1 - 10, 'utf8');
      t[s.lineBytes - 1] = 10;
      this.template = t;
    }
  }

  private nextGenerated(s: Segment): Buffer {
    const t = this.template!;
    const digits = String(this.lineNo + 1).padStart(10, '0');
    // The line number makes lines distinct, so a lost or doubled line shows.
    const n = Math.min(10, s.lineBytes - 1);
    if (n > 0) t.write(digits.slice(digits.length - n), 0, n, 'latin1');
    return t;
  }

  private nextText(s: Segment): Buffer {
    const parts: Buffer[] = [];
    for (;;) {
      const nl = s.text.indexOf(10, this.textPos);
      if (nl >= 0) {
        parts.push(s.text.subarray(this.textPos, nl + 1));
        this.textPos = nl + 1;
        if (this.textPos === s.text.length) {
          this.textPos = 0;
          this.textRep++;
        }
        break;
      }
      parts.push(s.text.subarray(this.textPos));
      this.textPos = 0;
      this.textRep++;
      if (this.textRep >= s.repeat) break;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  private emit(store: LogStore, line: Buffer, ts: bigint, stream: StreamId, shareTs: boolean): void {
    const hasNl = line[line.length - 1] === 10;
    const contentLen = hasNl ? line.length - 1 : line.length;
    let pos = 0;
    let t = ts;
    for (;;) {
      const { sec, nsec } = splitNs(t);
      if (contentLen - pos > MAX_RECORD_BYTES) {
        store.append(sec, nsec, stream, true, line, pos, pos + MAX_RECORD_BYTES);
        pos += MAX_RECORD_BYTES;
        if (!shareTs) t += CHUNK_STEP_NS;
        continue;
      }
      store.append(sec, nsec, stream, !hasNl, line, pos, line.length);
      break;
    }
    this.last = t;
  }

  step(now: bigint, budgetBytes: number, store: LogStore): StepResult {
    let written = 0;
    const segs = this.script.segments;
    for (;;) {
      if (this.seg >= segs.length) return { done: true, nextDue: null };
      const s = segs[this.seg]!;
      if (this.segStart === null) this.startSegment(s);
      if (!this.hasMore(s)) {
        this.seg++;
        this.segStart = null;
        continue;
      }
      if (written >= budgetBytes) return { done: false, nextDue: null };
      const group = Math.floor(this.lineInSeg / s.burst);
      const sched = s.linesPerSecond === null ? this.segStart! : this.segStart! + BigInt(Math.floor(((group * s.burst) / s.linesPerSecond) * 1e9));
      if (sched > now) return { done: false, nextDue: sched };
      let ts: bigint;
      if (this.lineInSeg % s.burst === 0) {
        ts = s.linesPerSecond === null ? now : sched;
        if (this.last !== null && ts <= this.last) ts = this.last + 1n;
        this.groupTs = ts;
      } else {
        ts = this.groupTs;
      }
      const line = s.kind === 'generated' ? this.nextGenerated(s) : this.nextText(s);
      const stream = s.stderrEvery !== null && (this.lineInSeg + 1) % s.stderrEvery === 0 ? STDERR : s.stream;
      this.emit(store, line, ts, stream, s.burst > 1);
      written += line.length;
      this.lineInSeg++;
      this.lineNo++;
    }
  }
}
