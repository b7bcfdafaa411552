// Duration strings as users write them in a LogTail spec ("500ms", "1m30s",
// "1.5s"): a subset of Go's time.ParseDuration syntax, so the same strings
// also pass the CRD's CEL `duration()` checks.

const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

// One `<number><unit>` term; `ms` must be tried before `m`.
const TERM = /([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)/y;

/** Longest duration string accepted; keeps the CRD's CEL cost estimate bounded. */
export const MAX_DURATION_LENGTH = 32;

/** Longest duration Go (and so the CRD's CEL `duration()`) can represent: 2^63-1 ns. */
export const MAX_DURATION_MS = 9_223_372_036_854;

/** Regex source (anchored) for the accepted syntax; the CRD uses the same one. */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';

/**
 * Parses `500ms`, `10s`, `5m`, `1h`, `1m30s`, `1.5s` into milliseconds,
 * rounded to the nearest millisecond but never from positive to 0. Throws an
 * Error naming the input for anything else: no sign, no spaces, no bare
 * numbers, no other units.
 */
export function parseDuration(s: string): number {
  if (typeof s !== 'string') throw new Error(`duration must be a string like "10s", got ${typeof s}`);
  if (s.length === 0) throw new Error('duration is empty; write e.g. "500ms", "10s", "1m30s"');
  if (s.length > MAX_DURATION_LENGTH) {
    throw new Error(`duration "${s.slice(0, 40)}…" is longer than ${MAX_DURATION_LENGTH} characters`);
  }
  let total = 0;
  let pos = 0;
  TERM.lastIndex = 0;
  while (pos < s.length) {
    TERM.lastIndex = pos;
    const m = TERM.exec(s);
    if (m === null) {
      throw new Error(
        `invalid duration "${s}": expected one or more <number><unit> terms with unit ms, s, m or h (e.g. "500ms", "1m30s", "1.5s")`,
      );
    }
    const unit = UNIT_MS[m[2] as string] as number;
    total += Number(m[1]) * unit;
    pos = TERM.lastIndex;
  }
  // A positive duration stays positive (CEL, which the CRD uses, sees 100µs > 0).
  const ms = total > 0 && total < 1 ? 1 : Math.round(total);
  if (!(ms <= MAX_DURATION_MS)) throw new Error(`duration "${s}" is too large (at most about 292 years)`);
  return ms;
}

/**
 * Formats milliseconds as the shortest string parseDuration reads back to the
 * same value: `0s`, `500ms`, `1.5s`, `1m30s`, `2h0.25s`. Fractions are rounded
 * to whole milliseconds.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new Error(`cannot format non-finite duration ${ms}`);
  let rest = Math.round(ms);
  if (rest < 0) return '-' + formatDuration(-rest);
  if (rest === 0) return '0s';
  if (rest < 1000) return `${rest}ms`;
  let out = '';
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  if (h > 0) out += `${h}h`;
  if (m > 0) out += `${m}m`;
  if (rest > 0) {
    const sec = Math.floor(rest / 1000);
    const frac = rest % 1000;
    out += frac === 0 ? `${sec}s` : `${sec}.${String(frac).padStart(3, '0').replace(/0+$/, '')}s`;
  }
  return out;
}
