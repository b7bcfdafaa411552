// The timestamp prefix the kubelet writes before each log line under
// `timestamps=true`. It re-prints every CRI record's time with Go's layout
// `2006-01-02T15:04:05.000000000Z07:00` (k8s.io/cri-client pkg/logs/logs.go,
// `timeFormatOut` = `RFC3339NanoFixed`), keeping the offset the runtime wrote:
// `Z` for UTC (30 bytes), `+hh:mm` / `-hh:mm` otherwise (35 bytes; CRI-O's
// conmon stamps in the node's local zone). Fixed width within one offset, so
// two stamps with the same offset compare as bytes; across offsets (a
// daylight saving change, a mixed log) only instants compare.
//
// Hot-path helpers take (buffer, offset) and allocate nothing.

/** Length of a `Z` timestamp: `2026-11-27T10:00:05.123456789Z`. */
export const TS_UTC_LEN = 30;
/** Length of a timestamp with an offset: `2026-11-27T10:00:05.123456789-03:30`. */
export const TS_OFFSET_LEN = 35;
/** Longest timestamp, and longest prefix (timestamp and its space). */
export const TS_MAX_LEN = TS_OFFSET_LEN;
export const PREFIX_MAX_LEN = TS_MAX_LEN + 1;
/** Where `Z`, `+` or `-` stands. */
export const ZONE_AT = 29;

const SP = 32;
const PLUS = 43;
const MINUS = 45;
const COLON = 58;
const DOT = 46;
const T = 84;
const Z = 90;

// Expected byte at each position of the common head; 0 means "a decimal digit".
const HEAD = new Uint8Array(ZONE_AT);
for (const [i, ch] of [...'0000-00-00T00:00:00.000000000'].entries()) HEAD[i] = ch === '0' ? 0 : ch.charCodeAt(0);
// After the zone sign: `hh:mm` and the space.
const OFFSET_TAIL = new Uint8Array([0, 0, COLON, 0, 0, SP]);

function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= 48 && b <= 57;
}

/**
 * Whether byte `b` can stand at position `k` of a prefix whose bytes so far
 * are `held` (only `held[ZONE_AT]` is consulted, once k is past it). Used for
 * a prefix that straddles chunks.
 */
export function prefixByteFits(k: number, b: number, held: Buffer): boolean {
  if (k < ZONE_AT) {
    const want = HEAD[k] as number;
    return want === 0 ? isDigit(b) : b === want;
  }
  if (k === ZONE_AT) return b === Z || b === PLUS || b === MINUS;
  if (held[ZONE_AT] === Z) return k === ZONE_AT + 1 && b === SP;
  const want = OFFSET_TAIL[k - ZONE_AT - 1];
  return want === 0 ? isDigit(b) : b === want;
}

/** Prefix length (timestamp and space) once byte ZONE_AT is known; PREFIX_MAX_LEN before. */
export function heldPrefixLength(held: Buffer, heldLen: number): number {
  if (heldLen <= ZONE_AT) return PREFIX_MAX_LEN;
  return held[ZONE_AT] === Z ? TS_UTC_LEN + 1 : TS_OFFSET_LEN + 1;
}

/**
 * The hot-path check at `p` of a chunk ending at `n`: the prefix length (31
 * or 36) when the layout matches and a content byte follows, 0 when it
 * cannot be a prefix, -1 when too few bytes are here to tell. Checks the
 * separators and some digits only; validTimestampAt completes the check
 * whenever a timestamp differs from the previous line's.
 */
export function prefixLengthAt(b: Buffer, p: number, n: number): number {
  const avail = n - p;
  if (avail <= TS_UTC_LEN + 1) return -1;
  if (
    !(b[p + 4] === MINUS && b[p + 7] === MINUS && b[p + 10] === T && b[p + 13] === COLON && b[p + 16] === COLON && b[p + 19] === DOT) ||
    !(isDigit(b[p]) && isDigit(b[p + 3]) && isDigit(b[p + 5]) && isDigit(b[p + 9]) && isDigit(b[p + 11]) && isDigit(b[p + 18]) && isDigit(b[p + 20]) && isDigit(b[p + 28]))
  ) {
    return 0;
  }
  const zone = b[p + ZONE_AT];
  if (zone === Z) return b[p + TS_UTC_LEN] === SP ? TS_UTC_LEN + 1 : 0;
  if (zone !== PLUS && zone !== MINUS) return 0;
  if (avail <= TS_OFFSET_LEN + 1) return -1;
  const ok = b[p + 32] === COLON && b[p + 35] === SP && isDigit(b[p + 30]) && isDigit(b[p + 31]) && isDigit(b[p + 33]) && isDigit(b[p + 34]);
  return ok ? TS_OFFSET_LEN + 1 : 0;
}

