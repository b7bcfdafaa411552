// The informers' watch transport over node:https with our credentials
// (kube-credentials.ts), in place of client-node's Watch (watch.js, which
// needs a KubeConfig and undici's fetch). It keeps watch.js's contract
// (client-node 2.0.1), which ListWatch (cache.js) relies on:
// - GET server+path with watch=true and every defined query parameter;
//   the returned promise resolves (to the request's AbortController) once the
//   answer's head arrived or the request failed; credentials that cannot be
//   applied reject it.
// - 200: each newline-delimited JSON line is `callback(type, object, event)`;
//   a line that is not JSON is skipped. ERROR events (a Status, e.g. code
//   410 Gone) are passed on like any other: ListWatch clears its
//   resourceVersion on code 410 and relists when the stream then ends.
// - `done` is called exactly once: with null when the stream ends; with the
//   error when the connection fails or is cut; with an Error whose
//   `statusCode` is the HTTP status for any other answer (ListWatch relists on
//   410); with the abort reason when the caller aborts.
// - 30 s without the head or without a byte of body aborts the request and
//   calls done with a DOMException named TimeoutError (ListWatch reconnects at
//   once from its resourceVersion).
import * as http from 'node:http';
import * as https from 'node:https';
import { STATUS_CODES } from 'node:http';
import type { KubeCredentials } from './kube-credentials.ts';
import type { WatchCallback, WatchDone, WatchLike } from './list-watch.ts';

/** Watch connections, one per open watch; a connection whose watch ended cleanly is reused by the next one. */
const httpsAgent = new https.Agent({ keepAlive: true });
const httpAgent = new http.Agent({ keepAlive: true });

export class KubeWatch implements WatchLike {
  readonly #creds: KubeCredentials;
  /** Without the head, or between two chunks of body: abort (watch.js's requestTimeoutMs). */
  requestTimeoutMs = 30_000;

  constructor(creds: KubeCredentials) {
    this.#creds = creds;
  }

  async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: WatchCallback,
    done: WatchDone,
  ): Promise<AbortController> {
    const cluster = this.#creds.getCurrentCluster();
    if (!cluster) throw new Error('No currently active cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    url.searchParams.set('watch', 'true');
    for (const [k, v] of Object.entries(queryParams ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const secure = url.protocol === 'https:';
    const opts: https.RequestOptions = {
      method: 'GET',
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || (secure ? 443 : 80),
      path: url.pathname + url.search,
      headers: { Accept: 'application/json', 'User-Agent': 'logtail' },
    };
    await this.#creds.applyToHTTPSOptions(opts);
    // A proxy agent set by the credentials stays; otherwise ours.
    if (!cluster.proxyUrl) opts.agent = secure ? httpsAgent : httpAgent;

    const controller = new AbortController();
    return new Promise<AbortController>((resolve) => {
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: unknown) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        controller.abort();
        // After a clean end the socket goes back to the agent's pool; otherwise it is closed.
        if (err !== null) req.destroy();
        resolve(controller);
        done(err);
      };
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => finish(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), this.requestTimeoutMs);
        timer.unref();
      };
      const req = (secure ? https : http).request(opts);
      controller.signal.addEventListener('abort', () => finish(controller.signal.reason), { once: true });
      req.on('error', (err) => finish(err));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          res.resume();
          const err = new Error(res.statusMessage || STATUS_CODES[status] || 'Internal Server Error') as Error & { statusCode: number };
          err.statusCode = status;
          finish(err);
          return;
        }
        arm();
        resolve(controller);
        let rest = '';
        const emit = (line: string) => {
          if (!line.trim()) return;
          // As watch.js: a line that is not JSON is skipped, and what the callback throws is dropped.
          try {
            const event = JSON.parse(line) as { type: string; object: unknown };
            callback(event.type, event.object, event);
          } catch {
            /* skipped */
          }
        };
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (finished) return;
          arm();
          rest += chunk;
          let nl: number;
          while (!finished && (nl = rest.indexOf('\n')) >= 0) {
            const line = rest.slice(0, nl);
            rest = rest.slice(nl + 1);
            emit(line);
          }
        });
        res.on('end', () => {
          if (!finished && rest) emit(rest);
          finish(null);
        });
        res.on('error', (err) => finish(err));
        // Closed without 'end' (connection cut mid-stream): an error, as undici's "terminated".
        res.on('close', () => finish(res.complete ? null : new Error('watch connection closed before the end of the stream')));
      });
      arm();
      req.end();
    });
  }
}
