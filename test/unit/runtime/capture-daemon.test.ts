// Whole captures against the kubelet model, on a virtual clock.
import { expect } from 'chai';
import { captureError } from '../../../src/adapters/errors.ts';
import { KubeApiError } from '../../../src/adapters/kube-api.ts';
import type { ModelPod } from '../core/kubelet-model.ts';
import { type Capture, makeCapture } from './capture-harness.ts';

/** Writes `n` lines to the running run of `name`, `everyMs` apart from `startMs`. */
function writeLines(cap: Capture, pod: ModelPod, name: string, n: number, startMs: number, everyMs: number, tag = ''): number {
  for (let i = 0; i < n; i++) cap.clock.at(startMs + i * everyMs, () => cap.model.write(pod, name, `${tag}line ${i} ${'x'.repeat(i % 50)}\n`));
  return startMs + n * everyMs;
}

/** Container `main` exits 0, then the pod turns `phase` (the kubelet's order: the container's status first). */
function exits(cap: Capture, pod: ModelPod, phase: 'Succeeded' | 'Failed' = 'Succeeded'): void {
  cap.model.exit(pod, 'main', 0);
  cap.model.setPhase(pod, phase);
}

/** `exits` at `atMs` on the virtual clock. */
function exitsAt(cap: Capture, atMs: number, pod: ModelPod, phase: 'Succeeded' | 'Failed' = 'Succeeded'): void {
  cap.clock.at(atMs, () => exits(cap, pod, phase));
}

function entries(cap: Capture) {
  return cap
    .status()
    .containers.map((c) => [c.name, c.restart, c.state])
    .sort((a, b) => String(a[0]).localeCompare(String(b[0])) || (a[1] as number) - (b[1] as number));
}

