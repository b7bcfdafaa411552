// A model of what the kubelet sends for `GET containerLogs?timestamps=true&sinceTime=…`,
// written from the semantics in /work/shared/FACTS.md:
// - the runtime stores a line longer than 16 KiB as several records, each
//   with its own (non-decreasing) timestamp; only the last ends with "\n";
// - the kubelet writes a timestamp prefix only before a line's first record,
//   whether or not that record passed the sinceTime filter;
// - sinceTime is applied to every record, after the apiserver truncated it to
//   whole seconds.

export const RECORD_MAX = 16 * 1024;

export interface LogRecord {
  /** 30-byte RFC 3339 timestamp with 9 fraction digits. */
  ts: string;
  content: Buffer;
}

export interface LogLine {
  /** Timestamp of the line's first record. */
  ts: string;
  /** The whole line, its newline included (absent only for a last line). */
  content: Buffer;
}

export interface ReferenceLog {
  records: LogRecord[];
  lines: LogLine[];
}

/** Deterministic PRNG (mulberry32) so failures reproduce from the seed. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** Formats nanoseconds since the epoch the way the kubelet does (UTC, 9 digits). */
export function formatTs(ns: bigint): string {
  const sec = ns / 1_000_000_000n;
  const frac = ns % 1_000_000_000n;
  return new Date(Number(sec) * 1000).toISOString().slice(0, 19) + '.' + frac.toString().padStart(9, '0') + 'Z';
}

/**
 * Builds records from lines: each line's content is cut into records of at
 * most RECORD_MAX bytes, record i stamped `lineNs + i * chunkStepNs`.
 */
export class LogBuilder {
  readonly records: LogRecord[] = [];
  readonly lines: LogLine[] = [];
  private clock: bigint;
  constructor(startNs: bigint) {
    this.clock = startNs;
  }
  /** The timestamp (ns) the next line gets. */
  get now(): bigint {
    return this.clock;
  }
  /** Advances the clock; 0 keeps the next line on exactly the same timestamp. */
  advance(ns: bigint): this {
    this.clock += ns;
    return this;
  }
  line(content: Buffer | string, chunkStepNs = 1_000_000n): this {
    const buf = typeof content === 'string' ? Buffer.from(content) : content;
    if (buf.length === 0) throw new Error('a log line has at least one byte');
    const ts = formatTs(this.clock);
    this.lines.push({ ts, content: buf });
    for (let off = 0, i = 0; off < buf.length; off += RECORD_MAX, i++) {
      if (i > 0) this.clock += chunkStepNs;
      this.records.push({ ts: formatTs(this.clock), content: buf.subarray(off, Math.min(buf.length, off + RECORD_MAX)) });
    }
    return this;
  }
  build(): ReferenceLog {
    return { records: this.records, lines: this.lines };
  }
}

/** The sinceTime the apiserver forwards: truncated to the second, as a comparable 30-byte timestamp. */
export function truncatedSince(sinceTime: string): string {
  const ms = Date.parse(sinceTime);
  if (Number.isNaN(ms)) throw new Error(`bad sinceTime ${sinceTime}`);
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19) + '.000000000Z';
}

export interface RenderedStream {
  bytes: Buffer;
  /** Offsets of every timestamp prefix in `bytes`. */
  prefixAt: number[];
}

/** One kubelet response for this log, with where its prefixes are. */
export function renderStreamMarked(log: ReferenceLog, sinceTime?: string): RenderedStream {
  const since = sinceTime === undefined ? undefined : truncatedSince(sinceTime);
  const parts: Buffer[] = [];
  const prefixAt: number[] = [];
  let size = 0;
  let isNewLine = true;
  for (const r of log.records) {
    if (since === undefined || r.ts >= since) {
      if (isNewLine) {
        prefixAt.push(size);
        parts.push(Buffer.from(r.ts + ' ', 'latin1'));
        size += 31;
      }
      parts.push(r.content);
      size += r.content.length;
    }
    isNewLine = r.content[r.content.length - 1] === 10;
  }
  return { bytes: Buffer.concat(parts, size), prefixAt };
}

/** The bytes of one kubelet response for this log. */
export function renderStream(log: ReferenceLog, sinceTime?: string): Buffer {
  return renderStreamMarked(log, sinceTime).bytes;
}

/** The bytes a perfect capture stores. */
export function expectedOutput(log: ReferenceLog, keepTimestamps: boolean): Buffer {
  const parts: Buffer[] = [];
  for (const l of log.lines) {
    if (keepTimestamps) parts.push(Buffer.from(l.ts + ' ', 'latin1'));
    parts.push(l.content);
  }
  return Buffer.concat(parts);
}
