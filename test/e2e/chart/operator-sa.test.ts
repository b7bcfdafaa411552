// Proof that the chart's RBAC is sufficient: the operator, run as a local
// process with leader election on and a kubeconfig holding only the chart
// ServiceAccount's token (`kubectl create token`), completes a capture end to
// end with no 403 in its log — cluster-wide, and with watchNamespaces set
// (there with holdPod.enabled: a hold placed and released on patch pods alone).
import { expect } from 'chai';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestCluster } from '../fixture.ts';
import { forbiddenLines, kubeconfigWithToken, mustKubectl, poll, startOperatorAs, useChartRelease, type ChartRelease, type Rendered, type RunningOperator } from './chart-e2e.ts';

const SCRIPT = { containers: { main: { lines: 100, lineBytes: 50, linesPerSecond: 1000, exitCode: 0 } } };

interface LogTailStatus {
  phase?: string;
  message?: string;
  bytes?: number;
  containers?: Array<{ name: string; object?: { uri: string; size: number } }>;
  conditions?: Array<{ type: string; status: string; reason: string }>;
}

async function ensureSimulator(c: TestCluster): Promise<void> {
  const r = await c.kubectl(['get', 'nodes', '-o', 'name']);
  if (r.code !== 0 || !r.stdout.includes('node/')) throw new Error(`no simulated node is registered (kubectl get nodes: ${r.stdout || r.stderr}); the node simulator must run to play the pod`);
}

async function simPod(c: TestCluster, ns: string, name: string): Promise<void> {
  await mustKubectl(
    c,
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, annotations: { 'sim.logtail.dev/script': JSON.stringify(SCRIPT) } },
      spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'busybox:stable' }] },
    }),
  );
}

async function logTail(c: TestCluster, ns: string, name: string, podName: string, extra: Record<string, unknown> = {}): Promise<void> {
  await mustKubectl(c, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name, namespace: ns }, spec: { podName, ...extra } }));
}

async function status(c: TestCluster, ns: string, name: string): Promise<LogTailStatus | undefined> {
  const r = await c.kubectl(['get', 'logtail', name, '-n', ns, '-o', 'json']);
  if (r.code !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { status?: LogTailStatus }).status;
}

async function waitTerminal(c: TestCluster, ns: string, name: string, timeoutMs: number): Promise<LogTailStatus> {
  let last: LogTailStatus | undefined;
  try {
    return await poll(`LogTail ${ns}/${name} to finish`, timeoutMs, async () => {
      last = await status(c, ns, name);
      return ['Complete', 'Incomplete', 'Failed'].includes(last?.phase ?? '') ? last : undefined;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status ${JSON.stringify(last)}`, { cause: err });
  }
}

interface Setup {
  releaseNs: string;
  rendered: Rendered;
  sa: string;
  lease: string;
  /** The chart's admission policy (and binding) name, which the operator must be able to read. */
  policy: string;
  kubeconfig: string;
  storeDir: string;
}

/** The chart's release (applied by useChartRelease) and a kubeconfig with its ServiceAccount's token. */
async function tokenFor(rel: ChartRelease): Promise<Setup> {
  const { c, releaseNs, rendered } = rel;
  await ensureSimulator(c);
  const spec = rendered.deployment.spec.template.spec;
  const sa = spec.serviceAccountName!;
  const lease = spec.containers[0]!.env!.find((e) => e.name === 'LOGTAIL_LEADER_ELECTION_ID')!.value!;
  const policy = spec.containers[0]!.env!.find((e) => e.name === 'LOGTAIL_ADMISSION_POLICY_NAME')!.value!;
  expect(spec.containers[0]!.env!.find((e) => e.name === 'LOGTAIL_REQUIRE_ADMISSION_POLICY')?.value).to.equal('true');
  const token = (await mustKubectl(c, ['create', 'token', sa, '-n', releaseNs, '--duration=1h'])).trim();
  expect(token.split('.'), 'not a JWT').to.have.length(3);
  const kubeconfig = kubeconfigWithToken(c, token, releaseNs);
  // the kubeconfig really is the ServiceAccount
  const who = JSON.parse(await mustKubectl(c, ['auth', 'whoami', '-o', 'json', '--kubeconfig', kubeconfig])) as { status: { userInfo: { username: string } } };
  expect(who.status.userInfo.username).to.equal(`system:serviceaccount:${releaseNs}:${sa}`);
  const storeDir = mkdtempSync(join(tmpdir(), 'logtail-chart-store-'));
  return { releaseNs, rendered, sa, lease, policy, kubeconfig, storeDir };
}

async function expectCaptured(c: TestCluster, ns: string, name: string, storeDir: string): Promise<void> {
  const st = await waitTerminal(c, ns, name, 90_000);
  expect(st.phase, st.message).to.equal('Complete');
  expect(st.bytes).to.be.greaterThan(0);
  const obj = st.containers?.find((x) => x.name === 'main')?.object;
  expect(obj, JSON.stringify(st)).to.not.equal(undefined);
  const path = fileURLToPath(obj!.uri);
  expect(path.startsWith(storeDir), `${path} is outside the store ${storeDir}`).to.equal(true);
  expect(existsSync(path)).to.equal(true);
  expect(statSync(path).size).to.equal(obj!.size);
}

async function expectLeaseHeld(c: TestCluster, s: Setup): Promise<void> {
  const lease = JSON.parse(await mustKubectl(c, ['get', 'lease', s.lease, '-n', s.releaseNs, '-o', 'json'])) as { spec: { holderIdentity?: string } };
  expect(lease.spec.holderIdentity, 'the operator did not take the Lease').to.be.a('string').and.not.equal('');
}

function dumpOnFailure(op: RunningOperator | undefined, test: Mocha.Test | undefined): void {
  if (op && test?.state === 'failed') console.error('operator log tail:\n' + op.log().split('\n').slice(-60).join('\n'));
}

describe('chart: the operator runs on the chart ServiceAccount token (cluster-wide)', function () {
  this.timeout(180_000);
  let s: Setup;
  let op: RunningOperator | undefined;
  const rel = useChartRelease({ release: 'op', releaseNs: 'chart-op', namespaces: ['chart-op-t'], values: {}, deleteAfter: 'logtails,pods', beforeCleanup: async () => op?.stop() });
  const targetNs = rel.ns;

  before(async function () {
    s = await tokenFor(rel);
  });

  afterEach(function () {
    dumpOnFailure(op, this.currentTest);
  });

  it('starts with --leader-elect, becomes leader and is ready', async () => {
    op = await startOperatorAs({ kubeconfig: s.kubeconfig, podNamespace: s.releaseNs, args: ['--leader-elect', '--leader-election-id', s.lease, '--require-admission-policy', '--admission-policy-name', s.policy, '--store', `file://${s.storeDir}`, '--status-interval', '500ms'] });
    await expectLeaseHeld(rel.c, s);
  });

  it('completes a capture end to end', async () => {
    expect(op, 'operator not started').to.not.equal(undefined);
    await simPod(rel.c, targetNs, 'app');
    await logTail(rel.c, targetNs, 'app', 'app');
    await expectCaptured(rel.c, targetNs, 'app', s.storeDir);
  });

  it('was never refused by the apiserver and stops cleanly', async () => {
    expect(op, 'operator not started').to.not.equal(undefined);
    const code = await op!.stop();
    expect(forbiddenLines(op!.log())).to.deep.equal([]);
    expect(code, 'exit code after SIGTERM').to.equal(0);
  });
});

