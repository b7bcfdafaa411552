// The hollow kubelet (the kubelet's own code, k8s.io/kubernetes v1.37.2, with
// a scripted CRI runtime) as node kubelet-1 of the local cluster, reached by
// the apiserver through the launcher's fault proxy. No fakes on the path:
// apiserver -> proxy (NODE_IP:PORT) -> kubelet (127.0.0.1:PORT) -> CRI log file.
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import { cluster, createNamespace, uniqueName, type TestCluster } from '../fixture.ts';
import { apiJson, createPod, getPod, kubectlRaw, recorded, sha256, streamFor, TS_RE, timestampedLines, waitPod, waitTerminated, type RawResponse } from '../simulator/helpers.ts';

interface NodeJson {
  metadata: { name: string; labels?: Record<string, string> };
  status: {
    addresses: { type: string; address: string }[];
    daemonEndpoints: { kubeletEndpoint: { Port: number } };
    conditions: { type: string; status: string }[];
    nodeInfo: { kubeletVersion: string };
  };
}

/** A request straight to host:port (a kubelet or its proxy); the certificate is not checked, as the apiserver does not. */
function directGet(host: string, port: number, path: string, timeoutMs = 30_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host, port, path, rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let aborted = false;
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('aborted', () => (aborted = true));
      res.on('error', () => (aborted = true));
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), aborted: aborted || !res.complete }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${host}:${port}${path}: timeout`)));
    req.on('error', reject);
  });
}

/** The certificate a TLS server presents. */
function servedCert(host: string, port: number): Promise<X509Certificate | null> {
  return new Promise((resolve) => {
    const sock = tls.connect({ host, port, rejectUnauthorized: false }, () => {
      const cert = sock.getPeerX509Certificate() ?? null;
      sock.destroy();
      resolve(cert);
    });
    sock.on('error', () => resolve(null));
  });
}

const running = (p: Awaited<ReturnType<typeof getPod>>) => p?.status.containerStatuses?.[0]?.state.running !== undefined;

describe('hollow kubelet: node kubelet-1 behind the fault proxy', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let ns: string;
  let node: NodeJson;

  before(async function () {
    this.timeout(300_000);
    c = await cluster();
    ns = uniqueName('hk');
    await createNamespace(c, ns);
    node = await apiJson<NodeJson>(c, 'GET', `/api/v1/nodes/${c.kubeletNode}`);
  });

  it('is a Ready node run by kubelet v1.37.2 on the non-loopback node IP, advertising the proxy port', () => {
    expect(c.kubeletNode).to.equal('kubelet-1');
    const kl = c.state.kubelets!.find((k) => k.name === c.kubeletNode)!;
    expect(kl.proxied).to.equal(true);
    expect(node.status.conditions.find((x) => x.type === 'Ready')?.status).to.equal('True');
    expect(node.status.nodeInfo.kubeletVersion).to.equal('v1.37.2');
    expect(node.status.addresses).to.deep.include({ type: 'InternalIP', address: kl.nodeIp });
    expect(kl.nodeIp).to.not.match(/^127\./);
    expect(node.status.daemonEndpoints.kubeletEndpoint.Port).to.equal(kl.port);
    expect(node.metadata.labels?.['logtail.dev/hollow-kubelet']).to.equal('true');
    expect(readFileSync(join(c.dir, 'env'), 'utf8')).to.match(/^export LOGTAIL_KUBELET_NODE='kubelet-1'$/m);
  });

  it('serves (proxy and kubelet alike) a certificate from the cluster CA for the node IP and name', async () => {
    const kl = c.state.kubelets!.find((k) => k.name === c.kubeletNode)!;
    const ca = new X509Certificate(readFileSync(c.state.caFile));
    const atProxy = await servedCert(kl.nodeIp, kl.port);
    const atKubelet = await servedCert('127.0.0.1', kl.port);
    expect(atProxy!.checkIssued(ca) && atProxy!.verify(ca.publicKey)).to.equal(true);
    expect(atProxy!.checkIP(kl.nodeIp)).to.equal(kl.nodeIp);
    expect(atProxy!.checkHost(c.kubeletNode)).to.equal(c.kubeletNode);
    expect(atKubelet!.fingerprint256).to.equal(atProxy!.fingerprint256);
  });

  it('passes non-log requests through the proxy untouched', async () => {
    const kl = c.state.kubelets!.find((k) => k.name === c.kubeletNode)!;
    const viaProxy = await directGet(kl.nodeIp, kl.port, '/healthz');
    const direct = await directGet('127.0.0.1', kl.port, '/healthz');
    expect(viaProxy.status).to.equal(200);
    expect([viaProxy.status, viaProxy.body.toString()]).to.deep.equal([direct.status, direct.body.toString()]);
  });

  it('the simulator neither binds unscheduled pods to kubelet-1 nor plays pods bound to it', async () => {
    for (let i = 0; i < 4; i++) await createPod(c, ns, `free-${i}`, { script: { containers: { app: { text: 'x\n' } } } });
    await createPod(c, ns, 'pinned', { nodeName: c.kubeletNode, script: { containers: { app: { text: 'pinned\n' } } } });
    for (let i = 0; i < 4; i++) {
      const p = await waitPod(c, ns, `free-${i}`, 'bound', (x) => (x?.spec.nodeName ?? '') !== '');
      expect(p!.spec.nodeName).to.match(/^sim-/);
    }
    const pinned = await waitTerminated(c, ns, 'pinned', 60_000);
    expect(pinned!.status.containerStatuses![0]!.state.terminated!.exitCode).to.equal(0);
    const simLog = readFileSync(join(c.dir, 'logs', 'simulator.log'), 'utf8');
    expect(simLog).to.not.include(`${ns}/pinned`);
    expect((await kubectlRaw(c, ['logs', '-n', ns, 'pinned'])).stdout.toString()).to.equal('pinned\n');
  });

  it('kubectl logs through the apiserver and the proxy equals the recorded run byte for byte', async () => {
    const long = 'L'.repeat(40_000);
    await createPod(c, ns, 'exact', {
      nodeName: c.kubeletNode,
      script: { containers: { app: { segments: [{ lines: 3000, lineBytes: 120, linesPerSecond: 3000 }, { text: `${long}\nno newline at the end` }], exitCode: 3 } } },
    });
    const done = await waitTerminated(c, ns, 'exact', 60_000);
    expect(done!.status.containerStatuses![0]!.state.terminated!.exitCode).to.equal(3);
    const rec = recorded(c, ns, 'exact');
    expect(rec.length).to.equal(3000 * 120 + long.length + 1 + 'no newline at the end'.length);
    const k = await kubectlRaw(c, ['logs', '-n', ns, 'exact']);
    expect(k.code, k.stderr).to.equal(0);
    expect(sha256(k.stdout)).to.equal(sha256(rec));
    const ts = await kubectlRaw(c, ['logs', '-n', ns, 'exact', '--timestamps']);
    const lines = timestampedLines(ts.stdout);
    expect(lines).to.have.length(3002);
    for (const [t] of lines) expect(t).to.match(TS_RE);
  });

  it('cutEveryBytes: the proxy drops every log connection after K bytes; the kubelet itself serves all', async () => {
    const K = 30_000;
    await createPod(c, ns, 'cut', {
      nodeName: c.kubeletNode,
      script: { containers: { app: { lines: 2000, lineBytes: 100, linesPerSecond: 400 } } },
      faults: { cutEveryBytes: K },
    });
    await waitPod(c, ns, 'cut', 'running', running, 60_000);
    // Through the apiserver a follow stream ends after K bytes although the container still runs.
    const follow = await streamFor(c, ns, 'cut', 'follow=true', 20_000);
    expect(follow.status).to.equal(200);
    expect(follow.body.length).to.equal(K);
    expect(running(await getPod(c, ns, 'cut')), 'still running when the stream ended').to.equal(true);
    await waitTerminated(c, ns, 'cut', 60_000);
    const rec = recorded(c, ns, 'cut');
    expect(rec.length).to.equal(200_000);
    expect(follow.body.equals(rec.subarray(0, K))).to.equal(true);
    const kl = c.state.kubelets!.find((k) => k.name === c.kubeletNode)!;
    // At the proxy the cut is a dropped connection, not a clean end ...
    const viaProxy = await directGet(kl.nodeIp, kl.port, `/containerLogs/${ns}/cut/app`);
    expect(viaProxy.status).to.equal(200);
    expect(viaProxy.aborted).to.equal(true);
    expect(viaProxy.body.length).to.equal(K);
    // ... while the kubelet behind it serves the whole log.
    const direct = await directGet('127.0.0.1', kl.port, `/containerLogs/${ns}/cut/app`);
    expect(direct.aborted).to.equal(false);
    expect(sha256(direct.body)).to.equal(sha256(rec));
    const k = await kubectlRaw(c, ['logs', '-n', ns, 'cut']);
    expect(k.stdout.length).to.equal(K);
  });

  it('endStreamAfterBytes: the proxy ends a follow stream cleanly after K bytes while the container runs', async () => {
    const K = 5_000;
    await createPod(c, ns, 'end', { nodeName: c.kubeletNode, script: { containers: { app: { lines: 100, lineBytes: 100, linesPerSecond: 1000, holdSeconds: 20 } } }, faults: { endStreamAfterBytes: K } });
    await waitPod(c, ns, 'end', 'running', running, 60_000);
    const kl = c.state.kubelets!.find((k) => k.name === c.kubeletNode)!;
    const viaProxy = await directGet(kl.nodeIp, kl.port, `/containerLogs/${ns}/end/app?follow=true`);
    expect(viaProxy.aborted).to.equal(false);
    expect(viaProxy.body.length).to.equal(K);
    const viaApi = await streamFor(c, ns, 'end', 'follow=true', 5000);
    expect(viaApi.ended).to.equal(true);
    expect(viaApi.body.length).to.equal(K);
    expect(running(await getPod(c, ns, 'end')), 'still running').to.equal(true);
  });

  it('stallAfterBytes: after K bytes nothing more comes and the connection stays open', async () => {
    const K = 4_000;
    await createPod(c, ns, 'stall', { nodeName: c.kubeletNode, script: { containers: { app: { lines: 100, lineBytes: 100 } } }, faults: { stallAfterBytes: K } });
    await waitTerminated(c, ns, 'stall', 60_000);
    const r = await streamFor(c, ns, 'stall', 'follow=true', 2000);
    expect(r.ended).to.equal(false);
    expect(r.body.length).to.equal(K);
  });
});

describe('hollow kubelet: add-node --container-log-max-size (the kubelet\'s own rotation for the node)', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let ns: string;
  const name = uniqueName('rot');

  before(async function () {
    this.timeout(300_000);
    c = await cluster();
    ns = uniqueName('hk-rot');
    await createNamespace(c, ns);
  });

  after(async function () {
    this.timeout(60_000);
    await c.removeNode(name);
  });

  it('a new request serves only what follows the last rotation; kubelet-1 (default 10Mi) serves all', async () => {
    await c.addNode({ name, csrDelaySeconds: 0, containerLogMaxSize: '4Ki' });
    const script = { containers: { app: { lines: 300, lineBytes: 100, linesPerSecond: 60 } } };
    await createPod(c, ns, 'small', { nodeName: name, script });
    await createPod(c, ns, 'big', { nodeName: c.kubeletNode, script });
    await waitTerminated(c, ns, 'small', 60_000);
    await waitTerminated(c, ns, 'big', 60_000);
    // csr-delay 0: the certificate comes within a second or two.
    let small: Awaited<ReturnType<typeof kubectlRaw>> | null = null;
    for (let i = 0; i < 30 && small?.code !== 0; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 500));
      small = await kubectlRaw(c, ['logs', '-n', ns, 'small']);
    }
    expect(small!.code, small!.stderr).to.equal(0);
    const rec = recorded(c, ns, 'small');
    expect(rec.length).to.equal(30_000);
    // The kubelet checks sizes every containerLogMonitorInterval (pkg/kubelet/logs/
    // container_log_manager.go, Start: wait.Forever(rotateLogs, monitoringPeriod);
    // 1 s in the hollow kubelet), so the current file outgrows 4Ki between checks:
    // only "most of the run was rotated away" is certain.
    expect(small!.stdout.length, 'rotated away').to.be.lessThan(rec.length / 2);
    expect(rec.subarray(rec.length - small!.stdout.length).equals(small!.stdout), 'the tail of the run').to.equal(true);
    const big = await kubectlRaw(c, ['logs', '-n', ns, 'big']);
    expect(sha256(big.stdout)).to.equal(sha256(recorded(c, ns, 'big')));
  });
});
