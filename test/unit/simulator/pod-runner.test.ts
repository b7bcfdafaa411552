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

  it('restarts on failure with lastState, restartCount and per-run exit codes', async () => {
    const h = fakeHost();
    const r = new PodRunner(pod({ restartPolicy: 'OnFailure', script: { containers: { app: { lines: 2, exitCodes: [2, 3, 0], restartDelaySeconds: 0.02 } } } }), 'sim-1', h.host);
    await r.start();
    const s = h.last();
    expect(s.phase).to.equal('Succeeded');
    const c = s.containerStatuses[0]!;
    expect(c.restartCount).to.equal(2);
    expect(c.state.terminated).to.include({ exitCode: 0 });
    expect(c.lastState.terminated).to.include({ exitCode: 3, reason: 'Error' });
    expect(h.statuses().some((x) => x.containerStatuses[0]!.state.waiting?.reason === 'CrashLoopBackOff')).to.equal(true);
    expect(await logs(r, 'app')).to.contain('run=2');
    expect(await logs(r, 'app', true)).to.contain('run=1');
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
