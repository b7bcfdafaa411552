// The chart as rendered by `helm template`: what it creates, how values reach
// the operator, and what it refuses to render. The e2e tests in
// test/e2e/chart/ apply the same output to a real apiserver.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { FLAGS } from '../../../src/cmd/config.ts';
import {
  CHART_CRD,
  CHART_DIR,
  FILE_VALUES,
  S3_VALUES,
  helm,
  all,
  envOf,
  find,
  flattenRules,
  operatorContainer,
  render,
  renderRaw,
  rulesOf,
  type Deployment,
  type K8sObject,
} from './chart-helpers.ts';

const OPERATOR_ROWS = [
  'logtail.dev|logtails|list|*',
  'logtail.dev|logtails|watch|*',
  'logtail.dev|logtails|patch|*',
  'logtail.dev|logtails|delete|*',
  'logtail.dev|logtails|create|*',
  'logtail.dev|logtails/status|patch|*',
  'logtail.dev|logtailpolicies|list|*',
  'logtail.dev|logtailpolicies|watch|*',
  'logtail.dev|logtailpolicies/status|patch|*',
  'core|pods|get|*',
  'core|pods|list|*',
  'core|pods|watch|*',
  'core|pods/log|get|*',
  'core|events|create|*',
].sort();

async function renderFails(values: Record<string, unknown>, valuesFiles?: string[]): Promise<string> {
  const r = await renderRaw({ values, ...(valuesFiles ? { valuesFiles } : {}) });
  expect(r.code, `expected helm template to fail, it rendered:\n${r.stdout.slice(0, 400)}`).to.not.equal(0);
  return r.stderr;
}

