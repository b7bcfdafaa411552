// What the kubelet writes for one `containerLogs` request, computed from a
// LogStore. Semantics follow the kubelet's CRI log reader:
// - a request starts at the current log file (after the last rotation), or
//   `tailLines` records before its end;
// - `since` is applied to every record, partial chunks included, while the
//   timestamp prefix is written only before the first chunk of a line — so a
//   line whose first chunk is older than `since` continues without a prefix;
// - `limitBytes` counts prefixes too and cuts mid-record, ending the request;
// - a follow request continues across rotations and ends once the container
//   has stopped and everything was sent.
import type { LogStore } from './log-store.ts';
import { TsWriter, splitNs } from './time.ts';

export interface LogRequest {
  follow: boolean;
  timestamps: boolean;
  /** Records stamped strictly before this are skipped (epoch ns). */
  since: bigint | null;
  tailLines: number | null;
  limitBytes: number | null;
}

export const DEFAULT_REQUEST: LogRequest = { follow: false, timestamps: false, since: null, tailLines: null, limitBytes: null };

export class LogCursor {
  private next: number;
  private readonly end: number | null;
  private isNewLine = true;
  private remaining: number;
  private sincePassed: boolean;
  private readonly sinceSec: number;
  private readonly sinceNsec: number;
  private limitReached = false;
  private readonly tsw: TsWriter;
  private readonly store: LogStore;
  private readonly timestamps: boolean;

  constructor(store: LogStore, req: LogRequest) {
    this.store = store;
    this.timestamps = req.timestamps;
    this.tsw = new TsWriter(store.offsetMinutes);
    const committed = store.committed;
    let start = store.rotationStart;
    if (req.tailLines !== null) start = Math.max(start, committed - req.tailLines);
    this.next = start;
    // Without follow the kubelet reads to the end of the file as it is now;
    // with tailLines it stops after that many records, which is the same end.
    this.end = req.follow ? null : committed;
    this.remaining = req.limitBytes ?? Number.POSITIVE_INFINITY;
    if (req.since === null) {
      this.sincePassed = true;
      this.sinceSec = 0;
      this.sinceNsec = 0;
    } else {
      this.sincePassed = false;
      const { sec, nsec } = splitNs(req.since);
      this.sinceSec = sec;
      this.sinceNsec = nsec;
    }
  }

  /** No more bytes will come for this request. */
  get done(): boolean {
    if (this.limitReached) return true;
    if (this.end !== null) return this.next >= this.end;
    return this.store.finished && this.next >= this.store.committed;
  }

  /** The next output bytes (about maxBytes of content at most), or null when nothing is available yet. */
  async read(maxBytes: number): Promise<Buffer | null> {
    const store = this.store;
    const avail = this.end ?? store.committed;
    if (this.limitReached || this.next >= avail) return null;
    if (!this.sincePassed) {
      const first = store.firstAtOrAfter(this.next, avail, this.sinceSec, this.sinceNsec);
      if (first > this.next) {
        // Skipped records still decide whether the next one starts a line.
        this.isNewLine = !store.partial(first - 1);
        this.next = first;
      }
      if (first >= avail) return null;
      this.sincePassed = true;
    }
    const i = this.next;
    const startOff = store.offset(i);
    // Largest j with content [i, j) within maxBytes, at least one record.
    let lo = i + 1;
    let hi = avail;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (store.offset(mid) - startOff <= maxBytes) lo = mid;
      else hi = mid - 1;
    }
    const j = lo;
    const content = await store.readContent(startOff, store.offset(j));
    let out: Buffer;
    if (!this.timestamps) {
      out = content;
      this.isNewLine = !store.partial(j - 1);
    } else {
      let prefixes = 0;
      let nl = this.isNewLine;
      for (let k = i; k < j; k++) {
        if (nl) prefixes++;
        nl = !store.partial(k);
      }
      out = Buffer.allocUnsafe(content.length + prefixes * this.tsw.len);
      let pos = 0;
      nl = this.isNewLine;
      for (let k = i; k < j; k++) {
        if (nl) {
          this.tsw.write(out, pos, store.sec(k), store.nsec(k));
          pos += this.tsw.len;
        }
        const a = store.offset(k) - startOff;
        const b = store.offset(k + 1) - startOff;
        content.copy(out, pos, a, b);
        pos += b - a;
        nl = !store.partial(k);
      }
      this.isNewLine = nl;
    }
    this.next = j;
    if (out.length >= this.remaining) {
      out = out.subarray(0, this.remaining);
      this.remaining = 0;
      this.limitReached = true;
    } else {
      this.remaining -= out.length;
    }
    return out;
  }
}

