// Proof that each injected fault shows through the real apiserver the way
// the production failure it stands for does.
import { expect } from 'chai';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import {
  api,
  createNamespace,
  createPod,
  getPod,
  isPhase,
  kubectlRaw,
  kubeletGet,
  kubeletPort,
  recorded,
  sha256,
  streamFor,
  waitPod,
  waitTerminated,
} from './helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('node simulator: faults', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let ns: string;

  before(async () => {
    c = await cluster();
    ns = uniqueName('sim-faults');
    await createNamespace(c, ns);
  });

  it('tlsAlertSeconds: kubectl logs fails with "remote error: tls: internal error" during the window, works after it', async () => {
    const windowS = 6;
    await createPod(c, ns, 'tls', { script: { containers: { app: { lines: 3, holdSeconds: 30 } } }, faults: { tlsAlertSeconds: windowS } });
    const running = await waitPod(c, ns, 'tls', 'running', (p) => p?.status.containerStatuses?.[0]?.state.running !== undefined);
    const node = running!.spec.nodeName!;
    // An unscheduled pod with the fault gets a node of its own, like an autoscaled one.
    expect(node).to.match(/^sim-fresh-/);
    const port = await kubeletPort(c, node);
    const first = await kubectlRaw(c, ['logs', '-n', ns, 'tls']);
    expect(first.code).to.not.equal(0);
    expect(first.stderr.trim()).to.equal(`Error from server: Get "https://127.0.0.1:${port}/containerLogs/${ns}/tls/app": remote error: tls: internal error`);
    const t0 = Date.now();
    let ok = null;
    while (Date.now() - t0 < (windowS + 10) * 1000) {
      const r = await kubectlRaw(c, ['logs', '-n', ns, 'tls']);
      if (r.code === 0) {
        ok = r;
        break;
      }
      expect(r.stderr).to.contain('remote error: tls: internal error');
      await sleep(300);
    }
    expect(ok, 'kubectl logs succeeds once the window has passed').to.not.equal(null);
    expect(sha256(ok!.stdout)).to.equal(sha256(recorded(c, ns, 'tls')));
    expect(ok!.stdout.toString().split('\n')).to.have.length(4);
  });

  it('tlsAlertSeconds on a Node: its window opens when the annotation appears and closes again', async () => {
    await createPod(c, ns, 'on-node', { nodeName: 'sim-2', script: { containers: { app: { text: 'hi\n' } } } });
    await waitTerminated(c, ns, 'on-node');
    expect((await kubectlRaw(c, ['logs', '-n', ns, 'on-node'])).code).to.equal(0);
    const annotate = (v: string | null) => api(c, 'PATCH', '/api/v1/nodes/sim-2', { metadata: { annotations: { 'sim.logtail.dev/faults': v } } }, { contentType: 'application/merge-patch+json' });
    expect((await annotate(JSON.stringify({ tlsAlertSeconds: 4 }))).status).to.equal(200);
    try {
      let failed = false;
      const t0 = Date.now();
      // The simulator sees the annotation through its informer: allow a moment.
      while (!failed && Date.now() - t0 < 3000) {
        const r = await kubectlRaw(c, ['logs', '-n', ns, 'on-node']);
        failed = r.code !== 0 && r.stderr.includes('remote error: tls: internal error');
        if (!failed) await sleep(100);
      }
      expect(failed, 'refused during the node window').to.equal(true);
      await sleep(Math.max(0, 4500 - (Date.now() - t0)));
      const after = await kubectlRaw(c, ['logs', '-n', ns, 'on-node']);
      expect(after.code, after.stderr).to.equal(0);
      expect(after.stdout.toString()).to.equal('hi\n');
    } finally {
      await annotate(null);
    }
  });

  it('cutEveryBytes: every log connection is dropped after K bytes', async () => {
    const K = 30_000;
    await createPod(c, ns, 'cut', { script: { containers: { app: { lines: 2000, lineBytes: 100, linesPerSecond: 500 } } }, faults: { cutEveryBytes: K } });
    await waitPod(c, ns, 'cut', 'running', (p) => p?.status.containerStatuses?.[0]?.state.running !== undefined);
    // Through the apiserver a follow stream ends after K bytes although the container still runs.
    const follow = await streamFor(c, ns, 'cut', 'follow=true', 20_000);
    expect(follow.body.length).to.equal(K);
    const pod = await getPod(c, ns, 'cut');
    expect(pod!.status.containerStatuses![0]!.state.running, 'still running when the stream ended').to.not.equal(undefined);
    await waitTerminated(c, ns, 'cut');
    const rec = recorded(c, ns, 'cut');
    expect(rec.length).to.equal(200_000);
    expect(follow.body.equals(rec.subarray(0, K))).to.equal(true);
    // Straight at the kubelet the cut is a dropped connection, not a clean end.
    const direct = await kubeletGet(await kubeletPort(c, pod!.spec.nodeName!), `/containerLogs/${ns}/cut/app`);
    expect(direct.status).to.equal(200);
    expect(direct.aborted).to.equal(true);
    expect(direct.body.length).to.equal(K);
    // Every connection: kubectl sees a short log too.
    const k = await kubectlRaw(c, ['logs', '-n', ns, 'cut']);
    expect(k.stdout.length).to.equal(K);
  });

  it('endStreamAfterBytes ends a follow stream cleanly while the container runs', async () => {
    const K = 5_000;
    await createPod(c, ns, 'end', { script: { containers: { app: { lines: 100, lineBytes: 100, linesPerSecond: 1000, holdSeconds: 10 } } }, faults: { endStreamAfterBytes: K } });
    const p = await waitPod(c, ns, 'end', 'running', (x) => x?.status.containerStatuses?.[0]?.state.running !== undefined);
    await sleep(300);
    const direct = await kubeletGet(await kubeletPort(c, p!.spec.nodeName!), `/containerLogs/${ns}/end/app?follow=true`);
    expect(direct.aborted).to.equal(false);
    expect(direct.body.length).to.equal(K);
    const viaApi = await streamFor(c, ns, 'end', 'follow=true', 5000);
    expect(viaApi.ended).to.equal(true);
    expect(viaApi.body.length).to.equal(K);
    expect((await getPod(c, ns, 'end'))!.status.containerStatuses![0]!.state.running).to.not.equal(undefined);
  });

  it('stallAfterBytes: after K bytes nothing more comes and the connection stays open', async () => {
    const K = 4_000;
    await createPod(c, ns, 'stall', { script: { containers: { app: { lines: 100, lineBytes: 100 } } }, faults: { stallAfterBytes: K } });
    await waitTerminated(c, ns, 'stall');
    // Even a finished container's log never completes.
    const r = await streamFor(c, ns, 'stall', 'follow=true', 2000);
    expect(r.ended).to.equal(false);
    expect(r.body.length).to.equal(K);
  });

  it('http500Count: the first N log requests get 500, then the log is served', async () => {
    await createPod(c, ns, 'e500', { script: { containers: { app: { text: 'x\n' } } }, faults: { http500Count: 2 } });
    await waitTerminated(c, ns, 'e500');
    for (let i = 0; i < 2; i++) {
      const r = await kubectlRaw(c, ['logs', '-n', ns, 'e500']);
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.contain('InternalError').and.contain('http500Count');
    }
    const ok = await kubectlRaw(c, ['logs', '-n', ns, 'e500']);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout.toString()).to.equal('x\n');
  });

  it('terminatedDelaySeconds: the phase is Succeeded while state.terminated stays empty, visible through the API', async () => {
    await createPod(c, ns, 'lag', { script: { containers: { app: { lines: 2 } } }, faults: { terminatedDelaySeconds: 3 } });
    const lagging = await waitPod(c, ns, 'lag', 'Succeeded', isPhase('Succeeded'));
    const cs = lagging!.status.containerStatuses![0]!;
    expect(cs.state.terminated).to.equal(undefined);
    expect(cs.state.running).to.not.equal(undefined);
    const t0 = Date.now();
    const done = await waitTerminated(c, ns, 'lag', 10_000);
    expect(Date.now() - t0).to.be.greaterThan(1500);
    expect(done!.status.containerStatuses![0]!.state.terminated!.exitCode).to.equal(0);
  });

  it('containerLogMaxSize: a new request sees only the bytes after the last rotation, an open follow continues across', async () => {
    // 90 bytes per record in the CRI file: a rotation every ~45 lines (0.45 s).
    await createPod(c, ns, 'rot', {
      script: { containers: { app: { lines: 200, lineBytes: 50, linesPerSecond: 100, startDelaySeconds: 1 } } },
      faults: { containerLogMaxSize: 4000 },
    });
    // Ask until the container runs: the follow stream then starts before the first rotation.
    let follow: { status: number; body: Buffer; ended: boolean } | null = null;
    const t0 = Date.now();
    while (Date.now() - t0 < 15_000) {
      const r = await streamFor(c, ns, 'rot', 'follow=true', 15_000);
      if (r.status === 200) {
        follow = r;
        break;
      }
      await sleep(20);
    }
    expect(follow, 'follow stream').to.not.equal(null);
    expect(follow!.ended).to.equal(true);
    await waitTerminated(c, ns, 'rot');
    const rec = recorded(c, ns, 'rot');
    expect(rec.length).to.equal(10_000);
    expect(sha256(follow!.body)).to.equal(sha256(rec));
    const fresh = await kubectlRaw(c, ['logs', '-n', ns, 'rot']);
    expect(fresh.stdout.length).to.be.greaterThan(0).and.lessThan(4000);
    expect(rec.subarray(rec.length - fresh.stdout.length).equals(fresh.stdout)).to.equal(true);
  });
});
