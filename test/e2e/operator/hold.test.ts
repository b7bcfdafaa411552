// spec.holdPod on the real kubelet (kubelet-1, the hollow kubelet: the
// kubelet's own code with a scripted runtime). Every byte is checked against
// the run the runtime recorded. docs/design.md, "Holding the pod", has the
// kubelet facts these cases rest on:
// - a pod that finished and is then deleted keeps its containers, and the
//   kubelet keeps serving their logs, for as long as a finalizer keeps the pod
//   object (measured here: the log endpoint answers the whole log while held);
//   without the hold the object is gone at once and `pods/log` is a 404;
// - a running pod deleted with a grace period is killed at its end, and the
//   kubelet removes the killed containers (logs included) about a second
//   later, held or not: the hold keeps the object, not the log.
//
// One operator with --enable-hold-pod; it is stopped (SIGSTOP) while pods are
// deleted, and later killed and replaced (holds survive a restart, holdTimeout
// counts from the pod's deletionTimestamp, stale holds are swept).
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../../../src/dev/proc.ts';
import { holdFinalizer } from '../../../src/core/hold.ts';
import { createNamespace, uniqueName } from '../fixture.ts';
import { apply, events, getLogTail, logTailManifest, podManifest, startOperator, uriToPath, useOperatorSuite, waitForLogTail, type LogTailObject, type PodOptions } from './harness.ts';

interface PodMeta {
  metadata: { uid: string; finalizers?: string[]; deletionTimestamp?: string };
  status: { phase?: string; containerStatuses?: Array<{ state: { terminated?: { exitCode: number } } }> };
}

type Cond = NonNullable<NonNullable<LogTailObject['status']>['conditions']>[number];
const heldCond = (lt: LogTailObject | undefined): Cond | undefined => lt?.status?.conditions?.find((c) => c.type === 'PodHeld');

