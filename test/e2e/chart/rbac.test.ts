// Proof on the real apiserver that the chart's RBAC gives the operator's
// ServiceAccount what it needs and nothing it does not: `kubectl auth can-i`
// as the ServiceAccount (with the groups its token carries), cluster-wide and
// with watchNamespaces. That the allowed set is also enough is shown by
// running the operator with the ServiceAccount's token (operator-sa.test.ts).
import { expect } from 'chai';
import type { TestCluster } from '../fixture.ts';
import { canI, canIList, mustKubectl, serviceAccountIdentity, useChartRelease, type Identity } from './chart-e2e.ts';

type Check = [verb: string, resource: string, extra?: string[]];

/** What the operator's code does, per watched namespace. */
const NEEDED: Check[] = [
  ['list', 'logtails.logtail.dev'],
  ['watch', 'logtails.logtail.dev'],
  ['patch', 'logtails.logtail.dev'],
  ['delete', 'logtails.logtail.dev'],
  ['patch', 'logtails.logtail.dev', ['--subresource=status']],
  ['get', 'pods'],
  ['list', 'pods'],
  ['watch', 'pods'],
  ['get', 'pods', ['--subresource=log']],
  ['create', 'events'],
];

/** What a log reader must never be able to do. */
const FORBIDDEN: Check[] = [
  ['get', 'secrets'],
  ['list', 'secrets'],
  ['watch', 'secrets'],
  ['get', 'configmaps'],
  ['create', 'pods', ['--subresource=exec']],
  ['get', 'pods', ['--subresource=exec']],
  ['create', 'pods', ['--subresource=attach']],
  ['get', 'pods', ['--subresource=attach']],
  ['create', 'pods', ['--subresource=portforward']],
  ['create', 'pods'],
  ['update', 'pods'],
  ['patch', 'pods'],
  ['delete', 'pods'],
  ['deletecollection', 'pods'],
  ['create', 'pods', ['--subresource=eviction']],
  ['create', 'serviceaccounts', ['--subresource=token']],
  // The LogTailPolicy controller creates LogTails (so `create logtails` is
  // granted) and only lists/watches policies and patches their status.
  ['get', 'logtailpolicies.logtail.dev'],
  ['create', 'logtailpolicies.logtail.dev'],
  ['update', 'logtailpolicies.logtail.dev'],
  ['patch', 'logtailpolicies.logtail.dev'],
  ['delete', 'logtailpolicies.logtail.dev'],
  // Verbs the code never uses (issue 12, item 2): the operator PATCHes
  // LogTails and their status, creates Events, and never GETs a LogTail
  // (its informer lists and watches).
  ['get', 'logtails.logtail.dev'],
  ['update', 'logtails.logtail.dev'],
  ['update', 'logtails.logtail.dev', ['--subresource=status']],
  ['get', 'logtails.logtail.dev', ['--subresource=status']],
  ['patch', 'events'],
  ['update', 'events'],
  ['delete', 'events'],
  ['create', 'roles.rbac.authorization.k8s.io'],
  ['create', 'rolebindings.rbac.authorization.k8s.io'],
  ['escalate', 'roles.rbac.authorization.k8s.io'],
  ['bind', 'roles.rbac.authorization.k8s.io'],
  ['update', 'leases.coordination.k8s.io'],
  ['*', '*'],
];

/** Cluster-scoped things, asked once. */
const FORBIDDEN_CLUSTER: Check[] = [
  ['get', 'nodes', ['--subresource=proxy']],
  ['create', 'nodes', ['--subresource=proxy']],
  ['get', 'nodes'],
  ['impersonate', 'users'],
  ['impersonate', 'groups'],
  ['impersonate', 'serviceaccounts'],
  ['escalate', 'clusterroles.rbac.authorization.k8s.io'],
  ['bind', 'clusterroles.rbac.authorization.k8s.io'],
  ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
  ['update', 'customresourcedefinitions.apiextensions.k8s.io'],
  ['update', 'validatingadmissionpolicies.admissionregistration.k8s.io'],
  ['delete', 'validatingadmissionpolicybindings.admissionregistration.k8s.io'],
];

