import { expect } from 'chai';
import type { PodJson } from '../../../src/dev/simulator/kube.ts';
import { PodRunner, type PodHost } from '../../../src/dev/simulator/pod-runner.ts';
import { DEFAULT_REQUEST, renderAll } from '../../../src/dev/simulator/render.ts';
import { FAULTS_ANNOTATION, SCRIPT_ANNOTATION } from '../../../src/dev/simulator/script.ts';
import { formatTs, nowNs } from '../../../src/dev/simulator/time.ts';

interface Call {
  method: string;
  path: string;
  body: unknown;
}

type Status = {
  phase: string;
  reason?: string;
  conditions: { type: string; status: string; reason?: string }[];
  containerStatuses: { name: string; state: Record<string, Record<string, unknown>>; lastState: Record<string, Record<string, unknown>>; restartCount: number; ready: boolean }[];
  initContainerStatuses?: { name: string; state: Record<string, Record<string, unknown>> }[];
};

function fakeHost(faults: Record<string, unknown> = {}) {
  const calls: Call[] = [];
  const tls: [string, number][] = [];
  const host: PodHost = {
    rest: {
      request<T>(method: string, path: string, body?: unknown): Promise<T> {
        calls.push({ method, path, body: JSON.parse(JSON.stringify(body ?? null)) });
        return Promise.resolve({} as T);
      },
    },
    simDir: null,
    log: () => undefined,
    openTlsWindow: (node, s) => tls.push([node, s]),
    nodeFaults: () => faults,
    podIp: () => '10.244.1.2',
    terminalPhaseDelayMs: 30,
  };
  const statuses = () => calls.filter((c) => c.method === 'PATCH' && c.path.endsWith('/status')).map((c) => (c.body as { status: Status }).status);
  return { host, calls, tls, statuses, last: () => statuses().at(-1)! };
}

