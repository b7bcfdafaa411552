// Proof that the chart passes PodSecurity "restricted" on kube-apiserver.
// PodSecurity enforces on Pods only: a Deployment with a bad template is still
// stored, with a warning, and no controller-manager runs here to create its
// Pods. So (a) applying the chart must print no "would violate PodSecurity"
// warning, and (b) the Deployment's pod template, created as a Pod, must be
// admitted; weakened templates show that both checks can fail.
import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { CHART_DIR, FILE_VALUES, helm, operatorContainer } from '../../unit/chart/chart-helpers.ts';
import { PSA_REFUSED, PSA_VIOLATION_WARNING, createNamespace, installChartCrd, podFromTemplate, renderChart, type Rendered } from './chart-e2e.ts';

describe('chart: helm lint', function () {
  this.timeout(120_000);

  for (const file of readdirSync(join(CHART_DIR, 'ci')).filter((f) => f.endsWith('.yaml'))) {
    it(`helm lint --strict is clean with ci/${file}`, async () => {
      const r = await helm(['lint', '--strict', CHART_DIR, '-f', join(CHART_DIR, 'ci', file)]);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/1 chart\(s\) linted, 0 chart\(s\) failed/);
      // --strict fails on warnings; errors and helm's own WARN log lines must not appear either
      expect(r.stdout + r.stderr).to.not.match(/\[(WARNING|ERROR)\]|level=(WARN|ERROR)/);
    });
  }
});

describe('chart: PodSecurity "restricted" on the real apiserver', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let ns: string;
  let release: string;
  let rendered: Rendered;
  const cleanup: string[] = [];

  before(async function () {
    this.timeout(600_000);
    c = await cluster();
    await installChartCrd(c);
    ns = uniqueName('chart-psa');
    release = uniqueName('psa');
    await createNamespace(c, ns, {
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/enforce-version': 'latest',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/warn-version': 'latest',
    });
    rendered = await renderChart({ release, namespace: ns });
  });

  after(async function () {
    this.timeout(60_000);
    // the cluster-scoped objects would outlive the namespace
    for (const text of cleanup) await c?.kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { input: text });
  });

  it('applies the rendered chart for real with no PodSecurity warning', async () => {
    const r = await c.kubectl(['apply', '-f', '-'], { input: rendered.text });
    cleanup.push(rendered.text);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.not.match(PSA_VIOLATION_WARNING);
    expect(r.stderr, 'unexpected warnings').to.not.match(/Warning:/);
    const dep = await c.kubectl(['get', 'deployment', rendered.deployment.metadata.name, '-n', ns, '-o', 'name']);
    expect(dep.code, dep.stderr).to.equal(0);
  });

  it("admits the Deployment's pod template as a Pod in the restricted namespace (server dry-run)", async () => {
    const pod = podFromTemplate(rendered.deployment, `${release}-pod`);
    const r = await c.kubectl(['create', '--dry-run=server', '-f', '-', '-o', 'json'], { input: JSON.stringify(pod) });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.not.match(/Warning:/);
    // what was admitted is what the chart asks for
    const admitted = JSON.parse(r.stdout) as { spec: { securityContext: Record<string, unknown>; containers: Array<{ securityContext: Record<string, unknown> }> } };
    expect(admitted.spec.securityContext).to.deep.include({ runAsNonRoot: true, runAsUser: 65532 });
    expect(admitted.spec.containers[0]!.securityContext).to.deep.include({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
  });

  it('has readOnlyRootFilesystem on the rendered Deployment (PodSecurity does not check it)', async () => {
    const stored = JSON.parse(await c.kubectl(['get', 'deployment', rendered.deployment.metadata.name, '-n', ns, '-o', 'json']).then((r) => r.stdout)) as typeof rendered.deployment;
    for (const d of [rendered.deployment, stored]) {
      const sc = operatorContainer(d).securityContext;
      expect(sc?.readOnlyRootFilesystem).to.equal(true);
    }
  });

  it('admits the file:// store variant too (its PersistentVolumeClaim volume is allowed by restricted)', async () => {
    const fileStore = await renderChart({ release, namespace: ns, valuesFiles: [FILE_VALUES] });
    const applied = await c.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(fileStore.deployment) });
    expect(applied.code, applied.stderr).to.equal(0);
    expect(applied.stderr).to.not.match(/Warning:/);
    const r = await c.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(podFromTemplate(fileStore.deployment, `${release}-file`)) });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stderr).to.not.match(/Warning:/);
  });

  const weakenings: Array<[string, Record<string, unknown>, RegExp]> = [
    ['allowPrivilegeEscalation: true', { containerSecurityContext: { allowPrivilegeEscalation: true } }, /allowPrivilegeEscalation != false/],
    ['capabilities not dropped', { containerSecurityContext: { capabilities: null } }, /unrestricted capabilities/],
    ['root user', { podSecurityContext: { runAsNonRoot: null, runAsUser: 0 }, containerSecurityContext: { runAsNonRoot: null } }, /runAsNonRoot != true|runAsUser=0/],
    ['no seccomp profile', { podSecurityContext: { seccompProfile: null } }, /seccompProfile/],
  ];
  for (const [what, values, detail] of weakenings) {
    it(`refuses a weakened template (${what}): warned on apply, refused as a Pod`, async () => {
      const weak = await renderChart({ release, namespace: ns, values });
      // (a) the Deployment alone only warns: the apply-time check sees it
      const applied = await c.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(weak.deployment) });
      expect(applied.code, applied.stderr).to.equal(0);
      expect(applied.stderr).to.match(PSA_VIOLATION_WARNING);
      // (b) the same template as a Pod is refused
      const pod = podFromTemplate(weak.deployment, `${release}-weak`);
      const r = await c.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod) });
      expect(r.code, 'a weakened pod was admitted').to.not.equal(0);
      expect(r.stderr).to.match(PSA_REFUSED);
      expect(r.stderr).to.match(detail);
    });
  }
});
