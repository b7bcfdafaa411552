import { expect } from 'chai';
import {
  POLICY_LABEL,
  decideCreate,
  logTailFor,
  logTailNameFor,
  ownedBy,
  policySelects,
  policyStatus,
  selectorMatches,
  statusEqual,
  type LabelSelector,
  type LogTailPolicy,
  type PodView,
} from '../../../src/core/policy.ts';
import { resolveSpec } from '../../../src/core/spec.ts';

const POLICY_TIME = '2026-11-29T10:00:00Z';

function policy(o: { selector?: LabelSelector; template?: Record<string, unknown>; deleting?: boolean; name?: string } = {}): LogTailPolicy {
  return {
    apiVersion: 'logtail.dev/v1alpha1',
    kind: 'LogTailPolicy',
    metadata: { name: o.name ?? 'ci', namespace: 'ns', uid: 'pol-uid', generation: 3, creationTimestamp: new Date(POLICY_TIME), ...(o.deleting ? { deletionTimestamp: new Date(POLICY_TIME) } : {}) },
    spec: { selector: o.selector ?? { matchLabels: { app: 'ci' } }, ...(o.template ? { template: o.template } : {}) },
  };
}

function pod(o: { name?: string; uid?: string; ns?: string; labels?: Record<string, string>; created?: string; phase?: string; finishedAt?: string } = {}): PodView {
  return {
    metadata: { name: o.name ?? 'build-1', namespace: o.ns ?? 'ns', uid: o.uid ?? 'pod-uid', labels: o.labels ?? { app: 'ci' }, creationTimestamp: o.created ?? '2026-11-29T10:00:05Z' },
    status: { phase: o.phase ?? 'Running', ...(o.finishedAt ? { containerStatuses: [{ state: { terminated: { finishedAt: o.finishedAt } } }] } : {}) },
  };
}

describe('core/policy: selectorMatches (metav1.LabelSelector semantics)', () => {
  const cases: Array<[string, LabelSelector | undefined, Record<string, string> | undefined, boolean]> = [
    ['missing selector matches nothing', undefined, { a: '1' }, false],
    ['empty selector matches everything', {}, {}, true],
    ['empty selector matches a pod without labels', {}, undefined, true],
    ['matchLabels equal', { matchLabels: { a: '1' } }, { a: '1', b: '2' }, true],
    ['matchLabels other value', { matchLabels: { a: '1' } }, { a: '2' }, false],
    ['matchLabels key missing', { matchLabels: { a: '1' } }, { b: '1' }, false],
    ['matchLabels empty value needs the key', { matchLabels: { a: '' } }, {}, false],
    ['matchLabels empty value present', { matchLabels: { a: '' } }, { a: '' }, true],
    ['In hit', { matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '2'] }] }, { a: '2' }, true],
    ['In miss', { matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }, { a: '3' }, false],
    ['In without the key', { matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }, {}, false],
    ['NotIn without the key matches', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, {}, true],
    ['NotIn listed value', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, { a: '1' }, false],
    ['NotIn other value', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, { a: '2' }, true],
    ['Exists', { matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: '' }, true],
    ['Exists missing', { matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { b: '' }, false],
    ['DoesNotExist', { matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { b: '1' }, true],
    ['DoesNotExist present', { matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: '1' }, false],
    ['labels and expressions are ANDed', { matchLabels: { a: '1' }, matchExpressions: [{ key: 'b', operator: 'Exists' }] }, { a: '1' }, false],
    ['unknown operator matches nothing', { matchExpressions: [{ key: 'a', operator: 'Gt' as 'In', values: ['1'] }] }, { a: '2' }, false],
    ['key named like an Object method', { matchLabels: { constructor: 'x' } }, {}, false],
  ];
  for (const [name, sel, labels, want] of cases) it(name, () => expect(selectorMatches(sel, labels)).to.equal(want));
});

describe('core/policy: logTailNameFor', () => {
  const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  const cases: Array<[string, string, string, string, RegExp]> = [
    ['short names kept readable', 'ci', 'build-1', 'u1', /^ci-build-1-[0-9a-f]{8}$/],
    ['dots become dashes', 'ci', 'web.example-0', 'u1', /^ci-web-example-0-[0-9a-f]{8}$/],
    ['long names cut to 63 with the hash', 'p'.repeat(40), 'q'.repeat(60), 'u1', new RegExp(`^${'p'.repeat(40)}-${'q'.repeat(13)}-[0-9a-f]{8}$`)],
    ['a cut never ends on a dash', 'a'.repeat(53), 'b', 'u1', new RegExp(`^${'a'.repeat(53)}-[0-9a-f]{8}$`)],
  ];
  for (const [name, p, podName, uid, want] of cases) {
    it(name, () => {
      const n = logTailNameFor(p, podName, uid);
      expect(n).to.match(want);
      expect(n).to.match(LABEL);
      expect(n.length).to.be.at.most(63);
    });
  }
  it('is deterministic, and differs by policy, pod and pod UID', () => {
    expect(logTailNameFor('ci', 'b', 'u')).to.equal(logTailNameFor('ci', 'b', 'u'));
    expect(logTailNameFor('ci', 'b', 'u')).to.equal('ci-b-' + logTailNameFor('ci', 'b', 'u').slice(-8));
    const all = new Set([logTailNameFor('ci', 'b', 'u'), logTailNameFor('ci', 'b', 'v'), logTailNameFor('ci-b', 'x', 'u'), logTailNameFor('ci', 'b-x', 'u'), logTailNameFor('cj', 'b', 'u')]);
    expect(all.size).to.equal(5);
  });
  it('two policies whose readable parts collide still get different names', () => {
    expect(logTailNameFor('a-b', 'c', 'u')).to.not.equal(logTailNameFor('a', 'b-c', 'u'));
  });
});