describe('holdPod on the real kubelet (kubelet-1)', function () {
  this.timeout(180_000);
  const s = useOperatorSuite({
    namespaces: ['hold'],
    operators: [(x) => ({ args: ['--watch-namespaces', x.ns, '--enable-hold-pod'] })],
    logLines: 80,
    // A failed case may leave a hold behind: a reused cluster must not keep such pods forever.
    afterStop: async ({ c, ns }) => {
      const r = await c.kubectl(['get', 'pods', '-n', ns, '-o', 'name']);
      for (const name of r.stdout.split('\n').filter(Boolean)) await c.kubectl(['patch', name, '-n', ns, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    },
  });

  const pod = (name: string, o: PodOptions): Record<string, unknown> => podManifest(s.ns, name, { nodeName: s.c.kubeletNode, ...o });
  const recorded = (podName: string) => join(s.c.env.LOGTAIL_SIM_DIR!, s.ns, podName, 'main.log');
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  async function getPod(name: string): Promise<PodMeta | undefined> {
    const r = await s.c.kubectl(['get', 'pod', name, '-n', s.ns, '-o', 'json']);
    if (r.code !== 0) {
      if (r.stderr.includes('NotFound')) return undefined;
      throw new Error(r.stderr);
    }
    return JSON.parse(r.stdout) as PodMeta;
  }

  async function until<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const v = await f();
      if (v !== undefined && v !== false) return v;
      await sleep(200);
    }
    throw new Error(`${what}: not within ${timeoutMs} ms`);
  }

  const podGone = (name: string, timeoutMs = 30_000) => until(`pod ${name} gone`, async () => (await getPod(name)) === undefined, timeoutMs);
  const deletePod = async (name: string, grace: number) => {
    const r = await s.c.kubectl(['delete', 'pod', name, '-n', s.ns, `--grace-period=${grace}`, '--wait=false']);
    if (r.code !== 0) throw new Error(r.stderr);
  };
  /** The LogTail once it streams and its hold is on the pod (condition and finalizer). */
  async function heldAndStreaming(name: string, podName: string): Promise<LogTailObject> {
    const lt = await waitForLogTail(s.c, s.ns, name, 60_000, (x) => (x.status?.bytes ?? 0) > 0 && heldCond(x)?.status === 'True');
    const p = await getPod(podName);
    expect(p?.metadata.finalizers, 'the hold finalizer is on the pod').to.include(holdFinalizer(lt.metadata.uid));
    return lt;
  }

  function expectWholeRun(lt: LogTailObject, podName: string): Buffer {
    const cap = lt.status?.containers?.find((x) => x.name === 'main');
    expect(cap?.object, JSON.stringify(lt.status)).to.not.equal(undefined);
    const got = readFileSync(uriToPath(cap!.object!.uri));
    const want = readFileSync(recorded(podName));
    expect(got.length, `stored ${got.length} B, the container wrote ${want.length} B`).to.equal(want.length);
    expect(sha(got)).to.equal(sha(want));
    expect(cap!.object!.sha256).to.equal(sha(want));
    return got;
  }

  it('pods finished, then deleted while the operator is stopped: held pods keep serving the log, captured byte-exact, then go; unheld ones vanish', async () => {
    // 300 lines over ~3 s, exit 0. "held" asks for the hold, "unheld" does not.
    const script = { containers: { main: { lines: 300, lineBytes: 100, linesPerSecond: 100, exitCode: 0 } } };
    for (const name of ['held', 'unheld']) {
      await apply(s.c, pod(name, { script }));
      await apply(s.c, logTailManifest(s.ns, name, { podName: name, ...(name === 'held' ? { holdPod: true } : {}) }));
    }
    await heldAndStreaming('held', 'held');
    await waitForLogTail(s.c, s.ns, 'unheld', 60_000, (x) => (x.status?.bytes ?? 0) > 0);
    expect(heldCond(await getLogTail(s.c, s.ns, 'unheld'))).to.equal(undefined);

    s.op.child.kill('SIGSTOP'); // the operator falls behind
    try {
      for (const name of ['held', 'unheld']) await until(`pod ${name} Succeeded`, async () => (await getPod(name))?.status.phase === 'Succeeded');
      await sleep(1000);
      await Promise.all([deletePod('held', 30), deletePod('unheld', 30)]);
      // Unheld: the kubelet's status manager deletes the finished pod's object at once; its log is unreachable through the API.
      await podGone('unheld', 15_000);
      // Held: the object stays with its deletionTimestamp, and the kubelet keeps serving the whole log (measured).
      for (let i = 0; i < 3; i++) {
        await sleep(2000);
        const p = await getPod('held');
        expect(p?.metadata.deletionTimestamp, 'held pod still there, being deleted').to.be.a('string');
        const logs = await s.c.kubectl(['logs', 'held', '-n', s.ns]);
        expect(logs.code, logs.stderr).to.equal(0);
        expect(sha(Buffer.from(logs.stdout, 'latin1')), 'the kubelet serves the whole log while the pod is held').to.equal(sha(readFileSync(recorded('held'))));
      }
    } finally {
      s.op.child.kill('SIGCONT');
    }

    const held = await waitForLogTail(s.c, s.ns, 'held', 60_000);
    expect([held.status?.phase, held.status?.reason, held.status?.result], JSON.stringify(held.status)).to.deep.equal(['Complete', 'Captured', 'Succeeded']);
    expectWholeRun(held, 'held');
    expect(heldCond(held)).to.deep.include({ status: 'False', reason: 'Released' });
    await podGone('held');

    const unheld = await waitForLogTail(s.c, s.ns, 'unheld', 60_000);
    console.log(`      [unheld] ${unheld.status?.phase}/${unheld.status?.reason}, ${unheld.status?.bytes} B`);
    expect(unheld.status?.phase, 'without the hold the capture cannot finish: the pod is gone').to.not.equal('Complete');
  });

  it('a running pod deleted with a grace period while the operator is stopped: every byte written before the kill, then the pod goes', async () => {
    // 20 lines/s for much longer than the test; deleted with a 6 s grace, the operator stopped for 4 s of it.
    await apply(s.c, pod('midrun', { script: { containers: { main: { lines: 100_000, lineBytes: 80, linesPerSecond: 20, exitCode: 0 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'midrun', { podName: 'midrun', holdPod: true }));
    await heldAndStreaming('midrun', 'midrun');
    s.op.child.kill('SIGSTOP');
    try {
      await deletePod('midrun', 6);
      await sleep(4000);
    } finally {
      s.op.child.kill('SIGCONT');
    }
    const lt = await waitForLogTail(s.c, s.ns, 'midrun', 90_000);
    // Killed at the end of its grace period (137): PodDeleted, result Unknown (docs/status.md).
    expect([lt.status?.phase, lt.status?.reason, lt.status?.result], JSON.stringify(lt.status)).to.deep.equal(['Incomplete', 'PodDeleted', 'Unknown']);
    const got = expectWholeRun(lt, 'midrun');
    expect(got.toString('latin1')).to.not.match(/rpc error|not found|unable to retrieve/);
    expect(heldCond(lt)).to.deep.include({ status: 'False', reason: 'Released' });
    await podGone('midrun');
  });

  it('deleting the LogTail releases the hold before the LogTail goes', async () => {
    await apply(s.c, pod('lt-deleted', { script: { containers: { main: { lines: 100_000, lineBytes: 60, linesPerSecond: 10, exitCode: 0 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'lt-deleted', { podName: 'lt-deleted', holdPod: true }));
    const lt = await heldAndStreaming('lt-deleted', 'lt-deleted');
    const r = await s.c.kubectl(['delete', 'logtail', 'lt-deleted', '-n', s.ns, '--wait=true', '--timeout=30s']);
    expect(r.code, r.stderr).to.equal(0);
    expect((await getPod('lt-deleted'))?.metadata.finalizers ?? []).to.not.include(holdFinalizer(lt.metadata.uid));
    await deletePod('lt-deleted', 1);
    await podGone('lt-deleted');
  });

  it('holdTimeout with the operator running: a capture waiting for a stream slot releases the hold in time and goes on', async () => {
    // A second operator with one stream slot, in its own namespace: "busy" takes the slot, "waits" is held while it waits.
    const ns2 = uniqueName('hold-slot');
    await createNamespace(s.c, ns2);
    const op2 = await startOperator(s.c, { args: ['--watch-namespaces', ns2, '--enable-hold-pod', '--max-concurrent-streams', '1'] });
    try {
      const script = { containers: { main: { lines: 100_000, lineBytes: 60, linesPerSecond: 10, exitCode: 0 } } };
      await apply(s.c, podManifest(ns2, 'busy', { nodeName: s.c.kubeletNode, script }));
      await apply(s.c, logTailManifest(ns2, 'busy', { podName: 'busy' }));
      await waitForLogTail(s.c, ns2, 'busy', 60_000, (x) => (x.status?.bytes ?? 0) > 0);
      await apply(s.c, podManifest(ns2, 'waits', { nodeName: s.c.kubeletNode, script }));
      await apply(s.c, logTailManifest(ns2, 'waits', { podName: 'waits', holdPod: true, holdTimeout: '3s' }));
      const held = await waitForLogTail(s.c, ns2, 'waits', 60_000, (x) => x.status?.reason === 'WaitingForSlot' && heldCond(x)?.status === 'True');
      const d = await s.c.kubectl(['delete', 'pod', 'waits', '-n', ns2, '--grace-period=1', '--wait=false']);
      expect(d.code, d.stderr).to.equal(0);
      const t0 = Date.now();
      const timedOut = await waitForLogTail(s.c, ns2, 'waits', 30_000, (x) => heldCond(x)?.reason === 'HoldTimeout');
      console.log(`      [waits] hold released ${((Date.now() - t0) / 1000).toFixed(1)} s after the delete (grace 1 s + holdTimeout 3 s)`);
      expect(timedOut.status?.phase, 'the capture goes on').to.equal('Pending');
      expect((await events(s.c, ns2, 'waits')).map((e) => e.reason)).to.include('HoldTimeout');
      const gone = await until('pod waits gone', async () => (await s.c.kubectl(['get', 'pod', 'waits', '-n', ns2])).stderr.includes('NotFound'), 30_000);
      expect(gone).to.equal(true);
      expect(held.metadata.uid).to.be.a('string');
      // The slot frees: the capture goes on and finds its pod gone.
      await s.c.kubectl(['delete', 'logtail', 'busy', '-n', ns2, '--wait=false']);
      const end = await waitForLogTail(s.c, ns2, 'waits', 60_000);
      expect(end.status?.reason, JSON.stringify(end.status)).to.equal('PodDeleted');
      expect(heldCond(end)).to.deep.include({ status: 'False', reason: 'HoldTimeout' });
    } finally {
      await op2.stop('SIGTERM');
      await s.c.kubectl(['delete', 'pods,logtails', '--all', '-n', ns2, '--wait=false']);
    }
  });

  it('holds survive an operator restart; holdTimeout counts from the deletion; a hold whose LogTail is gone is swept', async () => {
    const script = { containers: { main: { lines: 100_000, lineBytes: 60, linesPerSecond: 10, exitCode: 0 } } };
    await apply(s.c, pod('timeout', { script }));
    await apply(s.c, logTailManifest(s.ns, 'timeout', { podName: 'timeout', holdPod: true, holdTimeout: '4s' }));
    await apply(s.c, pod('stale', { script }));
    await apply(s.c, logTailManifest(s.ns, 'stale', { podName: 'stale', holdPod: true }));
    await heldAndStreaming('timeout', 'timeout');
    const stale = await heldAndStreaming('stale', 'stale');

    await s.op.stop('SIGKILL');
    // While no operator runs: the pod is deleted, and the other LogTail goes without its finalizer.
    await deletePod('timeout', 1);
    const p = await s.c.kubectl(['patch', 'logtail', 'stale', '-n', s.ns, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    expect(p.code, p.stderr).to.equal(0);
    const d = await s.c.kubectl(['delete', 'logtail', 'stale', '-n', s.ns, '--wait=true', '--timeout=30s']);
    expect(d.code, d.stderr).to.equal(0);
    await sleep(7000); // past the timeout pod's deletionTimestamp + 4 s
    for (const name of ['timeout', 'stale']) expect((await getPod(name))?.metadata.finalizers ?? [], `${name} still held with no operator`).to.have.length.greaterThan(0);

    s.op = await startOperator(s.c, { args: ['--watch-namespaces', s.ns, '--enable-hold-pod'], storeDir: s.op.storeDir });
    await podGone('timeout');
    const lt = await waitForLogTail(s.c, s.ns, 'timeout', 60_000);
    expect(heldCond(lt), JSON.stringify(lt.status)).to.deep.include({ status: 'False', reason: 'HoldTimeout' });
    expect((await events(s.c, s.ns, 'timeout')).map((e) => e.reason)).to.include('HoldTimeout');
    console.log(`      [timeout] ${lt.status?.phase}/${lt.status?.reason}, ${lt.status?.bytes} B`);
    await until('stale hold swept', async () => !((await getPod('stale'))?.metadata.finalizers ?? []).includes(holdFinalizer(stale.metadata.uid)), 30_000);
    await deletePod('stale', 1);
    await podGone('stale');
  });
});
