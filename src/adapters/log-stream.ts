// Streams a container's log from the apiserver with node:http(s) directly.
// CPU per byte on this side is throughput (the apiserver's proxy competes
// with us for the same cores), so the data path does nothing per byte or per
// line: socket chunks are handed to the consumer as they arrive.
import * as http from 'node:http';
import * as https from 'node:https';
import type { KubeCredentials } from './kube-credentials.ts';
import { shareSecureContext } from './tls-context.ts';
import { type CaptureError, captureError, classifyHttpStatus, describeError, isNetworkError, parseRetryAfter } from './errors.ts';

export interface LogStreamRequest {
  namespace: string;
  pod: string;
  container: string;
  follow: boolean;
  timestamps: boolean;
  /** RFC 3339; the kubelet truncates it to the second. */
  sinceTime?: string;
  previous?: boolean;
  limitBytes?: number;
  tailLines?: number;
  /**
   * Longest wait for the response head, and for the next chunk while the
   * consumer is waiting for one. A quiet container is indistinguishable from
   * a dead connection, so this is also how often a quiet stream is reopened.
   */
  idleTimeoutMs: number;
  signal?: AbortSignal;
}

/** One response body. Single consumer: iterate it once. */
export interface LogStream extends AsyncIterable<Buffer> {
  /** Ends the iteration (a pending next() resolves done) and drops the connection. Idempotent. */
  close(): void;
  /** Body bytes received so far. */
  readonly bytesReceived: number;
  /** Bytes received and not yet handed to the consumer. */
  readonly queuedBytes: number;
}

// Sockets survive a cleanly ended response and serve the next open; TLS
// parameters travel with each request and are part of the agent's pool key,
// so one agent serves every kubeconfig.
const httpsAgent = new https.Agent({ keepAlive: true });
const httpAgent = new http.Agent({ keepAlive: true });

const MAX_ERROR_BODY_BYTES = 64 * 1024;

export function logPath(req: Pick<LogStreamRequest, 'namespace' | 'pod' | 'container' | 'follow' | 'timestamps' | 'sinceTime' | 'previous' | 'limitBytes' | 'tailLines'>): string {
  const q = new URLSearchParams({ container: req.container, follow: String(req.follow), timestamps: String(req.timestamps) });
  if (req.sinceTime !== undefined) q.set('sinceTime', req.sinceTime);
  if (req.previous) q.set('previous', 'true');
  if (req.limitBytes !== undefined) q.set('limitBytes', String(req.limitBytes));
  if (req.tailLines !== undefined) q.set('tailLines', String(req.tailLines));
  return `/api/v1/namespaces/${encodeURIComponent(req.namespace)}/pods/${encodeURIComponent(req.pod)}/log?${q.toString()}`;
}

/** Errors of the connection itself (no HTTP answer, or a broken body). */
function classifyConnectionError(err: unknown, what: string): CaptureError {
  const e = err as { code?: unknown; message?: unknown };
  // Node's wording when the socket closed before the body's end marker.
  if (e?.code === 'ECONNRESET' && e.message === 'aborted') {
    return captureError('StreamEnded', `${what}: connection closed before the response was complete`, { cause: err });
  }
  return captureError('KubeletUnreachable', `${what}: ${describeError(err)}`, { cause: err });
}

function readErrorBody(res: http.IncomingMessage, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      res.removeListener('data', onData);
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        const status = JSON.parse(text) as { message?: unknown };
        if (typeof status.message === 'string') {
          resolve(status.message);
          return;
        }
      } catch {
        // not a Status object; fall through to the raw text
      }
      resolve(text.slice(0, 1024));
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= MAX_ERROR_BODY_BYTES) {
        res.destroy();
        finish();
      }
    };
    const timer = setTimeout(() => {
      res.destroy();
      finish();
    }, timeoutMs);
    res.on('data', onData);
    res.once('end', finish);
    res.once('close', finish);
    res.once('error', () => undefined);
  });
}

