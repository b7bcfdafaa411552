// LogTailPolicy end to end: real apiserver, the operator as a child process,
// pods played by the node simulator. Matching pods created after the policy
// get one LogTail each (deterministic name, label, owned by the policy) that
// ends Complete with the exact bytes; pods that do not match, or existed
// before the policy, get none.
import { expect } from 'chai';
import { sleep } from '../../../src/dev/proc.ts';
import { logTailNameFor } from '../../../src/core/policy.ts';
import { apply, podManifest, sha256File, simOutputPath, uriToPath, useOperatorSuite, waitForFile, waitForLogTail } from './harness.ts';

interface PolicyObject {
  metadata: { uid: string; creationTimestamp: string };
  status?: { matchedPods?: number; logTails?: number; phases?: Record<string, number>; observedGeneration?: number };
}

describe('operator: LogTailPolicy end to end', function () {
  this.timeout(240_000);
  const s = useOperatorSuite({
    namespaces: ['pol'],
    operators: [{}],
    logLines: 60,
    beforeStop: (x) => x.c.kubectl(['delete', 'logtailpolicies,logtails', '--all', '-n', x.ns, '--wait=false']),
  });

  const script = (lines: number) => ({ containers: { main: { lines, lineBytes: 120, linesPerSecond: 2000, exitCode: 0 } } });
  const labelled = (name: string, labels: Record<string, string>, lines = 3000) => {
    const m = podManifest(s.ns, name, { script: script(lines) }) as { metadata: Record<string, unknown> };
    m.metadata.labels = labels;
    return m;
  };

  async function json<T>(args: string[]): Promise<T> {
    const r = await s.c.kubectl([...args, '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as T;
  }

  it('captures every matching pod created after the policy, byte-exactly, and nothing else', async () => {
    await apply(s.c, labelled('old-build', { app: 'ci' }));
    // creationTimestamp has one-second resolution: the policy must be of a later second
    await sleep(2100);
    await apply(s.c, { apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTailPolicy', metadata: { name: 'ci', namespace: s.ns }, spec: { selector: { matchLabels: { app: 'ci' }, matchExpressions: [{ key: 'skip', operator: 'DoesNotExist' }] }, template: { keyTemplate: 'policy/{logtail}/{container}-{restart}.log' } } });
    const policy = await json<PolicyObject>(['get', 'ltp', 'ci', '-n', s.ns]);
    await apply(s.c, labelled('build-1', { app: 'ci' }));
    await apply(s.c, labelled('build-2', { app: 'ci', tier: 'x' }, 5000));
    await apply(s.c, labelled('web', { app: 'web' }));
    await apply(s.c, labelled('skipped', { app: 'ci', skip: 'yes' }));

    for (const pod of ['build-1', 'build-2']) {
      const p = await json<{ metadata: { uid: string } }>(['get', 'pod', pod, '-n', s.ns]);
      const name = logTailNameFor('ci', pod, p.metadata.uid);
      expect(name).to.match(new RegExp(`^ci-${pod}-[0-9a-f]{8}$`));
      const lt = await waitForLogTail(s.c, s.ns, name, 120_000, (x) => ['Complete', 'Incomplete', 'Failed'].includes(x.status?.phase ?? '') || false);
      expect(lt.status?.phase, JSON.stringify(lt.status)).to.equal('Complete');
      expect(lt.spec).to.deep.equal({ podName: pod, keyTemplate: 'policy/{logtail}/{container}-{restart}.log' });
      const meta = (await json<{ metadata: { labels: Record<string, string>; ownerReferences: Array<Record<string, unknown>> } }>(['get', 'lt', name, '-n', s.ns])).metadata;
      expect(meta.labels).to.include({ 'logtail.dev/policy': 'ci' });
      expect(meta.ownerReferences).to.deep.equal([{ apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTailPolicy', name: 'ci', uid: policy.metadata.uid, controller: true, blockOwnerDeletion: false }]);
      const cap = lt.status!.containers!.find((x) => x.name === 'main')!;
      const recorded = simOutputPath(s.c, s.ns, pod, 'main');
      await waitForFile(recorded);
      expect(await sha256File(uriToPath(cap.object!.uri))).to.equal(await sha256File(recorded));
      expect(cap.object!.sha256).to.equal(await sha256File(recorded));
    }

    // the non-matching and the earlier pods finished long ago (same scripts): still no LogTail for them
    const all = await json<{ items: Array<{ metadata: { name: string }; spec: { podName: string } }> }>(['get', 'lt', '-n', s.ns]);
    expect(all.items.map((x) => x.spec.podName).sort()).to.deep.equal(['build-1', 'build-2']);
    const byLabel = await json<{ items: unknown[] }>(['get', 'lt', '-n', s.ns, '-l', 'logtail.dev/policy=ci']);
    expect(byLabel.items).to.have.length(2);

    // status: 2 matched pods (old-build predates the policy), 2 LogTails, both Complete
    const end = Date.now() + 20_000;
    let st: PolicyObject['status'];
    while (Date.now() < end) {
      st = (await json<PolicyObject>(['get', 'ltp', 'ci', '-n', s.ns])).status;
      if (st?.phases?.Complete === 2) break;
      await sleep(300);
    }
    expect(st).to.deep.include({ matchedPods: 2, logTails: 2 });
    expect(st?.phases).to.deep.equal({ Pending: 0, Streaming: 0, Complete: 2, Incomplete: 0, Failed: 0 });
    const printed = await s.c.kubectl(['get', 'ltp', 'ci', '-n', s.ns]);
    expect(printed.stdout).to.match(/MATCHED\s+LOGTAILS\s+STREAMING\s+COMPLETE/);
  });

  it('does not create a deleted LogTail again while the pod exists', async () => {
    const lts = await json<{ items: Array<{ metadata: { name: string } }> }>(['get', 'lt', '-n', s.ns, '-l', 'logtail.dev/policy=ci']);
    const victim = lts.items[0]!.metadata.name;
    const d = await s.c.kubectl(['delete', 'lt', victim, '-n', s.ns]);
    expect(d.code, d.stderr).to.equal(0);
    // any pod event makes the controller look at the policy again
    await apply(s.c, labelled('web-2', { app: 'web' }, 10));
    await sleep(4000);
    const after = await json<{ items: Array<{ metadata: { name: string } }> }>(['get', 'lt', '-n', s.ns, '-l', 'logtail.dev/policy=ci']);
    expect(after.items.map((x) => x.metadata.name)).to.not.include(victim);
  });
});
