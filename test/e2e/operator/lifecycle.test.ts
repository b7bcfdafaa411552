// Lifecycle behaviour: restarts, deletion with the finalizer, stream slots,
// TTL, namespace scoping, graceful shutdown, leader failover.
import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../../../src/dev/proc.ts';
import { uniqueName } from '../fixture.ts';
import { apply, createNamespace, events, getLogTail, logTailManifest, podManifest, sha256File, simOutputPath, uriToPath, useOperatorSuite, waitForLogTail } from './harness.ts';

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d, { withFileTypes: true }).map((e) => (e.isDirectory() ? `${e.name}/` : e.name));
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.endsWith('/')) walk(join(d, e.slice(0, -1)));
      else out.push(join(d, e));
    }
  };
  walk(dir);
  return out;
}

describe('operator: lifecycle', function () {
  this.timeout(180_000);
  const s = useOperatorSuite({ namespaces: ['life'] });

  it('stores each instance of a restarting container as its own object', async () => {
    await s.operator();
    // The LogTail first, so the capture sees the first run. The kubelet's
    // container GC keeps one dead container per container by default
    // (cmd/kubelet/app/options MaxPerPodContainerCount 1): run k-1 is removed
    // the moment run k dies, and restart 1 comes at once. So each run lasts
    // 2 s (200 lines at 100/s), time for the capture to prove run k-1's end
    // while run k runs; with 0.5 s runs that race was lost now and then, and
    // the capture then rightly ends Incomplete/ContainerRemoved (the test
    // below and test/unit/runtime/capture-daemon.test.ts).
    await apply(s.c, logTailManifest(s.ns, 'crashy', { podName: 'crashy' }));
    await apply(s.c, podManifest(s.ns, 'crashy', { restartPolicy: 'OnFailure', script: { containers: { main: { lines: 200, lineBytes: 60, linesPerSecond: 100, exitCodes: [2, 2, 0], restartDelaySeconds: 2 } } } }));
    const lt = await waitForLogTail(s.c, s.ns, 'crashy', 90_000);
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    expect(lt.status?.result).to.equal('Succeeded');
    const caps = [...(lt.status?.containers ?? [])].sort((a, b) => a.restart - b.restart);
    expect(caps.map((x) => [x.restart, x.exitCode])).to.deep.equal([
      [0, 2],
      [1, 2],
      [2, 0],
    ]);
    const dir = join(s.c.env.LOGTAIL_SIM_DIR!, s.ns, 'crashy');
    const recorded = [join(dir, 'main.0.log'), join(dir, 'main.1.log'), simOutputPath(s.c, s.ns, 'crashy', 'main')];
    for (let i = 0; i < 3; i++) {
      expect(caps[i]!.object?.uri, `restart ${i}`).to.match(new RegExp(`main-${i}\\.log$`));
      expect(await sha256File(uriToPath(caps[i]!.object!.uri)), `restart ${i}`).to.equal(await sha256File(recorded[i]!));
    }
  });

  /**
   * A pod that ran twice (exit 3, then 0) before its LogTail existed. The
   * kubelet's container GC keeps one dead container per container by default
   * (cmd/kubelet/app/options MaxPerPodContainerCount 1;
   * pkg/kubelet/pod_container_deletor.go getContainersToDeleteInPod): when
   * run 1 died, run 0 was removed with its log, while lastState still names
   * it. A previous=true request then gets 200 with the body `unable to
   * retrieve container logs for <run 0's ID>` (kubelet_pods.go
   * GetKubeletContainerLogs flushes the header with a zero-byte write before
   * kuberuntime_container.go GetContainerLogs fails; server.go appends the
   * error to the body). So run 0 cannot be captured: it is reported, never
   * stored (that text is not its log), and the LogTail is not Complete. Run 1
   * is stored byte-exactly.
   */
  async function lateRestartedPod(name: string, nodeName?: string): Promise<void> {
    const op = await s.operator();
    await apply(s.c, podManifest(s.ns, name, { nodeName, restartPolicy: 'OnFailure', script: { containers: { main: { lines: 50, lineBytes: 60, exitCodes: [3, 0], restartDelaySeconds: 0.2 } } } }));
    const end = Date.now() + 60_000;
    while ((await s.c.kubectl(['get', 'pod', name, '-n', s.ns, '-o', 'jsonpath={.status.phase}'])).stdout !== 'Succeeded') {
      if (Date.now() > end) throw new Error('pod did not finish');
      await sleep(300);
    }
    const pod = JSON.parse((await s.c.kubectl(['get', 'pod', name, '-n', s.ns, '-o', 'json'])).stdout) as { status: { containerStatuses: { lastState: { terminated: { containerID: string } } }[] } };
    const run0 = pod.status.containerStatuses[0]!.lastState.terminated.containerID;
    expect(run0).to.match(/^containerd:\/\/[0-9a-f]{64}$/);
    const prev = await s.c.kubectl(['logs', name, '-n', s.ns, '--previous', '--timestamps']);
    expect(prev.code, prev.stderr).to.equal(0);
    expect(prev.stdout).to.equal(`unable to retrieve container logs for ${run0}`);
    await apply(s.c, logTailManifest(s.ns, name, { podName: name }));
    const lt = await waitForLogTail(s.c, s.ns, name, 60_000);
    expect([lt.status?.phase, lt.status?.reason], lt.status?.message).to.deep.equal(['Incomplete', 'ContainerRemoved']);
    expect(lt.status?.result).to.equal('Succeeded');
    expect(lt.status?.uncapturedRuns).to.deep.equal([{ container: 'main', init: false, fromRestart: 0, toRestart: 0, reason: 'ContainerRemoved' }]);
    const caps = [...(lt.status?.containers ?? [])].sort((a, b) => a.restart - b.restart);
    expect(caps.map((x) => [x.restart, x.state, x.exitCode])).to.deep.equal([[1, 'Stored', 0]]);
    expect(await sha256File(uriToPath(caps[0]!.object!.uri))).to.equal(await sha256File(simOutputPath(s.c, s.ns, name, 'main')));
    // Nothing of run 0 reached the store: only run 1's object (and its .logtail.json record) exists.
    const stored = filesUnder(join(op.storeDir, s.ns, name));
    const base = caps[0]!.object!.uri.replace(/^.*\//, '');
    expect(stored.map((f) => f.replace(/^.*\//, '')).sort()).to.deep.equal([base, `${base}.logtail.json`]);
  }

  it('a pod that restarted before the LogTail existed: the last run byte-exact, the previous one (removed by the kubelet) reported, never stored', async () => {
    await lateRestartedPod('late');
  });

  it('the same on the real kubelet (hollow kubelet node)', async () => {
    await lateRestartedPod('late-k', s.c.kubeletNode);
  });

  it('holds the finalizer while capturing, and on delete aborts the upload and lets the LogTail go', async () => {
    const op = await s.operator();
    await apply(s.c, podManifest(s.ns, 'forever', { script: { containers: { main: { lines: 50, lineBytes: 80, linesPerSecond: 100, holdSeconds: -1 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'forever', { podName: 'forever' }));
    let del;
    try {
      const lt = await waitForLogTail(s.c, s.ns, 'forever', 60_000, (x) => x.status?.phase === 'Streaming' && (x.status?.bytes ?? 0) > 0);
      expect(lt.metadata.finalizers).to.include('logtail.dev/finalizer');
    } finally {
      del = await s.c.kubectl(['delete', 'logtail', 'forever', '-n', s.ns, '--timeout=60s']);
    }
    expect(del.code, del.stderr).to.equal(0);
    expect(await getLogTail(s.c, s.ns, 'forever')).to.equal(undefined);
    // nothing committed, no temp file left behind
    expect(filesUnder(join(op.storeDir, s.ns, 'forever'))).to.deep.equal([]);
    expect(op.log()).to.match(/"stopReason":"Deleted"/);
    await s.c.kubectl(['delete', 'pod', 'forever', '-n', s.ns, '--wait=false']);
  });

  it('queues captures beyond --max-concurrent-streams as Pending/WaitingForSlot', async () => {
    // scoped to this namespace: leftovers elsewhere must not take the slot
    await s.operator({ args: ['--max-concurrent-streams', '1', '--watch-namespaces', s.ns] });
    await apply(s.c, podManifest(s.ns, 'slot-a', { script: { containers: { main: { lines: 60, lineBytes: 80, linesPerSecond: 10 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'slot-a', { podName: 'slot-a' }));
    await waitForLogTail(s.c, s.ns, 'slot-a', 60_000, (x) => x.status?.phase === 'Streaming');
    await apply(s.c, podManifest(s.ns, 'slot-b', { script: { containers: { main: { lines: 10, lineBytes: 80 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'slot-b', { podName: 'slot-b' }));
    const waiting = await waitForLogTail(s.c, s.ns, 'slot-b', 30_000, (x) => x.status?.reason === 'WaitingForSlot');
    expect(waiting.status?.phase).to.equal('Pending');
    const a = await waitForLogTail(s.c, s.ns, 'slot-a', 90_000);
    const b = await waitForLogTail(s.c, s.ns, 'slot-b', 90_000);
    expect([a.status?.phase, b.status?.phase]).to.deep.equal(['Complete', 'Complete']);
  });

  it('deletes a finished LogTail after ttlSecondsAfterFinished, keeping the stored object', async () => {
    await s.operator();
    await apply(s.c, podManifest(s.ns, 'ttl', { script: { containers: { main: { lines: 10, lineBytes: 50 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'ttl', { podName: 'ttl', ttlSecondsAfterFinished: 2 }));
    const lt = await waitForLogTail(s.c, s.ns, 'ttl', 60_000);
    expect(lt.status?.phase).to.equal('Complete');
    const uri = lt.status!.containers![0]!.object!.uri;
    const end = Date.now() + 30_000;
    while ((await getLogTail(s.c, s.ns, 'ttl')) !== undefined) {
      if (Date.now() > end) throw new Error('LogTail not deleted after its TTL');
      await sleep(500);
    }
    expect(await sha256File(uriToPath(uri))).to.equal(await sha256File(simOutputPath(s.c, s.ns, 'ttl', 'main')));
  });

  it('with --watch-namespaces, captures only in those namespaces', async () => {
    const other = uniqueName('life-other');
    await createNamespace(s.c, other);
    await s.operator({ args: ['--watch-namespaces', s.ns] });
    for (const n of [s.ns, other]) {
      await apply(s.c, podManifest(n, 'scoped', { script: { containers: { main: { lines: 10, lineBytes: 50 } } } }));
      await apply(s.c, logTailManifest(n, 'scoped', { podName: 'scoped' }));
    }
    const mine = await waitForLogTail(s.c, s.ns, 'scoped', 60_000);
    expect(mine.status?.phase).to.equal('Complete');
    await sleep(2000);
    const theirs = await getLogTail(s.c, other, 'scoped');
    expect(theirs?.status).to.equal(undefined);
    expect(theirs?.metadata.finalizers ?? []).to.deep.equal([]);
  });

  it('on SIGTERM stops captures and exits 0; the next operator finishes the capture byte-exactly', async () => {
    const op1 = await s.operator();
    await apply(s.c, podManifest(s.ns, 'graceful', { script: { containers: { main: { lines: 3000, lineBytes: 100, linesPerSecond: 500 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'graceful', { podName: 'graceful' }));
    await waitForLogTail(s.c, s.ns, 'graceful', 60_000, (x) => (x.status?.bytes ?? 0) > 20_000);
    const t0 = Date.now();
    const code = await op1.stop('SIGTERM');
    expect(code).to.equal(0);
    expect(Date.now() - t0).to.be.below(20_000);
    expect(op1.log()).to.match(/"stopReason":"OperatorExiting"/);
    await s.operator({ storeDir: op1.storeDir });
    const lt = await waitForLogTail(s.c, s.ns, 'graceful', 90_000);
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    expect(await sha256File(uriToPath(lt.status!.containers![0]!.object!.uri))).to.equal(await sha256File(simOutputPath(s.c, s.ns, 'graceful', 'main')));
    expect((await events(s.c, s.ns, 'graceful')).filter((e) => e.reason === 'Complete')).to.have.length(1);
  });

  it('with two replicas and leader election, the standby takes over a killed leader and finishes its captures', async () => {
    const lease = uniqueName('lease');
    const args = ['--leader-elect', '--leader-election-namespace', s.ns, '--leader-election-id', lease];
    const first = await s.operator({ args });
    await sleep(1000);
    const second = await s.operator({ args, storeDir: first.storeDir });
    await apply(s.c, podManifest(s.ns, 'ha', { script: { containers: { main: { lines: 4000, lineBytes: 100, linesPerSecond: 200 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'ha', { podName: 'ha' }));
    await waitForLogTail(s.c, s.ns, 'ha', 60_000, (x) => (x.status?.bytes ?? 0) > 10_000);
    const holder = (await s.c.kubectl(['get', 'lease', lease, '-n', s.ns, '-o', 'jsonpath={.spec.holderIdentity}'])).stdout;
    const leader = holder.endsWith(`-${first.child.pid}`) ? first : second;
    const standby = leader === first ? second : first;
    expect(holder).to.match(new RegExp(`-${leader.child.pid}$`));
    await leader.stop('SIGKILL');
    const lt = await waitForLogTail(s.c, s.ns, 'ha', 120_000);
    expect(lt.status?.phase, `${lt.status?.message}\n${standby.log().slice(-2000)}`).to.equal('Complete');
    expect(await sha256File(uriToPath(lt.status!.containers![0]!.object!.uri))).to.equal(await sha256File(simOutputPath(s.c, s.ns, 'ha', 'main')));
    const newHolder = (await s.c.kubectl(['get', 'lease', lease, '-n', s.ns, '-o', 'jsonpath={.spec.holderIdentity}'])).stdout;
    expect(newHolder).to.match(new RegExp(`-${standby.child.pid}$`));
  });
});
