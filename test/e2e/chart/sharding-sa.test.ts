// Proof that the chart's RBAC with sharding.enabled is sufficient: two
// operator processes with --shard, each with a kubeconfig holding only the
// chart ServiceAccount's token, create and renew their Leases in the release
// namespace, claim LogTails (annotation patches) and capture them end to end,
// with no 403 in their logs, and release their Leases on SIGTERM.
import { expect } from 'chai';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forbiddenLines, kubeconfigWithToken, mustKubectl, poll, startOperatorAs, useChartRelease, type RunningOperator } from './chart-e2e.ts';

const SCRIPT = { containers: { main: { lines: 200, lineBytes: 50, linesPerSecond: 100, exitCode: 0 } } };

interface Lt {
  metadata: { name: string; annotations?: Record<string, string>; finalizers?: string[] };
  status?: { phase?: string; message?: string; containers?: Array<{ object?: { uri: string } }> };
}

describe('chart: sharding.enabled — replicas run on the chart ServiceAccount token', function () {
  this.timeout(240_000);
  let group: string;
  let kubeconfig: string;
  let policy: string;
  let storeDir: string;
  const ops = new Map<string, RunningOperator>();
  const s = useChartRelease({
    release: 'op',
    releaseNs: 'chart-shard',
    namespaces: ['chart-shard-t'],
    values: { replicaCount: 2, sharding: { enabled: true } },
    deleteAfter: 'logtails,pods',
    beforeCleanup: async () => {
      for (const op of ops.values()) await op.stop();
    },
  });

  before(async function () {
    const spec = s.rendered.deployment.spec.template.spec;
    const env = (n: string) => spec.containers[0]!.env!.find((e) => e.name === n)?.value;
    expect(env('LOGTAIL_SHARD')).to.equal('true');
    group = env('LOGTAIL_LEADER_ELECTION_ID')!;
    policy = env('LOGTAIL_ADMISSION_POLICY_NAME')!;
    const sa = spec.serviceAccountName!;
    const token = (await mustKubectl(s.c, ['create', 'token', sa, '-n', s.releaseNs, '--duration=1h'])).trim();
    kubeconfig = kubeconfigWithToken(s.c, token, s.releaseNs);
    storeDir = mkdtempSync(join(tmpdir(), 'logtail-chart-store-'));
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') for (const [id, op] of ops) console.error(`${id} log tail:\n` + op.log().split('\n').slice(-40).join('\n'));
  });

  it('two --shard replicas start, each with its own Lease in the release namespace', async () => {
    const args = (id: string) => ['--shard', '--shard-id', id, '--leader-election-id', group, '--require-admission-policy', '--admission-policy-name', policy, '--store', `file://${storeDir}`, '--status-interval', '500ms'];
    const started = await Promise.all(['op-a', 'op-b'].map((id) => startOperatorAs({ kubeconfig, podNamespace: s.releaseNs, args: args(id) })));
    ops.set('op-a', started[0]!);
    ops.set('op-b', started[1]!);
    const leases = JSON.parse(await mustKubectl(s.c, ['get', 'leases', '-n', s.releaseNs, '-l', `logtail.dev/shard-group=${group}`, '-o', 'json'])) as { items: Array<{ spec: { holderIdentity?: string } }> };
    expect(leases.items.map((l) => l.spec.holderIdentity).sort()).to.deep.equal(['op-a', 'op-b']);
  });

  it('claims and captures every LogTail, each by one replica', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `app-${i}`);
    const items = names.flatMap((n) => [
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: n, namespace: s.ns, annotations: { 'sim.logtail.dev/script': JSON.stringify(SCRIPT) } }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'busybox:stable' }] } },
      { apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name: n, namespace: s.ns }, spec: { podName: n } },
    ]);
    await mustKubectl(s.c, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    const done = await poll('every LogTail finished', 120_000, async () => {
      const list = JSON.parse(await mustKubectl(s.c, ['get', 'logtails', '-n', s.ns, '-o', 'json'])) as { items: Lt[] };
      return list.items.length === names.length && list.items.every((lt) => ['Complete', 'Incomplete', 'Failed'].includes(lt.status?.phase ?? '') && !(lt.metadata.finalizers ?? []).length) ? list.items : undefined;
    });
    for (const lt of done) {
      expect(lt.status?.phase, `${lt.metadata.name}: ${lt.status?.message}`).to.equal('Complete');
      expect(['op-a', 'op-b']).to.include(lt.metadata.annotations?.['logtail.dev/owner']);
      expect(existsSync(fileURLToPath(lt.status!.containers![0]!.object!.uri))).to.equal(true);
    }
  });

  it('the apiserver refuses a claim written against an older resourceVersion (409), which is what makes claims exclusive', async () => {
    const lt = JSON.parse(await mustKubectl(s.c, ['get', 'logtail', 'app-0', '-n', s.ns, '-o', 'json'])) as { metadata: { resourceVersion: string; annotations?: Record<string, string> } };
    const patch = (rv: string, owner: string) => s.c.kubectl(['patch', 'logtail', 'app-0', '-n', s.ns, '--type', 'merge', '-p', JSON.stringify({ metadata: { resourceVersion: rv, annotations: { 'logtail.dev/owner': owner, 'logtail.dev/owner-since': new Date().toISOString() } } })]);
    // a change (a patch that changes nothing keeps the resourceVersion; every claim changes the claim)
    const fresh = await patch(lt.metadata.resourceVersion, lt.metadata.annotations?.['logtail.dev/owner'] ?? 'op-a');
    expect(fresh.code, fresh.stderr).to.equal(0);
    // the same resourceVersion again is now stale
    const stale = await patch(lt.metadata.resourceVersion, 'somebody-else');
    expect(stale.code).to.not.equal(0);
    expect(stale.stderr).to.match(/Conflict|the object has been modified/);
    const after = JSON.parse(await mustKubectl(s.c, ['get', 'logtail', 'app-0', '-n', s.ns, '-o', 'json'])) as { metadata: { annotations?: Record<string, string> } };
    expect(after.metadata.annotations?.['logtail.dev/owner']).to.not.equal('somebody-else');
  });

  it('was never refused by the apiserver, stops cleanly and releases its Lease', async () => {
    for (const [id, op] of ops) {
      const code = await op.stop();
      expect(forbiddenLines(op.log()), id).to.deep.equal([]);
      expect(code, `${id} exit code after SIGTERM`).to.equal(0);
    }
    const leases = JSON.parse(await mustKubectl(s.c, ['get', 'leases', '-n', s.releaseNs, '-l', `logtail.dev/shard-group=${group}`, '-o', 'json'])) as { items: Array<{ spec: { holderIdentity?: string } }> };
    expect(leases.items).to.have.length(2);
    for (const l of leases.items) expect(l.spec.holderIdentity ?? '').to.equal('');
  });
});
