// The fault matrix, control-plane rows (docs/reliability.md), produced by the
// real kube-apiserver: F13 409s on status writes (a validating admission
// webhook served by this test answers 409 Conflict for the LogTail's status
// updates), F19 429s (API Priority and Fairness: a PriorityLevelConfiguration
// with no seats and `limitResponse: Reject`, and a FlowSchema for the
// operator's own ServiceAccount user; a level without seats still admits one
// request at a time (queueset.go canAccommodateSeatsLocked lets a request
// through when nothing executes), so the test holds that one place with a
// request of the same user that the webhook keeps waiting, and every request
// of the operator is rejected with 429 meanwhile), then F8 (the apiserver
// restarted mid-stream) alone, since it interrupts everything.
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { leafCert } from '../../../src/dev/pki.ts';
import { sleep } from '../../../src/dev/proc.ts';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { apply, createNamespace, events, installCrd, logTailManifest, podManifest, startOperator, waitForLogTail, type LogTailObject, type OperatorProcess } from '../operator/harness.ts';
import { Cases, capsOf, expectExact, expectPrefix, recordedPath, waitPod } from './helpers.ts';

describe('fault matrix: the control plane (real apiserver: admission 409s, APF 429s, restart)', function () {
  let wallStart = 0;
  this.timeout(300_000);
  let c: TestCluster;
  let ns: string;
  let op: OperatorProcess;
  let webhook: Server;
  const cases = new Cases();
  const cleanup: string[][] = [];
  /** Status updates the webhook refused, per LogTail; and whether it refuses right now. */
  const refused = new Map<string, number>();
  const refusing = new Set<string>();
  /** F19: how long the webhook keeps the holding request, and a hook called when it arrives. */
  const HOLD_MS = 24_000;
  let holding: (() => void) | undefined;
  let token = '';
  let f19Rejected = 0;

  const rec = (pod: string) => recordedPath(c, ns, pod, 'main');

  /** A kubeconfig for the ServiceAccount `name` in ns (a token from the TokenRequest API), bound to cluster-admin. */
  async function serviceAccountKubeconfig(name: string): Promise<{ file: string; token: string }> {
    const binding = `${ns}-${name}`;
    cleanup.push(['delete', 'clusterrolebinding', binding, '--ignore-not-found']);
    for (const args of [
      ['create', 'serviceaccount', name, '-n', ns],
      ['create', 'clusterrolebinding', binding, '--clusterrole=cluster-admin', `--serviceaccount=${ns}:${name}`],
    ]) {
      const r = await c.kubectl(args);
      if (r.code !== 0) throw new Error(r.stderr);
    }
    const t = await c.kubectl(['create', 'token', name, '-n', ns, '--duration=2h']);
    if (t.code !== 0) throw new Error(t.stderr);
    const file = join(c.dir, `kubeconfig-${ns}-${name}`);
    const ca = readFileSync(c.state.caFile).toString('base64');
    writeFileSync(
      file,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: l\n  cluster:\n    server: ${c.state.apiserverUrl}\n    certificate-authority-data: ${ca}\nusers:\n- name: sa\n  user:\n    token: ${t.stdout.trim()}\ncontexts:\n- name: l\n  context:\n    cluster: l\n    user: sa\ncurrent-context: l\n`,
      { mode: 0o600 },
    );
    return { file, token: t.stdout.trim() };
  }

  /** POST as the operator's user; answered when the webhook lets it go. */
  function postAs(token: string, path: string, body: unknown): Promise<number> {
    return new Promise((resolve, reject) => {
      const payload = Buffer.from(JSON.stringify(body));
      const req = httpsRequest(new URL(path, c.state.apiserverUrl), { method: 'POST', ca: readFileSync(c.state.caFile), headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': payload.length } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** apiserver_flowcontrol_rejected_requests_total of the matrix's priority level (the admin user is exempt). */
  async function rejected(): Promise<number> {
    const r = await c.kubectl(['get', '--raw', '/metrics']);
    let n = 0;
    for (const line of r.stdout.split('\n')) if (line.startsWith('apiserver_flowcontrol_rejected_requests_total{') && line.includes(`priority_level="${ns}-reject"`)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
    return n;
  }

  /** The webhook: 409 Conflict for a LogTail's status update while its name is in `refusing`. */
  async function startWebhook(): Promise<void> {
    const pki = join(c.dir, 'pki');
    await leafCert(pki, 'matrix-webhook', 'matrix-webhook', 'IP:127.0.0.1');
    webhook = createServer({ key: readFileSync(join(pki, 'matrix-webhook.key')), cert: readFileSync(join(pki, 'matrix-webhook.crt')) }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (b: Buffer) => chunks.push(b));
      req.on('end', () => {
        const review = JSON.parse(Buffer.concat(chunks).toString()) as { request: { uid: string; name: string; subResource?: string; kind: { kind: string } } };
        const name = review.request.name;
        const answer = (response: unknown) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
        if (review.request.kind.kind === 'ConfigMap') {
          // F19: the request holding the priority level's one place, let go after HOLD_MS.
          holding?.();
          setTimeout(() => answer({ uid: review.request.uid, allowed: true }), HOLD_MS);
          return;
        }
        const no = refusing.has(name) && review.request.subResource === 'status';
        if (no) refused.set(name, (refused.get(name) ?? 0) + 1);
        answer(no ? { uid: review.request.uid, allowed: false, status: { code: 409, reason: 'Conflict', message: `matrix F13: status update of ${name} refused with 409` } } : { uid: review.request.uid, allowed: true });
      });
    });
    await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
    const port = (webhook.address() as AddressInfo).port;
    const name = `${ns}.matrix.logtail.dev`;
    cleanup.push(['delete', 'validatingwebhookconfiguration', name, '--ignore-not-found']);
    await apply(c, {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name },
      webhooks: [
        {
          name: 'status-409.matrix.logtail.dev',
          clientConfig: { url: `https://127.0.0.1:${port}/validate`, caBundle: readFileSync(c.state.caFile).toString('base64') },
          rules: [
            { apiGroups: ['logtail.dev'], apiVersions: ['v1alpha1'], operations: ['UPDATE'], resources: ['logtails/status'], scope: 'Namespaced' },
            { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'], scope: 'Namespaced' },
          ],
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } },
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          failurePolicy: 'Fail',
          timeoutSeconds: 30,
        },
      ],
    });
  }

  /** APF: every request of the ServiceAccount rejected with 429 while the FlowSchema exists (the level has no seats). */
  const plc = () => ({
    apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
    kind: 'PriorityLevelConfiguration',
    metadata: { name: `${ns}-reject` },
    spec: { type: 'Limited', limited: { nominalConcurrencyShares: 0, lendablePercent: 0, borrowingLimitPercent: 0, limitResponse: { type: 'Reject' } } },
  });
  const flowSchema = (sa: string) => ({
    apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
    kind: 'FlowSchema',
    metadata: { name: `${ns}-operator` },
    spec: {
      priorityLevelConfiguration: { name: `${ns}-reject` },
      matchingPrecedence: 500,
      distinguisherMethod: { type: 'ByUser' },
      rules: [
        {
          subjects: [{ kind: 'ServiceAccount', serviceAccount: { name: sa, namespace: ns } }],
          resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'], clusterScope: true, namespaces: ['*'] }],
          nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }],
        },
      ],
    },
  });

  before(async function () {
    this.timeout(300_000);
    wallStart = Date.now();
    c = await cluster();
    await installCrd(c);
    ns = uniqueName('mx-cp');
    await createNamespace(c, ns);
    await startWebhook();
    cleanup.push(['delete', 'prioritylevelconfiguration', `${ns}-reject`, '--ignore-not-found'], ['delete', 'flowschema', `${ns}-operator`, '--ignore-not-found']);
    await apply(c, plc());
    const sa = await serviceAccountKubeconfig('logtail-operator');
    token = sa.token;
    op = await startOperator(c, { kubeconfig: sa.file, args: ['--watch-namespaces', ns] });

    // F13: every status update of the LogTail refused with 409 from its first one until 10 s after the container exited.
    cases.start('F13', async () => {
      refusing.add('f13');
      await apply(c, podManifest(ns, 'f13', { script: { containers: { main: { lines: 600, lineBytes: 100, linesPerSecond: 100, exitCode: 0 } } } }));
      await apply(c, logTailManifest(ns, 'f13', { podName: 'f13' }));
      await waitPod(c, ns, 'f13', 'ended', (p) => p.status.phase === 'Succeeded');
      await sleep(10_000);
      refusing.delete('f13');
      return waitForLogTail(c, ns, 'f13', 120_000);
    });

    // F13, longer than the 30 s an urgent (terminal) status write is retried: 409s until 40 s after the exit.
    cases.start('F13 long', async () => {
      refusing.add('f13-long');
      await apply(c, podManifest(ns, 'f13-long', { script: { containers: { main: { lines: 300, lineBytes: 100, linesPerSecond: 100, exitCode: 0 } } } }));
      await apply(c, logTailManifest(ns, 'f13-long', { podName: 'f13-long' }));
      await waitPod(c, ns, 'f13-long', 'ended', (p) => p.status.phase === 'Succeeded');
      await sleep(40_000);
      refusing.delete('f13-long');
      return waitForLogTail(c, ns, 'f13-long', 90_000);
    });

    // F19, second half: a finished pod read after the fact over connections cut at record boundaries (every 300
    // records of 131 bytes with their timestamps: 39 300 B, above one second of output).
    cases.start('F19 boundaries', async () => {
      await apply(c, podManifest(ns, 'f19b', { script: { containers: { main: { lines: 2000, lineBytes: 100, linesPerSecond: 200, exitCode: 0 } } }, faults: { cutEveryBytes: 131 * 300 } }));
      await waitPod(c, ns, 'f19b', 'Succeeded', (x) => x.status.phase === 'Succeeded');
      await apply(c, logTailManifest(ns, 'f19b', { podName: 'f19b' }));
      return waitForLogTail(c, ns, 'f19b', 120_000);
    });

    // F19: 429 for every request of the operator's user from ~2 s before the container exits until ~22 s after:
    // the FlowSchema is applied while the container pauses before its last line, then a request of the same user
    // takes the level's one place and the webhook holds it for 24 s.
    cases.start('F19', async () => {
      // Its APF window rejects every request of the operator's user: the other captures of this operator must be
      // past their own reads first (F13's, F13 long's, F19 boundaries'), or they would meet the 429s too.
      await Promise.allSettled([cases.get('F13'), cases.get('F13 long'), cases.get('F19 boundaries')]);
      await apply(c, podManifest(ns, 'f19', { script: { containers: { main: { segments: [{ lines: 300, lineBytes: 100, linesPerSecond: 100 }, { pauseSeconds: 4, lines: 1, lineBytes: 100 }], exitCode: 0 } } } }));
      await apply(c, logTailManifest(ns, 'f19', { podName: 'f19' }));
      await waitForLogTail(c, ns, 'f19', 60_000, (lt) => (lt.status?.bytes ?? 0) >= 30_000);
      await apply(c, flowSchema('logtail-operator'));
      await sleep(500); // the APF config controller picks the FlowSchema up from its informer
      const held = new Promise<void>((r) => (holding = r));
      const hold = postAs(token, `/api/v1/namespaces/${ns}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'f19-hold' } });
      await held;
      const before = await rejected();
      await waitPod(c, ns, 'f19', 'ended', (x) => x.status.containerStatuses?.[0]?.state.terminated !== undefined);
      const lt = await waitForLogTail(c, ns, 'f19', 5_000, () => true);
      if (lt.status?.phase !== 'Streaming') throw new Error(`precondition: the capture was no longer streaming when the container ended: ${JSON.stringify(lt.status)}`);
      const code = await hold;
      f19Rejected = (await rejected()) - before;
      const d = await c.kubectl(['delete', 'flowschema', `${ns}-operator`]);
      if (d.code !== 0) throw new Error(d.stderr);
      console.log(`      [F19] holding request answered ${code}; ${f19Rejected} requests rejected with 429 meanwhile`);
      return waitForLogTail(c, ns, 'f19', 120_000);
    });

  });

  after(async () => {
    console.log(`      [wall] control-plane.test.ts: ${((Date.now() - wallStart) / 1000).toFixed(1)} s`);
    await op?.stop('SIGTERM');
    webhook?.close();
    for (const args of cleanup.reverse()) await c?.kubectl(args).catch(() => undefined);
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error('operator log tail:\n' + op.log().split('\n').slice(-60).join('\n'));
  });

  it('F13 409s on status writes (admission webhook) until 10 s after the exit: Complete, byte-exact, exactly one terminal Event', async () => {
    const lt = await cases.get('F13');
    expect([lt.status?.phase, lt.status?.reason, lt.status?.exitCode], JSON.stringify(lt.status)).to.deep.equal(['Complete', 'Captured', 0]);
    expect(refused.get('f13') ?? 0, 'status updates refused with 409').to.be.at.least(3);
    await expectExact(capsOf(lt)[0], rec('f13'), 'F13');
    const terminal = (await events(c, ns, 'f13')).filter((e) => ['Complete', 'Incomplete', 'Failed'].includes(e.reason));
    expect(terminal.map((e) => e.reason)).to.deep.equal(['Complete']);
  });

  it('F13 409s on status writes for 40 s after the exit (longer than a terminal write is retried): the terminal status still arrives, Complete, byte-exact', async () => {
    const lt = await cases.get('F13 long');
    expect([lt.status?.phase, lt.status?.reason, lt.status?.exitCode], JSON.stringify(lt.status)).to.deep.equal(['Complete', 'Captured', 0]);
    expect(refused.get('f13-long') ?? 0, 'status updates refused with 409').to.be.at.least(3);
    const terminal = (await events(c, ns, 'f13-long')).filter((e) => ['Complete', 'Incomplete', 'Failed'].includes(e.reason));
    expect(terminal.map((e) => e.reason)).to.deep.equal(['Complete']);
    await expectExact(capsOf(lt)[0], rec('f13-long'), 'F13 long');
  });

  // The pod reads that prove the run's end get 429 for longer than spec.terminatedRetry.maxElapsed (15 s by
  // default): the capture ends Incomplete/ApiUnavailable (docs/status.md), with every byte read stored.
  it('F19 429 (APF Reject) for 20 s right after the container exits: nothing discarded (byte-exact), Incomplete/ApiUnavailable naming the 429', async () => {
    const lt = await cases.get('F19');
    expect(f19Rejected, 'requests of the operator rejected by APF (429)').to.be.at.least(3);
    await expectExact(capsOf(lt)[0], rec('f19'), 'F19');
    expect([lt.status?.phase, lt.status?.reason, lt.status?.result], JSON.stringify(lt.status)).to.deep.equal(['Incomplete', 'ApiUnavailable', 'Succeeded']);
    expect(lt.status?.message).to.match(/429 Too many requests/);
  });

  it('F19 a finished pod read over connections cut at record boundaries: never Complete unless every byte is there', async () => {
    const lt = await cases.get('F19 boundaries');
    const cap = capsOf(lt)[0];
    console.log(`      [F19 boundaries] ${lt.status?.phase}/${lt.status?.reason}, ${cap?.bytes} of ${readFileSync(rec('f19b')).length} B, ${lt.status?.retries} retries`);
    if (lt.status?.phase === 'Complete') await expectExact(cap, rec('f19b'), 'F19 boundaries');
    else {
      expect([lt.status?.phase, lt.status?.reason], JSON.stringify(lt.status)).to.deep.equal(['Incomplete', 'DrainUnproven']);
      expectPrefix(cap, readFileSync(rec('f19b')), 'F19 boundaries');
    }
  });

  describe('F8 kube-apiserver restarted mid-stream', function () {
    let lt: LogTailObject;

    before(async function () {
      this.timeout(240_000);
      await apply(c, podManifest(ns, 'f8', { script: { containers: { main: { lines: 4000, lineBytes: 100, linesPerSecond: 100, exitCode: 0 } } } }));
      await apply(c, logTailManifest(ns, 'f8', { podName: 'f8' }));
      await waitForLogTail(c, ns, 'f8', 60_000, (x) => (x.status?.bytes ?? 0) >= 20_000);
      const t0 = Date.now();
      await c.restartApiserver();
      console.log(`      apiserver back after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      lt = await waitForLogTail(c, ns, 'f8', 180_000);
    });

    it('F8 the stream survives the restart: Complete, byte-exact, exactly one terminal Event', async () => {
      expect([lt.status?.phase, lt.status?.reason, lt.status?.exitCode], JSON.stringify(lt.status)).to.deep.equal(['Complete', 'Captured', 0]);
      expect(lt.status?.retries).to.be.at.least(1);
      await expectExact(capsOf(lt)[0], rec('f8'), 'F8');
      const terminal = (await events(c, ns, 'f8')).filter((e) => ['Complete', 'Incomplete', 'Failed'].includes(e.reason));
      expect(terminal.map((e) => e.reason)).to.deep.equal(['Complete']);
    });
  });
});