function num(b: Buffer, at: number, len: number): number {
  let v = 0;
  for (let i = 0; i < len; i++) {
    const d = (b[at + i] as number) - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

// Positions of the digits in the common head.
const HEAD_DIGITS = [...HEAD.keys()].filter((k) => HEAD[k] === 0);

function twoDigits(b: Buffer, at: number): number {
  return ((b[at] as number) - 48) * 10 + ((b[at + 1] as number) - 48);
}

/** Every byte of the `len`-byte timestamp at `at` (30 or 35), and its field ranges, as Go's time.Parse checks them. */
export function validTimestampAt(b: Buffer, at: number, len: number): boolean {
  if (len !== TS_UTC_LEN && len !== TS_OFFSET_LEN) return false;
  if (!(b[at + 4] === MINUS && b[at + 7] === MINUS && b[at + 10] === T && b[at + 13] === COLON && b[at + 16] === COLON && b[at + 19] === DOT)) return false;
  for (const k of HEAD_DIGITS) if (!isDigit(b[at + k])) return false;
  const month = twoDigits(b, at + 5);
  const day = twoDigits(b, at + 8);
  if (month < 1 || month > 12 || day < 1 || (day > 28 && day > daysInMonth(num(b, at, 4), month))) return false;
  if (twoDigits(b, at + 11) > 23 || twoDigits(b, at + 14) > 59 || twoDigits(b, at + 17) > 59) return false;
  const zone = b[at + ZONE_AT];
  if (len === TS_UTC_LEN) return zone === Z;
  if ((zone !== PLUS && zone !== MINUS) || b[at + 32] !== COLON) return false;
  return isDigit(b[at + 30]) && isDigit(b[at + 31]) && isDigit(b[at + 33]) && isDigit(b[at + 34]) && twoDigits(b, at + 30) <= 23 && twoDigits(b, at + 33) <= 59;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  return era * 146_097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719_468;
}

/** Whole seconds since the epoch of a valid timestamp (its fraction is separate: nanosAt). */
export function epochSecondsAt(b: Buffer, at: number, len: number): number {
  const days = daysFromCivil(num(b, at, 4), num(b, at + 5, 2), num(b, at + 8, 2));
  let sec = days * 86_400 + num(b, at + 11, 2) * 3600 + num(b, at + 14, 2) * 60 + num(b, at + 17, 2);
  if (len === TS_OFFSET_LEN) {
    const offset = num(b, at + 30, 2) * 3600 + num(b, at + 33, 2) * 60;
    sec += b[at + ZONE_AT] === MINUS ? offset : -offset;
  }
  return sec;
}

function nanosAt(b: Buffer, at: number): number {
  return num(b, at + 20, 9);
}

/** Order of two valid timestamps by instant: negative, 0 or positive. Bytes first when the offsets are the same. */
export function compareTimestampsAt(a: Buffer, aAt: number, aLen: number, b: Buffer, bAt: number, bLen: number): number {
  if (aLen === bLen && sameZone(a, aAt, b, bAt, aLen)) return a.compare(b, bAt, bAt + ZONE_AT, aAt, aAt + ZONE_AT);
  const ds = epochSecondsAt(a, aAt, aLen) - epochSecondsAt(b, bAt, bLen);
  return ds !== 0 ? ds : nanosAt(a, aAt) - nanosAt(b, bAt);
}

function sameZone(a: Buffer, aAt: number, b: Buffer, bAt: number, len: number): boolean {
  for (let i = ZONE_AT; i < len; i++) if (a[aAt + i] !== b[bAt + i]) return false;
  return true;
}

function toBuffer(s: string): Buffer | undefined {
  if (typeof s !== 'string' || (s.length !== TS_UTC_LEN && s.length !== TS_OFFSET_LEN)) return undefined;
  const b = Buffer.from(s, 'latin1');
  return validTimestampAt(b, 0, b.length) ? b : undefined;
}

/** True for a timestamp as the kubelet prints it: `2026-11-27T10:00:05.123456789Z` or `…789-03:30`. */
export function isKubeletTimestamp(s: string): boolean {
  return toBuffer(s) !== undefined;
}

function parsed(s: string): Buffer {
  const b = toBuffer(s);
  if (b === undefined) throw new RangeError(`"${String(s).slice(0, 40)}" is not a kubelet timestamp`);
  return b;
}

/** Order of two kubelet timestamps by instant (negative, 0, positive); throws on anything else. */
export function compareTimestamps(a: string, b: string): number {
  const x = parsed(a);
  const y = parsed(b);
  return compareTimestampsAt(x, 0, x.length, y, 0, y.length);
}

/** Milliseconds since the epoch of a kubelet timestamp (fraction truncated); throws on anything else. */
export function timestampMs(ts: string): number {
  const b = parsed(ts);
  return epochSecondsAt(b, 0, b.length) * 1000 + Math.floor(nanosAt(b, 0) / 1_000_000);
}

/**
 * The `sinceTime` that replays from the start of this timestamp's second:
 * its instant truncated to the second, in UTC (`2026-11-27T09:00:05Z` for
 * `2026-11-27T10:00:05.5…+01:00`). The apiserver truncates to the second
 * anyway; the kubelet compares instants (`time.Before`).
 */
export function sinceTimeOf(ts: string): string {
  const b = parsed(ts);
  return new Date(epochSecondsAt(b, 0, b.length) * 1000).toISOString().slice(0, 19) + 'Z';
}

/**
 * Whether a kubelet timestamp falls in a later second than `time` (an RFC 3339
 * time as Kubernetes writes it, e.g. a container's `finishedAt`, whole
 * seconds): by instant, whatever offset either carries.
 */
export function stampedInLaterSecond(ts: string, time: string): boolean {
  const t = Date.parse(time);
  if (Number.isNaN(t)) throw new RangeError(`"${String(time).slice(0, 40)}" is not an RFC 3339 time`);
  return Math.floor(timestampMs(ts) / 1000) > Math.floor(t / 1000);
}