function pod(opts: { script?: unknown; faults?: unknown; restartPolicy?: string; init?: string[]; containers?: string[] } = {}): PodJson {
  const annotations: Record<string, string> = {};
  if (opts.script !== undefined) annotations[SCRIPT_ANNOTATION] = typeof opts.script === 'string' ? opts.script : JSON.stringify(opts.script);
  if (opts.faults !== undefined) annotations[FAULTS_ANNOTATION] = JSON.stringify(opts.faults);
  return {
    metadata: { name: 'p', namespace: 'ns', uid: 'uid-1', annotations },
    spec: {
      nodeName: 'sim-1',
      restartPolicy: opts.restartPolicy ?? 'Never',
      initContainers: (opts.init ?? []).map((name) => ({ name, image: 'busybox' })),
      containers: (opts.containers ?? ['app']).map((name) => ({ name, image: 'busybox' })),
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function logs(r: PodRunner, c: string, previous = false): Promise<string> {
  const t = r.logTarget(c, previous);
  if (!t.ok) throw new Error(t.message);
  return (await renderAll(t.store, DEFAULT_REQUEST)).toString();
}

describe('simulator pod runner', () => {
  it('plays a pod without a script: a few lines, exit 0, Succeeded', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod(), 'sim-1', h.host);
    await r.start();
    const s = h.last();
    expect(s.phase).to.equal('Succeeded');
    expect(s.containerStatuses[0]!.state.terminated).to.include({ exitCode: 0, reason: 'Completed' });
    expect(s.conditions.find((c) => c.type === 'Ready')).to.include({ status: 'False', reason: 'PodCompleted' });
    expect((await logs(r, 'app')).split('\n').length - 1).to.be.greaterThan(0);
  });

  it('shows Running with a ready, started container while it runs', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ script: { containers: { app: { lines: 2, linesPerSecond: 4 } } } }), 'sim-1', h.host);
    const done = r.start();
    await sleep(120);
    const running = h.statuses().find((s) => s.phase === 'Running');
    expect(running, 'a Running status').to.not.equal(undefined);
    expect(running!.containerStatuses[0]).to.deep.include({ ready: true });
    expect(running!.containerStatuses[0]!.state.running).to.have.property('startedAt');
    await done;
    expect(h.last().phase).to.equal('Succeeded');
  });

  // The kubelet's restart semantics (pkg/kubelet/kubelet_pods.go
  // convertToAPIContainerStatuses, validateContainerLogStatus; back-off from
  // kuberuntime_manager.go doBackOff), with the timings shortened.
  it('restarts like the kubelet: terminated run k (restartCount k), CrashLoopBackOff with lastState run k, restartCount k+1 only when run k+1 exists', async () => {
    const h = fakeHost();
    const timeline: { state: string; rc: number; last: number | null; current: string; previous: string }[] = [];
    let runner: PodRunner | null = null;
    const target = (previous: boolean) => {
      const t = runner!.logTarget('app', previous);
      if (t.ok) return t.store;
      // A run removed by the container GC: 200 with the kubelet's error text.
      return t.status === 200 && t.message.startsWith('unable to retrieve container logs for containerd://') ? 'removed' : null;
    };
    const pending: Promise<void>[] = [];
    let finish!: () => void;
    const finished = new Promise<void>((r) => (finish = r));
    const request = h.host.rest.request.bind(h.host.rest);
    h.host.rest = {
      request<T>(method: string, path: string, body?: unknown, ct?: string): Promise<T> {
        if (method === 'PATCH' && runner) {
          const c = (body as { status: Status }).status.containerStatuses[0]!;
          const kind = Object.keys(c.state)[0]!;
          const detail = kind === 'waiting' ? String(c.state.waiting!.reason) : kind === 'terminated' ? `exit ${String(c.state.terminated!.exitCode)}` : '';
          const entry = { state: `${kind} ${detail}`.trim(), rc: c.restartCount, last: (c.lastState.terminated?.exitCode as number | undefined) ?? null, current: '', previous: '' };
          timeline.push(entry);
          // Which run each request serves, read once the pod is done: the generated lines carry `run=K`.
          const cur = target(false);
          const prev = target(true);
          const runOf = async (store: ReturnType<typeof target>) =>
            store === 'removed' ? 'removed' : store ? (/run=(\d+)/.exec((await renderAll(store, DEFAULT_REQUEST)).toString())?.[1] ?? 'empty') : 'error';
          pending.push(
            (async () => {
              await finished;
              entry.current = await runOf(cur);
              entry.previous = await runOf(prev);
            })(),
          );
        }
        return request<T>(method, path, body, ct);
      },
    };
    const timing = { restartDelaySeconds: 0.2, syncSeconds: 0.05, resyncSeconds: 0.1 };
    runner = new PodRunner(pod({ restartPolicy: 'OnFailure', script: { containers: { app: { lines: 1, holdSeconds: 0.05, exitCodes: [2, 3, 4, 0], ...timing } } } }), 'sim-1', h.host);
    const t0 = Date.now();
    await runner.start();
    const elapsed = Date.now() - t0;
    finish();
    await Promise.all(pending);
    const distinct = timeline.filter((e, i) => i === 0 || JSON.stringify(e) !== JSON.stringify(timeline[i - 1]));
    expect(distinct.filter((e) => e.state !== 'waiting ContainerCreating')).to.deep.equal([
      { state: 'running', rc: 0, last: null, current: '0', previous: 'error' },
      { state: 'terminated exit 2', rc: 0, last: null, current: '0', previous: 'error' },
      // Restart 1 is immediate: no CrashLoopBackOff.
      { state: 'running', rc: 1, last: 2, current: '1', previous: '0' },
      // While run 1 shows terminated, current = run 1; previous names run 0, which
      // the container GC removed when run 1 died (one dead container kept).
      { state: 'terminated exit 3', rc: 1, last: 2, current: '1', previous: 'removed' },
      // Back-off: restartCount stays 1, lastState = run 1, both requests serve run 1.
      { state: 'waiting CrashLoopBackOff', rc: 1, last: 3, current: '1', previous: '1' },
      { state: 'running', rc: 2, last: 3, current: '2', previous: '1' },
      { state: 'terminated exit 4', rc: 2, last: 3, current: '2', previous: 'removed' },
      { state: 'waiting CrashLoopBackOff', rc: 2, last: 4, current: '2', previous: '2' },
      { state: 'running', rc: 3, last: 4, current: '3', previous: '2' },
      // The last run ended: the phase stays Running for one write, then Succeeded.
      { state: 'terminated exit 0', rc: 3, last: 4, current: '3', previous: 'removed' },
    ]);
    const s = h.last();
    expect(s.phase).to.equal('Succeeded');
    // 4 runs of ≥50 ms, restart 1 after one sync (50 ms), restarts 2 and 3 after 200 and 400 ms back-off + a sync.
    expect(elapsed).to.be.greaterThanOrEqual(4 * 50 + 50 + 250 + 450 - 20);
    const waiting = h.statuses().map((x) => x.containerStatuses[0]!.state.waiting).filter((w) => w?.reason === 'CrashLoopBackOff');
    expect(waiting.map((w) => w!.message)).to.include('back-off 200ms restarting failed container=app pod=p_ns(uid-1)');
    expect(waiting.map((w) => w!.message)).to.include('back-off 400ms restarting failed container=app pod=p_ns(uid-1)');
  });

  it('shows terminated for at most the resync period before CrashLoopBackOff, and the back-off counts from the exit', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ restartPolicy: 'Always', script: { containers: { app: { lines: 1, holdSeconds: -1, restartDelaySeconds: 1.2, syncSeconds: 0.1, resyncSeconds: 0.3 } } } }), 'sim-1', h.host);
    const done = r.start();
    const kill = () => (r as unknown as { ctrs: { kill: ((c: number) => void) | null }[] }).ctrs[0]!.kill!(1);
    const stateAt = () => {
      const c = h.last().containerStatuses[0]!;
      return `${Object.keys(c.state)[0]} rc=${c.restartCount}`;
    };
    await sleep(30);
    kill(); // run 0 ends: immediate restart, one sync later
    await sleep(250);
    expect(stateAt()).to.equal('running rc=1');
    kill(); // run 1 ends: back-off 1.2 s from now
    await sleep(150);
    expect(stateAt()).to.equal('terminated rc=1');
    await sleep(300); // past the 300 ms resync
    expect(stateAt()).to.equal('waiting rc=1');
    await sleep(550); // ~1 s after the exit: still backing off
    expect(stateAt()).to.equal('waiting rc=1');
    await sleep(500); // 1.2 s + a sync after the exit
    expect(stateAt()).to.equal('running rc=2');
    r.vanish();
    await done;
  });

  it('a pod deleted during the back-off shows the ended run terminated again, lastState the run before', async () => {
    const h = fakeHost();
    const p = pod({ restartPolicy: 'Always', script: { containers: { app: { lines: 1, holdSeconds: 0.03, restartDelaySeconds: 5, syncSeconds: 0.03, resyncSeconds: 0.05 } } } });
    const r = new PodRunner(p, 'sim-1', h.host);
    const done = r.start();
    // run 0 (30 ms), sync (30 ms), run 1 (30 ms), 50 ms terminated, then CrashLoopBackOff for 5 s.
    await sleep(300);
    const during = h.last().containerStatuses[0]!;
    expect(during.state.waiting).to.include({ reason: 'CrashLoopBackOff' });
    expect(during.restartCount).to.equal(1);
    r.update({ ...p, metadata: { ...p.metadata, deletionTimestamp: formatTs(nowNs()) } });
    await done;
    const after = h.statuses().at(-1)!.containerStatuses[0]!;
    expect(after.state.terminated).to.include({ exitCode: 0, reason: 'Completed' });
    expect(after.restartCount).to.equal(1);
    expect(after.lastState.terminated).to.include({ exitCode: 0 });
    expect(await logs(r, 'app')).to.contain('run=1');
    // Run 0 was removed by the container GC when run 1 died.
    const prev = r.logTarget('app', true);
    expect(prev).to.deep.include({ ok: false, status: 200 });
    expect(prev.ok ? '' : prev.message).to.equal(`unable to retrieve container logs for ${String(after.lastState.terminated!.containerID)}`);
  });

  // pkg/kubelet/status/status_manager.go mergePodStatus; pkg/kubelet/status/generate.go; prober_manager.go UpdatePodStatus.
  it('reports the terminal phase only after a write with the containers terminated; PodFailed/PodCompleted reasons; init ready once exited 0', async () => {
    const conds = (x: Status) =>
      x.conditions
        .map((c) => `${c.type}=${c.status}${c.reason ? '/' + c.reason : ''}`)
        .sort()
        .join(',');
    const h = fakeHost();
    const r = new PodRunner(pod({ init: ['setup'], script: { containers: { setup: { lines: 1, holdSeconds: 0.05 }, app: { lines: 1, holdSeconds: 0.05, exitCode: 3 } } } }), 'sim-1', h.host);
    await r.start();
    const seq = h
      .statuses()
      .map((x) => `${x.phase} | ${conds(x)} | setup ${Object.keys(x.initContainerStatuses![0]!.state)[0]} ready=${String((x.initContainerStatuses![0] as { ready?: boolean }).ready)} | app ${Object.keys(x.containerStatuses[0]!.state)[0]}`)
      .filter((x, i, a) => i === 0 || x !== a[i - 1]);
    expect(seq).to.deep.equal([
      'Pending | ContainersReady=False/ContainersNotReady,Initialized=False/ContainersNotInitialized,PodReadyToStartContainers=False/PodSandboxNotReady,PodScheduled=True,Ready=False/ContainersNotReady | setup waiting ready=false | app waiting',
      'Pending | ContainersReady=False/ContainersNotReady,Initialized=False/ContainersNotInitialized,PodReadyToStartContainers=True,PodScheduled=True,Ready=False/ContainersNotReady | setup waiting ready=false | app waiting',
      'Pending | ContainersReady=False/ContainersNotReady,Initialized=False/ContainersNotInitialized,PodReadyToStartContainers=True,PodScheduled=True,Ready=False/ContainersNotReady | setup running ready=false | app waiting',
      'Pending | ContainersReady=False/ContainersNotReady,Initialized=True,PodReadyToStartContainers=True,PodScheduled=True,Ready=False/ContainersNotReady | setup terminated ready=true | app waiting',
      'Running | ContainersReady=True,Initialized=True,PodReadyToStartContainers=True,PodScheduled=True,Ready=True | setup terminated ready=true | app running',
      'Running | ContainersReady=False/PodFailed,Initialized=True,PodReadyToStartContainers=True,PodScheduled=True,Ready=False/PodFailed | setup terminated ready=true | app terminated',
      'Failed | ContainersReady=False/PodFailed,Initialized=True,PodReadyToStartContainers=False/PodSandboxNotReady,PodScheduled=True,Ready=False/PodFailed | setup terminated ready=true | app terminated',
    ]);
    const ok = fakeHost();
    await new PodRunner(pod({ script: { containers: { app: { lines: 1 } } } }), 'sim-1', ok.host).start();
    expect(conds(ok.last())).to.equal('ContainersReady=False/PodCompleted,Initialized=True/PodCompleted,PodReadyToStartContainers=False/PodSandboxNotReady,PodScheduled=True,Ready=False/PodCompleted');
  });

  it('does not restart with restartPolicy Never: Failed with the exit code', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ script: { containers: { app: { lines: 1, exitCode: 7 } } } }), 'sim-1', h.host);
    await r.start();
    expect(h.last().phase).to.equal('Failed');
    expect(h.last().containerStatuses[0]!.state.terminated).to.include({ exitCode: 7, reason: 'Error' });
    expect(r.logTarget('app', true)).to.deep.include({ ok: false, status: 400, message: 'previous terminated container "app" in pod "p" not found' });
  });

  it('runs init containers first; the others wait with PodInitializing', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ init: ['setup'], script: { containers: { setup: { lines: 1, holdSeconds: 0.2 }, app: { lines: 1 } } } }), 'sim-1', h.host);
    const done = r.start();
    await sleep(80);
    expect(r.logTarget('app', false)).to.deep.include({ ok: false, status: 400, message: 'container "app" in pod "p" is waiting to start: PodInitializing' });
    const during = h.last();
    expect(during.phase).to.equal('Pending');
    expect(during.conditions.find((c) => c.type === 'Initialized')).to.include({ status: 'False', reason: 'ContainersNotInitialized' });
    await done;
    expect(h.last().phase).to.equal('Succeeded');
    expect(h.last().initContainerStatuses![0]!.state.terminated).to.include({ exitCode: 0 });
  });

  it('answers log requests before the start with ContainerCreating', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ script: { containers: { app: { lines: 1, startDelaySeconds: 0.2 } } } }), 'sim-1', h.host);
    const done = r.start();
    await sleep(50);
    expect(r.logTarget('app', false)).to.deep.include({ ok: false, status: 400, message: 'container "app" in pod "p" is waiting to start: ContainerCreating' });
    expect(r.logTarget('nope', false)).to.deep.include({ ok: false, status: 404 });
    await done;
    expect(r.logTarget('app', false).ok).to.equal(true);
  });

  it('fails a pod with a malformed script: InvalidSimScript, Warning event', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ script: '{"containers": {"app": {"lines": "many"}}}' }), 'sim-1', h.host);
    await r.start();
    const s = h.last();
    expect(s).to.include({ phase: 'Failed', reason: 'InvalidSimScript' });
    const ev = h.calls.find((c) => c.method === 'POST' && c.path === '/api/v1/namespaces/ns/events');
    expect(ev?.body).to.deep.include({ reason: 'InvalidSimScript', type: 'Warning' });
    expect((ev?.body as { involvedObject: unknown }).involvedObject).to.deep.include({ kind: 'Pod', name: 'p', uid: 'uid-1' });
    expect(r.logTarget('app', false)).to.deep.include({ ok: false, status: 400 });
  });

  it('a malformed faults annotation fails the pod the same way', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ faults: { cutEveryBytes: -1 } }), 'sim-1', h.host);
    await r.start();
    expect(h.last()).to.include({ phase: 'Failed', reason: 'InvalidSimScript' });
  });

  it('deletion with a grace period: running containers get 137 when it ends, status, then a zero-grace delete', async () => {
    const h = fakeHost();
    const p = pod({ restartPolicy: 'Always', script: { containers: { app: { lines: 1, holdSeconds: -1 } } } });
    const r = new PodRunner(p, 'sim-1', h.host);
    const done = r.start();
    await sleep(50);
    const t0 = Date.now();
    r.update({ ...p, metadata: { ...p.metadata, deletionTimestamp: formatTs(nowNs() + 300_000_000n) } });
    await done;
    expect(Date.now() - t0).to.be.greaterThanOrEqual(250);
    const s = h.last();
    expect(s.phase).to.equal('Failed');
    expect(s.containerStatuses[0]!.state.terminated).to.include({ exitCode: 137, reason: 'Error' });
    const del = h.calls.at(-1)!;
    expect(del.method).to.equal('DELETE');
    expect(del.body).to.deep.include({ gracePeriodSeconds: 0, preconditions: { uid: 'uid-1' } });
  });

  it('terminatedDelaySeconds: the phase is terminal while state.terminated stays empty', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ script: { containers: { app: { lines: 1 } } }, faults: { terminatedDelaySeconds: 0.3 } }), 'sim-1', h.host);
    await r.start();
    const early = h.last();
    expect(early.phase).to.equal('Succeeded');
    expect(early.containerStatuses[0]!.state).to.have.property('running');
    expect(early.containerStatuses[0]!.state).to.not.have.property('terminated');
    await sleep(450);
    expect(h.last().containerStatuses[0]!.state.terminated).to.include({ exitCode: 0 });
  });

  it('deleteAfterSeconds deletes the pod after it started; tlsAlertSeconds opens the node window at the start', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ script: { containers: { app: { lines: 1, holdSeconds: 1 } } }, faults: { deleteAfterSeconds: 0.1, deleteGraceSeconds: 5, tlsAlertSeconds: 3 } }), 'sim-1', h.host);
    const done = r.start();
    await sleep(200);
    const del = h.calls.find((c) => c.method === 'DELETE');
    expect(del?.body).to.deep.include({ gracePeriodSeconds: 5 });
    expect(h.tls).to.deep.equal([['sim-1', 3]]);
    r.vanish();
    await done;
  });

  it('runs a sidecar (restartable init container) alongside the main containers and stops it after them', async () => {
    const h = fakeHost();
    const p = pod({ script: { containers: { side: { text: 'side\n', holdSeconds: -1 }, app: { lines: 2, linesPerSecond: 20 } } }, init: ['side'] });
    p.spec.initContainers![0]!.restartPolicy = 'Always';
    const r = new PodRunner(p, 'sim-1', h.host);
    await r.start();
    const s = h.last();
    expect(s.phase).to.equal('Succeeded');
    expect(s.initContainerStatuses![0]!.state).to.have.property('terminated');
    expect(s.containerStatuses[0]!.state.terminated).to.include({ exitCode: 0 });
    expect(await logs(r, 'side')).to.equal('side\n');
  });

  it('node faults apply to its pods; the pod wins on conflicts', () => {
    const h = fakeHost({ http500Count: 2, cutEveryBytes: 10 });
    const r = new PodRunner(pod({ faults: { cutEveryBytes: 99 } }), 'sim-1', h.host);
    expect(r.effectiveFaults()).to.deep.equal({ http500Count: 2, cutEveryBytes: 99 });
    expect(r.http500Left).to.equal(2);
    r.vanish();
  });
});
