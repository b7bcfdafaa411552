// Our watch transport (src/adapters/kube-watch.ts) against a local HTTPS
// server, with credentials from our own loader; and client-node's ListWatch
// (through the supervised informer) on top of it.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { KubernetesListObject, V1ConfigMap } from '@kubernetes/client-node';
import { loadKubeCredentials, type LoadedCredentials } from '../../../src/adapters/kube-credentials.ts';
import { KubeWatch } from '../../../src/adapters/kube-watch.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { SupervisedInformer } from '../../../src/runtime/supervised-informer.ts';
import { selfSignedCert } from '../support/tls.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

interface Done {
  err: unknown;
  at: number;
}

function cm(name: string, rv: number): V1ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: 'ns', name, resourceVersion: String(rv) } };
}

function line(type: string, object: unknown): string {
  return JSON.stringify({ type, object }) + '\n';
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await delay(10);
  }
}

describe('adapters/kube-watch', function () {
  let dir: string;
  let server: https.Server;
  let creds: LoadedCredentials;
  let handler: Handler;
  const requests: Array<{ url: URL; auth: string | undefined }> = [];
  const sockets = new Set<Socket>();
  let handshakes = 0;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'logtail-watch-'));
    const { cert, key } = selfSignedCert(dir);
    server = https.createServer({ cert, key }, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      requests.push({ url, auth: req.headers.authorization });
      if (req.headers.authorization !== 'Bearer sekret') {
        res.writeHead(401).end();
        return;
      }
      handler(req, res, url);
    });
    server.on('secureConnection', (s: Socket) => {
      handshakes++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    writeFileSync(
      join(dir, 'kc'),
      JSON.stringify({
        clusters: [{ name: 'k', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': cert.toString('base64') } }],
        users: [{ name: 'u', user: { token: 'sekret' } }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
        'current-context': 'c',
      }),
    );
    creds = await loadKubeCredentials({ kubeconfig: join(dir, 'kc'), env: {} });
    expect(creds.fallback).to.equal(false);
  });

  beforeEach(() => {
    requests.length = 0;
  });

  after(function () {
    server?.closeAllConnections();
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function watchOnce(w: KubeWatch, params: Record<string, string | number | boolean | undefined> = {}) {
    const events: Array<[string, unknown]> = [];
    const dones: Done[] = [];
    const p = w.watch('/api/v1/namespaces/ns/configmaps', params, (type, obj) => events.push([type, obj]), (err) => dones.push({ err, at: Date.now() }));
    return { p, events, dones };
  }

  it('sends watch=true, the defined query parameters and our credentials; delivers each JSON line (split across chunks), skips a bad one; done(null) at the end', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const all = line('ADDED', cm('a', 5)) + 'not json\n' + line('MODIFIED', cm('a', 6)) + line('DELETED', cm('a', 7));
      res.write(all.slice(0, 17));
      setTimeout(() => res.write(all.slice(17, 60)), 20);
      setTimeout(() => res.end(all.slice(60)), 40);
    };
    const { p, events, dones } = watchOnce(new KubeWatch(creds), { resourceVersion: '4', labelSelector: 'a=b', allowWatchBookmarks: true, fieldSelector: undefined });
    const ctl = await p;
    expect(ctl).to.be.instanceOf(AbortController);
    await until(() => dones.length > 0);
    expect(events.map(([t, o]) => `${t} ${(o as V1ConfigMap).metadata?.resourceVersion}`)).to.deep.equal(['ADDED 5', 'MODIFIED 6', 'DELETED 7']);
    expect(dones.map((d) => d.err)).to.deep.equal([null]);
    const q = requests[0]!.url.searchParams;
    expect(requests[0]!.url.pathname).to.equal('/api/v1/namespaces/ns/configmaps');
    expect(Object.fromEntries(q)).to.deep.equal({ watch: 'true', resourceVersion: '4', labelSelector: 'a=b', allowWatchBookmarks: 'true' });
    await delay(50);
    expect(dones).to.have.length(1);
  });

  it('the next watch after a clean end reuses the connection; one after an abort does not', async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.end(line('ADDED', cm('a', 1)));
    };
    const w = new KubeWatch(creds);
    for (const s of sockets) s.destroy();
    await until(() => sockets.size === 0);
    handshakes = 0;
    for (let i = 0; i < 3; i++) {
      const { p, dones } = watchOnce(w);
      await p;
      await until(() => dones.length > 0);
      expect(dones[0]!.err).to.equal(null);
    }
    expect(handshakes).to.equal(1);
    handler = (_req, res) => {
      res.writeHead(200);
      res.write(line('ADDED', cm('a', 1)));
    };
    const { p } = watchOnce(w);
    (await p).abort();
    await until(() => sockets.size === 0);
  });

  it('a non-200 answer is done(err) with statusCode (410 Gone: ListWatch relists)', async () => {
    handler = (_req, res) => {
      res.writeHead(410, { 'Content-Type': 'application/json' }).end('{"kind":"Status","code":410}');
    };
    const { p, dones, events } = watchOnce(new KubeWatch(creds));
    await p;
    expect(dones).to.have.length(1);
    expect((dones[0]!.err as { statusCode: number }).statusCode).to.equal(410);
    expect(events).to.deep.equal([]);
  });

  it('credentials that cannot be applied reject the watch() promise', async () => {
    const broken = { getCurrentCluster: () => creds.getCurrentCluster(), applyToHTTPSOptions: () => Promise.reject(new Error('no token')) };
    const dones: unknown[] = [];
    const err = await new KubeWatch(broken).watch('/x', {}, () => {}, (e) => dones.push(e)).catch((e: Error) => e);
    expect(String(err)).to.match(/no token/);
    expect(dones).to.deep.equal([]);
  });

  it('abort: the connection is closed and done is called once, with the abort reason', async () => {
    let serverClosed = false;
    handler = (req, res) => {
      res.writeHead(200);
      res.write(line('ADDED', cm('a', 1)));
      req.socket.on('close', () => (serverClosed = true));
    };
    const { p, dones, events } = watchOnce(new KubeWatch(creds));
    const ctl = await p;
    await until(() => events.length === 1);
    ctl.abort();
    await until(() => serverClosed);
    await delay(20);
    expect(dones).to.have.length(1);
    expect((dones[0]!.err as Error).name).to.equal('AbortError');
  });

  it('a connection cut mid-stream is done(err), not a clean end', async () => {
    handler = (req, res) => {
      res.writeHead(200);
      res.write(line('ADDED', cm('a', 1)));
      setTimeout(() => req.socket.destroy(), 30);
    };
    const { p, dones, events } = watchOnce(new KubeWatch(creds));
    await p;
    await until(() => dones.length > 0);
    expect(events).to.have.length(1);
    expect(dones[0]!.err).to.be.instanceOf(Error);
    await delay(20);
    expect(dones).to.have.length(1);
  });

  it('no byte for requestTimeoutMs (head or body): aborted, done(TimeoutError), as client-node\'s Watch', async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write(line('ADDED', cm('a', 1)));
    };
    const w = new KubeWatch(creds);
    w.requestTimeoutMs = 150;
    const started = Date.now();
    const { p, dones } = watchOnce(w);
    await p;
    await until(() => dones.length > 0);
    expect((dones[0]!.err as Error).name).to.equal('TimeoutError');
    expect(dones[0]!.at - started).to.be.at.least(140);
    // And without a head at all.
    handler = () => {};
    const second = watchOnce(w);
    await second.p;
    expect((second.dones[0]?.err as Error | undefined)?.name).to.equal('TimeoutError');
  });

  describe('under client-node\'s ListWatch (the supervised informer, default transport)', () => {
    it('an ERROR event with code 410 and the end of the stream: relists and watches from the new resourceVersion', async () => {
      let listCalls = 0;
      let rv = 10;
      const listFn = (): Promise<KubernetesListObject<V1ConfigMap>> => {
        listCalls++;
        return Promise.resolve({ metadata: { resourceVersion: String(rv) }, items: [cm('a', rv)] });
      };
      let watches = 0;
      handler = (_req, res, url) => {
        watches++;
        res.writeHead(200);
        if (watches === 1) {
          expect(url.searchParams.get('resourceVersion')).to.equal('10');
          res.write(line('MODIFIED', cm('a', 11)));
          rv = 20;
          res.end(line('ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 }));
        } else {
          res.write(line('BOOKMARK', { kind: 'ConfigMap', metadata: { resourceVersion: url.searchParams.get('resourceVersion') } }));
        }
      };
      const informer = new SupervisedInformer<V1ConfigMap>({ name: 'cms', kc: creds, path: '/api/v1/namespaces/ns/configmaps', listFn, logger: silentLogger() });
      const seen: string[] = [];
      informer.on('add', (o) => seen.push(`add ${o.metadata?.resourceVersion}`));
      informer.on('update', (o) => seen.push(`update ${o.metadata?.resourceVersion}`));
      try {
        await informer.start();
        await until(() => watches >= 2 && requests.length >= 2);
        expect(listCalls).to.equal(2);
        const watchRequests = requests.filter((r) => r.url.searchParams.get('watch') === 'true');
        expect(watchRequests.map((r) => r.url.searchParams.get('resourceVersion'))).to.deep.equal(['10', '20']);
        expect(seen).to.deep.equal(['add 10', 'update 11', 'update 20']);
        expect(informer.restarts).to.equal(0);
      } finally {
        informer.stop();
      }
    });

    it('a watch answered 410: relists', async () => {
      let listCalls = 0;
      const listFn = (): Promise<KubernetesListObject<V1ConfigMap>> => {
        listCalls++;
        return Promise.resolve({ metadata: { resourceVersion: String(listCalls * 10) }, items: [] });
      };
      let watches = 0;
      handler = (_req, res) => {
        watches++;
        if (watches === 1) res.writeHead(410).end('{"kind":"Status","code":410}');
        else res.writeHead(200).write('');
      };
      const informer = new SupervisedInformer<V1ConfigMap>({ name: 'cms', kc: creds, path: '/api/v1/namespaces/ns/configmaps', listFn, logger: silentLogger() });
      try {
        await informer.start();
        await until(() => watches >= 2);
        expect(listCalls).to.equal(2);
        expect(requests.filter((r) => r.url.searchParams.get('watch') === 'true').map((r) => r.url.searchParams.get('resourceVersion'))).to.deep.equal(['10', '20']);
        expect(informer.restarts).to.equal(0);
      } finally {
        informer.stop();
      }
    });

    it('a cut connection: the informer restarts (relist) and goes on watching', async () => {
      let listCalls = 0;
      const listFn = (): Promise<KubernetesListObject<V1ConfigMap>> => {
        listCalls++;
        return Promise.resolve({ metadata: { resourceVersion: '7' }, items: [] });
      };
      let watches = 0;
      handler = (req, res) => {
        watches++;
        res.writeHead(200);
        res.write('');
        if (watches === 1) setTimeout(() => req.socket.destroy(), 20);
      };
      const informer = new SupervisedInformer<V1ConfigMap>({ name: 'cms', kc: creds, path: '/api/v1/namespaces/ns/configmaps', listFn, logger: silentLogger(), restartBackoff: { initialMs: 10, maxMs: 10 } });
      try {
        await informer.start();
        await until(() => watches >= 2);
        expect(informer.restarts).to.equal(1);
        expect(listCalls).to.equal(2);
        await until(() => informer.healthy());
      } finally {
        informer.stop();
      }
    });
  });
});
