import { expect } from 'chai';
import { type ContainerView, containerView, locateRun, nextRun, servedRuns, willRestart } from '../../../../src/core/capture/runs.ts';

const T = (id: string, exitCode = 1) => ({ containerID: id, exitCode, finishedAt: '2026-11-29T10:00:00Z' });

// The kubelet's statuses (k8s.io/kubernetes v1.37.2 pkg/kubelet/kubelet_pods.go
// convertToAPIContainerStatuses): restartCount k is stamped on run k at creation.
const running0: ContainerView = { restartCount: 0, state: 'running', containerID: 'c0' };
const terminated0: ContainerView = { restartCount: 0, state: 'terminated', containerID: 'c0', terminated: T('c0') };
const backoff0: ContainerView = { restartCount: 0, state: 'waiting', last: T('c0') };
const running1: ContainerView = { restartCount: 1, state: 'running', containerID: 'c1', last: T('c0') };
const terminated1: ContainerView = { restartCount: 1, state: 'terminated', containerID: 'c1', terminated: T('c1', 0), last: T('c0') };
const backoff3: ContainerView = { restartCount: 3, state: 'waiting', last: T('c3') };
const running4: ContainerView = { restartCount: 4, state: 'running', containerID: 'c4', last: T('c3') };

describe('core/capture/runs', () => {
  describe('servedRuns: what "current" and "previous" serve', () => {
    const table: [string, ContainerView | undefined, [number, string, boolean, boolean][]][] = [
      ['no status', undefined, []],
      ['never started (waiting, no lastState)', { restartCount: 0, state: 'waiting' }, []],
      ['run 0 running', running0, [[0, 'c0', false, false]]],
      ['run 0 terminated before back-off: current = run 0', terminated0, [[0, 'c0', false, true]]],
      ['back-off after run 0: restartCount 0, both serve run 0 (asked as previous)', backoff0, [[0, 'c0', true, true]]],
      ['run 1 running: previous = run 0', running1, [[0, 'c0', true, true], [1, 'c1', false, false]]],
      ['run 1 terminated: current = run 1, previous = run 0', terminated1, [[0, 'c0', true, true], [1, 'c1', false, true]]],
      ['back-off after run 3', backoff3, [[3, 'c3', true, true]]],
    ];
    for (const [what, v, want] of table) {
      it(what, () => {
        expect(servedRuns(v).map((r) => [r.index, r.id, r.previous, r.ended])).to.deep.equal(want);
      });
    }
  });

  describe('nextRun', () => {
    const table: [string, ContainerView | undefined, { index: number; id: string } | undefined, unknown][] = [
      ['nothing started: wait', { restartCount: 0, state: 'waiting' }, undefined, { kind: 'wait' }],
      ['first sight running: run 0', running0, undefined, { index: 0, id: 'c0', lost: undefined }],
      // Defect 1: first sight during back-off stores run R under index R, once.
      ['first sight in back-off after run 3: run 3 (0-2 lost)', backoff3, undefined, { index: 3, id: 'c3', lost: { from: 0, to: 2 } }],
      ['first sight at run 4 running: previous run 3 first, 0-2 lost', running4, undefined, { index: 3, id: 'c3', lost: { from: 0, to: 2 } }],
      ['run 3 captured, still back-off: wait (no spinning on "current")', backoff3, { index: 3, id: 'c3' }, { kind: 'wait' }],
      ['run 3 captured, run 4 running: run 4', running4, { index: 3, id: 'c3' }, { index: 4, id: 'c4', lost: undefined }],
      ['run 0 captured, the status jumped to run 4: runs 1-2 lost, run 3 next', running4, { index: 0, id: 'c0' }, { index: 3, id: 'c3', lost: { from: 1, to: 2 } }],
      ['a new container ID under a used index is a new run', { restartCount: 1, state: 'running', containerID: 'cX', last: T('c1') }, { index: 1, id: 'c1' }, { index: 2, id: 'cX', lost: undefined }],
      ['resumed from status (no ID): index decides', running1, { index: 0, id: '' }, { index: 1, id: 'c1', lost: undefined }],
      ['resumed from status, same run still served: wait', terminated1, { index: 1, id: '' }, { kind: 'wait' }],
    ];
    for (const [what, v, last, want] of table) {
      it(what, () => {
        const d = nextRun(v, last);
        if (d.kind === 'wait') expect(d).to.deep.equal(want);
        else expect({ index: d.run.index, id: d.run.id, lost: d.lost }).to.deep.equal(want);
      });
    }
  });

  it('locateRun follows a run from "current" to "previous" by its ID', () => {
    expect(locateRun(terminated0, 'c0')?.previous).to.equal(false);
    expect(locateRun(backoff0, 'c0')?.previous).to.equal(true);
    expect(locateRun(running1, 'c0')?.previous).to.equal(true);
    expect(locateRun(running4, 'c0')).to.equal(undefined);
  });

  it('containerView reads a V1ContainerStatus shape', () => {
    const v = containerView({ restartCount: 2, containerID: 'x', state: { waiting: {} }, lastState: { terminated: { exitCode: 3, containerID: 'y', finishedAt: new Date('2026-11-29T10:00:00Z') } } });
    expect(v).to.deep.equal({ restartCount: 2, state: 'waiting', containerID: undefined, terminated: undefined, last: { exitCode: 3, reason: undefined, startedAt: undefined, finishedAt: '2026-11-29T10:00:00.000Z', containerID: 'y' } });
  });

  describe('willRestart', () => {
    const table: [string, Parameters<typeof willRestart>[0], boolean][] = [
      ['Always, exit 0', { init: false, sidecar: false, podPolicy: 'Always', exitCode: 0, podTerminal: false }, true],
      ['OnFailure, exit 0', { init: false, sidecar: false, podPolicy: 'OnFailure', exitCode: 0, podTerminal: false }, false],
      ['OnFailure, exit 1', { init: false, sidecar: false, podPolicy: 'OnFailure', exitCode: 1, podTerminal: false }, true],
      ['Never, exit 1', { init: false, sidecar: false, podPolicy: 'Never', exitCode: 1, podTerminal: false }, false],
      // Defect 7: a failed init container is restarted under OnFailure/Always.
      ['init, OnFailure, exit 1', { init: true, sidecar: false, podPolicy: 'OnFailure', exitCode: 1, podTerminal: false }, true],
      ['init, Always, exit 2', { init: true, sidecar: false, podPolicy: 'Always', exitCode: 2, podTerminal: false }, true],
      ['init, Never, exit 1', { init: true, sidecar: false, podPolicy: 'Never', exitCode: 1, podTerminal: false }, false],
      ['init, exit 0', { init: true, sidecar: false, podPolicy: 'Always', exitCode: 0, podTerminal: false }, false],
      ['sidecar exit 0', { init: true, sidecar: true, podPolicy: 'Never', exitCode: 0, podTerminal: false }, true],
      ['pod terminal', { init: false, sidecar: false, podPolicy: 'Always', exitCode: 1, podTerminal: true }, false],
    ];
    for (const [what, input, want] of table) it(what, () => expect(willRestart(input)).to.equal(want));
  });
});