export async function openLogStream(kc: KubeCredentials, req: LogStreamRequest): Promise<LogStream> {
  const { signal, idleTimeoutMs } = req;
  signal?.throwIfAborted();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw captureError('BadRequest', 'kubeconfig has no current cluster');
  const server = new URL(cluster.server);
  const secure = server.protocol === 'https:';
  const basePath = server.pathname.replace(/\/+$/, '');
  const opts: https.RequestOptions = {
    method: 'GET',
    protocol: server.protocol,
    hostname: server.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: server.port || (secure ? 443 : 80),
    path: basePath + logPath(req),
    headers: { Accept: '*/*', 'User-Agent': 'logtail' },
  };
  try {
    await kc.applyToHTTPSOptions(opts);
  } catch (err) {
    throw captureError('Forbidden', `cannot obtain credentials: ${describeError(err)}`, {
      cause: err,
      kind: isNetworkError(err) ? 'transient' : 'permanent',
    });
  }
  signal?.throwIfAborted();
  // client-node's KubeConfig (the fallback) hands out a non-keepalive agent;
  // keep its agent only when it is a proxy agent, which ours cannot replace.
  if (!cluster.proxyUrl) opts.agent = secure ? httpsAgent : httpAgent;
  // one TLS context for every stream, not one per connection (tls-context.ts)
  if (secure) shareSecureContext(opts);
  const what = `log of ${req.namespace}/${req.pod}/${req.container}`;

  return new Promise<LogStream>((resolve, reject) => {
    const request = (secure ? https : http).request(opts);
    let settled = false;
    const settleError = (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(headTimer);
      signal?.removeEventListener('abort', onAbort);
      request.destroy();
      reject(err);
    };
    const onAbort = () => settleError(signal?.reason);
    const headTimer = setTimeout(
      () => settleError(captureError('StreamStalled', `${what}: no response within ${idleTimeoutMs} ms`)),
      idleTimeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    // Stays attached for the request's lifetime so a late error is never unhandled.
    request.on('error', (err) => settleError(signal?.aborted ? signal.reason : classifyConnectionError(err, what)));
    request.on('response', (res) => {
      clearTimeout(headTimer);
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        resolve(new HttpLogStream(request, res, idleTimeoutMs, what, signal));
        return;
      }
      const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      void readErrorBody(res, idleTimeoutMs).then((message) =>
        settleError(classifyHttpStatus(status, message, retryAfterMs === undefined ? {} : { retryAfterMs })),
      );
    });
    request.end();
  });
}

/** Bytes received but not yet consumed before the socket is paused (one stream's read-ahead at most). */
export const QUEUE_HIGH_WATER = 1 << 20;
const QUEUE_LOW_WATER = 256 << 10;
/** What a stream may always read ahead, whatever the process-wide budget: every stream keeps moving. */
export const QUEUE_FLOOR = 64 << 10;

/**
 * The process-wide read-ahead budget (--buffer-memory): bytes received by all
 * log streams and not yet consumed. Over it, a stream pauses its socket as
 * soon as it holds QUEUE_FLOOR (backpressure: the kubelet keeps the log), so
 * the total stays within limit + streams × (QUEUE_FLOOR + one socket chunk).
 * No stream waits on another: a paused stream has queued data, its consumer
 * takes it, and it resumes below the floor.
 */
export class ReadAheadBudget {
  limit: number;
  used = 0;
  peak = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  add(n: number): void {
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
  }

  over(): boolean {
    return this.used > this.limit;
  }
}

/** Shared by every stream of the process; main sets its limit from --buffer-memory. */
export const readAheadBudget = new ReadAheadBudget(64 << 20);

type Waiter = { resolve: (r: IteratorResult<Buffer>) => void; reject: (e: unknown) => void };

const DONE: IteratorResult<Buffer> = { value: undefined, done: true };

class HttpLogStream implements LogStream, AsyncIterator<Buffer> {
  bytesReceived = 0;
  private readonly req: http.ClientRequest;
  private readonly res: http.IncomingMessage;
  private readonly idleMs: number;
  private readonly what: string;
  private readonly signal: AbortSignal | undefined;
  private readonly queue: Buffer[] = [];
  queuedBytes = 0;
  private waiter: Waiter | undefined;
  private waitingSince = 0;
  private timer: NodeJS.Timeout | undefined;
  // Terminal states. A failure is delivered after the queued chunks (they
  // were received intact), once; then the iteration is done.
  private ended = false;
  private closed = false;
  private failure: { error: unknown } | undefined;
  private failureDelivered = false;
  private aborted = false;
  // Also called at each next(): an abort wins over data already queued and
  // over a clean end that the consumer has not seen yet.
  private readonly onAbort = () => {
    if (!this.signal?.aborted || this.aborted || this.closed) return;
    this.aborted = true;
    this.dropQueue();
    this.failure = { error: this.signal.reason };
    this.failureDelivered = false;
    this.ended = false;
    this.cleanup();
    this.req.destroy();
    this.rejectWaiter();
  };

