// Nanosecond wall-clock time for the simulated container runtime.
// Times are bigint nanoseconds since the Unix epoch: a JS number cannot hold
// them exactly, and the kubelet's timestamps carry all nine fraction digits.

const NS_PER_SEC = 1_000_000_000n;

/** Width of a rendered timestamp prefix: `2026-11-27T10:00:05.123456789Z ` (with the space). */
export const TS_PREFIX_LEN = 31;

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

/** Fixed-width RFC3339 with nine fraction digits and `Z`, as the kubelet prints it. */
export function formatTs(ns: bigint): string {
  const { sec, nsec } = splitNs(ns);
  return secondPrefix(sec) + String(nsec).padStart(9, '0') + 'Z';
}

/** Seconds-precision RFC3339 (`metav1.Time`), for status fields. */
export function formatSeconds(ns: bigint): string {
  return secondPrefix(splitNs(ns).sec).slice(0, 19) + 'Z';
}

/**
 * Writes `TS ` (timestamp and one space, TS_PREFIX_LEN bytes) into buf at pos.
 * Rendering millions of prefixes is the hot path of a timestamped log request,
 * so the date part is cached per second.
 */
export class TsWriter {
  private lastSec = Number.NaN;
  private readonly head = Buffer.alloc(20);

  write(buf: Buffer, pos: number, sec: number, nsec: number): void {
    if (sec !== this.lastSec) {
      this.head.write(secondPrefix(sec), 0, 'latin1');
      this.lastSec = sec;
    }
    this.head.copy(buf, pos);
    let p = pos + 28;
    let n = nsec;
    for (let i = 0; i < 9; i++) {
      buf[p--] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
    buf[pos + 29] = 90; // Z
    buf[pos + 30] = 32; // space
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
