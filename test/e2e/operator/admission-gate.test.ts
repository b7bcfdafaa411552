// --require-admission-policy on the real apiserver (issue 12, item 1): with
// the ValidatingAdmissionPolicy or its binding missing the operator captures
// nothing, says why on each unfinished LogTail and in its log, stays alive
// (healthy, not ready: no crash loop), and starts capturing by itself once
// both are installed.
import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { sleep } from '../../../src/dev/proc.ts';
import { uniqueName } from '../fixture.ts';
import { apply, getLogTail, logTailManifest, podManifest, sha256File, simOutputPath, startOperator, uriToPath, useOperatorSuite, waitForLogTail } from './harness.ts';

function policy(name: string): Record<string, unknown> {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: { resourceRules: [{ apiGroups: ['logtail.dev'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE'], resources: ['logtails'] }] },
      validations: [
        {
          expression: "authorizer.group('').resource('pods').subresource('log').namespace(object.metadata.namespace).name(object.spec.podName).check('get').allowed()",
          message: 'needs get pods/log',
        },
      ],
    },
  };
}

function binding(name: string): Record<string, unknown> {
  return { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name }, spec: { policyName: name, validationActions: ['Deny'] } };
}

describe('operator: --require-admission-policy', function () {
  this.timeout(180_000);
  const name = uniqueName('lt-gate-policy');
  const s = useOperatorSuite({
    namespaces: ['gate'],
    afterStop: async (x) => {
      await x.c.kubectl(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', name, '--ignore-not-found', '--wait=false']);
      await x.c.kubectl(['delete', 'logtails,pods', '--all', '-n', x.ns, '--wait=false']);
    },
  });

  it('with no policy: captures nothing, marks the LogTail AdmissionPolicyMissing, stays up without a crash loop', async () => {
    s.op = await startOperator(s.c, {
      args: ['--require-admission-policy', '--admission-policy-name', name, '--admission-policy-recheck-interval', '1s', '--watch-namespaces', s.ns],
      waitFor: '/healthz',
    });
    await apply(s.c, podManifest(s.ns, 'app', { script: { containers: { main: { lines: 200, lineBytes: 40, linesPerSecond: 2000, exitCode: 0 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'held', { podName: 'app' }));
    const lt = await waitForLogTail(s.c, s.ns, 'held', 30_000, (x) => x.status?.reason === 'AdmissionPolicyMissing');
    expect(lt.status?.phase).to.equal('Pending');
    expect(lt.status?.message).to.match(new RegExp(`ValidatingAdmissionPolicy "${name}" does not exist`));
    const cond = lt.status?.conditions?.find((x) => x.type === 'Streaming');
    expect(cond).to.deep.include({ status: 'False', reason: 'AdmissionPolicyMissing' });
    // Nothing captured, nothing stored, no finalizer taken, and the process lives on.
    await sleep(3_000);
    const again = await getLogTail(s.c, s.ns, 'held');
    expect(again?.status?.phase).to.equal('Pending');
    expect(again?.status?.containers ?? []).to.deep.equal([]);
    expect(again?.metadata.finalizers ?? []).to.deep.equal([]);
    expect(readdirSync(s.op.storeDir)).to.deep.equal([]);
    expect(s.op.child.exitCode).to.equal(null);
    const base = `http://127.0.0.1:${s.op.httpPort}`;
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).to.equal(503);
    expect(await ready.text()).to.match(/--require-admission-policy is set and ValidatingAdmissionPolicy .* does not exist/);
    expect(s.op.log()).to.match(/admission policy missing; not capturing/);
  });

  it('with the policy but no binding: still captures nothing and says the binding is missing', async () => {
    await apply(s.c, policy(name));
    const policyMissing = /ValidatingAdmissionPolicy "[^"]+" does not exist/;
    const lt = await waitForLogTail(s.c, s.ns, 'held', 30_000, (x) => /Binding "[^"]+" does not exist/.test(x.status?.message ?? '') && !policyMissing.test(x.status?.message ?? ''));
    expect(lt.status?.reason).to.equal('AdmissionPolicyMissing');
    expect(lt.status?.phase).to.equal('Pending');
    expect(readdirSync(s.op.storeDir)).to.deep.equal([]);
  });

  it('once policy and binding exist, starts by itself and captures', async () => {
    await apply(s.c, binding(name));
    const lt = await waitForLogTail(s.c, s.ns, 'held', 60_000);
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    const obj = lt.status!.containers![0]!.object!;
    expect(await sha256File(uriToPath(obj.uri))).to.equal(obj.objectSha256);
    expect(obj.sha256).to.equal(await sha256File(simOutputPath(s.c, s.ns, 'app', 'main')));
    expect(s.op.log()).to.match(/admission policy in place/);
    expect((await fetch(`http://127.0.0.1:${s.op.httpPort}/readyz`)).status).to.equal(200);
  });
});
