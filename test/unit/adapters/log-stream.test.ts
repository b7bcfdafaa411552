import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { CaptureError } from '../../../src/adapters/errors.ts';
import { QUEUE_FLOOR, QUEUE_HIGH_WATER, logPath, openLogStream, readAheadBudget, type LogStreamRequest } from '../../../src/adapters/log-stream.ts';
import { localKubeConfig, selfSignedCert } from '../support/tls.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const IDLE = 300;

function status(res: ServerResponse, code: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(code, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code }));
}

/** Deterministic bytes so the receiving side can compare hashes. */
function block(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

describe('adapters/log-stream', function () {
  let dir: string;
  let server: https.Server;
  let kc: KubeConfig;
  const handlers = new Map<string, Handler>();
  const seen: IncomingMessage[] = [];
  const sockets = new Set<Socket>();

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'logtail-logstream-'));
    const { cert, key } = selfSignedCert(dir);
    server = https.createServer({ cert, key }, (req, res) => {
      seen.push(req);
      const pod = /\/pods\/([^/]+)\/log/.exec(req.url ?? '')?.[1] ?? '';
      const h = handlers.get(decodeURIComponent(pod));
      if (h) h(req, res);
      else status(res, 404, `pods "${pod}" not found`);
    });
    server.on('secureConnection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    return new Promise<void>((resolve) => {
      server.listen(0, '127.0.0.1', () => {
        const port = (server.address() as AddressInfo).port;
        kc = localKubeConfig(port, cert, 'test-token');
        resolve();
      });
    });
  });

  after(function () {
    for (const s of sockets) s.destroy();
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  afterEach(function () {
    handlers.clear();
    seen.length = 0;
  });

  function req(pod: string, extra: Partial<LogStreamRequest> = {}): LogStreamRequest {
    return { namespace: 'ns-1', pod, container: 'app', follow: true, timestamps: true, idleTimeoutMs: IDLE, ...extra };
  }

  async function drain(stream: AsyncIterable<Buffer>): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of stream) parts.push(c);
    return Buffer.concat(parts);
  }

  async function openError(pod: string, extra: Partial<LogStreamRequest> = {}): Promise<CaptureError> {
    const got = await openLogStream(kc, req(pod, extra)).then(
      () => new Error('expected the open to fail'),
      (e: unknown) => e,
    );
    expect(got).to.be.instanceOf(CaptureError);
    return got as CaptureError;
  }

  it('builds the log path with encoded names and optional parameters', () => {
    expect(logPath({ namespace: 'a b', pod: 'p/1', container: 'c&d', follow: true, timestamps: true })).to.equal(
      '/api/v1/namespaces/a%20b/pods/p%2F1/log?container=c%26d&follow=true&timestamps=true',
    );
    expect(
      logPath({ namespace: 'n', pod: 'p', container: 'c', follow: false, timestamps: true, sinceTime: '2026-11-27T10:00:05Z', previous: true, limitBytes: 10 }),
    ).to.equal('/api/v1/namespaces/n/pods/p/log?container=c&follow=false&timestamps=true&sinceTime=2026-11-27T10%3A00%3A05Z&previous=true&limitBytes=10');
  });

  it('streams the body with the kubeconfig credentials and ends cleanly', async () => {
    handlers.set('ok', (_q, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('2026-11-27T10:00:00.000000000Z one\n');
      setTimeout(() => res.end('2026-11-27T10:00:01.000000000Z two\n'), 20);
    });
    const stream = await openLogStream(kc, req('ok', { sinceTime: '2026-11-27T10:00:00Z' }));
    const body = await drain(stream);
    expect(body.toString()).to.equal('2026-11-27T10:00:00.000000000Z one\n2026-11-27T10:00:01.000000000Z two\n');
    expect(stream.bytesReceived).to.equal(body.length);
    expect(seen[0]?.headers.authorization).to.equal('Bearer test-token');
    const url = new URL(seen[0]?.url ?? '', 'https://x');
    expect(url.pathname).to.equal('/api/v1/namespaces/ns-1/pods/ok/log');
    expect(Object.fromEntries(url.searchParams)).to.deep.equal({
      container: 'app',
      follow: 'true',
      timestamps: 'true',
      sinceTime: '2026-11-27T10:00:00Z',
    });
  });

  it('reuses the TLS connection for the next stream (keep-alive agent)', async () => {
    handlers.set('ka', (_q, res) => {
      res.writeHead(200);
      res.end('x\n');
    });
    for (let i = 0; i < 3; i++) expect((await drain(await openLogStream(kc, req('ka')))).toString()).to.equal('x\n');
    expect(seen).to.have.length(3);
    expect(new Set(seen.map((q) => q.socket)).size).to.equal(1);
  });

  it('delivers many MiB byte-exactly in socket-sized chunks while the consumer is sometimes slow', async () => {
    const total = 24 * 1024 * 1024;
    const hash = createHash('sha256');
    handlers.set('bulk', (_q, res) => {
      res.writeHead(200);
      let sent = 0;
      let seed = 1;
      const pump = () => {
        while (sent < total) {
          const size = Math.min(total - sent, 1 + ((seed * 7919) % 200_000));
          const b = block(seed++, size);
          hash.update(b);
          sent += size;
          if (!res.write(b)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const stream = await openLogStream(kc, req('bulk'));
    const got = createHash('sha256');
    let n = 0;
    let bytes = 0;
    let biggest = 0;
    for await (const c of stream) {
      got.update(c);
      bytes += c.length;
      biggest = Math.max(biggest, c.length);
      if (++n % 200 === 0) await delay(5);
    }
    expect(bytes).to.equal(total);
    expect(got.digest('hex')).to.equal(hash.digest('hex'));
    // Chunks are passed through, not coalesced into big buffers.
    expect(biggest).to.be.at.most(256 * 1024);
  });

  it('shares one read-ahead budget: over it a stream holds about the floor, not its own high water, and every byte is given back', async () => {
    const total = 8 * 1024 * 1024;
    const sums = new Map<string, string>();
    for (const pod of ['ra-1', 'ra-2', 'ra-3']) {
      handlers.set(pod, (_q, res) => {
        res.writeHead(200);
        const h = createHash('sha256');
        let sent = 0;
        let seed = pod.length + Number(pod.slice(3));
        const pump = () => {
          while (sent < total) {
            const b = block(seed++, Math.min(total - sent, 32 * 1024));
            h.update(b);
            sent += b.length;
            if (!res.write(b)) return void res.once('drain', pump);
          }
          sums.set(pod, h.digest('hex'));
          res.end();
        };
        pump();
      });
    }
    const saved = readAheadBudget.limit;
    readAheadBudget.limit = 256 * 1024;
    readAheadBudget.peak = readAheadBudget.used;
    const base = readAheadBudget.used;
    try {
      const streams = await Promise.all(['ra-1', 'ra-2', 'ra-3'].map((p) => openLogStream(kc, req(p))));
      // A slow consumer on each: the sockets would fill 1 MiB each without the budget.
      let peakQueued = 0;
      const got = await Promise.all(
        streams.map(async (st) => {
          const h = createHash('sha256');
          let n = 0;
          for await (const c of st) {
            h.update(c);
            peakQueued = Math.max(peakQueued, (st as unknown as { queuedBytes: number }).queuedBytes);
            if (++n % 16 === 0) await delay(2);
          }
          return h.digest('hex');
        }),
      );
      expect(got).to.deep.equal(['ra-1', 'ra-2', 'ra-3'].map((p) => sums.get(p)));
      // limit + streams × (floor + a few socket chunks), far under 3 × QUEUE_HIGH_WATER
      expect(readAheadBudget.peak - base).to.be.below(256 * 1024 + 3 * (QUEUE_FLOOR + 256 * 1024));
      expect(readAheadBudget.peak - base).to.be.below(3 * QUEUE_HIGH_WATER);
      expect(readAheadBudget.used).to.equal(base);
    } finally {
      readAheadBudget.limit = saved;
    }
  });

  it('gives a closed stream\'s queued bytes back to the budget', async () => {
    handlers.set('ra-close', (_q, res) => {
      res.writeHead(200);
      res.write(Buffer.alloc(512 * 1024, 97));
    });
    const base = readAheadBudget.used;
    const st = await openLogStream(kc, req('ra-close'));
    for (let i = 0; i < 50 && readAheadBudget.used === base; i++) await delay(10);
    expect(readAheadBudget.used).to.be.greaterThan(base);
    st.close();
    expect(readAheadBudget.used).to.equal(base);
  });

  describe('status classification', () => {
    const cases: Array<[string, number, string, string, 'transient' | 'permanent', Record<string, string>?]> = [
      ['forbidden', 403, 'pods "forbidden" is forbidden: User "x" cannot get resource "pods/log"', 'Forbidden', 'permanent'],
      ['unauth', 401, 'Unauthorized', 'Forbidden', 'permanent'],
      ['gone', 404, 'pods "gone" not found', 'PodNotFound', 'permanent'],
      ['waiting', 400, 'container "app" in pod "waiting" is waiting to start: ContainerCreating', 'WaitingToStart', 'transient'],
      ['invalid', 400, 'container app is not valid for pod invalid', 'ContainerNotFound', 'permanent'],
      ['bad', 400, 'a container name must be specified', 'BadRequest', 'permanent'],
      ['boom', 500, 'etcdserver: leader changed', 'ServerError', 'transient'],
      ['busy', 429, 'Too many requests, please try again later.', 'TooManyRequests', 'transient', { 'Retry-After': '2' }],
      [
        'tls',
        500,
        'Get "https://127.0.0.1:40001/containerLogs/ns-1/tls/app?follow=true&timestamps=true": remote error: tls: internal error',
        'KubeletUnreachable',
        'transient',
      ],
    ];
    for (const [pod, code, message, reason, kind, headers] of cases) {
      it(`${code} ${reason}${pod === 'tls' ? ' (relayed TLS alert)' : ''}`, async () => {
        handlers.set(pod, (_q, res) => status(res, code, message, headers));
        const e = await openError(pod);
        expect([e.reason, e.kind, e.status]).to.deep.equal([reason, kind, code]);
        expect(e.message).to.equal(message);
        if (headers?.['Retry-After']) expect(e.retryAfterMs).to.equal(2000);
      });
    }

    it('classifies by the status even when head and body each take a while', async () => {
      handlers.set('slowerr', (_q, res) => {
        setTimeout(() => {
          res.writeHead(403, { 'Content-Type': 'application/json' });
          res.flushHeaders();
          setTimeout(() => res.end(JSON.stringify({ kind: 'Status', message: 'slow no', code: 403 })), IDLE * 0.6);
        }, IDLE * 0.6);
      });
      const e = await openError('slowerr');
      expect([e.reason, e.message]).to.deep.equal(['Forbidden', 'slow no']);
    });

    it('reads at most a bounded error body', async () => {
      handlers.set('huge', (_q, res) => {
        res.writeHead(500);
        const b = Buffer.alloc(1024 * 1024, 'x');
        for (let i = 0; i < 64; i++) res.write(b);
        res.end();
      });
      // Server and client share this process: queueing 64 MiB can hold the
      // event loop past the short IDLE on a loaded machine, and this case is
      // about the body bound, not the head timeout.
      const e = await openError('huge', { idleTimeoutMs: 30_000 });
      expect(e.reason).to.equal('ServerError');
      expect(e.message.length).to.be.at.most(1024);
    });
  });

  it('a connection refused is a transient KubeletUnreachable', async () => {
    const bad = new KubeConfig();
    bad.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const got = await openLogStream(bad, req('any')).catch((e: unknown) => e);
    expect(got).to.be.instanceOf(CaptureError);
    expect((got as CaptureError).reason).to.equal('KubeletUnreachable');
    expect((got as CaptureError).kind).to.equal('transient');
  });

  it('a socket destroyed mid-stream fails the iteration with a transient error after the bytes received', async () => {
    handlers.set('cut', (_q, res) => {
      res.writeHead(200);
      res.write('first line\n');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const stream = await openLogStream(kc, req('cut'));
    const parts: string[] = [];
    const got = await (async () => {
      for await (const c of stream) parts.push(c.toString());
    })().catch((e: unknown) => e);
    expect(parts.join('')).to.equal('first line\n');
    expect(got).to.be.instanceOf(CaptureError);
    expect((got as CaptureError).kind).to.equal('transient');
    expect(['StreamEnded', 'KubeletUnreachable']).to.include((got as CaptureError).reason);
  });

  it('a chunked body closed without its terminator is an error, not a clean end', async () => {
    handlers.set('noterm', (q) => {
      // Bypass the server's HTTP writer: a well-formed head and one chunk, then FIN.
      q.socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello\n\r\n');
      setTimeout(() => q.socket.end(), 50);
    });
    const stream = await openLogStream(kc, req('noterm'));
    const parts: string[] = [];
    const got = await (async () => {
      for await (const c of stream) parts.push(c.toString());
    })().catch((e: unknown) => e);
    expect(parts.join('')).to.equal('hello\n');
    expect(got).to.be.instanceOf(CaptureError);
    expect((got as CaptureError).reason).to.equal('StreamEnded');
    expect((got as CaptureError).kind).to.equal('transient');
  });

  it('a body shorter than its Content-Length is an error, not a clean end', async () => {
    handlers.set('short', (q) => {
      q.socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello\n');
      setTimeout(() => q.socket.end(), 50);
    });
    const stream = await openLogStream(kc, req('short'));
    const got = await drain(stream).catch((e: unknown) => e);
    expect(got).to.be.instanceOf(CaptureError);
    expect((got as CaptureError).reason).to.equal('StreamEnded');
  });

  it('throws StreamStalled when no byte arrives for idleTimeoutMs', async () => {
    handlers.set('stall', (_q, res) => {
      res.writeHead(200);
      res.write('a\n'); // then silence, connection kept open
    });
    const stream = await openLogStream(kc, req('stall'));
    const t0 = performance.now();
    const parts: string[] = [];
    const got = await (async () => {
      for await (const c of stream) parts.push(c.toString());
    })().catch((e: unknown) => e);
    const took = performance.now() - t0;
    expect(parts.join('')).to.equal('a\n');
    expect((got as CaptureError).reason).to.equal('StreamStalled');
    expect((got as CaptureError).kind).to.equal('transient');
    expect(took).to.be.within(IDLE - 20, IDLE + 1500);
  });

  it('throws StreamStalled when the response head does not come within idleTimeoutMs', async () => {
    handlers.set('nohead', () => undefined);
    const e = await openError('nohead');
    expect(e.reason).to.equal('StreamStalled');
  });

  it('does not count the consumer\'s own slowness as a stall, and trickling data keeps the stream alive', async () => {
    handlers.set('trickle', (_q, res) => {
      res.writeHead(200);
      res.write('0\n');
      let i = 1;
      const t = setInterval(() => {
        res.write(`${i}\n`);
        if (++i === 6) {
          clearInterval(t);
          res.end();
        }
      }, IDLE / 2);
    });
    const stream = await openLogStream(kc, req('trickle'));
    let text = '';
    let first = true;
    for await (const c of stream) {
      text += c.toString();
      if (first) {
        first = false;
        await delay(IDLE * 2); // consumer busy far longer than the idle timeout
      }
    }
    expect(text).to.equal('0\n1\n2\n3\n4\n5\n');
  });

  it('an abort while iterating destroys the request and throws signal.reason promptly', async () => {
    let serverSawClose = false;
    handlers.set('abort', (q, res) => {
      res.writeHead(200);
      res.write('a\n');
      q.socket.on('close', () => (serverSawClose = true));
    });
    const ac = new AbortController();
    const reason = new Error('shutdown');
    const stream = await openLogStream(kc, req('abort', { signal: ac.signal, idleTimeoutMs: 60_000 }));
    const t0 = performance.now();
    const got = await (async () => {
      for await (const _c of stream) setTimeout(() => ac.abort(reason), 20);
    })().catch((e: unknown) => e);
    expect(got).to.equal(reason);
    expect(performance.now() - t0).to.be.below(2000);
    await delay(100);
    expect(serverSawClose).to.equal(true);
  });

  it('an abort wins over data already queued', async () => {
    handlers.set('abortq', (_q, res) => {
      res.writeHead(200);
      res.write('a\n');
      setTimeout(() => res.write('b\n'), 10);
      setTimeout(() => res.write('c\n'), 20);
    });
    const ac = new AbortController();
    const stream = await openLogStream(kc, req('abortq', { signal: ac.signal, idleTimeoutMs: 60_000 }));
    const it = stream[Symbol.asyncIterator]();
    expect((await it.next()).value?.toString()).to.equal('a\n');
    await delay(100); // b and c are now queued inside the stream
    ac.abort('stop');
    expect(await it.next().catch((e: unknown) => e)).to.equal('stop');
  });

  it('an abort during the open rejects with signal.reason', async () => {
    handlers.set('slowhead', () => undefined);
    const ac = new AbortController();
    const p = openLogStream(kc, req('slowhead', { signal: ac.signal, idleTimeoutMs: 60_000 }));
    setTimeout(() => ac.abort('cancelled'), 30);
    expect(await p.catch((e: unknown) => e)).to.equal('cancelled');
    const ac2 = new AbortController();
    ac2.abort('already');
    expect(await openLogStream(kc, req('ok', { signal: ac2.signal })).catch((e: unknown) => e)).to.equal('already');
  });

  it('close() ends a pending iteration and drops the connection', async () => {
    let serverSawClose = false;
    handlers.set('close', (q, res) => {
      res.writeHead(200);
      res.write('a\n');
      q.socket.on('close', () => (serverSawClose = true));
    });
    const stream = await openLogStream(kc, req('close', { idleTimeoutMs: 60_000 }));
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const pending = it.next();
    stream.close();
    expect(await pending).to.deep.equal({ value: undefined, done: true });
    await delay(100);
    expect(serverSawClose).to.equal(true);
  });
});
