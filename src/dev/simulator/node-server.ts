// The HTTPS endpoint of one simulated node (what the apiserver dials for
// `pods/log`), with a plain TCP server in front so that a node can refuse the
// TLS handshake the way a kubelet without an approved serving certificate
// does: the ClientHello is answered with a fatal internal_error alert.
import https from 'node:https';
import net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** TLS record: alert, TLS 1.2, length 2, fatal (2), internal_error (80). */
export const TLS_INTERNAL_ERROR_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50]);

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Log requests (`/containerLogs/…`) in flight on all nodes of this process,
 * and the most seen at once: what a test counts as the streams open at the
 * kubelet. Read (and the maximum reset) with `GET /debug/log-requests` on any
 * node's port; `?reset=1` sets the maximum to the current count.
 */
export const logRequests = { open: 0, max: 0, total: 0 };

function countLogRequest(req: IncomingMessage, res: ServerResponse): void {
  if (!req.url?.startsWith('/containerLogs/')) return;
  logRequests.open++;
  logRequests.total++;
  if (logRequests.open > logRequests.max) logRequests.max = logRequests.open;
  res.on('close', () => logRequests.open--);
}

function debugLogRequests(req: IncomingMessage, res: ServerResponse): boolean {
  if (!req.url?.startsWith('/debug/log-requests')) return false;
  if (new URL(req.url, 'https://node').searchParams.get('reset') === '1') logRequests.max = logRequests.open;
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(logRequests));
  return true;
}

export class NodeServer {
  readonly name: string;
  port = 0;
  private readonly front: net.Server;
  private readonly server: https.Server;
  private tlsRefuseUntil = 0;
  private readonly conns = new Map<TLSSocket, { busy: number }>();
  private readonly raw = new Set<net.Socket>();
  private readonly log: (m: string) => void;

  constructor(name: string, tls: { cert: Buffer; key: Buffer }, handler: RequestHandler, log: (m: string) => void) {
    this.name = name;
    this.log = log;
    this.server = https.createServer({ cert: tls.cert, key: tls.key, keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
      const st = this.conns.get(req.socket as TLSSocket);
      if (st) st.busy++;
      res.on('close', () => {
        if (st) st.busy--;
        // A connection reused after the window opened would skip the handshake.
        if (st && st.busy === 0 && this.refusing()) req.socket.destroy();
      });
      if (debugLogRequests(req, res)) return;
      countLogRequest(req, res);
      handler(req, res);
    });
    this.server.on('secureConnection', (s: TLSSocket) => {
      this.conns.set(s, { busy: 0 });
      s.on('close', () => this.conns.delete(s));
    });
    this.server.on('tlsClientError', () => {
      /* clients that give up mid-handshake */
    });
    this.front = net.createServer((sock) => this.accept(sock));
  }

  private refusing(): boolean {
    return Date.now() < this.tlsRefuseUntil;
  }

  private accept(sock: net.Socket): void {
    this.raw.add(sock);
    sock.on('close', () => this.raw.delete(sock));
    sock.on('error', () => undefined);
    if (this.refusing()) {
      // Wait for the ClientHello, answer it with the alert, close.
      sock.once('data', () => {
        sock.end(TLS_INTERNAL_ERROR_ALERT);
        setTimeout(() => sock.destroy(), 2000).unref();
      });
      return;
    }
    this.server.emit('connection', sock);
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.front.once('error', reject);
      this.front.listen(0, '127.0.0.1', () => {
        const a = this.front.address();
        if (a === null || typeof a === 'string') return reject(new Error('no address'));
        this.port = a.port;
        resolve(a.port);
      });
    });
  }

  /** Refuse TLS for the next `seconds`; idle kept-alive connections are closed so they cannot bypass it. */
  refuseTls(seconds: number): void {
    const until = Date.now() + seconds * 1000;
    if (until > this.tlsRefuseUntil) this.tlsRefuseUntil = until;
    let closed = 0;
    for (const [s, st] of this.conns) {
      if (st.busy === 0) {
        s.destroy();
        closed++;
      }
    }
    this.log(`node ${this.name}: refusing TLS for ${seconds}s (closed ${closed} idle connections)`);
  }

  close(): void {
    this.front.close();
    this.server.close();
    for (const s of this.raw) s.destroy();
    for (const s of this.conns.keys()) s.destroy();
  }
}
