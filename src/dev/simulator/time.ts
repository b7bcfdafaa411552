// Nanosecond wall-clock time for the simulated container runtime.
// Times are bigint nanoseconds since the Unix epoch: a JS number cannot hold
// them exactly, and the kubelet's timestamps carry all nine fraction digits.

const NS_PER_SEC = 1_000_000_000n;

/** Width of a rendered timestamp prefix: `2026-11-27T10:00:05.123456789Z ` (with the space). */
export const TS_PREFIX_LEN = 31;

/** Width of a prefix with a numeric offset: `2026-11-27T06:30:05.123456789-03:30 `. */
export const TS_OFFSET_PREFIX_LEN = 36;

/**
 * A fixed UTC offset in minutes, east positive. The kubelet re-prints each
 * CRI timestamp with Go's `Z07:00` layout, which writes `Z` for a zero offset
 * and `±hh:mm` otherwise (cri-client/pkg/logs/logs.go, `timeFormatOut`).
 */
export function offsetSuffix(offsetMinutes: number): string {
  if (offsetMinutes === 0) return 'Z';
  const a = Math.abs(offsetMinutes);
  return `${offsetMinutes < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

/** Prefix width (timestamp and space) for records stamped with this offset. */
export function tsPrefixLen(offsetMinutes: number): number {
  return offsetMinutes === 0 ? TS_PREFIX_LEN : TS_OFFSET_PREFIX_LEN;
}

/** Parses `±hh:mm` (hh 00–23, mm 00–59) to minutes; null if malformed. */
export function parseOffset(s: string): number | null {
  const m = /^([+-])(\d{2}):(\d{2})$/.exec(s);
  if (!m) return null;
  const h = Number(m[2]);
  const min = Number(m[3]);
  if (h > 23 || min > 59) return null;
  const total = h * 60 + min;
  return m[1] === '-' && total !== 0 ? -total : total;
}

const epochAtStart = BigInt(Date.now()) * 1_000_000n;
const hrAtStart = process.hrtime.bigint();

/** Wall clock with nanosecond resolution (monotonic within this process). */
export function nowNs(): bigint {
  return epochAtStart + (process.hrtime.bigint() - hrAtStart);
}

export function splitNs(ns: bigint): { sec: number; nsec: number } {
  let sec = ns / NS_PER_SEC;
  let nsec = ns % NS_PER_SEC;
  if (nsec < 0n) {
    nsec += NS_PER_SEC;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

export function joinNs(sec: number, nsec: number): bigint {
  return BigInt(sec) * NS_PER_SEC + BigInt(nsec);
}

function secondPrefix(sec: number): string {
  // toISOString gives `YYYY-MM-DDTHH:MM:SS.mmmZ`; keep up to the seconds.
  return new Date(sec * 1000).toISOString().slice(0, 19) + '.';
}

/**
 * Fixed-width RFC3339 with nine fraction digits, as the kubelet prints it:
 * `Z`, or with a non-zero offset the local time and `±hh:mm`.
 */
export function formatTs(ns: bigint, offsetMinutes = 0): string {
  const { sec, nsec } = splitNs(ns);
  return secondPrefix(sec + offsetMinutes * 60) + String(nsec).padStart(9, '0') + offsetSuffix(offsetMinutes);
}

/** Seconds-precision RFC3339 (`metav1.Time`), for status fields. */
export function formatSeconds(ns: bigint): string {
  return secondPrefix(splitNs(ns).sec).slice(0, 19) + 'Z';
}

/**
 * Writes `TS ` (timestamp and one space, `len` bytes: TS_PREFIX_LEN, or
 * TS_OFFSET_PREFIX_LEN with a non-zero offset) into buf at pos. Rendering
 * millions of prefixes is the hot path of a timestamped log request, so the
 * date part is cached per second.
 */
export class TsWriter {
  private lastSec = Number.NaN;
  private readonly head = Buffer.alloc(20);
  private readonly tail: Buffer;
  private readonly offsetSec: number;
  readonly len: number;

  constructor(offsetMinutes = 0) {
    this.offsetSec = offsetMinutes * 60;
    this.tail = Buffer.from(offsetSuffix(offsetMinutes) + ' ', 'latin1');
    this.len = 29 + this.tail.length;
  }

  write(buf: Buffer, pos: number, sec: number, nsec: number): void {
    if (sec !== this.lastSec) {
      this.head.write(secondPrefix(sec + this.offsetSec), 0, 'latin1');
      this.lastSec = sec;
    }
    this.head.copy(buf, pos);
    let p = pos + 28;
    let n = nsec;
    for (let i = 0; i < 9; i++) {
      buf[p--] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
    this.tail.copy(buf, pos + 29);
  }
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Parses RFC3339 (any fraction length, `Z` or an offset) to epoch nanoseconds; null if malformed. */
export function parseRfc3339(s: string): bigint | null {
  const m = RFC3339.exec(s);
  if (!m) return null;
  const [, y, mo, d, h, mi, se, frac, , sign, oh, om] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se));
  if (Number.isNaN(ms)) return null;
  let ns = BigInt(ms) * 1_000_000n;
  if (frac) ns += BigInt(frac.padEnd(9, '0'));
  if (sign) {
    const off = BigInt(Number(oh) * 3600 + Number(om) * 60) * NS_PER_SEC;
    ns = sign === '+' ? ns - off : ns + off;
  }
  return ns;
}
