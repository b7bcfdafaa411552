// The kubelet fault proxy against a fake upstream (a local HTTPS server
// standing in for the kubelet): pass-through, the three stream faults, broken
// upstreams and upgrades. The proxy in front of the real hollow kubelet is
// proven in test/e2e/kubelet.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { KubeletProxy } from '../../../src/dev/kubelet-proxy/proxy.ts';
import type { Faults } from '../../../src/dev/simulator/script.ts';

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The connection dropped before the response ended. */
  aborted: boolean;
  /** Still open when the test gave up waiting (a stall). */
  open: boolean;
}

function get(port: number, path: string, waitMs = 10_000): Promise<Got> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const req = https.get({ host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false }, (res) => {
      let done = false;
      const finish = (aborted: boolean, open: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(t);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), aborted, open });
      };
      const t = setTimeout(() => {
        finish(false, true);
        req.destroy();
      }, waitMs);
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('error', () => undefined);
      res.on('close', () => finish(!res.complete, false));
    });
    req.on('error', (err) => {
      if (chunks.length === 0) reject(err);
    });
  });
}

const BODY = Buffer.alloc(300_000);
for (let i = 0; i < BODY.length; i++) BODY[i] = 97 + (i % 26);

describe('kubelet fault proxy (fake upstream)', function () {
  this.timeout(20_000);
  let dir: string;
  let cert: Buffer;
  let key: Buffer;
  let upstream: https.Server;
  let proxy: KubeletProxy;
  let faults: Faults = {};
  const asked: string[] = [];
  let upstreamClosed = 0;

  // What the fake kubelet answers, by path.
  function kubelet(req: IncomingMessage, res: ServerResponse): void {
    res.on('close', () => upstreamClosed++);
    const url = new URL(req.url ?? '/', 'https://x');
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Kubelet': 'fake' });
      res.end('ok');
    } else if (url.pathname === '/containerLogs/ns/missing/app') {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('pod "missing" not found');
    } else if (url.pathname === '/containerLogs/ns/broken/app') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write(BODY.subarray(0, 1000), () => res.socket?.destroy());
    } else if (url.pathname.startsWith('/containerLogs/')) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      // In pieces, as a follow stream arrives.
      let off = 0;
      const more = () => {
        while (off < BODY.length) {
          const piece = BODY.subarray(off, off + 7_001);
          off += piece.length;
          if (!res.write(piece)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    } else if (req.method === 'POST' && url.pathname === '/echo') {
      const chunks: Buffer[] = [];
      req.on('data', (b: Buffer) => chunks.push(b));
      req.on('end', () => {
        res.writeHead(201, { 'Content-Length': String(Buffer.concat(chunks).length) });
        res.end(Buffer.concat(chunks));
      });
    } else {
      res.writeHead(404);
      res.end('404 page not found\n');
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'proxy-test-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=kubelet', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'ignore' });
    cert = readFileSync(join(dir, 'c.pem'));
    key = readFileSync(join(dir, 'k.pem'));
    upstream = https.createServer({ cert, key }, kubelet);
    upstream.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n');
      if (head.length > 0) socket.write(head);
      socket.pipe(socket); // echo
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upPort = (upstream.address() as { port: number }).port;
    proxy = new KubeletProxy({
      listenHost: '127.0.0.1',
      listenPort: 0,
      upstreamHost: '127.0.0.1',
      upstreamPort: upPort,
      cert,
      key,
      upstreamCa: cert,
      faultsFor: async (ns, pod) => {
        asked.push(`${ns}/${pod}`);
        return faults;
      },
      log: () => undefined,
    });
    await proxy.listen();
  });

  after(async () => {
    await proxy.close();
    upstream.closeAllConnections();
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    faults = {};
    asked.length = 0;
  });

  it('passes other paths through with status, headers and body, without asking for faults', async () => {
    faults = { cutEveryBytes: 1 };
    const r = await get(proxy.port, '/healthz');
    expect(r.status).to.equal(200);
    expect(r.headers['x-kubelet']).to.equal('fake');
    expect(r.body.toString()).to.equal('ok');
    expect(asked).to.deep.equal([]);
    expect((await get(proxy.port, '/nope')).status).to.equal(404);
  });

  it('passes a request body through (non-GET)', async () => {
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: proxy.port, path: '/echo', method: 'POST', rejectUnauthorized: false, agent: false }, (res) => {
        let body = '';
        res.on('data', (b: Buffer) => (body += b.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end('hello kubelet');
    });
    expect(r).to.deep.equal({ status: 201, body: 'hello kubelet' });
  });

  it('serves a log byte-exactly when the pod has no faults, and asks for the decoded namespace and pod', async () => {
    const r = await get(proxy.port, '/containerLogs/ns/p%2Dx/app?follow=true');
    expect(r.status).to.equal(200);
    expect(r.aborted).to.equal(false);
    expect(r.body.equals(BODY)).to.equal(true);
    expect(asked).to.deep.equal(['ns/p-x']);
  });

  it('cutEveryBytes: every connection is dropped after exactly K bytes', async () => {
    faults = { cutEveryBytes: 123_457 };
    for (let i = 0; i < 2; i++) {
      const r = await get(proxy.port, '/containerLogs/ns/cut/app');
      expect(r.status).to.equal(200);
      expect(r.aborted, 'a dropped connection, not a clean end').to.equal(true);
      expect(r.body.equals(BODY.subarray(0, 123_457))).to.equal(true);
    }
  });

  it('stallAfterBytes: K bytes, then nothing and no end', async () => {
    faults = { stallAfterBytes: 10_000 };
    const r = await get(proxy.port, '/containerLogs/ns/stall/app', 1500);
    expect(r.open).to.equal(true);
    expect(r.body.equals(BODY.subarray(0, 10_000))).to.equal(true);
  });

  it('endStreamAfterBytes: a clean end after K bytes', async () => {
    faults = { endStreamAfterBytes: 5_000 };
    const r = await get(proxy.port, '/containerLogs/ns/end/app');
    expect(r.aborted).to.equal(false);
    expect(r.open).to.equal(false);
    expect(r.body.equals(BODY.subarray(0, 5_000))).to.equal(true);
  });

  it('the smallest byte count wins when several faults are set (as in the simulator)', async () => {
    faults = { stallAfterBytes: 50_000, cutEveryBytes: 20_000 };
    const r = await get(proxy.port, '/containerLogs/ns/both/app');
    expect(r.aborted).to.equal(true);
    expect(r.body.length).to.equal(20_000);
  });

  it('a fault larger than the log changes nothing', async () => {
    faults = { cutEveryBytes: BODY.length + 1 };
    const r = await get(proxy.port, '/containerLogs/ns/big/app');
    expect(r.aborted).to.equal(false);
    expect(r.body.equals(BODY)).to.equal(true);
  });

  it('passes error answers through unfaulted', async () => {
    faults = { cutEveryBytes: 3 };
    const r = await get(proxy.port, '/containerLogs/ns/missing/app');
    expect(r.status).to.equal(404);
    expect(r.aborted).to.equal(false);
    expect(r.body.toString()).to.equal('pod "missing" not found');
  });

  it('drops the client connection when the kubelet drops its own mid-body', async () => {
    const r = await get(proxy.port, '/containerLogs/ns/broken/app');
    expect(r.status).to.equal(200);
    expect(r.aborted).to.equal(true);
    expect(r.body.equals(BODY.subarray(0, 1000))).to.equal(true);
  });

  it('closes the kubelet side when the client gives up on a stalled stream', async () => {
    faults = { stallAfterBytes: 1000 };
    const before = upstreamClosed;
    await get(proxy.port, '/containerLogs/ns/gone/app', 300);
    const end = Date.now() + 3000;
    while (upstreamClosed === before && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(upstreamClosed).to.be.greaterThan(before);
  });

  it('relays an upgraded connection (exec/attach/port-forward) both ways', async () => {
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: proxy.port, rejectUnauthorized: false }, () => {
        s.write('GET /exec/ns/p/app?command=sh HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n');
      });
      let got = '';
      s.on('data', (b: Buffer) => {
        got += b.toString();
        if (got.includes('\r\n\r\n') && !got.includes('ping')) s.write('ping');
        if (got.endsWith('ping')) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('error', reject);
    });
    expect(echoed).to.match(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(echoed.endsWith('\r\n\r\nping')).to.equal(true);
  });
});