describe('core/policy: which pods a policy captures', () => {
  const NOW = Date.parse('2026-11-29T12:00:00Z');
  const cases: Array<[string, LogTailPolicy, PodView, boolean, boolean, string]> = [
    ['matching pod created after the policy', policy(), pod(), false, false, 'create'],
    ['pod created in the policy\'s second', policy(), pod({ created: POLICY_TIME }), false, false, 'create'],
    ['pod created before the policy', policy(), pod({ created: '2026-11-29T09:59:59Z' }), false, false, 'not-selected'],
    ['pod not matching', policy(), pod({ labels: { app: 'web' } }), false, false, 'not-selected'],
    ['pod in another namespace', policy(), pod({ ns: 'other' }), false, false, 'not-selected'],
    ['LogTail already in the cache', policy(), pod(), true, false, 'exists'],
    ['created before by this process (deleted since)', policy(), pod(), false, true, 'created-before'],
    ['policy being deleted', policy({ deleting: true }), pod(), false, false, 'policy-deleting'],
    ['finished pod, TTL would have deleted its LogTail', policy({ template: { ttlSecondsAfterFinished: 60 } }), pod({ phase: 'Succeeded', finishedAt: '2026-11-29T11:58:00Z' }), false, false, 'ttl-passed'],
    ['finished pod within the TTL', policy({ template: { ttlSecondsAfterFinished: 600 } }), pod({ phase: 'Succeeded', finishedAt: '2026-11-29T11:58:00Z' }), false, false, 'create'],
    ['finished pod, no TTL', policy(), pod({ phase: 'Failed', finishedAt: '2026-11-29T10:58:00Z' }), false, false, 'create'],
    ['running pod, TTL set', policy({ template: { ttlSecondsAfterFinished: 0 } }), pod(), false, false, 'create'],
  ];
  for (const [name, p, pd, existing, before, want] of cases) {
    it(name, () => {
      const d = decideCreate(p, pd, existing, before, NOW);
      expect(d.create ? 'create' : d.why).to.equal(want);
      if (d.create) expect(d.name).to.equal(logTailNameFor(p.metadata.name!, pd.metadata!.name!, pd.metadata!.uid!));
    });
  }
  it('policySelects needs a pod UID and name', () => {
    expect(policySelects(policy(), { metadata: { ...pod().metadata, uid: undefined } })).to.equal(false);
  });
});

describe('core/policy: the LogTail a policy creates', () => {
  const p = policy({ template: { compression: 'gzip', containers: ['main'], ttlSecondsAfterFinished: 30, podName: 'sneaky' } });
  const lt = logTailFor(p, pod(), 'ci-build-1-xxxx');
  it('takes the template, sets podName to the pod, drops a podName in the template', () => {
    expect(lt.spec).to.deep.equal({ compression: 'gzip', containers: ['main'], ttlSecondsAfterFinished: 30, podName: 'build-1' });
    expect(resolveSpec(lt.spec).ok).to.equal(true);
  });
  it('carries holdPod and holdTimeout to the LogTails it creates', () => {
    const held = logTailFor(policy({ template: { holdPod: true, holdTimeout: '2m' } }), pod(), 'x');
    expect(held.spec).to.deep.equal({ holdPod: true, holdTimeout: '2m', podName: 'build-1' });
    const r = resolveSpec(held.spec);
    expect(r.ok && [r.spec.holdPod, r.spec.holdTimeoutMs]).to.deep.equal([true, 120_000]);
  });
  it('is labelled with the policy and owned by the policy (controller), not by the pod', () => {
    expect(lt.metadata.labels).to.deep.equal({ [POLICY_LABEL]: 'ci' });
    expect(lt.metadata.ownerReferences).to.deep.equal([{ apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTailPolicy', name: 'ci', uid: 'pol-uid', controller: true, blockOwnerDeletion: false }]);
    expect(ownedBy(p, lt)).to.equal(true);
    expect(ownedBy({ ...p, metadata: { ...p.metadata, uid: 'other' } }, lt)).to.equal(false);
  });
});

describe('core/policy: status', () => {
  const p = policy();
  const mk = (phase: string | undefined, owner = true) => {
    const lt = logTailFor(p, pod(), 'x');
    if (!owner) lt.metadata.ownerReferences = [];
    return { ...lt, ...(phase ? { status: { phase } } : {}) };
  };
  it('counts matching pods and owned LogTails by phase', () => {
    const s = policyStatus(p, [pod(), pod({ name: 'b', uid: 'b' }), pod({ labels: {} }), pod({ created: '2026-11-29T09:00:00Z' })], [mk('Complete'), mk('Complete'), mk('Streaming'), mk(undefined), mk('Failed', false)]);
    expect(s).to.deep.equal({ observedGeneration: 3, matchedPods: 2, logTails: 4, phases: { Pending: 1, Streaming: 1, Complete: 2, Incomplete: 0, Failed: 0 } });
    expect(statusEqual(s, { ...s, phases: { ...s.phases } })).to.equal(true);
    expect(statusEqual(s, { ...s, matchedPods: 3 })).to.equal(false);
    expect(statusEqual(undefined, s)).to.equal(false);
  });
});
