// Proof on the real apiserver of the chart's confused-deputy guard: a user
// who may create LogTails but not read a pod's logs cannot have the operator
// read them, on CREATE or UPDATE; the same user is admitted once granted
// `get pods/log` on that pod; holdPod needs `update` on the pod. Users are
// impersonated by the admin (--as),
// which the authorizer in the policy's CEL sees as the requesting user.
import { expect } from 'chai';
import { uniqueName } from '../fixture.ts';
import { sleep } from '../../../src/dev/proc.ts';
import { canI, mustKubectl, poll, serviceAccountIdentity, useChartRelease } from './chart-e2e.ts';

const DENIED = /denied request: user (\S+) may not get pods\/log for pod (\S+), so may not create or change a LogTail that captures it/;

function logTail(ns: string, name: string, podName: string, labels: Record<string, string> = {}): string {
  return JSON.stringify({ apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name, namespace: ns, labels }, spec: { podName } });
}

function role(ns: string, name: string, rules: unknown[]): string {
  return JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: ns }, rules });
}

function binding(ns: string, name: string, roleKind: 'Role' | 'ClusterRole', roleName: string, user: string): string {
  return JSON.stringify({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name, namespace: ns },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: roleKind, name: roleName },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user }],
  });
}

function pod(ns: string, name: string): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns }, spec: { containers: [{ name: 'main', image: 'busybox:stable' }] } });
}

