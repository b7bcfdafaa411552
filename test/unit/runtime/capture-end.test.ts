// The end of a capture, against the kubelet model on a virtual clock: which
// requests a completion takes after the follow stream ends (issue 11: the
// time from container exit to `Complete`), and that none of them is saved at
// the cost of a guarantee (the proof window and the reads around it stay;
// what is committed reaches status no later than `Complete`).
import { expect } from 'chai';
import { captureError } from '../../../src/adapters/errors.ts';
import type { ModelPod } from '../core/kubelet-model.ts';
import { Semaphore } from '../../../src/runtime/semaphore.ts';
import { type Capture, makeCapture } from './capture-harness.ts';

function writeLines(cap: Capture, pod: ModelPod, name: string, n: number, startMs: number, everyMs: number): number {
  for (let i = 0; i < n; i++) cap.clock.at(startMs + i * everyMs, () => cap.model.write(pod, name, `line ${i} ${'x'.repeat(i % 50)}\n`));
  return startMs + n * everyMs;
}

/** The requests after the last follow stream of the capture ended (progress writes of the still streaming run left out). */
function afterLastFollow(cap: Capture): string[] {
  return cap.requests.slice(cap.requests.lastIndexOf('CONNECT log follow') + 1).filter((r) => r !== 'PATCH status Streaming Streaming');
}

function exitAt(cap: Capture, pod: ModelPod, at: number, before?: () => void): void {
  cap.clock.at(at, () => {
    before?.();
    cap.model.exit(pod, 'main', 0);
    cap.model.setPhase(pod, 'Succeeded');
  });
}

