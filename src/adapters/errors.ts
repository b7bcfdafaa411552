// Every failure that leaves src/adapters/ is a CaptureError, so the capture
// loop decides "retry or give up" from `kind` alone and reports `reason`
// (a stable word suitable for a condition reason or a metric label).

export type ErrorKind = 'transient' | 'permanent';

export type CaptureReason =
  // log stream (apiserver / kubelet)
  | 'KubeletUnreachable'
  | 'ServerError'
  | 'TooManyRequests'
  | 'WaitingToStart'
  | 'StreamEnded'
  | 'StreamStalled'
  | 'Forbidden'
  | 'ContainerNotFound'
  | 'PodNotFound'
  | 'BadRequest'
  // object store
  | 'StoreUnavailable'
  | 'KeyExists'
  | 'StoreDenied'
  | 'ObjectNotFound'
  | 'SizeMismatch';

const DEFAULT_KIND: Record<CaptureReason, ErrorKind> = {
  KubeletUnreachable: 'transient',
  ServerError: 'transient',
  TooManyRequests: 'transient',
  WaitingToStart: 'transient',
  StreamEnded: 'transient',
  StreamStalled: 'transient',
  Forbidden: 'permanent',
  ContainerNotFound: 'permanent',
  // The pod may be recreated under the same name, but that is the
  // controller's business (it watches pods); retrying here would only spin.
  PodNotFound: 'permanent',
  BadRequest: 'permanent',
  StoreUnavailable: 'transient',
  KeyExists: 'permanent',
  StoreDenied: 'permanent',
  ObjectNotFound: 'permanent',
  // The store holds an object that is not what we wrote; retrying the same
  // key would only meet KeyExists, so a human has to look.
  SizeMismatch: 'permanent',
};

export interface CaptureErrorOptions {
  status?: number;
  cause?: unknown;
  /** Server-requested wait (Retry-After), honoured by retry(). */
  retryAfterMs?: number;
}

export class CaptureError extends Error {
  readonly kind: ErrorKind;
  readonly reason: CaptureReason;
  readonly status?: number;
  readonly retryAfterMs?: number;

  constructor(reason: CaptureReason, kind: ErrorKind, message: string, opts: CaptureErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CaptureError';
    this.reason = reason;
    this.kind = kind;
    if (opts.status !== undefined) this.status = opts.status;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
  }

  get transient(): boolean {
    return this.kind === 'transient';
  }
}

/** A CaptureError of the reason's usual kind (`opts.kind` overrides it). */
export function captureError(
  reason: CaptureReason,
  message: string,
  opts: CaptureErrorOptions & { kind?: ErrorKind } = {},
): CaptureError {
  const { kind, ...rest } = opts;
  return new CaptureError(reason, kind ?? DEFAULT_KIND[reason], message, rest);
}

/** The reason's kind when no override is given. */
export function defaultKind(reason: CaptureReason): ErrorKind {
  return DEFAULT_KIND[reason];
}

// Codes Node (libuv, undici, dns) uses for failures of the path rather than
// of the request: the same request may succeed a moment later.
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
]);

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** True if `err` (or something in its cause chain) carries a network-ish error code. */
export function isNetworkError(err: unknown): boolean {
  let cur: unknown = err;
  // Bounded: cause chains can be cyclic.
  for (let depth = 0; depth < 8 && cur !== undefined && cur !== null; depth++) {
    const code = errorCode(cur);
    if (code !== undefined && (NETWORK_CODES.has(code) || code.startsWith('UND_ERR_'))) return true;
    cur = typeof cur === 'object' ? (cur as { cause?: unknown }).cause : undefined;
  }
  return false;
}

/**
 * Whether retrying may help. CaptureErrors say so themselves; anything else
 * is transient only if it is a network failure. Aborts are never transient:
 * somebody asked us to stop.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof CaptureError) return err.kind === 'transient';
  if (err instanceof Error && (err.name === 'AbortError' || err.name === 'RetryExhaustedError')) return false;
  return isNetworkError(err);
}

export function classify(err: unknown): ErrorKind {
  return isTransient(err) ? 'transient' : 'permanent';
}

// The apiserver relays a failed dial of the kubelet as a 5xx whose message
// quotes the Go error: "Get \"https://node:10250/containerLogs/…\": dial tcp …",
// "remote error: tls: internal error" (serving certificate not approved yet),
// "x509: …", "i/o timeout", "EOF", "connection reset by peer".
const KUBELET_PATH_RE =
  /containerLogs\/|remote error: tls|tls: |x509: |dial tcp|connection refused|connection reset|no route to host|i\/o timeout|\bEOF\b|error dialing backend|proxy error/i;

/** Parses a Retry-After header given in seconds (the HTTP-date form is ignored). */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^\s*\d+\s*$/.test(v)) return undefined;
  return Number(v) * 1000;
}

/**
 * Classifies a non-2xx answer of the apiserver to a pod-log request.
 * `message` is the Status message (or body text) the server sent.
 */
export function classifyHttpStatus(
  status: number,
  message: string,
  opts: { cause?: unknown; retryAfterMs?: number } = {},
): CaptureError {
  const text = message.trim() || `HTTP ${status}`;
  const base = { status, cause: opts.cause, retryAfterMs: opts.retryAfterMs };
  if (status === 401 || status === 403) return captureError('Forbidden', text, base);
  if (status === 404) return captureError('PodNotFound', text, base);
  if (status === 429) return captureError('TooManyRequests', text, base);
  if (status === 400) {
    if (/is waiting to start/i.test(text)) return captureError('WaitingToStart', text, base);
    if (/is not valid for pod/i.test(text)) return captureError('ContainerNotFound', text, base);
    return captureError('BadRequest', text, base);
  }
  if (status >= 500) {
    if (KUBELET_PATH_RE.test(text)) return captureError('KubeletUnreachable', text, base);
    return captureError('ServerError', text, base);
  }
  // 408 is the one other 4xx a repeat can cure.
  if (status === 408) return captureError('ServerError', text, base);
  return captureError('BadRequest', text, base);
}

/** Describes an unknown thrown value in one line, for messages. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = errorCode(err);
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