describe('chart: confused-deputy admission policy (ValidatingAdmissionPolicy)', function () {
  this.timeout(180_000);
  const user = uniqueName('alice');
  const s = useChartRelease({ release: 'vap', releaseNs: 'chart-vap', namespaces: ['chart-vap-t'], deleteAfter: 'logtails,pods' });

  before(async function () {
    await mustKubectl(s.c, ['apply', '-f', '-'], pod(s.ns, 'target'));
    await mustKubectl(s.c, ['apply', '-f', '-'], pod(s.ns, 'other'));
    // may write LogTails, may not read any pod's logs
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'logtail-writer', [{ apiGroups: ['logtail.dev'], resources: ['logtails'], verbs: ['create', 'get', 'list', 'patch', 'update'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'alice-writer', 'Role', 'logtail-writer', user));
  });

  async function createAs(who: string, name: string, podName: string): Promise<{ code: number | null; stderr: string }> {
    return s.c.kubectl(['create', '-f', '-', `--as=${who}`], { input: logTail(s.ns, name, podName) });
  }

  it('denies a user who may create LogTails but not get pods/log on the pod', async () => {
    // the policy is enforced once the apiserver has compiled it; until then creation may pass
    const stderr = await poll('the policy to deny', 30_000, async () => {
      const r = await createAs(user, 'denied', 'target');
      if (r.code === 0) {
        await mustKubectl(s.c, ['delete', 'logtail', 'denied', '-n', s.ns]);
        return undefined;
      }
      return r.stderr;
    });
    const m = DENIED.exec(stderr);
    expect(m, stderr).to.not.equal(null);
    expect(m![1]).to.equal(user);
    expect(m![2]).to.equal(`${s.ns}/target`);
    // and the LogTail was not stored
    const get = await s.c.kubectl(['get', 'logtail', 'denied', '-n', s.ns]);
    expect(get.stderr).to.match(/NotFound/);
  });

  it("still denies the user when pods/log is granted only on a different pod", async () => {
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'logs-of-other', [{ apiGroups: [''], resources: ['pods/log'], resourceNames: ['other'], verbs: ['get'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'alice-logs-of-other', 'Role', 'logs-of-other', user));
    // the grant takes effect for "other" …
    await poll('a LogTail for the pod the user may read', 15_000, async () => ((await createAs(user, 'other-logs', 'other')).code === 0 ? true : undefined));
    // … and nothing changes for "target"
    const r = await createAs(user, 'still-denied', 'target');
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(DENIED);
  });

  it('admits the same user once granted get pods/log on that pod', async () => {
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'logs-of-target', [{ apiGroups: [''], resources: ['pods/log'], resourceNames: ['target'], verbs: ['get'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'alice-logs-of-target', 'Role', 'logs-of-target', user));
    let last = '';
    await poll('the LogTail to be admitted', 15_000, async () => {
      const r = await createAs(user, 'admitted', 'target');
      last = r.stderr;
      return r.code === 0 ? true : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}; last refusal: ${last}`, { cause: err });
    });
    const lt = JSON.parse(await mustKubectl(s.c, ['get', 'logtail', 'admitted', '-n', s.ns, '-o', 'json'])) as { spec: { podName: string } };
    expect(lt.spec.podName).to.equal('target');
  });

  it('checks UPDATE too: the user loses pods/log and can no longer change the LogTail', async () => {
    await mustKubectl(s.c, ['delete', 'rolebinding', 'alice-logs-of-target', '-n', s.ns]);
    const stderr = await poll('the update to be denied', 15_000, async () => {
      const r = await s.c.kubectl(['label', 'logtail', 'admitted', '-n', s.ns, `touched=${Date.now()}`, '--overwrite', `--as=${user}`]);
      return r.code === 0 ? undefined : r.stderr;
    });
    expect(stderr).to.match(DENIED);
  });
});

describe('chart: admission policy for LogTailPolicies (list pods + get pods/log in the namespace)', function () {
  this.timeout(180_000);
  const user = uniqueName('dave');
  const s = useChartRelease({ release: 'vapp', releaseNs: 'chart-vapp', namespaces: ['chart-vapp-t'], deleteAfter: 'logtailpolicies' });
  const POLICY_DENIED = /denied request: user (\S+) may not list pods and get pods\/log in namespace (\S+), so may not create or change a LogTailPolicy there/;

  before(async function () {
    // may write policies and list pods, may not read any pod's log
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'policy-writer', [{ apiGroups: ['logtail.dev'], resources: ['logtailpolicies'], verbs: ['create', 'get', 'list', 'patch', 'update'] }, { apiGroups: [''], resources: ['pods'], verbs: ['list'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'dave-writer', 'Role', 'policy-writer', user));
  });

  const policy = (name: string) => JSON.stringify({ apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTailPolicy', metadata: { name, namespace: s.ns }, spec: { selector: { matchLabels: { app: 'ci' } } } });

  it('denies a policy author who may list pods but not get pods/log, and admits them once granted', async () => {
    const stderr = await poll('the policy to be denied', 30_000, async () => {
      const r = await s.c.kubectl(['create', '-f', '-', `--as=${user}`], { input: policy('denied') });
      if (r.code === 0) {
        await mustKubectl(s.c, ['delete', 'logtailpolicy', 'denied', '-n', s.ns]);
        return undefined;
      }
      return r.stderr;
    });
    const m = POLICY_DENIED.exec(stderr);
    expect(m, stderr).to.not.equal(null);
    expect(m![1]).to.equal(user);
    expect(m![2]).to.equal(s.ns);
    expect((await s.c.kubectl(['get', 'logtailpolicy', 'denied', '-n', s.ns])).stderr).to.match(/NotFound/);
    // pods/log on one named pod is not enough: a policy reaches every pod
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'one-pod-log', [{ apiGroups: [''], resources: ['pods/log'], resourceNames: ['some-pod'], verbs: ['get'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'dave-one-pod-log', 'Role', 'one-pod-log', user));
    await sleep(2000);
    const one = await s.c.kubectl(['create', '-f', '-', `--as=${user}`], { input: policy('still-denied') });
    expect(one.code).to.not.equal(0);
    expect(one.stderr).to.match(POLICY_DENIED);
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'all-pod-logs', [{ apiGroups: [''], resources: ['pods/log'], verbs: ['get'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'dave-all-pod-logs', 'Role', 'all-pod-logs', user));
    await poll('the policy to be admitted', 15_000, async () => ((await s.c.kubectl(['create', '-f', '-', `--as=${user}`], { input: policy('admitted') })).code === 0 ? true : undefined));
  });

  it('denies a policy author who may get pods/log but not list pods', async () => {
    const eve = uniqueName('eve');
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'policy-writer-logs', [{ apiGroups: ['logtail.dev'], resources: ['logtailpolicies'], verbs: ['create'] }, { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'eve-writer', 'Role', 'policy-writer-logs', eve));
    const stderr = await poll('eve to reach admission', 15_000, async () => {
      const r = await s.c.kubectl(['create', '-f', '-', `--as=${eve}`], { input: policy('by-eve') });
      expect(r.code, 'eve has no list pods and must be refused').to.not.equal(0);
      return POLICY_DENIED.test(r.stderr) ? r.stderr : undefined;
    });
    expect(stderr).to.match(POLICY_DENIED);
  });
});

describe('chart: admission policy for holdPod (update on the pod)', function () {
  this.timeout(180_000);
  const user = uniqueName('hal');
  const s = useChartRelease({ release: 'vaph', releaseNs: 'chart-vaph', namespaces: ['chart-vaph-t'], deleteAfter: 'logtails,logtailpolicies,pods' });
  const HOLD_DENIED = /denied request: user (\S+) may not update pod (\S+), so may not ask for holdPod on it/;
  const POLICY_HOLD_DENIED = /denied request: user (\S+) may not update pods in namespace (\S+), so may not ask for holdPod in a LogTailPolicy there/;
  const held = (name: string, holdPod: boolean) => JSON.stringify({ apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name, namespace: s.ns }, spec: { podName: 'target', holdPod } });
  const heldPolicy = (name: string) => JSON.stringify({ apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTailPolicy', metadata: { name, namespace: s.ns }, spec: { selector: { matchLabels: { app: 'ci' } }, template: { holdPod: true } } });

  before(async function () {
    await mustKubectl(s.c, ['apply', '-f', '-'], pod(s.ns, 'target'));
    // may write LogTails and policies, list pods and read every pod's log: everything but update pods
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'writer', [{ apiGroups: ['logtail.dev'], resources: ['logtails', 'logtailpolicies'], verbs: ['create', 'get', 'patch', 'update'] }, { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'hal-writer', 'Role', 'writer', user));
  });

  it('denies holdPod to a user who may read the log but not update the pod; admits it once granted update on that pod', async () => {
    const stderr = await poll('the hold to be denied', 30_000, async () => {
      const r = await s.c.kubectl(['create', '-f', '-', `--as=${user}`], { input: held('hold', true) });
      if (r.code === 0) {
        await mustKubectl(s.c, ['delete', 'logtail', 'hold', '-n', s.ns]);
        return undefined;
      }
      return r.stderr;
    });
    const m = HOLD_DENIED.exec(stderr);
    expect(m, stderr).to.not.equal(null);
    expect(m![1]).to.equal(user);
    expect(m![2]).to.equal(`${s.ns}/target`);
    // the same LogTail without the hold is admitted
    await mustKubectl(s.c, ['create', '-f', '-', `--as=${user}`], held('no-hold', false));
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'update-target', [{ apiGroups: [''], resources: ['pods'], resourceNames: ['target'], verbs: ['update'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'hal-update-target', 'Role', 'update-target', user));
    await poll('the hold to be admitted', 15_000, async () => ((await s.c.kubectl(['create', '-f', '-', `--as=${user}`], { input: held('hold', true) })).code === 0 ? true : undefined));
    // update on one pod is not enough for a policy, which reaches every pod of the namespace
    const p = await s.c.kubectl(['create', '-f', '-', `--as=${user}`], { input: heldPolicy('held-policy') });
    expect(p.code).to.not.equal(0);
    expect(p.stderr).to.match(POLICY_HOLD_DENIED);
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'update-pods', [{ apiGroups: [''], resources: ['pods'], verbs: ['update'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'hal-update-pods', 'Role', 'update-pods', user));
    await poll('the held policy to be admitted', 15_000, async () => ((await s.c.kubectl(['create', '-f', '-', `--as=${user}`], { input: heldPolicy('held-policy') })).code === 0 ? true : undefined));
  });

  it("admits the operator's own ServiceAccount (a policy's LogTails, its finalizer patches) though it may not update pods", async () => {
    const id = serviceAccountIdentity(s.releaseNs, `${s.release}-logtail-operator`);
    expect(await canI(s.c, id, 'update', 'pods', s.ns)).to.equal(false);
    const r = await s.c.kubectl(['create', '-f', '-', `--as=${id.user}`, ...id.groups.map((g) => `--as-group=${g}`)], { input: held('by-operator', true) });
    expect(r.code, r.stderr).to.equal(0);
    // kubectl patch reads the object first; the operator itself patches without a GET (it reads its cache)
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'logtail-get', [{ apiGroups: ['logtail.dev'], resources: ['logtails'], verbs: ['get'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'operator-get', 'Role', 'logtail-get', id.user));
    const patch = await s.c.kubectl(['patch', 'logtail', 'by-operator', '-n', s.ns, '--type=merge', '-p', '{"metadata":{"finalizers":["logtail.dev/finalizer"]}}', `--as=${id.user}`, ...id.groups.map((g) => `--as-group=${g}`)]);
    expect(patch.code, patch.stderr).to.equal(0);
    // … and another ServiceAccount of the release namespace is not the operator
    const other = serviceAccountIdentity(s.releaseNs, 'someone-else');
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'other-sa-writer', 'Role', 'writer', other.user));
    const o = await s.c.kubectl(['create', '-f', '-', `--as=${other.user}`], { input: held('by-other', true) });
    expect(o.code).to.not.equal(0);
    expect(o.stderr).to.match(HOLD_DENIED);
    await s.c.kubectl(['patch', 'logtail', 'by-operator', '-n', s.ns, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
  });
});

describe('chart: aggregated LogTail roles', function () {
  this.timeout(120_000);
  const s = useChartRelease({ release: 'agg', releaseNs: 'chart-agg', namespaces: ['chart-agg-t'], deleteAfter: 'logtails,pods' });

  before(async function () {
    await mustKubectl(s.c, ['apply', '-f', '-'], pod(s.ns, 'app'));
  });

  // kube-controller-manager folds these into admin/edit/view by their labels;
  // it does not run here, so the roles are bound directly, as aggregation would.
  function roleName(suffix: 'edit' | 'view'): string {
    const r = s.rendered.objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name.endsWith(`-${suffix}`));
    if (!r) throw new Error(`no ${suffix} ClusterRole rendered`);
    return r.metadata.name;
  }

  it('the edit role lets a user with pods/log create, change and delete LogTails', async () => {
    const bob = uniqueName('bob');
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'bob-edit', 'ClusterRole', roleName('edit'), bob));
    await mustKubectl(s.c, ['apply', '-f', '-'], role(s.ns, 'read-logs', [{ apiGroups: [''], resources: ['pods/log'], verbs: ['get'] }]));
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'bob-logs', 'Role', 'read-logs', bob));
    await poll('bob to create a LogTail', 15_000, async () => ((await s.c.kubectl(['create', '-f', '-', `--as=${bob}`], { input: logTail(s.ns, 'by-bob', 'app') })).code === 0 ? true : undefined));
    const del = await s.c.kubectl(['delete', 'logtail', 'by-bob', '-n', s.ns, `--as=${bob}`, '--wait=false']);
    expect(del.code, del.stderr).to.equal(0);
    // the operator alone writes status
    const st = await s.c.kubectl(['auth', 'can-i', 'patch', 'logtails.logtail.dev', '--subresource=status', '-n', s.ns, `--as=${bob}`]);
    expect(st.stdout.trim()).to.equal('no');
  });

  it('the view role lets a user read LogTails but not create them', async () => {
    const carol = uniqueName('carol');
    await mustKubectl(s.c, ['apply', '-f', '-'], binding(s.ns, 'carol-view', 'ClusterRole', roleName('view'), carol));
    await poll('carol to list LogTails', 15_000, async () => ((await s.c.kubectl(['get', 'lt', '-n', s.ns, `--as=${carol}`])).code === 0 ? true : undefined));
    const r = await s.c.kubectl(['create', '-f', '-', `--as=${carol}`], { input: logTail(s.ns, 'by-carol', 'app') });
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/forbidden: User "[^"]+" cannot create resource "logtails"/);
  });
});