describe('chart: rendered objects (helm template)', function () {
  this.timeout(60_000);
  let objs: K8sObject[];
  let dep: Deployment;

  before(async function () {
    this.timeout(600_000);
    objs = await render({ release: 'lt', namespace: 'logtail-system' });
    dep = find<Deployment>(objs, 'Deployment', 'lt-logtail-operator', 'logtail-system');
  });

  it('renders the ServiceAccount, RBAC, Deployment, metrics Service, admission policy and aggregated roles', () => {
    const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).to.deep.equal(
      [
        'ClusterRole/lt-logtail-operator',
        'ClusterRole/lt-logtail-operator-admission-policy-reader',
        'ClusterRoleBinding/lt-logtail-operator-admission-policy-reader',
        'ClusterRole/lt-logtail-operator-edit',
        'ClusterRole/lt-logtail-operator-view',
        'ClusterRoleBinding/lt-logtail-operator',
        'Deployment/lt-logtail-operator',
        'NetworkPolicy/lt-logtail-operator',
        'PodDisruptionBudget/lt-logtail-operator',
        'Role/lt-logtail-operator-leader-election',
        'RoleBinding/lt-logtail-operator-leader-election',
        'Service/lt-logtail-operator-metrics',
        'ServiceAccount/lt-logtail-operator',
        'ValidatingAdmissionPolicy/lt-logtail-operator-pod-log-access',
        'ValidatingAdmissionPolicyBinding/lt-logtail-operator-pod-log-access',
      ].sort(),
    );
    for (const o of objs) {
      if (!o.kind.startsWith('Cluster') && !o.kind.startsWith('ValidatingAdmission')) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).to.equal('logtail-system');
    }
  });

  it('runs the operator under the restricted profile with a read-only root filesystem', () => {
    const pod = dep.spec.template.spec;
    const c = operatorContainer(dep);
    expect(pod.securityContext).to.deep.include({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 });
    expect(pod.securityContext?.seccompProfile).to.deep.equal({ type: 'RuntimeDefault' });
    expect(c.securityContext).to.deep.include({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true });
    expect(c.securityContext?.capabilities).to.deep.equal({ drop: ['ALL'] });
    expect(pod.serviceAccountName).to.equal('lt-logtail-operator');
    expect(pod.automountServiceAccountToken).to.equal(true);
    // the only writable path besides a file:// store's claim
    const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
    expect(tmp, 'no /tmp mount').to.not.equal(undefined);
    expect(pod.volumes?.find((v) => v.name === tmp!.name)?.emptyDir).to.have.property('sizeLimit');
  });

  it('gives an S3 store its spool on an emptyDir with a sizeLimit, and the shared read-ahead budget', () => {
    const pod = dep.spec.template.spec;
    const c = operatorContainer(dep);
    const env = envOf(c);
    expect(env).to.include({ LOGTAIL_SPOOL_DIR: '/var/spool/logtail', LOGTAIL_BUFFER_MEMORY: '64Mi' });
    const m = c.volumeMounts?.find((v) => v.mountPath === '/var/spool/logtail');
    expect(m, 'no spool mount').to.not.equal(undefined);
    expect(pod.volumes?.find((v) => v.name === m!.name)?.emptyDir).to.deep.equal({ sizeLimit: '1600Mi' });
  });

  it('probes /healthz and /readyz on the port the operator listens on', () => {
    const c = operatorContainer(dep);
    const env = envOf(c);
    expect(c.livenessProbe?.httpGet).to.deep.equal({ path: '/healthz', port: 'http' });
    expect(c.readinessProbe?.httpGet).to.deep.equal({ path: '/readyz', port: 'http' });
    const port = c.ports?.find((p) => p.name === 'http');
    expect(env.LOGTAIL_HTTP_ADDR).to.equal(`:${port?.containerPort}`);
    const svc = find(objs, 'Service') as unknown as { spec: { selector: Record<string, string>; ports: Array<{ name: string; targetPort: string }> } };
    expect(svc.spec.ports[0]!.targetPort).to.equal('http');
    expect(dep.spec.template.metadata.labels).to.include(svc.spec.selector);
  });

  it('passes settings only through environment variables the operator reads', () => {
    const c = operatorContainer(dep);
    const known = new Set<string>([...Object.values(FLAGS).map((f) => f.env), 'POD_NAMESPACE', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']);
    for (const e of c.env ?? []) expect(known.has(e.name), `${e.name} is not read by the operator`).to.equal(true);
    const env = envOf(c);
    expect(env).to.include({
      LOGTAIL_STORE: 's3://logtail-example/captures',
      AWS_REGION: 'eu-west-1',
      LOGTAIL_LEADER_ELECT: 'true',
      LOGTAIL_LEADER_ELECTION_ID: 'lt-logtail-operator',
      LOGTAIL_MAX_CONCURRENT_STREAMS: '64',
      LOGTAIL_SHUTDOWN_TIMEOUT: '20s',
      LOG_LEVEL: 'info',
      LOGTAIL_REQUIRE_ADMISSION_POLICY: 'true',
      LOGTAIL_METRICS_AUTH: 'false',
      LOGTAIL_ADMISSION_POLICY_NAME: 'lt-logtail-operator-pod-log-access',
      LOGTAIL_ADMISSION_POLICY_BINDING_NAME: 'lt-logtail-operator-pod-log-access',
    });
    expect(env).to.not.have.property('LOGTAIL_WATCH_NAMESPACES');
    expect(env).to.not.have.property('LOGTAIL_S3_FORCE_PATH_STYLE');
    const podNs = c.env!.find((e) => e.name === 'POD_NAMESPACE');
    expect(podNs?.valueFrom).to.deep.equal({ fieldRef: { fieldPath: 'metadata.namespace' } });
  });

  it('takes S3 keys from the named Secret, never as plain values', () => {
    const c = operatorContainer(dep);
    for (const [name, key] of [
      ['AWS_ACCESS_KEY_ID', 'AWS_ACCESS_KEY_ID'],
      ['AWS_SECRET_ACCESS_KEY', 'AWS_SECRET_ACCESS_KEY'],
    ] as const) {
      const e = c.env!.find((x) => x.name === name);
      expect(e?.value, name).to.equal(undefined);
      expect(e?.valueFrom).to.deep.equal({ secretKeyRef: { name: 'logtail-s3', key } });
    }
  });

  it('gives the pod more time to stop than the operator takes to checkpoint', () => {
    // The operator exits at the latest 5 s after --shutdown-timeout.
    expect(dep.spec.template.spec.terminationGracePeriodSeconds).to.be.greaterThan(20 + 5);
  });

  it('binds the operator to exactly the rules of docs/security.md, cluster-wide', () => {
    const cr = find(objs, 'ClusterRole', 'lt-logtail-operator');
    expect(flattenRules(rulesOf(cr))).to.deep.equal(OPERATOR_ROWS);
    const crb = find(objs, 'ClusterRoleBinding', 'lt-logtail-operator') as unknown as { roleRef: { kind: string; name: string }; subjects: unknown[] };
    expect(crb.roleRef).to.include({ kind: 'ClusterRole', name: 'lt-logtail-operator' });
    expect(crb.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'lt-logtail-operator', namespace: 'logtail-system' }]);
  });

  it('limits the Lease rules to the release namespace and to the Lease the operator is told to use', () => {
    const role = find(objs, 'Role', 'lt-logtail-operator-leader-election', 'logtail-system');
    expect(flattenRules(rulesOf(role))).to.deep.equal(['coordination.k8s.io|leases|create|*', 'coordination.k8s.io|leases|get|lt-logtail-operator', 'coordination.k8s.io|leases|update|lt-logtail-operator']);
    expect(envOf(operatorContainer(dep)).LOGTAIL_LEADER_ELECTION_ID).to.equal('lt-logtail-operator');
  });

  it('never grants a wildcard, secrets, exec/attach, node proxy, tokens, impersonate, escalate or bind', () => {
    const forbidden = /\|(\*|secrets|pods\/exec|pods\/attach|pods\/portforward|nodes\/proxy|serviceaccounts\/token|configmaps)\||\|(\*|impersonate|escalate|bind)\|/;
    for (const o of [...all(objs, 'ClusterRole'), ...all(objs, 'Role')]) {
      for (const row of flattenRules(rulesOf(o))) {
        expect(row, `${o.kind}/${o.metadata.name}`).to.not.match(forbidden);
        expect(row.split('|')[0], `${o.kind}/${o.metadata.name}`).to.not.equal('*');
      }
    }
  });

  it('ships the confused-deputy admission policy on CREATE and UPDATE of logtails', () => {
    const vap = find(objs, 'ValidatingAdmissionPolicy') as unknown as {
      spec: { failurePolicy: string; matchConstraints: { resourceRules: Array<{ apiGroups: string[]; operations: string[]; resources: string[] }> }; validations: Array<{ expression: string }> };
    };
    expect(vap.spec.failurePolicy).to.equal('Fail');
    expect(vap.spec.matchConstraints.resourceRules).to.have.length(1);
    expect(vap.spec.matchConstraints.resourceRules[0]).to.deep.include({ apiGroups: ['logtail.dev'], operations: ['CREATE', 'UPDATE'], resources: ['logtails', 'logtailpolicies'] });
    const expr = vap.spec.validations.map((v) => v.expression.replace(/\s+/g, ''));
    expect(expr).to.deep.equal([
      "request.resource.resource!='logtails'||authorizer.group('').resource('pods').subresource('log').namespace(object.metadata.namespace).name(object.spec.podName).check('get').allowed()",
      "request.resource.resource!='logtails'||variables.isOperator||!has(object.spec.holdPod)||!object.spec.holdPod||authorizer.group('').resource('pods').namespace(object.metadata.namespace).name(object.spec.podName).check('update').allowed()",
      "request.resource.resource!='logtailpolicies'||(authorizer.group('').resource('pods').namespace(object.metadata.namespace).check('list').allowed()&&authorizer.group('').resource('pods').subresource('log').namespace(object.metadata.namespace).check('get').allowed())",
      "request.resource.resource!='logtailpolicies'||variables.isOperator||!has(object.spec.template)||!has(object.spec.template.holdPod)||!object.spec.template.holdPod||authorizer.group('').resource('pods').namespace(object.metadata.namespace).check('update').allowed()",
    ]);
    // holdPod's exemption names exactly the operator's ServiceAccount.
    expect((vap.spec as unknown as { variables: Array<{ name: string; expression: string }> }).variables).to.deep.equal([
      { name: 'isOperator', expression: "request.userInfo.username == 'system:serviceaccount:logtail-system:lt-logtail-operator'" },
    ]);
    const binding = find(objs, 'ValidatingAdmissionPolicyBinding') as unknown as { spec: { policyName: string; validationActions: string[] } };
    expect(binding.spec).to.deep.equal({ policyName: 'lt-logtail-operator-pod-log-access', validationActions: ['Deny'] });
  });

  it('aggregates LogTail write into admin/edit and read into view', () => {
    const edit = find(objs, 'ClusterRole', 'lt-logtail-operator-edit');
    const view = find(objs, 'ClusterRole', 'lt-logtail-operator-view');
    expect(edit.metadata.labels).to.include({ 'rbac.authorization.k8s.io/aggregate-to-edit': 'true', 'rbac.authorization.k8s.io/aggregate-to-admin': 'true' });
    expect(edit.metadata.labels).to.not.have.property('rbac.authorization.k8s.io/aggregate-to-view');
    expect(view.metadata.labels).to.include({ 'rbac.authorization.k8s.io/aggregate-to-view': 'true' });
    expect(flattenRules(rulesOf(edit))).to.include.members(['logtail.dev|logtails|create|*', 'logtail.dev|logtails|delete|*', 'logtail.dev|logtails|update|*']);
    expect(flattenRules(rulesOf(edit))).to.include.members(['logtail.dev|logtailpolicies|create|*', 'logtail.dev|logtailpolicies|update|*']);
    expect(flattenRules(rulesOf(edit)).filter((r) => r.startsWith('logtail.dev|logtails/status|'))).to.deep.equal(['logtail.dev|logtails/status|get|*', 'logtail.dev|logtails/status|list|*', 'logtail.dev|logtails/status|watch|*']);
    expect(flattenRules(rulesOf(view)).map((r) => r.split('|')[2])).to.satisfy((verbs: string[]) => verbs.every((v) => ['get', 'list', 'watch'].includes(v)));
  });
});