const LIST_ROWS_NEEDED = [
  'logtails.logtail.dev|*|list',
  'logtails.logtail.dev|*|watch',
  'logtails.logtail.dev|*|patch',
  'logtails.logtail.dev|*|delete',
  'logtails.logtail.dev|*|create',
  'logtailpolicies.logtail.dev|*|list',
  'logtailpolicies.logtail.dev|*|watch',
  'logtailpolicies.logtail.dev/status|*|patch',
  'logtails.logtail.dev/status|*|patch',
  'pods|*|get',
  'pods|*|list',
  'pods|*|watch',
  'pods/log|*|get',
  'events|*|create',
];

function label(v: string, r: string, extra: string[] = []): string {
  return [v, r, ...extra].join(' ');
}

async function expectAll(c: TestCluster, id: Identity, checks: Check[], ns: string | undefined, want: boolean): Promise<void> {
  const wrong: string[] = [];
  for (const [verb, resource, extra] of checks) {
    if ((await canI(c, id, verb, resource, ns, extra ?? [])) !== want) wrong.push(label(verb, resource, extra));
  }
  expect(wrong, `${want ? 'denied but needed' : 'allowed but must not be'} (namespace ${ns ?? '<all>'})`).to.deep.equal([]);
}

/** What an unbound ServiceAccount in the same namespace may do (discovery, self reviews, …). */
async function baseline(c: TestCluster, releaseNs: string, ns: string): Promise<Set<string>> {
  const sa = 'baseline-' + Math.random().toString(36).slice(2, 8);
  await mustKubectl(c, ['create', 'serviceaccount', sa, '-n', releaseNs]);
  return canIList(c, serviceAccountIdentity(releaseNs, sa), ns);
}

describe('chart: operator RBAC, cluster-wide (kubectl auth can-i as the ServiceAccount)', function () {
  this.timeout(180_000);
  const s = useChartRelease({ release: 'rbac', releaseNs: 'chart-rbac', namespaces: ['chart-rbac-t'] });
  let sa: Identity;
  let leaseName: string;
  let policyName: string;

  before(function () {
    const spec = s.rendered.deployment.spec.template.spec;
    sa = serviceAccountIdentity(s.releaseNs, spec.serviceAccountName!);
    leaseName = spec.containers[0]!.env!.find((e) => e.name === 'LOGTAIL_LEADER_ELECTION_ID')!.value!;
    policyName = spec.containers[0]!.env!.find((e) => e.name === 'LOGTAIL_ADMISSION_POLICY_NAME')!.value!;
  });

  it('can read its own admission policy and binding by name, and no other', async () => {
    expect(await canI(s.c, sa, 'get', `validatingadmissionpolicies.admissionregistration.k8s.io/${policyName}`, undefined)).to.equal(true);
    expect(await canI(s.c, sa, 'get', `validatingadmissionpolicybindings.admissionregistration.k8s.io/${policyName}`, undefined)).to.equal(true);
    expect(await canI(s.c, sa, 'get', 'validatingadmissionpolicies.admissionregistration.k8s.io/someone-elses', undefined)).to.equal(false);
    expect(await canI(s.c, sa, 'list', 'validatingadmissionpolicies.admissionregistration.k8s.io', undefined)).to.equal(false);
    expect(await canI(s.c, sa, 'update', `validatingadmissionpolicies.admissionregistration.k8s.io/${policyName}`, undefined)).to.equal(false);
    expect(await canI(s.c, sa, 'delete', `validatingadmissionpolicybindings.admissionregistration.k8s.io/${policyName}`, undefined)).to.equal(false);
  });

  it('can do everything the operator does, in any namespace and across all of them', async () => {
    await expectAll(s.c, sa, NEEDED, s.ns, true);
    await expectAll(s.c, sa, NEEDED, s.releaseNs, true);
    await expectAll(s.c, sa, [['list', 'logtails.logtail.dev'], ['watch', 'logtails.logtail.dev'], ['list', 'pods'], ['watch', 'pods']], undefined, true);
  });

  it('can run leader election on its own Lease in the release namespace only', async () => {
    expect(await canI(s.c, sa, 'create', 'leases.coordination.k8s.io', s.releaseNs)).to.equal(true);
    expect(await canI(s.c, sa, 'get', `leases.coordination.k8s.io/${leaseName}`, s.releaseNs)).to.equal(true);
    expect(await canI(s.c, sa, 'update', `leases.coordination.k8s.io/${leaseName}`, s.releaseNs)).to.equal(true);
    expect(await canI(s.c, sa, 'get', 'leases.coordination.k8s.io/someone-elses-lease', s.releaseNs)).to.equal(false);
    expect(await canI(s.c, sa, 'update', 'leases.coordination.k8s.io/someone-elses-lease', s.releaseNs)).to.equal(false);
    expect(await canI(s.c, sa, 'delete', `leases.coordination.k8s.io/${leaseName}`, s.releaseNs)).to.equal(false);
    expect(await canI(s.c, sa, 'create', 'leases.coordination.k8s.io', s.ns)).to.equal(false);
    expect(await canI(s.c, sa, 'get', `leases.coordination.k8s.io/${leaseName}`, s.ns)).to.equal(false);
    expect(await canI(s.c, sa, 'update', `leases.coordination.k8s.io/${leaseName}`, s.ns)).to.equal(false);
  });

  it('cannot read secrets, exec/attach, change pods, proxy to nodes, mint tokens, impersonate or escalate', async () => {
    await expectAll(s.c, sa, FORBIDDEN, s.ns, false);
    await expectAll(s.c, sa, FORBIDDEN, s.releaseNs, false);
    await expectAll(s.c, sa, [['list', 'secrets'], ['watch', 'secrets'], ['get', 'secrets']], undefined, false);
    await expectAll(s.c, sa, FORBIDDEN_CLUSTER, undefined, false);
  });

  it('holds nothing beyond those rules (can-i --list, minus what every ServiceAccount has)', async () => {
    for (const ns of [s.ns, s.releaseNs]) {
      const base = await baseline(s.c, s.releaseNs, ns);
      const rows = [...(await canIList(s.c, sa, ns))].filter((r) => !base.has(r)).sort();
      const want = [...LIST_ROWS_NEEDED];
      if (ns === s.releaseNs) want.push('leases.coordination.k8s.io|*|create', `leases.coordination.k8s.io|${leaseName}|get`, `leases.coordination.k8s.io|${leaseName}|update`);
      // --require-admission-policy (cluster-scoped, so listed in every namespace): its own policy and binding, by name
      want.push(`validatingadmissionpolicies.admissionregistration.k8s.io|${policyName}|get`, `validatingadmissionpolicybindings.admissionregistration.k8s.io|${policyName}|get`);
      expect(rows, `namespace ${ns}`).to.deep.equal(want.sort());
    }
  });
});