  constructor(req: http.ClientRequest, res: http.IncomingMessage, idleMs: number, what: string, signal?: AbortSignal) {
    this.req = req;
    this.res = res;
    this.idleMs = idleMs;
    this.what = what;
    this.signal = signal;
    res.on('data', this.onData);
    res.on('end', () => {
      // 'end' without `complete` would be a body cut short (no chunked
      // terminator / short Content-Length): never a clean end.
      if (!res.complete) {
        this.fail(captureError('StreamEnded', `${what}: response ended before its end marker`));
        return;
      }
      if (this.isTerminal()) return;
      this.ended = true;
      this.cleanup();
      this.settleWaiter();
    });
    res.on('error', (err) => this.fail(classifyConnectionError(err, what)));
    res.on('close', () => {
      if (!this.isTerminal()) this.fail(captureError('StreamEnded', `${what}: connection closed before the response was complete`));
    });
    req.on('error', (err) => this.fail(classifyConnectionError(err, what)));
    if (signal?.aborted) this.onAbort();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    this.onAbort();
    if (this.closed) return Promise.resolve(DONE);
    const chunk = this.queue.shift();
    if (chunk !== undefined) {
      this.unqueue(chunk.length);
      if (!this.isTerminal() && this.res.isPaused() && this.queuedBytes <= QUEUE_LOW_WATER && (this.queuedBytes < QUEUE_FLOOR || !readAheadBudget.over())) this.res.resume();
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.failure) {
      if (this.failureDelivered) return Promise.resolve(DONE);
      this.failureDelivered = true;
      return Promise.reject(this.failure.error);
    }
    if (this.ended) return Promise.resolve(DONE);
    return new Promise<IteratorResult<Buffer>>((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.waitingSince = performance.now();
      // One timer per idle period, not per chunk: it re-arms itself for
      // whatever remains of the current wait when it fires.
      this.timer ??= setTimeout(this.checkIdle, this.idleMs);
    });
  }

  return(): Promise<IteratorResult<Buffer>> {
    this.close();
    return Promise.resolve(DONE);
  }

  close(): void {
    if (this.closed) return;
    const wasTerminal = this.isTerminal();
    this.closed = true;
    this.dropQueue();
    this.cleanup();
    // A cleanly ended response has handed its socket back to the agent.
    if (!wasTerminal) this.req.destroy();
    this.settleWaiter();
  }

  private readonly onData = (chunk: Buffer) => {
    if (this.isTerminal()) return;
    this.bytesReceived += chunk.length;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve({ value: chunk, done: false });
      return;
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    readAheadBudget.add(chunk.length);
    // Let the network run ahead of the consumer by a bounded amount: pausing
    // at the first queued chunk would serialise receiving and storing.
    if (this.queuedBytes >= QUEUE_HIGH_WATER || (this.queuedBytes >= QUEUE_FLOOR && readAheadBudget.over())) this.res.pause();
  };

  private unqueue(n: number): void {
    this.queuedBytes -= n;
    readAheadBudget.used -= n;
  }

  /** Drops what is queued, giving its bytes back to the budget. */
  private dropQueue(): void {
    this.queue.length = 0;
    this.unqueue(this.queuedBytes);
  }

  private readonly checkIdle = () => {
    this.timer = undefined;
    if (!this.waiter || this.isTerminal()) return;
    const waited = performance.now() - this.waitingSince;
    if (waited >= this.idleMs) {
      this.fail(captureError('StreamStalled', `${this.what}: no data for ${this.idleMs} ms`));
    } else {
      this.timer = setTimeout(this.checkIdle, Math.max(1, Math.ceil(this.idleMs - waited)));
    }
  };

  private isTerminal(): boolean {
    return this.ended || this.closed || this.failure !== undefined;
  }

  private fail(error: unknown): void {
    if (this.isTerminal()) return;
    this.failure = { error };
    this.cleanup();
    this.req.destroy();
    this.rejectWaiter();
  }

  private rejectWaiter(): void {
    const w = this.waiter;
    if (w && this.failure) {
      // A waiter exists only when the queue is empty.
      this.waiter = undefined;
      this.failureDelivered = true;
      w.reject(this.failure.error);
    }
  }

  private settleWaiter(): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve(DONE);
    }
  }

  private cleanup(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.signal?.removeEventListener('abort', this.onAbort);
  }
}
