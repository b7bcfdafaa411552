import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { openLogStream } from '../../../src/adapters/log-stream.ts';
import { KubeApi } from '../../../src/adapters/kube-api.ts';
import { shareSecureContext } from '../../../src/adapters/tls-context.ts';
import { localKubeConfig, selfSignedCert } from '../support/tls.ts';

type Opts = https.RequestOptions & { secureContext?: unknown };

// Each connection to the apiserver used to build its own OpenSSL context from
// the CA in the request options (~70 KiB of C heap per log stream).
describe('adapters/tls-context', function () {
  let dir: string;
  let cert: Buffer;
  let server: https.Server;
  let kc: KubeConfig;
  const sockets = new Set<Socket>();

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'logtail-tlsctx-'));
    const pair = selfSignedCert(dir);
    cert = pair.cert;
    server = https.createServer({ cert: pair.cert, key: pair.key }, (req, res) => {
      if (/\/pods\/[^/]+\/log\?/.test(req.url ?? '')) {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('line\n');
        setTimeout(() => res.end(), 50);
      } else {
        req.resume();
        req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}'));
      }
    });
    server.on('secureConnection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    return new Promise<void>((resolve) => {
      server.listen(0, '127.0.0.1', () => {
        kc = localKubeConfig((server.address() as AddressInfo).port, cert);
        resolve();
      });
    });
  });

  after(function () {
    for (const s of sockets) s.destroy();
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The secureContext option of every TLS connection the https agents open while fn runs. */
  async function contextsOfConnections(fn: () => Promise<void>): Promise<unknown[]> {
    const proto = https.Agent.prototype as unknown as { createConnection: (o: Record<string, unknown>, cb?: unknown) => unknown };
    const original = proto.createConnection;
    const seen: unknown[] = [];
    proto.createConnection = function (this: unknown, o: Record<string, unknown>, cb?: unknown) {
      seen.push(o.secureContext);
      return original.call(this, o, cb);
    };
    try {
      await fn();
    } finally {
      proto.createConnection = original;
    }
    return seen;
  }

  it('gives requests with the same CA, certificate and key (by content) one context, and others their own', () => {
    const a: Opts = { ca: Buffer.from(cert) };
    const b: Opts = { ca: Buffer.from(cert) };
    shareSecureContext(a);
    shareSecureContext(b);
    expect(a.secureContext).to.not.equal(undefined);
    expect(b.secureContext).to.equal(a.secureContext);
    const other: Opts = {};
    shareSecureContext(other);
    expect(other.secureContext).to.not.equal(undefined).and.not.equal(a.secureContext);
    // options that shape a context in other ways keep building their own
    const ciphers: Opts = { ca: cert, ciphers: 'TLS_AES_128_GCM_SHA256' };
    shareSecureContext(ciphers);
    expect(ciphers.secureContext).to.equal(undefined);
    const given = { ca: cert, secureContext: a.secureContext };
    shareSecureContext(given);
    expect(given.secureContext).to.equal(a.secureContext);
  });

  it('opens concurrent log streams with one shared context that still verifies the server against the CA', async () => {
    const read: string[] = [];
    const seen = await contextsOfConnections(async () => {
      // opened together: each needs its own connection
      const streams = await Promise.all([1, 2, 3].map((i) => openLogStream(kc, { namespace: 'ns', pod: `p${i}`, container: 'c', follow: true, timestamps: false, idleTimeoutMs: 5_000 })));
      for (const s of streams) {
        let text = '';
        for await (const chunk of s) text += chunk.toString();
        read.push(text);
      }
    });
    expect(read).to.deep.equal(['line\n', 'line\n', 'line\n']);
    expect(seen).to.have.length(3);
    expect(seen[0]).to.not.equal(undefined);
    expect(seen[1]).to.equal(seen[0]);
    expect(seen[2]).to.equal(seen[0]);
  });

  it('uses the same context for the apiserver client (KubeApi)', async () => {
    const api = new KubeApi(kc);
    try {
      const seen = await contextsOfConnections(async () => {
        await Promise.all([1, 2].map((i) => api.patchLogTailStatus('ns', `lt-${i}`, { phase: 'Streaming' })));
      });
      expect(seen.length).to.be.greaterThan(0);
      for (const s of seen) expect(s).to.not.equal(undefined);
      expect(new Set(seen).size).to.equal(1);
    } finally {
      api.close();
    }
  });

  it('refuses a server the shared context does not trust', async () => {
    const wrong = new KubeConfig();
    const { cert: otherCa } = selfSignedCert(mkdtempSync(join(dir, 'other-')));
    wrong.loadFromOptions({
      clusters: [{ name: 'c', server: kc.getCurrentCluster()!.server, caData: otherCa.toString('base64'), skipTLSVerify: false }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
      currentContext: 'ctx',
    });
    let error: unknown;
    try {
      await openLogStream(wrong, { namespace: 'ns', pod: 'p', container: 'c', follow: false, timestamps: false, idleTimeoutMs: 5_000 });
    } catch (err) {
      error = err;
    }
    expect(String((error as Error)?.message)).to.match(/certificate/i);
  });
});
