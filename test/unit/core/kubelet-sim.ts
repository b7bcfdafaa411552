// A model of what the kubelet sends for `GET containerLogs?timestamps=true&sinceTime=…`,
// written from the semantics in /work/shared/FACTS.md:
// - the runtime stores a line longer than 16 KiB as several records, each
//   with its own (non-decreasing) timestamp; only the last ends with "\n";
// - the kubelet writes a timestamp prefix only before a line's first record,
//   whether or not that record passed the sinceTime filter;
// - sinceTime is applied to every record, after the apiserver truncated it to
//   whole seconds, by instant (Go's time.Before), whatever offset the record has;
// - the kubelet re-prints each record's timestamp with
//   `2006-01-02T15:04:05.000000000Z07:00` (cri-client pkg/logs/logs.go,
//   timeFormatOut), keeping the runtime's offset: `Z` for UTC, else `+hh:mm`
//   or `-hh:mm` (CRI-O on a node not on UTC).

export const RECORD_MAX = 16 * 1024;

export interface LogRecord {
  /** RFC 3339 timestamp with 9 fraction digits: 30 bytes with `Z`, 35 with an offset. */
  ts: string;
  /** The same instant, nanoseconds since the epoch. */
  ns: bigint;
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

/**
 * Formats nanoseconds since the epoch the way the kubelet does: 9 fraction
 * digits, in the zone `offsetMin` minutes east of UTC (Go prints `Z` for a
 * zero offset, `+hh:mm`/`-hh:mm` otherwise).
 */
export function formatTs(ns: bigint, offsetMin = 0): string {
  const local = ns + BigInt(offsetMin) * 60_000_000_000n;
  const sec = local / 1_000_000_000n;
  const frac = local % 1_000_000_000n;
  const wall = new Date(Number(sec) * 1000).toISOString().slice(0, 19) + '.' + frac.toString().padStart(9, '0');
  if (offsetMin === 0) return wall + 'Z';
  const abs = Math.abs(offsetMin);
  const hhmm = `${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return wall + (offsetMin < 0 ? '-' : '+') + hhmm;
}

/**
 * Builds records from lines: each line's content is cut into records of at
 * most RECORD_MAX bytes, record i stamped `lineNs + i * chunkStepNs`.
 */
export class LogBuilder {
  readonly records: LogRecord[] = [];
  readonly lines: LogLine[] = [];
  private clock: bigint;
  private offsetMin: number;
  /** `offsetMin`: the zone the runtime stamps in, minutes east of UTC (0 prints `Z`). */
  constructor(startNs: bigint, offsetMin = 0) {
    this.clock = startNs;
    this.offsetMin = offsetMin;
  }
  /** Changes the zone of the following records (e.g. a daylight saving change on the node). */
  zone(offsetMin: number): this {
    this.offsetMin = offsetMin;
    return this;
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
    const ts = formatTs(this.clock, this.offsetMin);
    this.lines.push({ ts, content: buf });
    for (let off = 0, i = 0; off < buf.length; off += RECORD_MAX, i++) {
      if (i > 0) this.clock += chunkStepNs;
      const content = buf.subarray(off, Math.min(buf.length, off + RECORD_MAX));
      this.records.push({ ts: formatTs(this.clock, this.offsetMin), ns: this.clock, content });
    }
    return this;
  }
  build(): ReferenceLog {
    return { records: this.records, lines: this.lines };
  }
}

/** The sinceTime the apiserver forwards: truncated to the second, in nanoseconds since the epoch. */
export function truncatedSince(sinceTime: string): bigint {
  const ms = Date.parse(sinceTime);
  if (Number.isNaN(ms)) throw new Error(`bad sinceTime ${sinceTime}`);
  return BigInt(Math.floor(ms / 1000)) * 1_000_000_000n;
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
    if (since === undefined || r.ns >= since) {
      if (isNewLine) {
        prefixAt.push(size);
        const prefix = Buffer.from(r.ts + ' ', 'latin1');
        parts.push(prefix);
        size += prefix.length;
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