describe('chart: operator RBAC with watchNamespaces (namespaced Roles only)', function () {
  this.timeout(180_000);
  const s = useChartRelease({ release: 'wns', releaseNs: 'chart-wns', namespaces: ['chart-wns-a', 'chart-wns-b', 'chart-wns-x'], values: (ns) => ({ watchNamespaces: ns.slice(0, 2) }) });
  const watched = s.namespaces.slice(0, 2);
  const other = s.namespaces[2]!;
  let sa: Identity;

  before(function () {
    sa = serviceAccountIdentity(s.releaseNs, s.rendered.deployment.spec.template.spec.serviceAccountName!);
  });

  it('renders no cluster-wide binding for the operator but the one reading its own admission policy by name', () => {
    expect(s.rendered.objects.filter((o) => o.kind === 'ClusterRoleBinding').map((o) => o.metadata.name)).to.deep.equal([`${s.rendered.deployment.metadata.name}-admission-policy-reader`]);
  });

  it('can do everything the operator does in each watched namespace', async () => {
    for (const ns of watched) await expectAll(s.c, sa, NEEDED, ns, true);
  });

  it('has no access in other namespaces and none across all namespaces', async () => {
    await expectAll(s.c, sa, NEEDED, other, false);
    await expectAll(s.c, sa, NEEDED, s.releaseNs, false);
    await expectAll(s.c, sa, [['list', 'pods'], ['watch', 'pods'], ['list', 'logtails.logtail.dev'], ['watch', 'logtails.logtail.dev'], ['get', 'pods', ['--subresource=log']]], undefined, false);
  });

  it('is still denied secrets, exec/attach, pod changes and node proxy in the watched namespaces', async () => {
    for (const ns of watched) await expectAll(s.c, sa, FORBIDDEN, ns, false);
    await expectAll(s.c, sa, FORBIDDEN_CLUSTER, undefined, false);
  });
});