/** The whole output of a non-follow request (for tests and small reads). */
export async function renderAll(store: LogStore, req: LogRequest): Promise<Buffer> {
  const c = new LogCursor(store, { ...req, follow: false });
  const parts: Buffer[] = [];
  while (!c.done) {
    const b = await c.read(1 << 20);
    if (b === null) break;
    parts.push(b);
  }
  return Buffer.concat(parts);
}

export type ParsedLogQuery =
  | { ok: true; req: LogRequest; previous: boolean }
  | { ok: false; status: number; message: string };

function queryBool(v: string | null): boolean {
  if (v === null) return false;
  const l = v.toLowerCase();
  return !(l === '0' || l === 'f' || l === 'false' || l === 'n' || l === 'no');
}

function queryInt(v: string | null): number | null | undefined {
  if (v === null) return null;
  if (!/^[+-]?\d+$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Decodes and validates a `containerLogs` query as the kubelet does: decode
 * errors are 400 `Unable to decode query.`, invalid combinations 422
 * `Invalid request.` (the kubelet's bodies, JSON-looking text included).
 */
export function parseLogQuery(q: URLSearchParams, now: bigint, parseTime: (s: string) => bigint | null): ParsedLogQuery {
  const bad = { ok: false as const, status: 400, message: '{"message": "Unable to decode query."}' };
  const invalid = { ok: false as const, status: 422, message: '{"message": "Invalid request."}' };
  let tailRaw = q.get('tailLines');
  const legacyTail = q.get('tail');
  if (legacyTail !== null && legacyTail.length > 0) tailRaw = legacyTail === 'all' ? null : legacyTail;
  const tailLines = queryInt(tailRaw);
  const limitBytes = queryInt(q.get('limitBytes'));
  const sinceSeconds = queryInt(q.get('sinceSeconds'));
  if (tailLines === undefined || limitBytes === undefined || sinceSeconds === undefined) return bad;
  let sinceTime: bigint | null = null;
  const st = q.get('sinceTime');
  if (st !== null && st !== '') {
    sinceTime = parseTime(st);
    if (sinceTime === null) return bad;
  }
  if (tailLines !== null && tailLines < 0) return invalid;
  if (limitBytes !== null && limitBytes < 1) return invalid;
  if (sinceSeconds !== null && sinceSeconds < 1) return invalid;
  if (sinceSeconds !== null && sinceTime !== null) return invalid;
  const stream = q.get('stream');
  if (stream !== null && stream !== '' && stream !== 'All') {
    return { ok: false, status: 400, message: `unable to return the given log stream: "${stream}". Please enable PodLogsQuerySplitStreams feature gate in kubelet` };
  }
  let since: bigint | null = null;
  if (sinceSeconds !== null) since = now - BigInt(sinceSeconds) * 1_000_000_000n;
  if (sinceTime !== null && (since === null || sinceTime > since)) since = sinceTime;
  return {
    ok: true,
    previous: queryBool(q.get('previous')),
    req: {
      follow: queryBool(q.get('follow')),
      timestamps: queryBool(q.get('timestamps')),
      since,
      tailLines,
      limitBytes,
    },
  };
}