describe('runtime/capture-daemon against the kubelet model', function () {
  this.timeout(30_000);

  it('captures one running container byte-exactly, Complete with its exit code', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    const end = writeLines(cap, pod, 'main', 200, 0, 10);
    exitsAt(cap, end + 5, pod);
    const st = await cap.run();
    expect([st.phase, st.reason, st.result, st.exitCode], st.message).to.deep.equal(['Complete', 'Captured', 'Succeeded', 0]);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    expect(cap.store.open).to.equal(0);
  });

  it('reads the log of a pod that exists without waiting for the first status write (WaitingForPod is still written first)', async () => {
    const cap = makeCapture({ patchDelayMs: 5000 });
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    for (let i = 0; i < 20; i++) cap.model.write(pod, 'main', `line ${i}\n`);
    cap.model.exit(pod, 'main', 0);
    cap.model.setPhase(pod, 'Succeeded');
    const t0 = cap.clock.now();
    let firstRequestAt: number | undefined;
    cap.model.fault = () => {
      firstRequestAt ??= cap.clock.now();
      return {};
    };
    const st = await cap.run();
    expect(firstRequestAt, 'the first log request').to.equal(t0);
    expect(cap.statuses[0]?.reason).to.equal('WaitingForPod');
    expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
  });

  describe('spec.holdPod', () => {
    /** The pod's finalizers, kept beside the model (which has none), with a resourceVersion bumped per change. */
    function holdApi(cap: () => Capture) {
      const state = { finalizers: ['example.com/keep'], rv: 1, log: [] as string[] };
      const read = (name: string) => {
        const p = cap().model.v1pod(name);
        return p ? { ...p, metadata: { ...p.metadata, finalizers: [...state.finalizers], resourceVersion: String(state.rv) } } : undefined;
      };
      const api = {
        getPod: (_ns: string, name: string) => Promise.resolve(read(name)),
        setPodFinalizer: (_ns: string, _n: string, seen: { resourceVersion: string }, f: string, present: boolean) => {
          if (seen.resourceVersion !== String(state.rv)) return Promise.reject(new Error('stale'));
          state.finalizers = present ? [...state.finalizers, f] : state.finalizers.filter((x) => x !== f);
          state.rv++;
          state.log.push(`${present ? '+' : '-'}${f} at phase ${cap().daemon.status.phase}`);
          return Promise.resolve();
        },
      };
      return { state, api };
    }

    it('holds the pod from binding until every object is committed, then releases it before the terminal status', async () => {
      const ref: { cap?: Capture } = {};
      const { state, api } = holdApi(() => ref.cap!);
      const cap = makeCapture({ spec: { holdPod: true }, hold: { api, enabled: true } });
      ref.cap = cap;
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 100, 0, 10);
      exitsAt(cap, end + 5, pod);
      const st = await cap.run();
      expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
      const f = 'logtail.dev/hold-lt-uid-0001';
      expect(state.log).to.deep.equal([`+${f} at phase Pending`, `-${f} at phase Streaming`]);
      expect(state.finalizers).to.deep.equal(['example.com/keep']);
      expect(st.conditions.find((c) => c.type === 'PodHeld')).to.deep.include({ status: 'False', reason: 'Released' });
      expect(cap.statuses.some((s) => s.conditions.some((c) => c.type === 'PodHeld' && c.status === 'True' && c.reason === 'Held')), 'Held was written while streaming').to.equal(true);
    });

    it('without --enable-hold-pod the capture runs unheld and says so', async () => {
      const ref: { cap?: Capture } = {};
      const { state, api } = holdApi(() => ref.cap!);
      const cap = makeCapture({ spec: { holdPod: true }, hold: { api, enabled: false } });
      ref.cap = cap;
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 20, 0, 10);
      exitsAt(cap, end + 5, pod);
      const st = await cap.run();
      expect(st.phase).to.equal('Complete');
      expect(state.log).to.deep.equal([]);
      expect(st.conditions.find((c) => c.type === 'PodHeld')).to.deep.include({ status: 'False', reason: 'HoldNotPermitted' });
    });
  });

  it('reads the pod directly once when a follow stream ends with the run ended, not twice', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    const end = writeLines(cap, pod, 'main', 20, 0, 10);
    exitsAt(cap, end + 5, pod);
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    // direct reads in this capture: 2, before the first follow and after the proof window (the read
    // after the follow stream and the outcome's come from the informer's copy that shows the run ended:
    // capture-end.test.ts; 5 when the pass after the follow stream read the pod again)
    expect(cap.podReads).to.equal(2);
  });

  it('waits for a pod that does not exist yet on the informer\'s events: one direct read, no polling', async () => {
    const cap = makeCapture();
    let readsBefore = -1;
    cap.clock.at(59_000, () => (readsBefore = cap.podReads));
    cap.clock.at(60_000, () => {
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      cap.model.write(pod, 'main', 'hello\n');
      exits(cap, pod);
    });
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    expect(readsBefore, 'direct pod reads during the minute without a pod').to.equal(1);
  });

  describe('defect 1: restart semantics of the real kubelet', () => {
    it('first seeing a pod during back-off stores run R once, under index R', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
      for (let r = 0; r < 3; r++) {
        cap.model.start(pod, 'main');
        for (let i = 0; i < 20; i++) cap.model.write(pod, 'main', `run ${r} line ${i}\n`);
        cap.model.exit(pod, 'main', 1);
      }
      cap.model.backoff(pod, 'main'); // restartCount 2, lastState = run 2
      cap.clock.at(5000, () => cap.model.start(pod, 'main'));
      cap.clock.at(5100, () => cap.model.write(pod, 'main', 'run 3 only line\n'));
      exitsAt(cap, 5200, pod);
      const st = await cap.run();
      expect(entries(cap)).to.deep.equal([
        ['main', 2, 'Stored'],
        ['main', 3, 'Stored'],
      ]);
      expect(st.uncapturedRuns).to.deep.equal([{ container: 'main', init: false, fromRestart: 0, toRestart: 1, reason: 'LogGap' }]);
      expect(cap.object('main', 2)!.equals(pod.container('main').runs[2]!.expected())).to.equal(true);
      expect(cap.object('main', 3)!.equals(pod.container('main').runs[3]!.expected())).to.equal(true);
      expect([st.phase, st.reason]).to.deep.equal(['Incomplete', 'LogGap']);
      expect(st.message).to.match(/runs 0-1 no longer served/);
    });

    it('does not spin on "current" through a back-off: no log request while waiting', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
      cap.model.start(pod, 'main');
      cap.model.write(pod, 'main', 'a\n');
      cap.model.write(pod, 'main', 'b\n');
      cap.clock.at(100, () => cap.model.exit(pod, 'main', 1));
      cap.clock.at(200, () => cap.model.backoff(pod, 'main'));
      let duringBackoff = -1;
      cap.clock.at(1000, () => (duringBackoff = cap.model.requests.length));
      cap.clock.at(300_000, () => {
        expect(cap.model.requests.length, 'log requests during a 5 min back-off').to.equal(duringBackoff);
        cap.model.start(pod, 'main');
        cap.model.write(pod, 'main', 'c\n');
        exits(cap, pod);
      });
      const st = await cap.run();
      expect(st.phase, st.message).to.equal('Complete');
      expect(entries(cap)).to.deep.equal([
        ['main', 0, 'Stored'],
        ['main', 1, 'Stored'],
      ]);
      expect(cap.object('main', 1)!.toString()).to.equal('c\n');
    });

    it('follows a run from "current" to "previous" when it restarts during the drain (terminated → back-off → next run)', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Always' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 50, 0, 5);
      cap.clock.at(end, () => cap.model.exit(pod, 'main', 2));
      cap.clock.at(end + 1, () => cap.model.backoff(pod, 'main'));
      cap.clock.at(end + 2, () => cap.model.start(pod, 'main'));
      const end2 = writeLines(cap, pod, 'main', 30, end + 10, 5, 'second ');
      exitsAt(cap, end2, pod, 'Failed');
      const st = await cap.run();
      expect(st.phase, st.message).to.equal('Complete');
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
      expect(cap.object('main', 1)!.equals(pod.container('main').runs[1]!.expected())).to.equal(true);
    });
  });

  describe('a run whose container the kubelet removed (GC keeps one dead container per container)', () => {
    /** A pod that ran twice (exit 3, then 0) before the LogTail existed. */
    function lateRestartedPod(cap: Capture): ModelPod {
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
      for (const code of [3, 0]) {
        cap.model.start(pod, 'main');
        for (let i = 0; i < 20; i++) cap.model.write(pod, 'main', `exit ${code} line ${i}\n`);
        cap.model.exit(pod, 'main', code);
      }
      cap.model.setPhase(pod, 'Succeeded');
      return pod;
    }

    it('previous of a removed run answers 200 with the error text: reported as uncaptured, never stored', async () => {
      const cap = makeCapture();
      const pod = lateRestartedPod(cap);
      const st = await cap.run();
      expect([st.phase, st.reason, st.result, st.exitCode], st.message).to.deep.equal(['Incomplete', 'ContainerRemoved', 'Succeeded', 0]);
      expect(st.uncapturedRuns).to.deep.equal([{ container: 'main', init: false, fromRestart: 0, toRestart: 0, reason: 'ContainerRemoved' }]);
      expect(entries(cap)).to.deep.equal([['main', 1, 'Stored']]);
      expect(cap.object('main', 0)).to.equal(undefined);
      expect(cap.object('main', 1)!.equals(pod.container('main').runs[1]!.expected())).to.equal(true);
      // The request was made and answered with the text (the model's 200).
      expect(cap.model.requests.some((r) => r.previous)).to.equal(true);
      for (const [uri, bytes] of cap.store.objects) expect(bytes.toString('latin1'), uri).to.not.contain('unable to retrieve');
      expect(cap.store.open).to.equal(0);
    });

    it('the same pod on a kubelet keeping two dead containers: both runs stored, Complete (the model is what decides)', async () => {
      const cap = makeCapture();
      cap.model.maxDeadPerContainer = 2;
      const pod = lateRestartedPod(cap);
      const st = await cap.run();
      expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
      expect(cap.object('main', 1)!.equals(pod.container('main').runs[1]!.expected())).to.equal(true);
    });

    it('removed while it was being read: what was read is stored, the run is Incomplete, never Complete', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
      cap.model.start(pod, 'main');
      for (let i = 0; i < 50; i++) cap.model.write(pod, 'main', `run 0 line ${i}\n`);
      cap.model.exit(pod, 'main', 1);
      cap.model.start(pod, 'main');
      cap.model.write(pod, 'main', 'run 1 line\n');
      // The first read of run 0 (previous, not a proof window) is cut; before
      // the next request run 1 dies, and the GC removes run 0.
      let previousReads = 0;
      cap.model.fault = (req) => {
        if (!req.previous || req.tailLines !== undefined) return {};
        previousReads++;
        if (previousReads === 1) return { cutAt: 400 };
        if (previousReads === 2) {
          exits(cap, pod);
        }
        return {};
      };
      const st = await cap.run();
      expect(pod.container('main').runs[0]!.removed).to.equal(true);
      expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'ContainerRemoved']);
      expect(entries(cap)).to.deep.equal([
        ['main', 0, 'Gap'],
        ['main', 1, 'Stored'],
      ]);
      const run0 = cap.status().containers.find((c) => c.restart === 0)!;
      expect(run0.lastError).to.match(/^ContainerRemoved: .*stored what was read before, its end is not proven/);
      expect(run0.malformedLines ?? 0).to.equal(0);
      const got = cap.object('main', 0)!;
      const want = pod.container('main').runs[0]!.expected();
      expect(got.length).to.be.greaterThan(0).and.below(want.length);
      expect(want.subarray(0, got.length).equals(got), 'a prefix of run 0').to.equal(true);
      expect(st.uncapturedRuns ?? []).to.deep.equal([]);
      expect(cap.object('main', 1)!.equals(pod.container('main').runs[1]!.expected())).to.equal(true);
    });
  });

  describe('F14: a LogTail created while run 1 shows terminated (run 0 removed by the GC), status views that lag', () => {
    /**
     * Runs 0 and 1 ended with exit 1 before the LogTail exists (the GC removed
     * run 0 when run 1 died); the status shows run 1 `terminated` with
     * lastState = run 0. After the 10 s back-off run 2 runs and exits 0.
     * `atRestart` runs when run 2 is created.
     */
    function crashedTwice(cap: Capture, atRestart: () => void = () => undefined): ModelPod {
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
      for (let run = 0; run < 2; run++) {
        cap.model.start(pod, 'main');
        for (let i = 0; i < 20; i++) cap.model.write(pod, 'main', `run ${run} line ${i}\n`);
        cap.model.exit(pod, 'main', 1);
      }
      cap.clock.at(10_000, () => cap.model.backoff(pod, 'main'));
      cap.clock.at(10_100, () => {
        cap.model.start(pod, 'main');
        atRestart();
      });
      const end = writeLines(cap, pod, 'main', 20, 10_200, 10, 'run 2 ');
      exitsAt(cap, end + 10, pod);
      return pod;
    }

    function expectRuns1And2Stored(cap: Capture, pod: ModelPod): void {
      expect(entries(cap)).to.deep.equal([
        ['main', 1, 'Stored'],
        ['main', 2, 'Stored'],
      ]);
      expect(cap.object('main', 0)).to.equal(undefined);
      expect(cap.object('main', 1)!.equals(pod.container('main').runs[1]!.expected())).to.equal(true);
      expect(cap.object('main', 2)!.equals(pod.container('main').runs[2]!.expected())).to.equal(true);
      for (const [uri, bytes] of cap.store.objects) expect(bytes.length, `${uri}: no empty object`).to.be.greaterThan(0);
      expect(cap.store.open).to.equal(0);
    }

    it('the normal sequence: run 0 answered "unable to retrieve", listed ContainerRemoved; runs 1 and 2 stored', async () => {
      const cap = makeCapture();
      const pod = crashedTwice(cap);
      const st = await cap.run();
      expect([st.phase, st.reason, st.result, st.exitCode], st.message).to.deep.equal(['Incomplete', 'ContainerRemoved', 'Succeeded', 0]);
      expect(st.uncapturedRuns).to.deep.equal([{ container: 'main', init: false, fromRestart: 0, toRestart: 0, reason: 'ContainerRemoved' }]);
      expectRuns1And2Stored(cap, pod);
    });

    it('the informer still names run 0, the apiserver no longer does (the kubelet resynced after its GC): run 0 listed LogGap, never an empty object', async () => {
      const cap = makeCapture();
      const pod = crashedTwice(cap, () => cap.thawInformer());
      cap.freezeInformer();
      cap.model.resync(pod, 'main');
      const st = await cap.run();
      expect([st.phase, st.reason, st.result, st.exitCode], st.message).to.deep.equal(['Incomplete', 'LogGap', 'Succeeded', 0]);
      expect(st.uncapturedRuns).to.deep.equal([{ container: 'main', init: false, fromRestart: 0, toRestart: 0, reason: 'LogGap' }]);
      expectRuns1And2Stored(cap, pod);
    });

    it('the apiserver still names run 0, the kubelet no longer does ("previous terminated container … not found", 400): run 0 listed LogGap, never an empty object', async () => {
      const cap = makeCapture();
      const pod = crashedTwice(cap, () => cap.model.lagApiserver(false));
      cap.model.lagApiserver(true);
      cap.model.resync(pod, 'main');
      const st = await cap.run();
      expect(cap.model.requests.some((r) => r.previous)).to.equal(true);
      expect([st.phase, st.reason, st.result, st.exitCode], st.message).to.deep.equal(['Incomplete', 'LogGap', 'Succeeded', 0]);
      expect(st.uncapturedRuns).to.deep.equal([{ container: 'main', init: false, fromRestart: 0, toRestart: 0, reason: 'LogGap' }]);
      expectRuns1And2Stored(cap, pod);
    });
  });

  describe('F14: a log request answered by another run than the status the capture saw (the apiserver lags the kubelet)', () => {
    it('"previous" serves run 1 while the status still names run 0 there: nothing of run 1 is stored as run 0; run 0 listed LogGap, runs 1 and 2 stored as themselves', async () => {
      const cap = makeCapture();
      cap.model.logOnClock = true;
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
      // Run 0 from 0 s to 1 s, run 1 from 2 s to 3 s (the GC removes run 0); the apiserver's copy
      // stops there (run 1 terminated, lastState run 0) while the kubelet backs off and starts run 2 at 13 s.
      for (const run of [0, 1]) {
        cap.clock.at(run * 2000, () => {
          cap.model.start(pod, 'main');
          for (let i = 0; i < 20; i++) cap.model.write(pod, 'main', `run ${run} line ${i}\n`);
        });
        cap.clock.at(run * 2000 + 1000, () => cap.model.exit(pod, 'main', 1));
      }
      cap.clock.at(3001, () => cap.model.lagApiserver(true));
      cap.clock.at(13_000, () => cap.model.backoff(pod, 'main'));
      cap.clock.at(13_100, () => {
        cap.model.start(pod, 'main');
        cap.model.write(pod, 'main', 'run 2 line 0\n');
      });
      cap.clock.fastForward();
      // The LogTail appears now; the apiserver catches up 0.5 s later, run 2 ends 3 s later.
      cap.clock.at(500, () => cap.model.lagApiserver(false));
      cap.clock.at(1000, () => cap.model.write(pod, 'main', 'run 2 line 1\n'));
      exitsAt(cap, 3000, pod);
      const st = await cap.run();
      // The first request was "previous" for run 0, answered by the kubelet with run 1.
      expect(cap.model.requests[0]?.previous).to.equal(true);
      for (const r of [0, 1, 2]) {
        const got = cap.object('main', r);
        if (got) expect(got.equals(pod.container('main').runs[r]!.expected()), `object of run ${r} is run ${r}: ${JSON.stringify(got.toString().slice(0, 40))}`).to.equal(true);
      }
      expect([st.phase, st.reason, st.result, st.exitCode], st.message).to.deep.equal(['Incomplete', 'LogGap', 'Succeeded', 0]);
      expect(st.uncapturedRuns).to.deep.equal([{ container: 'main', init: false, fromRestart: 0, toRestart: 0, reason: 'LogGap' }]);
      expect(entries(cap)).to.deep.equal([
        ['main', 1, 'Stored'],
        ['main', 2, 'Stored'],
      ]);
      expect(cap.store.open).to.equal(0);
    });
  });

  it('F14: "current" answered by the next run while the pod status still shows the ended run there: asked at "previous" at once, stored before the GC removes it', async () => {
    const cap = makeCapture();
    cap.model.logOnClock = true;
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
    // Run 0 from 0 s to 1 s (exit 1); the apiserver's copy stops there (run 0 terminated, "current") while the
    // kubelet backs off and starts run 1 at 11.1 s.
    cap.model.start(pod, 'main');
    for (let i = 0; i < 20; i++) cap.model.write(pod, 'main', `run 0 line ${i}\n`);
    cap.clock.at(1000, () => cap.model.exit(pod, 'main', 1));
    cap.clock.at(1001, () => cap.model.lagApiserver(true));
    cap.clock.at(11_000, () => cap.model.backoff(pod, 'main'));
    cap.clock.at(11_100, () => {
      cap.model.start(pod, 'main');
      cap.model.write(pod, 'main', 'run 1 line 0\n');
    });
    cap.clock.fastForward();
    // The LogTail appears now; run 1 ends 1.5 s later (the GC removes run 0), the apiserver catches up after that.
    cap.clock.at(1000, () => cap.model.write(pod, 'main', 'run 1 line 1\n'));
    exitsAt(cap, 1500, pod);
    cap.clock.at(1600, () => cap.model.lagApiserver(false));
    const st = await cap.run();
    expect(cap.model.requests[0]?.previous, 'the first request: "current", as the status said').to.equal(undefined);
    expect([st.phase, st.reason, st.result, st.exitCode], st.message).to.deep.equal(['Complete', 'Captured', 'Succeeded', 0]);
    expect(entries(cap)).to.deep.equal([
      ['main', 0, 'Stored'],
      ['main', 1, 'Stored'],
    ]);
    for (const r of [0, 1]) expect(cap.object('main', r)!.equals(pod.container('main').runs[r]!.expected()), `run ${r}`).to.equal(true);
    expect(st.retries, 'not a failure: the run moved').to.equal(0);
  });

  describe('F14: the next run is created while the window proving a run\'s end is read', () => {
    it('a window ending with the checkpoint line proves the end even though the run moved to "previous"; the run is Stored before the GC removes it', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
      cap.model.start(pod, 'main');
      for (let i = 0; i < 50; i++) cap.model.write(pod, 'main', `run 0 line ${i}\n`);
      cap.model.exit(pod, 'main', 1);
      // Right after the kubelet answered the window proving run 0's end (after it was read), run 1 is created, runs
      // and ends (the GC removes run 0): the pod read after the window shows run 0 in "previous".
      let windowAsked = false;
      cap.model.fault = (req) => {
        if ((req.tailLines ?? 0) >= 2 && !req.previous && !windowAsked) windowAsked = true;
        return {};
      };
      let moved = false;
      cap.model.apiFault = () => {
        if (windowAsked && !moved) {
          moved = true;
          cap.model.backoff(pod, 'main');
          cap.model.start(pod, 'main');
          cap.model.write(pod, 'main', 'run 1 line\n');
          exits(cap, pod);
        }
        return undefined;
      };
      const st = await cap.run();
      expect(moved).to.equal(true);
      expect(pod.container('main').runs[0]!.removed).to.equal(true);
      expect([st.phase, st.reason, st.result, st.exitCode], st.message).to.deep.equal(['Complete', 'Captured', 'Succeeded', 0]);
      expect(entries(cap)).to.deep.equal([
        ['main', 0, 'Stored'],
        ['main', 1, 'Stored'],
      ]);
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
      expect(cap.object('main', 1)!.equals(pod.container('main').runs[1]!.expected())).to.equal(true);
    });
  });

  it('F14: a window that proves nothing because the run moved is asked again at once where the run is now, without a back-off', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'OnFailure' });
    cap.model.start(pod, 'main');
    for (let i = 0; i < 30; i++) cap.model.write(pod, 'main', `run 0 line ${i}\n`);
    cap.model.exit(pod, 'main', 1);
    // Run 0 is read from the top first; as the window proving its end is asked
    // ("current"), run 1 is created: the kubelet answers with run 1's log, and
    // the pod read after the window shows run 0 in "previous".
    let movedAt: number | undefined;
    const times: number[] = [];
    cap.model.fault = (req) => {
      times.push(cap.clock.now());
      if (movedAt === undefined && req.tailLines !== undefined) {
        movedAt = cap.clock.now();
        cap.model.backoff(pod, 'main');
        cap.model.start(pod, 'main');
        cap.model.write(pod, 'main', 'run 1 line\n');
        exitsAt(cap, 5000, pod);
      }
      return {};
    };
    const st = await cap.run();
    expect(movedAt).to.not.equal(undefined);
    expect(cap.model.requests[0]?.tailLines, 'the first request reads run 0 from the top').to.equal(undefined);
    expect(cap.model.requests[1]?.tailLines).to.be.a('number');
    expect(cap.model.requests[1]?.previous).to.not.equal(true);
    // The next request asks run 0's window through "previous", at the same instant.
    expect(cap.model.requests[2]?.previous).to.equal(true);
    expect(cap.model.requests[2]?.tailLines).to.be.a('number');
    expect(times[2]).to.equal(movedAt);
    expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    expect(cap.object('main', 1)!.equals(pod.container('main').runs[1]!.expected())).to.equal(true);
  });

  it('an ended run nothing of which was read is read from the top first, then one window proves its end', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    for (let i = 0; i < 50; i++) cap.model.write(pod, 'main', `line ${i}\n`);
    cap.model.exit(pod, 'main', 0);
    cap.model.setPhase(pod, 'Succeeded');
    const st = await cap.run();
    expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
    expect(cap.model.requests.map((r) => r.tailLines ?? 'all')).to.deep.equal(['all', 2]);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
  });

  it('an ended run with an empty log: the read from the top brings nothing, the window after it proves the log empty', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    cap.model.exit(pod, 'main', 0);
    cap.model.setPhase(pod, 'Succeeded');
    const st = await cap.run();
    expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
    expect(cap.model.requests.map((r) => r.tailLines ?? 'all')).to.deep.equal(['all', 1]);
    expect(cap.object('main', 0)!.length).to.equal(0);
  });

  describe('defect 3: only positive evidence finishes an ended run', () => {
    it('a cut at a record boundary after the run ended is not taken for the end', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      for (let i = 0; i < 100; i++) cap.model.write(pod, 'main', `line ${i}\n`);
      exits(cap, pod);
      // The first data request is cut cleanly right after line 40's newline.
      const lineLen = (i: number) => 31 + `line ${i}\n`.length;
      let cut = 0;
      for (let i = 0; i <= 40; i++) cut += lineLen(i);
      cap.model.fault = (req, n) => (req.tailLines === undefined && n <= 2 ? { cutAt: cut } : {});
      const st = await cap.run();
      expect(st.phase, st.message).to.equal('Complete');
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    });

    it('windows that are always cut end Incomplete/DrainUnproven with what was read, never Complete', async () => {
      const cap = makeCapture({ spec: { retry: { initialInterval: '100ms', maxInterval: '1s', maxElapsed: '10s' } } });
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      for (let i = 0; i < 10; i++) cap.model.write(pod, 'main', `line ${i}\n`);
      exits(cap, pod);
      cap.model.fault = (req) => (req.tailLines !== undefined ? { cutAt: 5 } : {});
      const st = await cap.run();
      expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'DrainUnproven']);
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    });

    // Issue 10, F1b, found by the fault matrix: a kubelet unreachable (TLS internal error) for longer than the
    // budget while the run ends. A failed window request is a failed request, not an inconclusive proof.
    it('a kubelet unreachable past the budget after the run ended, nothing ever read: Failed/KubeletUnreachable, no object', async () => {
      const cap = makeCapture({ spec: { retry: { initialInterval: '100ms', maxInterval: '1s', maxElapsed: '8s' } } });
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      for (let i = 0; i < 10; i++) cap.model.write(pod, 'main', `line ${i}\n`);
      exits(cap, pod);
      cap.model.fault = () => ({ error: captureError('KubeletUnreachable', 'remote error: tls: internal error') });
      const st = await cap.run();
      expect([st.phase, st.reason], st.message).to.deep.equal(['Failed', 'KubeletUnreachable']);
      expect(st.message).to.match(/tls: internal error/);
      expect(cap.object('main', 0)).to.equal(undefined);
    });

    it('window requests failing past the budget after part of the run was read: the part committed, Incomplete/KubeletUnreachable', async () => {
      const cap = makeCapture({ spec: { retry: { initialInterval: '100ms', maxInterval: '1s', maxElapsed: '8s' } } });
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 20, 0, 10);
      exitsAt(cap, end + 1, pod);
      cap.model.fault = (req) => (req.tailLines !== undefined ? { error: captureError('KubeletUnreachable', 'connect: connection refused') } : {});
      const st = await cap.run();
      expect([st.phase, st.reason], JSON.stringify(st)).to.deep.equal(['Incomplete', 'KubeletUnreachable']);
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    });

    it('a log whose lines all share one timestamp cannot be proven: Incomplete/DrainUnproven', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      for (let i = 0; i < 5; i++) cap.model.write(pod, 'main', 'same\n', 0n);
      exits(cap, pod);
      const st = await cap.run();
      expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'DrainUnproven']);
      expect(cap.object('main', 0)!.toString()).to.equal('same\n'.repeat(5));
    });

    // Found for issue 10: a single stored line was proven by a window of one record, and the last of a burst of
    // identical lines sharing its timestamp looks exactly like it: Complete with one line of two.
    for (const lines of [2, 3]) {
      it(`${lines} identical lines sharing one timestamp, the read cut after the first: never Complete with one line`, async () => {
        const cap = makeCapture();
        const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
        cap.model.start(pod, 'main');
        cap.model.write(pod, 'main', 'a\n');
        for (let i = 1; i < lines; i++) cap.model.write(pod, 'main', 'a\n', 0n);
        cap.model.exit(pod, 'main', 0);
        cap.model.setPhase(pod, 'Succeeded');
        let reads = 0;
        cap.model.fault = (req) => (req.tailLines === undefined && ++reads === 1 ? { cutAt: 31 + 2 } : {});
        const st = await cap.run();
        expect(cap.object('main', 0)!.toString(), st.message).to.equal('a\n'.repeat(lines));
        expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'DrainUnproven']);
      });
    }

    it('a log of one line is proven by two windows: Complete', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      cap.model.write(pod, 'main', 'a\n');
      cap.model.exit(pod, 'main', 0);
      cap.model.setPhase(pod, 'Succeeded');
      const st = await cap.run();
      expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
      expect(cap.object('main', 0)!.toString()).to.equal('a\n');
      expect(cap.model.requests.filter((r) => r.tailLines !== undefined).map((r) => r.tailLines).slice(-2)).to.deep.equal([1, 2]);
    });
  });

  describe('defect 4: API errors after the log was read discard nothing', () => {
    it('503s on pod reads after the exit are retried; the log is committed', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 100, 0, 10);
      let failUntil = 0;
      cap.model.apiFault = () => (cap.clock.now() < failUntil ? new KubeApiError(503, 'ServiceUnavailable', 'apiserver restarting') : undefined);
      cap.clock.at(end + 1, () => {
        failUntil = cap.clock.now() + 8000;
        exits(cap, pod);
      });
      const st = await cap.run();
      expect(st.phase, st.message).to.equal('Complete');
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    });

    it('an apiserver down past the budget: what was read is committed, Incomplete/ApiUnavailable', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 100, 0, 10);
      let down = false;
      cap.model.apiFault = () => (down ? new KubeApiError(429, 'TooManyRequests', 'rejected by APF') : undefined);
      cap.clock.at(end + 1, () => {
        down = true;
        exits(cap, pod);
      });
      cap.clock.at(end + 120_000, () => (down = false));
      const st = await cap.run();
      expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'ApiUnavailable']);
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    });

    it('waitForPod rides out API errors instead of crashing', async () => {
      const cap = makeCapture();
      let n = 0;
      cap.model.apiFault = () => (n++ < 5 ? new KubeApiError(503, 'ServiceUnavailable', 'down') : undefined);
      cap.clock.at(20_000, () => {
        const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
        cap.model.start(pod, 'main');
        cap.model.write(pod, 'main', 'one\n');
        cap.model.write(pod, 'main', 'two\n');
        exits(cap, pod);
      });
      const st = await cap.run();
      expect(st.phase, st.message).to.equal('Complete');
    });
  });

  describe('defect 5: a pod recreated under the same name', () => {
    it('mid-run: PodDeleted, nothing of the new pod stored', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 50, 0, 10);
      let pod2: ModelPod | undefined;
      cap.clock.at(end + 1, () => {
        cap.model.delete(pod);
        pod2 = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
        cap.model.start(pod2, 'main');
        for (let i = 0; i < 20; i++) cap.model.write(pod2, 'main', `NEW POD ${i}\n`);
        exits(cap, pod2);
      });
      const st = await cap.run();
      expect(st.reason, st.message).to.equal('PodDeleted');
      expect(st.result).to.equal('Unknown');
      const obj = cap.object('main', 0) ?? Buffer.alloc(0);
      expect(obj.toString()).not.to.contain('NEW POD');
      expect(pod.container('main').runs[0]!.expected().subarray(0, obj.length).equals(obj)).to.equal(true);
    });

    it('F15: replaced under a long follow stream, the new pod seen by the first read after it: what was read of the old pod is committed (Incomplete/PodDeleted)', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 50, 0, 100);
      cap.clock.at(end + 1, () => {
        // Deleted and recreated in one instant: the capture never sees the name without a pod.
        cap.model.delete(pod);
        const pod2 = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
        cap.model.start(pod2, 'main');
        for (let i = 0; i < 20; i++) cap.model.write(pod2, 'main', `NEW POD ${i}\n`);
        exits(cap, pod2);
      });
      const st = await cap.run();
      expect([st.phase, st.reason, st.result], st.message).to.deep.equal(['Incomplete', 'PodDeleted', 'Unknown']);
      expect(st.message).not.to.match(/nothing stored/);
      // One follow stream from the top read the whole old run (5 s); the pod was confirmed by UID while it was open.
      expect(cap.model.requests.filter((r) => r.follow)).to.have.length(1);
      const obj = cap.object('main', 0);
      const want = pod.container('main').runs[0]!.expected();
      expect(obj?.toString()).not.to.contain('NEW POD');
      expect(obj?.equals(want), `${obj?.length} of ${want.length} bytes`).to.equal(true);
    });

    it('F15: replaced between the check and a follow request, the new pod followed for seconds: the read while it is open sees the other UID, nothing stored', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      let pod2: ModelPod | undefined;
      cap.model.fault = (req) => {
        if (!pod2 && req.follow) {
          cap.model.delete(pod);
          pod2 = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
          cap.model.start(pod2, 'main');
          for (let i = 0; i < 50; i++) cap.clock.at(i * 100, () => cap.model.write(pod2!, 'main', `NEW POD ${i}\n`));
          cap.clock.at(5100, () => exits(cap, pod2!));
        }
        return {};
      };
      const st = await cap.run();
      expect([st.phase, st.reason], st.message).to.deep.equal(['Failed', 'PodDeleted']);
      expect(pod2).not.to.equal(undefined);
      for (const b of cap.store.objects.values()) expect(b.toString()).not.to.contain('NEW POD');
      expect(cap.store.open).to.equal(0);
    });

    it('deleted under a follow stream: the runtime NotFound text the kubelet appends is not stored; Incomplete/PodDeleted', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 50, 0, 10);
      cap.clock.at(end + 1, () => cap.model.delete(pod));
      const st = await cap.run();
      expect([st.phase, st.reason, st.result], st.message).to.deep.equal(['Incomplete', 'PodDeleted', 'Unknown']);
      const followed = cap.model.requests.filter((r) => r.follow);
      expect(followed.length).to.be.greaterThan(0);
      const obj = cap.object('main', 0)!;
      const want = pod.container('main').runs[0]!.expected();
      expect(obj.toString('latin1')).not.to.contain('rpc error');
      expect(obj.equals(want), `${obj.length} of ${want.length} bytes`).to.equal(true);
      const c = cap.status().containers.find((x) => x.name === 'main')!;
      expect(c.malformedLines ?? 0).to.equal(0);
      expect(c.lastError ?? '').to.match(/rpc error: code = NotFound/);
    });

    it('before the first read of an ended run: nothing stored', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      cap.model.write(pod, 'main', 'old\n');
      exits(cap, pod);
      // The pod is replaced between the capture's check of the pod and its first read from the top.
      let replaced = false;
      cap.model.fault = (req) => {
        if (!replaced && req.tailLines === undefined) {
          replaced = true;
          cap.model.delete(pod);
          const pod2 = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
          cap.model.start(pod2, 'main');
          cap.model.write(pod2, 'main', 'NEW POD\n');
          cap.model.exit(pod2, 'main', 0);
        }
        return {};
      };
      const st = await cap.run();
      expect(st.reason, st.message).to.equal('PodDeleted');
      expect(replaced).to.equal(true);
      for (const b of cap.store.objects.values()) expect(b.toString()).not.to.contain('NEW POD');
      expect(cap.store.open).to.equal(0);
    });
  });

  it('defect 6: one pod event wakes every waiting container', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['a', 'b', 'c'], restartPolicy: 'Never' });
    let opened: string[] = [];
    cap.clock.at(1000, () => {
      // All three start in one status update: one pod event.
      const onChange = cap.model.onChange;
      cap.model.onChange = () => {};
      for (const n of ['a', 'b', 'c']) cap.model.start(pod, n);
      cap.model.onChange = onChange;
      onChange();
    });
    cap.clock.at(1001, () => (opened = cap.model.requests.map((r) => r.container).sort()));
    cap.clock.at(2000, () => {
      for (const n of ['a', 'b', 'c']) {
        cap.model.write(pod, n, `${n}\n`);
        cap.model.exit(pod, n, 0);
      }
      cap.model.setPhase(pod, 'Succeeded');
    });
    const st = await cap.run();
    expect(opened, 'containers streaming 1 ms after the event').to.deep.equal(['a', 'b', 'c']);
    expect(st.phase, st.message).to.equal('Complete');
  });

  it('defect 7: a failed init container restarted under OnFailure is captured on every run', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { initContainers: [{ name: 'init' }], containers: ['main'], restartPolicy: 'OnFailure' });
    cap.model.start(pod, 'init');
    cap.model.write(pod, 'init', 'try 0\n');
    cap.clock.at(100, () => cap.model.exit(pod, 'init', 1));
    cap.clock.at(200, () => cap.model.backoff(pod, 'init'));
    cap.clock.at(10_000, () => {
      cap.model.start(pod, 'init');
      cap.model.write(pod, 'init', 'try 1\n');
    });
    cap.clock.at(10_100, () => {
      cap.model.exit(pod, 'init', 0);
      cap.model.start(pod, 'main');
      cap.model.write(pod, 'main', 'main\n');
    });
    exitsAt(cap, 10_200, pod);
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    expect(entries(cap)).to.deep.equal([
      ['init', 0, 'Stored'],
      ['init', 1, 'Stored'],
      ['main', 0, 'Stored'],
    ]);
    expect(cap.object('init', 1)!.toString()).to.equal('try 1\n');
  });

  it('defect 8: idle-timeout reopens of a quiet stream are not retries and raise no Warning', async () => {
    const cap = makeCapture({ idleTimeoutMs: 5000 });
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    cap.model.write(pod, 'main', 'hello\n');
    cap.model.write(pod, 'main', 'then quiet\n');
    cap.clock.at(120_000, () => {
      cap.model.write(pod, 'main', 'bye\n');
      exits(cap, pod);
    });
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    expect(cap.model.requests.length, 'the quiet stream was reopened').to.be.greaterThan(10);
    expect(st.retries).to.equal(0);
    expect(cap.events.filter((e) => e.reason === 'Retrying')).to.deep.equal([]);
    expect(cap.object('main', 0)!.toString()).to.equal('hello\nthen quiet\nbye\n');
  });

  it('timestamps with an offset (-03:30): resumes and drains exactly, Complete', async () => {
    const cap = makeCapture();
    cap.model.zoneMin = -210;
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    const end = writeLines(cap, pod, 'main', 300, 0, 10);
    cap.model.fault = (req, n) => (n <= 3 ? { cutAt: 1000 + n * 313 } : {});
    exitsAt(cap, end, pod);
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    expect(st.containers[0]!.malformedLines).to.equal(undefined);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
  });

  it('a line without a valid timestamp reaches the status: malformedLines, Incomplete/MalformedLines', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    const run = cap.model.start(pod, 'main');
    cap.model.write(pod, 'main', 'good 1\n');
    // A record whose timestamp the kubelet printed in a form we cannot parse.
    run.builder.records.push({ ts: '2026-13-45T99:99:99.000000000Z', ns: run.builder.now, content: Buffer.from('odd\n') });
    cap.model.write(pod, 'main', 'good 2\n');
    cap.model.write(pod, 'main', 'good 3\n');
    exits(cap, pod);
    const st = await cap.run();
    expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'MalformedLines']);
    expect(st.containers[0]!.malformedLines).to.equal(1);
    expect(cap.object('main', 0)!.toString()).to.equal('good 1\n2026-13-45T99:99:99.000000000Z odd\ngood 2\ngood 3\n');
  });

  it('a last line over 16 KiB (several records): drained and Complete', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    cap.model.write(pod, 'main', 'short\n');
    cap.model.write(pod, 'main', 'L'.repeat(40 * 1024) + '\n');
    exits(cap, pod);
    const st = await cap.run(600_000);
    expect(st.phase, st.message).to.equal('Complete');
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
  });

  it('a container captured on each of 530 runs keeps status.containers bounded (storedRunsDropped)', async function () {
    this.timeout(120_000);
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Always' });
    const runs = 530;
    for (let r = 0; r < runs; r++) {
      cap.clock.at(r * 60_000, () => {
        cap.model.start(pod, 'main');
        cap.model.write(pod, 'main', `run ${r} a\n`);
        cap.model.write(pod, 'main', `run ${r} b\n`);
      });
      cap.clock.at(r * 60_000 + 1000, () => cap.model.exit(pod, 'main', 1));
      cap.clock.at(r * 60_000 + 2000, () => cap.model.backoff(pod, 'main'));
    }
    cap.clock.at(runs * 60_000, () => cap.model.setPhase(pod, 'Failed'));
    const st = await cap.run(runs * 60_000 + 600_000);
    expect(st.phase, st.message).to.equal('Complete');
    expect(st.containers.length).to.be.at.most(512);
    expect(st.storedRunsDropped).to.equal(runs - st.containers.length);
    expect(st.containers.at(-1)!.restart).to.equal(runs - 1);
    expect(cap.store.objects.size).to.equal(runs);
  });

  describe('rotation', () => {
    it('while the stream is cut: Incomplete/LogGap, the rest of the run still read to its end', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 200, 0, 10);
      cap.model.fault = (_req, n) => {
        if (n === 1) return { cutAt: 3000 };
        // Before the resumed request is served, the kubelet rotated the file.
        if (n === 2) cap.model.rotate(pod, 'main');
        return {};
      };
      exitsAt(cap, end, pod);
      const st = await cap.run();
      expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'LogGap']);
      const want = pod.container('main').runs[0]!.expected();
      const got = cap.object('main', 0)!;
      const tail = want.subarray(want.length - 200);
      expect(got.subarray(got.length - 200).equals(tail), 'read on to the end of the run').to.equal(true);
      expect(got.length).to.be.below(want.length);
    });

    it('after an operator restart: the re-read sees another first line and says LogGap', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 200, 0, 10);
      // Rotated while the operator is down: the new process reads the new file.
      cap.clock.at(700, () => {
        cap.model.rotate(pod, 'main');
        cap.restart();
      });
      exitsAt(cap, end, pod);
      const st = await cap.run();
      expect(cap.launches).to.equal(2);
      expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'LogGap']);
      expect(st.message).to.match(/rotated by the kubelet/);
    });

    it('an operator restart without rotation: Complete and byte-exact (read again from the top)', async () => {
      const cap = makeCapture();
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 'main', 200, 0, 10);
      cap.clock.at(700, () => cap.restart());
      exitsAt(cap, end, pod);
      const st = await cap.run();
      expect(cap.launches).to.equal(2);
      expect(st.phase, st.message).to.equal('Complete');
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
      expect(cap.store.open).to.equal(0);
    });
  });

  it('a cut while running counts as a retry and resumes exactly', async () => {
    const cap = makeCapture();
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    const end = writeLines(cap, pod, 'main', 300, 0, 10);
    cap.model.fault = (req, n) => (n === 1 ? { cutAt: 777 } : {});
    exitsAt(cap, end, pod);
    const st = await cap.run();
    expect(st.phase, st.message).to.equal('Complete');
    expect(st.retries).to.equal(1);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
  });
});
