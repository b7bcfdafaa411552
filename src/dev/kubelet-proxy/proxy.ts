// A TLS-terminating proxy in front of a hollow kubelet's API port. The
// apiserver dials the node's InternalIP:port, which is this proxy; the real
// kubelet listens on 127.0.0.1 at the same port. Every request is forwarded
// untouched, except the bodies of `GET /containerLogs/NS/POD/CONTAINER`
// responses, which get the pod's connection faults (cutEveryBytes,
// stallAfterBytes, endStreamAfterBytes) exactly as the node simulator applies
// them (the same code: ../simulator/fault-stream.ts). Upgrades (exec, attach,
// port-forward) are relayed as raw bytes after the upgrade request.
import https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { firstFault, sendWithFaults, type ByteSource } from '../simulator/fault-stream.ts';
import type { Faults } from '../simulator/script.ts';

export interface KubeletProxyOptions {
  listenHost: string;
  listenPort: number;
  upstreamHost: string;
  upstreamPort: number;
  /** The certificate and key this proxy serves (the node's serving certificate). */
  cert: Buffer;
  key: Buffer;
  /** CA to verify the kubelet with; without it the kubelet's certificate is not checked (as the apiserver does not). */
  upstreamCa?: Buffer;
  /** The faults that apply to a pod's log connections (its annotation merged over the node's). */
  faultsFor(namespace: string, pod: string): Promise<Faults>;
  log(msg: string): void;
}

const LOGS_PATH = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/;

// Hop-by-hop headers (RFC 9110 7.6.1) are per connection, not forwarded.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

function endToEnd(h: IncomingHttpHeaders, drop: string[] = []): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (!HOP_BY_HOP.has(k) && !drop.includes(k)) out[k] = v;
  return out;
}

/** An upstream response body as the fault stream's byte source (pull-based, so backpressure holds). */
function responseSource(up: IncomingMessage): ByteSource {
  const it = up[Symbol.asyncIterator]();
  return {
    async next(closed) {
      const r = await Promise.race([it.next(), closed.then(() => null)]);
      if (r === null || r.done) return null;
      return r.value as Buffer;
    },
  };
}

export class KubeletProxy {
  private readonly o: KubeletProxyOptions;
  private readonly server: https.Server;
  private readonly agent: https.Agent;
  private readonly sockets = new Set<Duplex>();
  port = 0;

  constructor(o: KubeletProxyOptions) {
    this.o = o;
    this.agent = new https.Agent({ keepAlive: true, ca: o.upstreamCa, rejectUnauthorized: o.upstreamCa !== undefined });
    this.server = https.createServer({ cert: o.cert, key: o.key, keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.o.log(`${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}`);
        if (!res.headersSent) {
          res.writeHead(502, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end(`kubelet proxy: ${(err as Error).message}\n`);
        } else res.destroy();
      });
    });
    this.server.on('connection', (s: Duplex) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.server.on('tlsClientError', () => undefined);
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.listenPort, this.o.listenHost, () => {
        const a = this.server.address();
        if (a === null || typeof a === 'string') return reject(new Error('no address'));
        this.port = a.port;
        resolve(a.port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
      this.agent.destroy();
    });
  }

  private async faultsOf(req: IncomingMessage): Promise<Faults> {
    const m = req.method === 'GET' ? LOGS_PATH.exec(new URL(req.url ?? '/', 'https://kubelet').pathname) : null;
    if (!m) return {};
    return this.o.faultsFor(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const fault = firstFault(await this.faultsOf(req));
    const up = https.request({
      host: this.o.upstreamHost,
      port: this.o.upstreamPort,
      method: req.method,
      path: req.url,
      headers: endToEnd(req.headers),
      agent: this.agent,
    });
    let complete = false;
    // The client went away (or a fault ended the response): stop asking the kubelet.
    res.on('close', () => {
      if (!complete) up.destroy();
    });
    req.pipe(up);
    const upRes = await new Promise<IncomingMessage>((resolve, reject) => {
      up.once('response', resolve);
      up.once('error', reject);
    });
    up.on('error', () => undefined); // reported through the response body's source
    const faulted = fault !== null && upRes.statusCode === 200;
    // A faulted body is shorter than the kubelet said: send it chunked.
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, endToEnd(upRes.headers, faulted ? ['content-length'] : []));
    const outcome = await sendWithFaults(responseSource(upRes), faulted ? fault : null, res);
    if (faulted && outcome !== 'done') this.o.log(`${req.url}: ${outcome} (fault ${fault.action} at ${fault.at} bytes)`);
    if (outcome === 'done') complete = true;
    else upRes.destroy();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const up = tls.connect({ host: this.o.upstreamHost, port: this.o.upstreamPort, ca: this.o.upstreamCa, rejectUnauthorized: this.o.upstreamCa !== undefined });
    const fail = () => {
      up.destroy();
      socket.destroy();
    };
    up.on('error', fail);
    socket.on('error', fail);
    up.once('secureConnect', () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length > 0) up.write(head);
      socket.pipe(up);
      up.pipe(socket);
    });
  }
}
