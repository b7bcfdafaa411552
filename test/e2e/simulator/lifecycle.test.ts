// Proof that the simulator schedules and plays pods the way a scheduler and
// a kubelet would, as seen through the real apiserver.
import { expect } from 'chai';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { api, apiJson, createNamespace, createPod, getPod, isPhase, kubectlRaw, recorded, waitPod, waitTerminated, watchPod } from './helpers.ts';

describe('node simulator: pod lifecycle', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let ns: string;

  before(async () => {
    c = await cluster();
    ns = uniqueName('sim-life');
    await createNamespace(c, ns);
  });

  it('registers Ready nodes with the kubelet endpoint and renews their leases', async () => {
    for (const name of ['sim-1', 'sim-2']) {
      const n = await apiJson<{ status: { conditions: { type: string; status: string }[]; addresses: { type: string; address: string }[]; daemonEndpoints: { kubeletEndpoint: { Port: number } } } }>(c, 'GET', `/api/v1/nodes/${name}`);
      expect(n.status.conditions.find((x) => x.type === 'Ready')?.status).to.equal('True');
      expect(n.status.addresses).to.deep.include({ type: 'InternalIP', address: '127.0.0.1' });
      expect(n.status.daemonEndpoints.kubeletEndpoint.Port).to.be.greaterThan(0);
      const lease = await apiJson<{ spec: { holderIdentity: string; renewTime: string } }>(c, 'GET', `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`);
      expect(lease.spec.holderIdentity).to.equal(name);
      expect(Date.now() - Date.parse(lease.spec.renewTime)).to.be.lessThan(30_000);
    }
  });

  it('binds an unscheduled pod to a simulated node and runs it to Succeeded', async () => {
    const created = await createPod(c, ns, 'unscheduled', { script: { containers: { app: { lines: 3, lineBytes: 30 } } } });
    expect(created.spec.nodeName).to.equal(undefined);
    const p = await waitPod(c, ns, 'unscheduled', 'Succeeded', isPhase('Succeeded'));
    expect(p!.spec.nodeName).to.match(/^sim-[12]$/);
    expect(p!.status.conditions?.find((x) => x.type === 'PodScheduled')?.status).to.equal('True');
    expect(p!.status.containerStatuses![0]!.state.terminated).to.deep.include({ exitCode: 0, reason: 'Completed' });
    const logs = await kubectlRaw(c, ['logs', '-n', ns, 'unscheduled']);
    expect(logs.stdout.equals(recorded(c, ns, 'unscheduled'))).to.equal(true);
    expect(logs.stdout.length).to.equal(90);
  });

  it('leaves a pod for another scheduler alone', async () => {
    await apiJson(c, 'POST', `/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'other-scheduler' },
      spec: { schedulerName: 'nobody', containers: [{ name: 'app', image: 'busybox' }] },
    });
    await new Promise((r) => setTimeout(r, 1500));
    const p = await getPod(c, ns, 'other-scheduler');
    expect(p!.spec.nodeName).to.equal(undefined);
    expect(p!.status.phase).to.equal('Pending');
  });

  it('fails a pod with a malformed script: phase Failed, reason InvalidSimScript, a Warning event', async () => {
    await createPod(c, ns, 'bad', { script: '{"containers": {"app": {"lines": 5,}}}' });
    const p = await waitPod(c, ns, 'bad', 'Failed', isPhase('Failed'));
    expect(p!.status.reason).to.equal('InvalidSimScript');
    expect(p!.status.message).to.contain('sim.logtail.dev/script');
    const events = await apiJson<{ items: { reason: string; type: string; involvedObject: { name: string; kind: string } }[] }>(c, 'GET', `/api/v1/namespaces/${ns}/events?fieldSelector=involvedObject.name%3Dbad`);
    expect(events.items.some((e) => e.reason === 'InvalidSimScript' && e.type === 'Warning' && e.involvedObject.kind === 'Pod')).to.equal(true);
    // The simulator survived: a later pod still runs.
    await createPod(c, ns, 'after-bad', { script: { containers: { app: { text: 'ok\n' } } } });
    await waitPod(c, ns, 'after-bad', 'Succeeded', isPhase('Succeeded'));
  });

  it('answers logs before the start with the kubelet\'s "waiting to start: ContainerCreating"', async () => {
    await createPod(c, ns, 'slow', { script: { containers: { app: { text: 'late\n', startDelaySeconds: 3 } } } });
    await waitPod(c, ns, 'slow', 'accepted', (p) => p?.status.containerStatuses?.[0]?.state.waiting?.reason === 'ContainerCreating');
    const r = await kubectlRaw(c, ['logs', '-n', ns, 'slow']);
    expect(r.code).to.not.equal(0);
    expect(r.stderr.trim()).to.equal(`Error from server (BadRequest): container "app" in pod "slow" is waiting to start: ContainerCreating`);
    await waitTerminated(c, ns, 'slow');
    expect((await kubectlRaw(c, ['logs', '-n', ns, 'slow'])).stdout.toString()).to.equal('late\n');
  });

  it('restarts per restartPolicy with per-run exit codes; --previous shows the run before while the next one runs, not once the GC removed it', async () => {
    await createPod(c, ns, 'crashy', { restartPolicy: 'OnFailure', script: { containers: { app: { segments: [{ lines: 2, lineBytes: 40 }, { lines: 1, lineBytes: 40, pauseSeconds: 1.5 }], exitCodes: [3, 0] } } } });
    // Run 1 runs: previous = run 0.
    await waitPod(c, ns, 'crashy', 'restarted', (p) => p?.status.containerStatuses?.[0]?.restartCount === 1 && p.status.containerStatuses[0]!.state.running !== undefined);
    const during = await kubectlRaw(c, ['logs', '-n', ns, 'crashy', '--previous']);
    expect(during.stdout.toString()).to.contain('run=0');
    const p = await waitPod(c, ns, 'crashy', 'Succeeded', isPhase('Succeeded'));
    const cs = p!.status.containerStatuses![0]!;
    expect(cs.restartCount).to.equal(1);
    expect(cs.lastState.terminated!.exitCode).to.equal(3);
    expect(cs.state.terminated!.exitCode).to.equal(0);
    const cur = await kubectlRaw(c, ['logs', '-n', ns, 'crashy']);
    expect(cur.stdout.toString()).to.contain('run=1');
    expect(cur.stdout.equals(recorded(c, ns, 'crashy'))).to.equal(true);
    // Run 1's death removed run 0 (the kubelet keeps one dead container): the kubelet
    // answers 200 with its error text as the body, and kubectl exits 0.
    const prev = await kubectlRaw(c, ['logs', '-n', ns, 'crashy', '--previous']);
    expect(prev.code).to.equal(0);
    expect(prev.stdout.toString()).to.equal(`unable to retrieve container logs for ${(cs.lastState.terminated as { containerID?: string }).containerID}`);
  });

  // The kubelet's restart semantics (pkg/kubelet/kubelet_pods.go convertToAPIContainerStatuses,
  // validateContainerLogStatus), seen through the apiserver and kubectl.
  it('during the back-off restartCount stays k and both current and --previous serve run k; run k+1 counts k+1', async () => {
    const app = { lines: 2, lineBytes: 40, holdSeconds: 0.5, exitCodes: [3, 4, 0], restartDelaySeconds: 4, syncSeconds: 0.3, resyncSeconds: 1 };
    const watching = watchPod(c, ns, 'backoff', (e) => e.object.status.phase === 'Succeeded', 30_000);
    await createPod(c, ns, 'backoff', { restartPolicy: 'OnFailure', script: { containers: { app } } });
    // Run 1 starts 0.3 s after run 0 ends; its back-off (4 s) shows as CrashLoopBackOff from 1 s after its exit.
    const p = await waitPod(c, ns, 'backoff', 'CrashLoopBackOff', (x) => x?.status.containerStatuses?.[0]?.state.waiting?.reason === 'CrashLoopBackOff');
    const cs = p!.status.containerStatuses![0]!;
    expect(cs.restartCount).to.equal(1);
    expect(cs.lastState.terminated!.exitCode).to.equal(4);
    const cur = await kubectlRaw(c, ['logs', '-n', ns, 'backoff']);
    const prev = await kubectlRaw(c, ['logs', '-n', ns, 'backoff', '--previous']);
    expect(cur.code, cur.stderr).to.equal(0);
    expect(prev.code, prev.stderr).to.equal(0);
    expect(cur.stdout.toString()).to.contain('run=1');
    expect(prev.stdout.equals(cur.stdout)).to.equal(true);
    const events = await watching;
    const seq = events
      .map((e) => e.object.status.containerStatuses?.[0])
      .filter((x) => x !== undefined)
      .map((x) => `${Object.keys(x.state)[0]}${x.state.waiting ? ':' + x.state.waiting.reason : ''} rc=${x.restartCount} last=${x.lastState.terminated?.exitCode ?? '-'}`)
      .filter((x, i, a) => x !== 'waiting:ContainerCreating rc=0 last=-' && (i === 0 || x !== a[i - 1]));
    expect(seq).to.deep.equal([
      'running rc=0 last=-',
      'terminated rc=0 last=-',
      'running rc=1 last=3',
      'terminated rc=1 last=3',
      'waiting:CrashLoopBackOff rc=1 last=4',
      'running rc=2 last=4',
      'terminated rc=2 last=4',
    ]);
  });

  it('interleaves stdout and stderr in one stream', async () => {
    await createPod(c, ns, 'mixed', { script: { containers: { app: { segments: [{ text: 'out1\n' }, { text: 'err1\n', stream: 'stderr' }, { text: 'out2\n' }] } } } });
    await waitTerminated(c, ns, 'mixed');
    expect((await kubectlRaw(c, ['logs', '-n', ns, 'mixed'])).stdout.toString()).to.equal('out1\nerr1\nout2\n');
  });

  it('deletion with a grace period: 137 when it ends, status written, then the pod is removed', async () => {
    await createPod(c, ns, 'graceful', { restartPolicy: 'Always', script: { containers: { app: { lines: 2, holdSeconds: -1 } } } });
    await waitPod(c, ns, 'graceful', 'Running', isPhase('Running'));
    const watching = watchPod(c, ns, 'graceful', (e) => e.type === 'DELETED', 20_000);
    const t0 = Date.now();
    const del = await api(c, 'DELETE', `/api/v1/namespaces/${ns}/pods/graceful`, { gracePeriodSeconds: 2 });
    expect(del.status).to.equal(200);
    const events = await watching;
    expect(Date.now() - t0).to.be.greaterThan(1500);
    // The kubelet may first write the killed container with the phase still Running, then Failed.
    const killed = events.find((e) => e.object.status.containerStatuses?.[0]?.state.terminated !== undefined && e.object.status.phase === 'Failed');
    expect(killed, 'a status with the terminated container before removal').to.not.equal(undefined);
    expect(killed!.object.status.containerStatuses![0]!.state.terminated).to.deep.include({ exitCode: 137, reason: 'Error' });
    expect(killed!.object.status.phase).to.equal('Failed');
    expect(await getPod(c, ns, 'graceful')).to.equal(null);
  });

  it('deletion with grace 0: the pod vanishes at once', async () => {
    await createPod(c, ns, 'forced', { script: { containers: { app: { lines: 1, holdSeconds: -1 } } } });
    await waitPod(c, ns, 'forced', 'Running', isPhase('Running'));
    const del = await api(c, 'DELETE', `/api/v1/namespaces/${ns}/pods/forced`, { gracePeriodSeconds: 0 });
    expect(del.status).to.equal(200);
    expect(await getPod(c, ns, 'forced')).to.equal(null);
  });

  it('deleteAfterSeconds: the pod is deleted N s after it starts (with deleteGraceSeconds: terminated first)', async () => {
    await createPod(c, ns, 'doomed', { script: { containers: { app: { lines: 1, holdSeconds: -1 } } }, faults: { deleteAfterSeconds: 1 } });
    const watching = watchPod(c, ns, 'doomed', (e) => e.type === 'DELETED', 20_000);
    await waitPod(c, ns, 'doomed', 'Running', isPhase('Running'));
    await watching;

    await createPod(c, ns, 'doomed-grace', { script: { containers: { app: { lines: 1, holdSeconds: -1 } } }, faults: { deleteAfterSeconds: 1, deleteGraceSeconds: 1 } });
    const events = await watchPod(c, ns, 'doomed-grace', (e) => e.type === 'DELETED', 20_000);
    expect(events.some((e) => e.object.metadata.deletionTimestamp !== undefined && e.object.status.containerStatuses?.[0]?.state.terminated?.exitCode === 137)).to.equal(true);
  });
});