describe('runtime/capture: the end of a capture (requests per completion)', function () {
  this.timeout(30_000);

  it('after the follow stream: the proof window (the read before it is the informer\'s copy showing the run ended), a pod read after it, the commit, ONE status write (Stored and Complete together), then the event', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    exitAt(cap, pod, writeLines(cap, pod, 'main', 50, 0, 10) + 5);
    const st = await cap.run();
    expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
    expect(afterLastFollow(cap)).to.deep.equal(['CONNECT log tail', 'GET pod', 'PUT object', 'PATCH status Complete Stored', 'POST event Complete']);
    // No status ever showed the run Stored without the terminal phase: one write carried both.
    expect(cap.statuses.filter((s) => s.containers[0]?.state === 'Stored').map((s) => s.phase)).to.deep.equal(['Complete']);
  });

  it('the pod is read directly before the window and for the outcome when the informer\'s copy does not show the run ended', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    // The informer stops delivering just before the exit: its copy shows the run running to the end.
    exitAt(cap, pod, writeLines(cap, pod, 'main', 50, 0, 10) + 5, () => cap.freezeInformer());
    const st = await cap.run();
    expect([st.phase, st.result], st.message).to.deep.equal(['Complete', 'Succeeded']);
    expect(afterLastFollow(cap)).to.deep.equal(['GET pod', 'CONNECT log tail', 'GET pod', 'PUT object', 'GET pod', 'PATCH status Complete Stored', 'POST event Complete']);
  });

  it('a follow stream that ends before the pod status shows the exit: no retry counted, no Warning, on at the pod\'s event', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    const t0 = cap.clock.now();
    const exit = writeLines(cap, pod, 'main', 50, 0, 10) + 5;
    // The kubelet ends the follow stream at the exit; the apiserver's copy of
    // the pod shows it 300 ms later (its relist and status write). The
    // retry's wait is 500 ms ± 20 %.
    exitAt(cap, pod, exit, () => cap.model.lagApiserver(true));
    cap.clock.at(exit + 300, () => cap.model.lagApiserver(false));
    const st = await cap.run();
    expect([st.phase, st.retries], st.message).to.deep.equal(['Complete', 0]);
    expect(cap.events.map((e) => e.reason)).to.not.include('Retrying');
    expect(cap.requests.filter((r) => r === 'CONNECT log follow'), 'the follow stream was not opened again').to.have.length(1);
    expect(afterLastFollow(cap), 'no pod read before the window: the copy showed the end').to.deep.equal(['CONNECT log tail', 'GET pod', 'PUT object', 'PATCH status Complete Stored', 'POST event Complete']);
    expect(Date.parse(st.completionTime!) - t0 - exit, 'Complete at the pod event, not after the retry wait').to.be.lessThan(350);
  });

  it('a follow stream cut while the container runs on is still a retry (the wait runs its course)', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    cap.model.fault = (_req, n) => (n === 1 ? { cutAt: 500 } : {});
    exitAt(cap, pod, writeLines(cap, pod, 'main', 100, 0, 20) + 5);
    const st = await cap.run();
    expect([st.phase, st.retries], st.message).to.deep.equal(['Complete', 1]);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
  });

  it('a phase terminal before the run shows terminated: woken by the pod event, not by the back-off\'s next read', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    const t0 = cap.clock.now();
    const exit = writeLines(cap, pod, 'main', 50, 0, 10) + 5;
    cap.clock.at(exit, () => {
      // The apiserver shows the phase Succeeded with the run still running; the terminated state comes 650 ms later.
      cap.model.setPhase(pod, 'Succeeded');
      cap.model.lagApiserver(true);
      cap.model.exit(pod, 'main', 0);
    });
    cap.clock.at(exit + 650, () => cap.model.lagApiserver(false));
    const st = await cap.run();
    expect([st.phase, st.retries], st.message).to.deep.equal(['Complete', 0]);
    // At 500 ms (the retry's first interval spent waiting for the copy to show the end) the pod is read:
    // terminal, the run still running. The terminatedRetry back-off's next read would come at 500 + 200 ms
    // ± 20 %, and with it polling (200, 400, 800 ms) at ~1400 ms; the event comes at 650 ms.
    expect(Date.parse(st.completionTime!) - t0 - exit).to.be.lessThan(700);
    // One read when the copy did not show the end in time, none when the event's copy shows it, one after the window.
    expect(afterLastFollow(cap)).to.deep.equal(['GET pod', 'CONNECT log tail', 'GET pod', 'PUT object', 'PATCH status Complete Stored', 'POST event Complete']);
  });

  it('a read from the top confirmed only by the informer\'s copy is confirmed by a direct read before the commit (the window refused for good)', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    exitAt(cap, pod, writeLines(cap, pod, 'main', 50, 0, 10) + 5);
    cap.model.fault = (req) => (req.tailLines !== undefined ? { error: captureError('Forbidden', 'window refused') } : {});
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Incomplete');
    expect(afterLastFollow(cap).slice(0, 3)).to.deep.equal(['CONNECT log tail', 'GET pod', 'PUT object']);
  });

  it('events wait for the process-wide event lane; the terminal status does not wait for them', async () => {
    const lane = new Semaphore(1);
    // Other captures' events hold the lane until 60 s.
    await lane.acquire();
    const cap = makeCapture({ events: lane });
    cap.clock.at(60_000, () => lane.release());
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    const t0 = cap.clock.now();
    exitAt(cap, pod, writeLines(cap, pod, 'main', 50, 0, 10) + 5);
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    expect(Date.parse(st.completionTime!) - t0, 'Complete long before the lane was free').to.be.lessThan(2000);
    expect(cap.events.map((e) => e.reason)).to.deep.equal(['Streaming', 'Complete']);
    expect(cap.clock.now() - t0, 'the events went out once the lane was free').to.be.at.least(60_000);
  });

  it('a container that ends while another is still captured: its Stored goes to status at once', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['a', 'b'], restartPolicy: 'Never' });
    cap.model.start(pod, 'a');
    cap.model.start(pod, 'b');
    const aEnd = writeLines(cap, pod, 'a', 20, 0, 10) + 5;
    cap.clock.at(aEnd, () => cap.model.exit(pod, 'a', 0));
    const bEnd = writeLines(cap, pod, 'b', 200, 0, 50) + 5;
    cap.clock.at(bEnd, () => {
      cap.model.exit(pod, 'b', 0);
      cap.model.setPhase(pod, 'Succeeded');
    });
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    const shown = cap.statuses.findIndex((s) => s.containers.find((c) => c.name === 'a')?.state === 'Stored');
    expect(shown, 'a Stored was written').to.be.greaterThan(-1);
    expect(cap.statuses[shown]!.containers.find((c) => c.name === 'b')?.state, 'while b was still streaming').to.equal('Streaming');
    expect(cap.requests.indexOf('PATCH status Streaming Stored Streaming'), 'urgently, before b\'s next progress write').to.be.greaterThan(-1);
  });

  it('a container that restarts: the run just stored goes to status before the next run is read', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
    cap.model.start(pod, 'main');
    const end0 = writeLines(cap, pod, 'main', 20, 0, 10) + 5;
    cap.clock.at(end0, () => cap.model.exit(pod, 'main', 1));
    cap.clock.at(end0 + 1000, () => {
      cap.model.start(pod, 'main');
      for (let i = 0; i < 20; i++) cap.clock.at(i * 10, () => cap.model.write(pod, 'main', `second ${i}\n`));
      cap.clock.at(300, () => {
        cap.model.exit(pod, 'main', 0);
        cap.model.setPhase(pod, 'Succeeded');
      });
    });
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    const firstPut = cap.requests.indexOf('PUT object');
    const nextRead = cap.requests.findIndex((r, i) => i > firstPut && r.startsWith('CONNECT log'));
    const between = cap.requests.slice(firstPut, nextRead);
    expect(between.some((r) => /^PATCH status Streaming Stored/.test(r)), between.join(', ')).to.equal(true);
  });

  it('spec.holdPod: what was committed is in status before the hold is released', async () => {
    const ref: { cap?: Capture } = {};
    let finalizers: string[] = [];
    let rv = 1;
    const atRelease: string[] = [];
    const api = {
      getPod: (_ns: string, name: string) => {
        const p = ref.cap!.model.v1pod(name);
        return Promise.resolve(p ? { ...p, metadata: { ...p.metadata, finalizers: [...finalizers], resourceVersion: String(rv) } } : undefined);
      },
      setPodFinalizer: (_ns: string, _n: string, seen: { resourceVersion: string }, f: string, present: boolean) => {
        if (seen.resourceVersion !== String(rv)) return Promise.reject(new Error('stale'));
        finalizers = present ? [...finalizers, f] : finalizers.filter((x) => x !== f);
        rv++;
        if (!present) atRelease.push(ref.cap!.statuses.at(-1)!.containers.map((c) => c.state).join(','));
        return Promise.resolve();
      },
    };
    const cap = makeCapture({ spec: { holdPod: true }, hold: { api, enabled: true } });
    ref.cap = cap;
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    exitAt(cap, pod, writeLines(cap, pod, 'main', 50, 0, 10) + 5);
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    expect(atRelease, 'the last status written when the hold was released').to.deep.equal(['Stored']);
  });
});