describe('chart: the operator runs on the chart ServiceAccount token (watchNamespaces, namespaced Roles)', function () {
  this.timeout(180_000);
  let s: Setup;
  let op: RunningOperator | undefined;
  // holdPod.enabled here: its one extra rule (patch pods, in the namespaced Role) must be enough for a hold.
  const rel = useChartRelease({
    release: 'op',
    releaseNs: 'chart-op',
    namespaces: ['chart-op-w', 'chart-op-u'],
    values: (ns) => ({ watchNamespaces: [ns[0]], holdPod: { enabled: true } }),
    deleteAfter: 'logtails,pods',
    beforeCleanup: async () => op?.stop(),
  });
  const [watched, unwatched] = rel.namespaces as [string, string];

  before(async function () {
    s = await tokenFor(rel);
    expect(s.rendered.deployment.spec.template.spec.containers[0]!.env!.find((e) => e.name === 'LOGTAIL_ENABLE_HOLD_POD')?.value).to.equal('true');
  });

  afterEach(function () {
    dumpOnFailure(op, this.currentTest);
  });

  it('starts with --leader-elect and --watch-namespaces, becomes leader and is ready', async () => {
    op = await startOperatorAs({
      kubeconfig: s.kubeconfig,
      podNamespace: s.releaseNs,
      args: ['--leader-elect', '--leader-election-id', s.lease, '--require-admission-policy', '--admission-policy-name', s.policy, '--watch-namespaces', watched, '--enable-hold-pod', '--store', `file://${s.storeDir}`, '--status-interval', '500ms'],
    });
    await expectLeaseHeld(rel.c, s);
  });

  it('completes a capture in the watched namespace and leaves other namespaces alone', async () => {
    expect(op, 'operator not started').to.not.equal(undefined);
    await simPod(rel.c, unwatched, 'app');
    await logTail(rel.c, unwatched, 'app', 'app');
    await simPod(rel.c, watched, 'app');
    await logTail(rel.c, watched, 'app', 'app');
    await expectCaptured(rel.c, watched, 'app', s.storeDir);
    expect(await status(rel.c, unwatched, 'app'), 'a LogTail outside watchNamespaces was touched').to.equal(undefined);
  });

  it('holds and releases a pod (holdPod) with the permission holdPod.enabled grants', async () => {
    expect(op, 'operator not started').to.not.equal(undefined);
    await simPod(rel.c, watched, 'held');
    await logTail(rel.c, watched, 'held', 'held', { holdPod: true });
    await expectCaptured(rel.c, watched, 'held', s.storeDir);
    const st = await status(rel.c, watched, 'held');
    expect(st?.conditions?.find((x) => x.type === 'PodHeld'), JSON.stringify(st)).to.deep.include({ status: 'False', reason: 'Released' });
    const pod = JSON.parse(await mustKubectl(rel.c, ['get', 'pod', 'held', '-n', watched, '-o', 'json'])) as { metadata: { finalizers?: string[] } };
    expect(pod.metadata.finalizers ?? []).to.deep.equal([]);
  });

  it('was never refused by the apiserver and stops cleanly', async () => {
    expect(op, 'operator not started').to.not.equal(undefined);
    const code = await op!.stop();
    expect(forbiddenLines(op!.log())).to.deep.equal([]);
    expect(code, 'exit code after SIGTERM').to.equal(0);
  });
});