describe('chart: values', function () {
  this.timeout(60_000);

  it('holdPod.enabled grants patch on pods and sets --enable-hold-pod; off (the default) neither', async () => {
    const operatorRules = (objs: K8sObject[], kind: string, ns?: string) => flattenRules(rulesOf(find(objs, kind, 'lt-logtail-operator', ns)));
    const off = await render({ release: 'lt', namespace: 'logtail-system' });
    const on = await render({ release: 'lt', namespace: 'logtail-system', values: { holdPod: { enabled: true } } });
    expect(operatorRules(off, 'ClusterRole').filter((r) => r.startsWith('core|pods|')).map((r) => r.split('|')[2])).to.not.include('patch');
    expect(operatorRules(on, 'ClusterRole').filter((r) => !operatorRules(off, 'ClusterRole').includes(r))).to.deep.equal(['core|pods|patch|*']);
    const env = (objs: K8sObject[]) => envOf(operatorContainer(find<Deployment>(objs, 'Deployment')));
    expect(env(off)).to.not.have.property('LOGTAIL_ENABLE_HOLD_POD');
    expect(env(on).LOGTAIL_ENABLE_HOLD_POD).to.equal('true');
    const ns = await render({ release: 'lt', namespace: 'ops', values: { holdPod: { enabled: true }, watchNamespaces: ['team-a'] } });
    expect(operatorRules(ns, 'Role', 'team-a')).to.include('core|pods|patch|*');
    expect(await renderFails({ holdPod: { enabled: 'yes' } })).to.match(/holdPod/);
  });

  it('with watchNamespaces, binds a Role in each namespace and nothing cluster-wide but reading its own admission policy by name', async () => {
    const objs = await render({ release: 'lt', namespace: 'ops', values: { watchNamespaces: ['team-a', 'team-b'] } });
    // cluster-scoped objects: the only cluster-wide binding reads the two named admission objects
    expect(all(objs, 'ClusterRoleBinding').map((o) => o.metadata.name)).to.deep.equal(['lt-logtail-operator-admission-policy-reader']);
    expect(flattenRules(rulesOf(find(objs, 'ClusterRole', 'lt-logtail-operator-admission-policy-reader'))).every((r) => r.endsWith('|get|lt-logtail-operator-pod-log-access'))).to.equal(true);
    expect(all(objs, 'ClusterRole').map((o) => o.metadata.name).sort()).to.deep.equal(['lt-logtail-operator-admission-policy-reader', 'lt-logtail-operator-edit', 'lt-logtail-operator-view']);
    const noGate = await render({ release: 'lt', namespace: 'ops', values: { watchNamespaces: ['team-a'], admissionPolicy: { enabled: false, required: false } } });
    expect(all(noGate, 'ClusterRoleBinding')).to.have.length(0);
    for (const ns of ['team-a', 'team-b']) {
      const role = find(objs, 'Role', 'lt-logtail-operator', ns);
      expect(flattenRules(rulesOf(role))).to.deep.equal(OPERATOR_ROWS);
      const rb = find(objs, 'RoleBinding', 'lt-logtail-operator', ns) as unknown as { roleRef: { kind: string; name: string }; subjects: unknown[] };
      expect(rb.roleRef).to.include({ kind: 'Role', name: 'lt-logtail-operator' });
      expect(rb.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'lt-logtail-operator', namespace: 'ops' }]);
    }
    const dep = find<Deployment>(objs, 'Deployment');
    expect(envOf(operatorContainer(dep)).LOGTAIL_WATCH_NAMESPACES).to.equal('team-a,team-b');
    // the Lease stays in the release namespace
    expect(find(objs, 'Role', 'lt-logtail-operator-leader-election').metadata.namespace).to.equal('ops');
  });

  it('refuses a file:// store without a PersistentVolumeClaim', async () => {
    const stderr = await renderFails({ store: { url: 'file:///var/lib/logtail' } });
    expect(stderr).to.match(/file:\/\/ store, which needs store\.filesystem\.existingClaim/);
  });

  it('mounts a file:// store on its PersistentVolumeClaim at the store directory', async () => {
    const objs = await render({ valuesFiles: [FILE_VALUES] });
    const dep = find<Deployment>(objs, 'Deployment');
    const c = operatorContainer(dep);
    const mount = c.volumeMounts?.find((m) => m.mountPath === '/var/lib/logtail');
    expect(mount, JSON.stringify(c.volumeMounts)).to.not.equal(undefined);
    const vol = dep.spec.template.spec.volumes?.find((v) => v.name === mount!.name);
    expect(vol?.persistentVolumeClaim).to.deep.equal({ claimName: 'logtail-captures' });
    const env = envOf(c);
    expect(env.LOGTAIL_STORE).to.equal('file:///var/lib/logtail');
    expect(env).to.not.have.property('AWS_REGION');
    // no S3 parts, no spool
    expect(env).to.not.have.property('LOGTAIL_SPOOL_DIR');
    expect(c.volumeMounts?.some((v) => v.mountPath === '/var/spool/logtail')).to.equal(false);
    expect(c.env!.some((e) => e.name.startsWith('AWS_'))).to.equal(false);
  });

  it('refuses a file:// store that is relative or would sit on /tmp or /', async () => {
    for (const url of ['file://./data', 'file:///', 'file:///tmp/store']) {
      const stderr = await renderFails({ store: { url, filesystem: { existingClaim: 'pvc' } } });
      expect(stderr, url).to.match(/absolute directory|not a usable mount point|does not match pattern/);
    }
  });

  it('refuses to render without a store, or with an unsupported one', async () => {
    expect(await renderFails({}, [])).to.match(/store\.url is required/);
    expect(await renderFails({ store: { url: 'gs://bucket' } })).to.match(/does not match pattern|only s3:\/\/ and file:\/\//);
    expect(await renderFails({ store: { url: 's3://X' } })).to.match(/valid bucket name/);
  });

  it('has no value that takes an S3 key as plain text (the schema refuses one)', async () => {
    const stderr = await renderFails({ store: { credentials: { secretAccessKey: 'plain' } } });
    expect(stderr).to.match(/additional properties 'secretAccessKey' not allowed|secretAccessKey/);
  });

  it('schema refuses unknown keys and bad types', async () => {
    expect(await renderFails({ replicaCont: 3 })).to.match(/replicaCont/);
    expect(await renderFails({ maxConcurrentStreams: 0 })).to.match(/maxConcurrentStreams/);
    expect(await renderFails({ idleTimeout: '10 seconds' })).to.match(/idleTimeout/);
    expect(await renderFails({ watchNamespaces: ['Not_A_Namespace'] })).to.match(/watchNamespaces/);
  });

  it('refuses several replicas without leader election or sharding, and a grace period shorter than the shutdown', async () => {
    expect(await renderFails({ replicaCount: 2, leaderElection: { enabled: false } })).to.match(/needs leaderElection\.enabled or sharding\.enabled/);
    expect(await renderFails({ sharding: { enabled: true, leaseDuration: '15 seconds' } })).to.match(/leaseDuration/);
    expect(await renderFails({ podDisruptionBudget: { maxUnavailable: 0 } })).to.match(/maxUnavailable/);
    expect(await renderFails({ terminationGracePeriodSeconds: 20 })).to.match(/terminationGracePeriodSeconds/);
  });

  it('sharding: N replicas that all capture, one Lease each (named by the pod, which owns it), a Role for exactly that, and a PodDisruptionBudget', async () => {
    const objs = await render({ release: 'lt', namespace: 'logtail-system', values: { replicaCount: 3, sharding: { enabled: true, leaseDuration: '20s' } } });
    const dep = find<Deployment>(objs, 'Deployment', 'lt-logtail-operator', 'logtail-system');
    expect(dep.spec.replicas).to.equal(3);
    const c = operatorContainer(dep);
    const env = envOf(c);
    expect(env).to.include({ LOGTAIL_SHARD: 'true', LOGTAIL_SHARD_LEASE_DURATION: '20s', LOGTAIL_LEADER_ELECT: 'false', LOGTAIL_LEADER_ELECTION_ID: 'lt-logtail-operator' });
    expect(c.env!.find((e) => e.name === 'POD_NAME')?.valueFrom).to.deep.equal({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(c.env!.find((e) => e.name === 'POD_UID')?.valueFrom).to.deep.equal({ fieldRef: { fieldPath: 'metadata.uid' } });
    // every variable is one the operator reads (the pod's name and UID: the shard id and the Lease's owner)
    const known = new Set<string>([...Object.values(FLAGS).map((f) => f.env), 'POD_NAMESPACE', 'POD_NAME', 'POD_UID', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']);
    for (const e of c.env ?? []) expect(known.has(e.name), `${e.name} is not read by the operator`).to.equal(true);
    // the single-Lease leader election Role is replaced by the sharding one, in the release namespace only
    expect(objs.some((o) => o.metadata.name.endsWith('-leader-election'))).to.equal(false);
    const role = find(objs, 'Role', 'lt-logtail-operator-sharding', 'logtail-system');
    expect(flattenRules(rulesOf(role))).to.deep.equal(['coordination.k8s.io|leases|create|*', 'coordination.k8s.io|leases|get|*', 'coordination.k8s.io|leases|list|*', 'coordination.k8s.io|leases|update|*']);
    const rb = find(objs, 'RoleBinding', 'lt-logtail-operator-sharding', 'logtail-system') as unknown as { roleRef: { name: string }; subjects: unknown[] };
    expect(rb.roleRef.name).to.equal('lt-logtail-operator-sharding');
    expect(rb.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'lt-logtail-operator', namespace: 'logtail-system' }]);
    // claims are annotation patches: covered by the operator's existing patch on logtails, nothing added cluster-wide
    expect(flattenRules(rulesOf(find(objs, 'ClusterRole', 'lt-logtail-operator')))).to.deep.equal(OPERATOR_ROWS);
    const pdb = find(objs, 'PodDisruptionBudget', 'lt-logtail-operator', 'logtail-system') as unknown as { spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } } };
    expect(pdb.spec.maxUnavailable).to.equal(1);
    expect(dep.spec.template.metadata.labels).to.include(pdb.spec.selector.matchLabels);
  });

  it('renders no PodDisruptionBudget for one replica or when turned off', async () => {
    const one = await render({ values: { replicaCount: 1 } });
    expect(one.some((o) => o.kind === 'PodDisruptionBudget')).to.equal(false);
    const off = await render({ values: { podDisruptionBudget: { enabled: false } } });
    expect(off.some((o) => o.kind === 'PodDisruptionBudget')).to.equal(false);
  });

  it('without leader election: one replica, no Lease Role, the operator told not to elect', async () => {
    const objs = await render({ values: { replicaCount: 1, leaderElection: { enabled: false } } });
    expect(objs.some((o) => o.metadata.name.endsWith('-leader-election'))).to.equal(false);
    expect(objs.some((o) => o.metadata.name.endsWith('-sharding'))).to.equal(false);
    const env = envOf(operatorContainer(find<Deployment>(objs, 'Deployment')));
    expect(env.LOGTAIL_LEADER_ELECT).to.equal('false');
    expect(env).to.not.have.property('LOGTAIL_LEADER_ELECTION_ID');
  });

  it('maps endpoint, path style, region and a session token onto the operator', async () => {
    const objs = await render({
      values: { store: { url: 's3://bkt/p', endpoint: 'https://minio.example:9000', forcePathStyle: false, region: 'x-1', credentials: { existingSecret: 's', sessionTokenKey: 'tok' } } },
    });
    const c = operatorContainer(find<Deployment>(objs, 'Deployment'));
    expect(envOf(c)).to.include({ LOGTAIL_S3_ENDPOINT: 'https://minio.example:9000', LOGTAIL_S3_FORCE_PATH_STYLE: 'false', AWS_REGION: 'x-1' });
    expect(c.env!.find((e) => e.name === 'AWS_SESSION_TOKEN')?.valueFrom).to.deep.equal({ secretKeyRef: { name: 's', key: 'tok' } });
  });

  it('passes no keys at all when no Secret is named (the SDK default chain, e.g. IRSA)', async () => {
    const objs = await render({ values: { store: { credentials: { existingSecret: '' } }, serviceAccount: { annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/r' } } } });
    const c = operatorContainer(find<Deployment>(objs, 'Deployment'));
    expect(c.env!.map((e) => e.name)).to.not.include.members(['AWS_ACCESS_KEY_ID']);
    expect(c.env!.map((e) => e.name)).to.not.include('AWS_SECRET_ACCESS_KEY');
    expect(find(objs, 'ServiceAccount').metadata.annotations).to.deep.equal({ 'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/r' });
  });

  it('renders a ServiceMonitor only when asked, selecting the metrics Service', async () => {
    expect(all(await render(), 'ServiceMonitor')).to.have.length(0);
    const objs = await render({ values: { metrics: { serviceMonitor: { enabled: true, labels: { release: 'prom' } } } } });
    const sm = find(objs, 'ServiceMonitor') as unknown as { metadata: { labels: Record<string, string> }; spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }> } };
    const svc = find(objs, 'Service');
    expect(sm.metadata.labels).to.include({ release: 'prom' });
    expect(svc.metadata.labels).to.include(sm.spec.selector.matchLabels);
    expect(sm.spec.endpoints[0]).to.include({ port: 'http-metrics', path: '/metrics' });
  });

  it('can leave out the admission policy (only together with its requirement) and the aggregated roles', async () => {
    const objs = await render({ values: { admissionPolicy: { enabled: false, required: false }, aggregateRoles: { enabled: false } } });
    expect(objs.map((o) => o.kind)).to.not.include('ValidatingAdmissionPolicy');
    expect(all(objs, 'ClusterRole').map((o) => o.metadata.name)).to.deep.equal(['lt-logtail-operator']);
    expect(envOf(operatorContainer(find<Deployment>(objs, 'Deployment'))).LOGTAIL_REQUIRE_ADMISSION_POLICY).to.equal('false');
    expect(await renderFails({ admissionPolicy: { enabled: false } })).to.match(/admissionPolicy.required needs admissionPolicy.enabled/);
  });

  it('requires the admission policy by default: the operator may read exactly that policy and binding, by name', async () => {
    const objs = await render({ release: 'lt', namespace: 'logtail-system' });
    const role = find(objs, 'ClusterRole', 'lt-logtail-operator-admission-policy-reader');
    expect(flattenRules(rulesOf(role))).to.deep.equal([
      'admissionregistration.k8s.io|validatingadmissionpolicies|get|lt-logtail-operator-pod-log-access',
      'admissionregistration.k8s.io|validatingadmissionpolicybindings|get|lt-logtail-operator-pod-log-access',
    ]);
    const binding = find(objs, 'ClusterRoleBinding', 'lt-logtail-operator-admission-policy-reader') as unknown as { subjects: Array<{ name: string; namespace: string }> };
    expect(binding.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'lt-logtail-operator', namespace: 'logtail-system' }]);
  });

  it('renders a NetworkPolicy by default admitting only the scraper namespace/pods to the HTTP port', async () => {
    type NetPol = K8sObject & { spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: Array<{ from: unknown[]; ports: unknown[] }> } };
    const objs = await render({ release: 'lt', namespace: 'logtail-system' });
    const np = find<NetPol>(objs, 'NetworkPolicy', 'lt-logtail-operator', 'logtail-system');
    const dep = find<Deployment>(objs, 'Deployment');
    expect(dep.spec.template.metadata.labels).to.include(np.spec.podSelector.matchLabels);
    expect(np.spec.policyTypes).to.deep.equal(['Ingress']);
    expect(np.spec.ingress).to.deep.equal([
      {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }],
        ports: [{ protocol: 'TCP', port: 'http' }],
      },
    ]);
    expect(operatorContainer(dep).ports?.map((p) => p.name)).to.deep.equal(['http']);
    const custom = await render({ values: { networkPolicy: { metricsScraper: { namespaceSelector: { matchLabels: { team: 'obs' } }, podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['vmagent'] }] } } } } });
    expect(find<NetPol>(custom, 'NetworkPolicy').spec.ingress[0]!.from).to.deep.equal([{ namespaceSelector: { matchLabels: { team: 'obs' } }, podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['vmagent'] }] } }]);
    const off = await render({ values: { networkPolicy: { enabled: false } } });
    expect(off.map((o) => o.kind)).to.not.include('NetworkPolicy');
  });

  it('metrics.auth: the operator is told to authorize scrapers and may create token and access reviews, nothing more', async () => {
    const objs = await render({ values: { metrics: { auth: { enabled: true }, serviceMonitor: { enabled: true } } } });
    expect(envOf(operatorContainer(find<Deployment>(objs, 'Deployment'))).LOGTAIL_METRICS_AUTH).to.equal('true');
    expect(flattenRules(rulesOf(find(objs, 'ClusterRole', 'lt-logtail-operator-metrics-auth')))).to.deep.equal(['authentication.k8s.io|tokenreviews|create|*', 'authorization.k8s.io|subjectaccessreviews|create|*']);
    const crb = find(objs, 'ClusterRoleBinding', 'lt-logtail-operator-metrics-auth') as unknown as { subjects: Array<{ name: string }> };
    expect(crb.subjects.map((x) => x.name)).to.deep.equal(['lt-logtail-operator']);
    expect(flattenRules(rulesOf(find(objs, 'ClusterRole', 'lt-logtail-operator-metrics-reader')))).to.deep.equal(['<none>|/metrics|get|*']);
    const sm = find(objs, 'ServiceMonitor') as unknown as { spec: { endpoints: Array<Record<string, unknown>> } };
    expect(sm.spec.endpoints[0]!.bearerTokenFile).to.equal('/var/run/secrets/kubernetes.io/serviceaccount/token');
    const plain = await render({});
    expect(plain.filter((o) => /metrics-(auth|reader)$/.test(o.metadata.name))).to.deep.equal([]);
  });

  it('metrics.tls: mounts the Secret, points the operator at it and probes over HTTPS', async () => {
    const objs = await render({ values: { metrics: { tls: { existingSecret: 'logtail-http-tls' } } } });
    const dep = find<Deployment>(objs, 'Deployment');
    const c = operatorContainer(dep);
    expect(envOf(c)).to.include({ LOGTAIL_HTTP_TLS_CERT_FILE: '/etc/logtail/http-tls/tls.crt', LOGTAIL_HTTP_TLS_KEY_FILE: '/etc/logtail/http-tls/tls.key' });
    expect(c.volumeMounts).to.deep.include({ name: 'http-tls', mountPath: '/etc/logtail/http-tls', readOnly: true });
    expect(dep.spec.template.spec.volumes).to.deep.include({ name: 'http-tls', secret: { secretName: 'logtail-http-tls' } } as never);
    expect(c.livenessProbe?.httpGet).to.deep.equal({ path: '/healthz', port: 'http', scheme: 'HTTPS' });
    expect(c.readinessProbe?.httpGet).to.deep.equal({ path: '/readyz', port: 'http', scheme: 'HTTPS' });
  });

  it('maps SSE-S3/SSE-KMS and a CA bundle ConfigMap onto the operator', async () => {
    const objs = await render({ values: { store: { sse: 'aws:kms', sseKmsKeyId: 'alias/logs', caBundle: { existingConfigMap: 'corp-ca', key: 'bundle.pem' } } } });
    const dep = find<Deployment>(objs, 'Deployment');
    const c = operatorContainer(dep);
    expect(envOf(c)).to.include({ LOGTAIL_S3_SSE: 'aws:kms', LOGTAIL_S3_SSE_KMS_KEY_ID: 'alias/logs', LOGTAIL_S3_CA_BUNDLE: '/etc/logtail/s3-ca/bundle.pem' });
    expect(c.volumeMounts).to.deep.include({ name: 's3-ca', mountPath: '/etc/logtail/s3-ca', readOnly: true });
    expect(dep.spec.template.spec.volumes).to.deep.include({ name: 's3-ca', configMap: { name: 'corp-ca' } } as never);
    const s3 = envOf(operatorContainer(find<Deployment>(await render({ values: { store: { sse: 'AES256' } } }), 'Deployment')));
    expect(s3.LOGTAIL_S3_SSE).to.equal('AES256');
    expect(s3).to.not.have.property('LOGTAIL_S3_SSE_KMS_KEY_ID');
    expect(await renderFails({ store: { sseKmsKeyId: 'k' } })).to.match(/store.sseKmsKeyId needs store.sse: aws:kms/);
    expect(await renderFails({ store: { sse: 'rot13' } })).to.match(/sse/);
  });

  it('pins the image by digest, keeping the tag for readability: repository:tag@sha256:…', async () => {
    // an obviously fake digest: no image is published
    const digest = 'sha256:' + '0'.repeat(64);
    const objs = await render({ values: { image: { repository: 'reg.example/logtail-operator', digest } } });
    expect(operatorContainer(find<Deployment>(objs, 'Deployment')).image).to.equal(`reg.example/logtail-operator:0.1.0@${digest}`);
    const tagged = await render({ values: { image: { repository: 'reg.example/logtail-operator', tag: '0.1.0-rc1', digest } } });
    expect(operatorContainer(find<Deployment>(tagged, 'Deployment')).image).to.equal(`reg.example/logtail-operator:0.1.0-rc1@${digest}`);
    expect(await renderFails({ image: { repository: 'r', digest: 'sha256:abc' } })).to.match(/digest/);
    expect(await renderFails({ image: { repository: 'r', digest: '0'.repeat(64) } })).to.match(/digest/);
    const plain = await render({ values: { image: { repository: 'reg.example/logtail-operator' } } });
    expect(operatorContainer(find<Deployment>(plain, 'Deployment')).image).to.equal('reg.example/logtail-operator:0.1.0');
  });
});

