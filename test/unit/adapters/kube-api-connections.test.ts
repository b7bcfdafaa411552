import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApi } from '../../../src/adapters/kube-api.ts';
import { localKubeConfig, selfSignedCert } from '../support/tls.ts';

// Every status write, event and read goes through KubeApi: each must not cost
// a TLS handshake (client-node's applyToHTTPSOptions hands out an agent that
// does not keep connections alive).
describe('adapters/kube-api connections', function () {
  let dir: string;
  let server: https.Server;
  let kc: KubeConfig;
  let handshakes = 0;
  let inFlight = 0;
  let maxInFlight = 0;

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'logtail-kubeapi-'));
    const { cert, key } = selfSignedCert(dir);
    server = https.createServer({ cert, key }, (req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      req.resume();
      req.on('end', () =>
        setTimeout(() => {
          inFlight--;
          res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
        }, 5),
      );
    });
    server.on('secureConnection', () => handshakes++);
    return new Promise<void>((resolve) => {
      server.listen(0, '127.0.0.1', () => {
        kc = localKubeConfig((server.address() as AddressInfo).port, cert);
        resolve();
      });
    });
  });

  after(function () {
    server?.closeAllConnections();
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps connections alive: 20 requests one after another are one TLS handshake', async () => {
    const api = new KubeApi(kc);
    handshakes = 0;
    for (let i = 0; i < 20; i++) await api.patchLogTailStatus('ns', `lt-${i}`, { phase: 'Streaming' });
    api.close();
    expect(handshakes).to.equal(1);
  });

  it('opens at most 32 connections however many requests are waiting', async () => {
    const api = new KubeApi(kc);
    handshakes = 0;
    maxInFlight = 0;
    await Promise.all(Array.from({ length: 100 }, (_, i) => api.request('GET', `/api/v1/namespaces/ns/pods/p-${i}`)));
    api.close();
    expect(maxInFlight).to.be.at.most(32);
    expect(handshakes).to.be.at.most(32);
  });
});
