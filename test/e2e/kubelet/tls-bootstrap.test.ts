// The seed's failure, produced by the real kubelet: a node added with
// `cluster add-node --csr-delay 15` bootstraps its serving certificate
// (serverTLSBootstrap), and until the launcher's approver signs its CSR the
// kubelet answers every TLS handshake with internal_error. Then the operator
// on such a node: it sees the error, retries, and ends Complete and byte-exact.
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { csrCommonName } from '../../../src/dev/pki.ts';
import { cluster, createNamespace, uniqueName, type TestCluster } from '../fixture.ts';
import { apply, events, installCrd, logTailManifest, podManifest, sha256File, simOutputPath, startOperator, uriToPath, waitForFile, waitForLogTail, type OperatorProcess } from '../operator/harness.ts';
import { apiJson, createPod, kubectlRaw, recorded, sha256, waitPod } from '../simulator/helpers.ts';

const CSR_DELAY_S = 15;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface CsrJson {
  metadata: { name: string };
  spec: { signerName: string; request: string };
  status?: { conditions?: { type: string; status: string }[]; certificate?: string };
}

/** The certificate a TLS server presents (null when the handshake fails). */
function servedCert(host: string, port: number): Promise<X509Certificate | null> {
  return new Promise((resolve) => {
    const s = tls.connect({ host, port, rejectUnauthorized: false }, () => {
      const raw = s.getPeerX509Certificate();
      s.destroy();
      resolve(raw ?? null);
    });
    s.on('error', () => resolve(null));
  });
}

/** Asks `kubectl logs` once a second until it works; returns the failures seen and when it first worked (ms after `t0`). */
async function logsUntilServed(c: TestCluster, ns: string, pod: string, t0: number, timeoutMs: number) {
  const failures: string[] = [];
  for (;;) {
    const r = await kubectlRaw(c, ['logs', '-n', ns, pod]);
    if (r.code === 0) return { failures, okAfterMs: Date.now() - t0, out: r.stdout };
    failures.push(r.stderr.trim());
    if (Date.now() - t0 > timeoutMs) expect.fail(`kubectl logs still failing after ${timeoutMs} ms: ${r.stderr}`);
    await sleep(1000);
  }
}

describe('hollow kubelet: serving-certificate bootstrap (cluster add-node --csr-delay)', function () {
  this.timeout(180_000);
  let c: TestCluster;
  let ns: string;
  const added: string[] = [];

  before(async function () {
    this.timeout(300_000);
    c = await cluster();
    ns = uniqueName('hk-tls');
    await createNamespace(c, ns);
  });

  after(async function () {
    this.timeout(60_000);
    for (const n of added) await c.removeNode(n);
  });

  it(`kubectl logs fails with exactly "remote error: tls: internal error" until the CSR is signed ${CSR_DELAY_S} s later, then serves the log`, async () => {
    const name = uniqueName('boot');
    added.push(name);
    const n = await c.addNode({ name, csrDelaySeconds: CSR_DELAY_S });
    const t0 = Date.now();
    await createPod(c, ns, 'p', { nodeName: name, script: { containers: { app: { lines: 50, lineBytes: 80, holdSeconds: 60 } } } });
    await waitPod(c, ns, 'p', 'running', (p) => p?.status.containerStatuses?.[0]?.state.running !== undefined, 30_000);
    // The kubelet asked for its certificate; nobody has signed it yet.
    // The kubelet's certificate manager submits its CSR on its own schedule (a
    // loaded machine can run the pod first): look for it for up to 10 s.
    const mine: CsrJson[] = [];
    for (const until = Date.now() + 10_000; mine.length === 0 && Date.now() < until; ) {
      const all = (await apiJson<{ items: CsrJson[] }>(c, 'GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests')).items;
      for (const x of all) if ((await csrCommonName(join(c.dir, 'pki'), Buffer.from(x.spec.request, 'base64').toString())) === `system:node:${name}`) mine.push(x);
      if (mine.length === 0) await new Promise((r) => setTimeout(r, 250));
    }
    expect(mine.length, 'the node asked for a serving certificate').to.be.at.least(1);
    for (const x of mine) {
      expect(x.spec.signerName).to.equal('kubernetes.io/kubelet-serving');
      expect(x.status?.certificate, 'not issued yet').to.equal(undefined);
    }
    expect(await servedCert(n.nodeIp, n.port), 'no certificate served before signing').to.equal(null);
    const r = await logsUntilServed(c, ns, 'p', t0, (CSR_DELAY_S + 30) * 1000);
    expect(r.failures.length).to.be.at.least(3);
    for (const f of r.failures) expect(f).to.equal(`Error from server: Get "https://${n.nodeIp}:${n.port}/containerLogs/${ns}/p/app": remote error: tls: internal error`);
    // Not before the approver acted (it starts counting when addNode returned, before t0).
    expect(r.okAfterMs).to.be.at.least((CSR_DELAY_S - 1) * 1000);
    expect(r.okAfterMs).to.be.at.most((CSR_DELAY_S + 15) * 1000);
    expect(sha256(r.out)).to.equal(sha256(recorded(c, ns, 'p')));
    // What the kubelet serves now: issued by the cluster CA for its name and IP.
    const cert = await servedCert(n.nodeIp, n.port);
    expect(cert).to.not.equal(null);
    expect(cert!.issuer).to.equal('CN=logtail-local-ca');
    expect(cert!.subject).to.include(`CN=system:node:${name}`);
    expect(cert!.subjectAltName).to.include(`IP Address:${n.nodeIp}`).and.include(`DNS:${name}`);
    expect(cert!.checkIssued(new X509Certificate(readFileSync(c.state.caFile)))).to.equal(true);
  });

  describe('the operator on such a node', function () {
    let op: OperatorProcess;

    before(async function () {
      this.timeout(120_000);
      await installCrd(c);
      op = await startOperator(c);
    });

    after(async () => {
      await op?.stop('SIGTERM');
    });

    afterEach(function () {
      if (this.currentTest?.state === 'failed') console.error('operator log tail:\n' + op.log().split('\n').slice(-60).join('\n'));
    });

    it(`sees the seed's TLS error, retries, and ends Complete and byte-exact (add-node --csr-delay ${CSR_DELAY_S})`, async () => {
      const name = uniqueName('seed');
      added.push(name);
      await c.addNode({ name, csrDelaySeconds: CSR_DELAY_S });
      // ~25 s of output: the container is still writing when the certificate arrives.
      await apply(c, podManifest(ns, 'seed', { nodeName: name, script: { containers: { main: { lines: 1000, lineBytes: 100, linesPerSecond: 40, exitCode: 0 } } } }));
      await apply(c, logTailManifest(ns, 'seed', { podName: 'seed' }));
      const lt = await waitForLogTail(c, ns, 'seed', 120_000);
      expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
      expect(lt.status?.result).to.equal('Succeeded');
      expect(lt.status?.retries).to.be.greaterThan(0);
      const retrying = (await events(c, ns, 'seed')).filter((e) => e.reason === 'Retrying');
      expect(retrying.some((e) => e.message.includes('remote error: tls: internal error')), JSON.stringify(retrying.map((e) => e.message))).to.equal(true);
      const cap = lt.status!.containers!.find((x) => x.name === 'main')!;
      const rec = simOutputPath(c, ns, 'seed', 'main');
      await waitForFile(rec);
      const want = await sha256File(rec);
      expect(await sha256File(uriToPath(cap.object!.uri))).to.equal(want);
      expect(cap.object!.sha256).to.equal(want);
      expect(cap.object!.size).to.equal(100_000);
    });
  });
});