describe('chart: NOTES.txt', function () {
  this.timeout(60_000);

  async function notes(values: Record<string, unknown> = {}): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'logtail-notes-'));
    writeFileSync(join(dir, 'values.json'), JSON.stringify(values));
    const r = await helm(['install', 'lt', CHART_DIR, '--namespace', 'logtail-system', '--dry-run=client', '-f', S3_VALUES, '-f', join(dir, 'values.json')]);
    expect(r.code, r.stderr).to.equal(0);
    const i = r.stdout.indexOf('NOTES:\n');
    expect(i, 'no NOTES in the install output').to.be.greaterThan(-1);
    return r.stdout.slice(i + 'NOTES:\n'.length);
  }

  it('shows a first LogTail that is valid for the CRD, how to apply it and how to read its status', async () => {
    const text = await notes({ watchNamespaces: ['team-a'] });
    const block = /^---\n([\s\S]*?)\n---$/m.exec(text);
    expect(block, text).to.not.equal(null);
    const lt = parse(block![1]!) as { apiVersion: string; kind: string; metadata: { name: string; namespace: string }; spec: Record<string, unknown> };
    const crd = parse(readFileSync(CHART_CRD, 'utf8')) as {
      spec: { group: string; names: { kind: string }; versions: Array<{ name: string; schema: { openAPIV3Schema: { properties: { spec: { required: string[]; properties: Record<string, unknown> } } } } }> };
    };
    const version = crd.spec.versions[0]!;
    expect(lt.apiVersion).to.equal(`${crd.spec.group}/${version.name}`);
    expect(lt.kind).to.equal(crd.spec.names.kind);
    const specSchema = version.schema.openAPIV3Schema.properties.spec;
    for (const req of specSchema.required) expect(lt.spec, `required spec.${req}`).to.have.property(req);
    for (const k of Object.keys(lt.spec)) expect(specSchema.properties, `spec.${k} is not in the CRD`).to.have.property(k);
    expect(lt.metadata.namespace, 'the example should sit in a watched namespace').to.equal('team-a');
    expect(text).to.include('kubectl apply -f my-pod-logs.yaml');
    expect(text).to.include('kubectl -n team-a get lt');
    expect(text).to.include('kubectl -n team-a describe lt my-pod-logs');
  });

  it('warns when no S3 credentials Secret is named', async () => {
    expect(await notes({ store: { credentials: { existingSecret: '' } } })).to.match(/default chain/);
    expect(await notes()).to.not.match(/default chain/);
  });
});
