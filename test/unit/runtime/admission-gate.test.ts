import { expect } from 'chai';
import { KubeApiError, type KubeApi } from '../../../src/adapters/kube-api.ts';
import { AdmissionGate, admissionPolicyProblems } from '../../../src/runtime/admission-gate.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';

/** A KubeApi answering GETs from a map (404 otherwise) and recording status patches. */
function fakeApi(objects: Map<string, unknown>, patches: Array<{ ns: string; name: string; status: Record<string, unknown> }>): KubeApi {
  return {
    request: async (method: string, path: string) => {
      expect(method).to.equal('GET');
      if (objects.has(path)) return objects.get(path);
      throw new KubeApiError(404, 'NotFound', `GET ${path}: 404`);
    },
    patchLogTailStatus: async (ns: string, name: string, status: Record<string, unknown>) => {
      patches.push({ ns, name, status });
      // like the apiserver: the next list shows the patched status
      for (const v of objects.values()) {
        for (const it of (v as { items?: Array<{ metadata: { namespace: string; name: string }; status?: Record<string, unknown> }> }).items ?? []) {
          if (it.metadata.namespace === ns && it.metadata.name === name) it.status = { ...it.status, ...status };
        }
      }
    },
  } as unknown as KubeApi;
}

const VAP = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/p';
const VAPB = '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/p';
const names = { policy: 'p', binding: 'p' };

describe('runtime/admission-gate (--require-admission-policy)', () => {
  it('names each missing or weakened piece', async () => {
    const objs = new Map<string, unknown>();
    expect(await admissionPolicyProblems(fakeApi(objs, []), names)).to.deep.equal(['ValidatingAdmissionPolicy "p" does not exist', 'ValidatingAdmissionPolicyBinding "p" does not exist']);
    objs.set(VAP, { spec: { failurePolicy: 'Ignore' } });
    objs.set(VAPB, { spec: { policyName: 'other', validationActions: ['Warn'] } });
    const p = await admissionPolicyProblems(fakeApi(objs, []), names);
    expect(p.join('\n')).to.match(/failurePolicy Ignore/).and.match(/binds policy "other"/).and.match(/does not have validationActions Deny/);
    objs.set(VAP, { spec: { failurePolicy: 'Fail' } });
    objs.set(VAPB, { spec: { policyName: 'p', validationActions: ['Deny'] } });
    expect(await admissionPolicyProblems(fakeApi(objs, []), names)).to.deep.equal([]);
  });

  it('while missing, marks every unfinished LogTail once and leaves finished ones alone; starts when the policy appears', async () => {
    const objs = new Map<string, unknown>();
    objs.set('/apis/logtail.dev/v1alpha1/namespaces/a/logtails', {
      items: [
        { metadata: { namespace: 'a', name: 'new' } },
        { metadata: { namespace: 'a', name: 'done' }, status: { phase: 'Complete' } },
        { metadata: { namespace: 'a', name: 'streaming' }, status: { phase: 'Streaming', conditions: [{ type: 'Complete', status: 'False', reason: 'x', message: '', lastTransitionTime: 't' }] } },
      ],
    });
    const patches: Array<{ ns: string; name: string; status: Record<string, unknown> }> = [];
    const gate = new AdmissionGate({ api: fakeApi(objs, patches), logger: silentLogger(), names, watchNamespaces: ['a'], recheckMs: 5, now: () => new Date('2026-11-29T12:00:00Z') });
    const ac = new AbortController();
    const done = gate.waitUntilPresent(ac.signal);
    await new Promise((r) => setTimeout(r, 30));
    expect(gate.blockedBecause()).to.match(/--require-admission-policy is set and ValidatingAdmissionPolicy "p" does not exist/);
    expect(patches.map((p) => p.name).sort()).to.deep.equal(['new', 'streaming']);
    const st = patches.find((p) => p.name === 'streaming')!.status as { phase: string; reason: string; conditions: Array<{ type: string; status: string; reason: string }> };
    expect(st.phase).to.equal('Pending');
    expect(st.reason).to.equal('AdmissionPolicyMissing');
    expect(st.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).to.deep.equal(['Complete=False/x', 'Streaming=False/AdmissionPolicyMissing']);
    objs.set(VAP, { spec: {} });
    objs.set(VAPB, { spec: { policyName: 'p', validationActions: ['Deny'] } });
    expect(await done).to.equal(true);
    expect(gate.blockedBecause()).to.equal(undefined);
  });

  it('gives up when aborted', async () => {
    const gate = new AdmissionGate({ api: fakeApi(new Map([['/apis/logtail.dev/v1alpha1/logtails', { items: [] }]]), []), logger: silentLogger(), names, watchNamespaces: [], recheckMs: 60_000 });
    const ac = new AbortController();
    const done = gate.waitUntilPresent(ac.signal);
    setTimeout(() => ac.abort(), 20);
    expect(await done).to.equal(false);
  });
});
