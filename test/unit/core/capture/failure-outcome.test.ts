import { expect } from 'chai';
import { classifyStreamFailure, giveUpReason } from '../../../../src/core/capture/failure.ts';
import { type OutcomeInput, decidedByCopy, deletedBeforeTerminated, outcome, worse } from '../../../../src/core/capture/outcome.ts';

describe('core/capture/failure', () => {
  const table: [string, Parameters<typeof classifyStreamFailure>[0], unknown][] = [
    // Defect 8: a quiet stream of a running container is reopened, not retried.
    ['idle timeout while running: reopen, not a failure', { reason: 'StreamStalled', kind: 'transient', progressed: false, runEnded: false }, { kind: 'reopen' }],
    ['stall of an ended run: a failure', { reason: 'StreamStalled', kind: 'transient', progressed: false, runEnded: true }, { kind: 'retry', resetBudget: false }],
    ['TLS error: retry', { reason: 'KubeletUnreachable', kind: 'transient', progressed: false, runEnded: false }, { kind: 'retry', resetBudget: false }],
    ['cut after progress: retry with a fresh budget', { reason: 'StreamEnded', kind: 'transient', progressed: true, runEnded: false }, { kind: 'retry', resetBudget: true }],
    ['forbidden: give up', { reason: 'Forbidden', kind: 'permanent', progressed: false, runEnded: false }, { kind: 'give-up' }],
  ];
  for (const [what, f, want] of table) it(what, () => expect(classifyStreamFailure(f)).to.deep.equal(want));

  it('giveUpReason', () => {
    expect(giveUpReason('StreamEnded', 10)).to.equal('LogGap');
    expect(giveUpReason('StreamEnded', 0)).to.equal('KubeletUnreachable');
    expect(giveUpReason('TooManyRequests', 0)).to.equal('KubeletUnreachable');
    expect(giveUpReason('StoreDenied', 0)).to.equal('StoreUnavailable');
    expect(giveUpReason('Forbidden', 0)).to.equal('Forbidden');
  });
});

describe('core/capture/outcome', () => {
  const base: OutcomeInput = { ends: [{ kind: 'stored' }], storedAny: true, storedCount: 1, podPhase: 'Succeeded', podGone: false, lastExitCodes: [0] };
  const table: [string, Partial<OutcomeInput>, Partial<ReturnType<typeof outcome>>][] = [
    ['all stored, pod succeeded', {}, { phase: 'Complete', reason: 'Captured', result: 'Succeeded', exitCode: 0 }],
    ['a partial run', { ends: [{ kind: 'stored' }, { kind: 'partial', reason: 'LogGap', message: 'm' }] }, { phase: 'Incomplete', reason: 'LogGap' }],
    ['failed with nothing stored', { ends: [{ kind: 'failed', reason: 'Forbidden', message: 'no' }], storedAny: false, storedCount: 0 }, { phase: 'Failed', reason: 'Forbidden' }],
    ['failed with something stored', { ends: [{ kind: 'failed', reason: 'KeyExists', message: 'k' }, { kind: 'stored' }] }, { phase: 'Incomplete', reason: 'KeyExists' }],
    ['pod gone: result never guessed, never Complete (docs/status.md: PodDeleted is Incomplete or Failed)', { podGone: true, podPhase: undefined }, { phase: 'Incomplete', reason: 'PodDeleted', result: 'Unknown' }],
    ['deleted before terminated, killed (137): result Unknown, not the kill', { podDeleted: true, podPhase: 'Failed', lastExitCodes: [137] }, { phase: 'Incomplete', reason: 'PodDeleted', result: 'Unknown' }],
    ['deleted before terminated, then its container removed: PodDeleted is the cause', { podDeleted: true, podPhase: 'Failed', lastExitCodes: [137], ends: [{ kind: 'partial', reason: 'ContainerRemoved', message: 'm' }] }, { phase: 'Incomplete', reason: 'PodDeleted', result: 'Unknown' }],
    ['deleted before terminated, other gaps keep their reason', { podDeleted: true, podPhase: 'Failed', ends: [{ kind: 'partial', reason: 'LogGap', message: 'm' }] }, { phase: 'Incomplete', reason: 'LogGap', result: 'Unknown' }],
    ['ContainerRemoved without a deletion stays ContainerRemoved', { podPhase: 'Failed', ends: [{ kind: 'partial', reason: 'ContainerRemoved', message: 'm' }] }, { phase: 'Incomplete', reason: 'ContainerRemoved', result: 'Failed' }],
    ['pod running, exit codes known', { podPhase: 'Running', lastExitCodes: [0, 3] }, { result: 'Failed', exitCode: 3 }],
    ['an exit code unknown', { podPhase: 'Running', lastExitCodes: [0, undefined] }, { result: 'Unknown', exitCode: undefined }],
  ];
  for (const [what, input, want] of table) {
    it(what, () => {
      const o = outcome({ ...base, ...input });
      expect(Object.fromEntries(Object.keys(want).map((k) => [k, o[k as keyof typeof o]]))).to.deep.equal(want);
    });
  }
  it('worse ranks failed > partial > stored', () => {
    const p = { kind: 'partial', reason: 'a', message: '' } as const;
    const f = { kind: 'failed', reason: 'b', message: '' } as const;
    expect(worse({ kind: 'stored' }, p)).to.equal(p);
    expect(worse(f, p)).to.equal(f);
    expect(worse(p, { kind: 'partial', reason: 'c', message: '' })).to.equal(p);
  });
});

describe('core/capture/deletedBeforeTerminated', () => {
  const table: [string, Parameters<typeof deletedBeforeTerminated>[0], boolean][] = [
    ['not being deleted', { finishedAts: ['2026-11-29T10:00:05Z'] }, false],
    ['finished before the request (deletionTimestamp 10:00:30 minus 30 s grace = 10:00:00)', { deletionTimestamp: '2026-11-29T10:00:30Z', deletionGracePeriodSeconds: 30, finishedAts: ['2026-11-29T09:59:59Z'] }, false],
    ['finished in the second of the request: ended by itself (a kill comes >= 2 s later)', { deletionTimestamp: '2026-11-29T10:00:30Z', deletionGracePeriodSeconds: 30, finishedAts: ['2026-11-29T10:00:00Z'] }, false],
    ['finished the second after the request', { deletionTimestamp: '2026-11-29T10:00:30Z', deletionGracePeriodSeconds: 30, finishedAts: ['2026-11-29T10:00:01Z'] }, true],
    ['killed at the end of the grace period', { deletionTimestamp: '2026-11-29T10:00:03Z', deletionGracePeriodSeconds: 3, finishedAts: ['2026-11-29T10:00:03Z'] }, true],
    ['one of two containers still ran at the request', { deletionTimestamp: '2026-11-29T10:00:03Z', deletionGracePeriodSeconds: 3, finishedAts: ['2026-11-29T09:00:00Z', '2026-11-29T10:00:02Z'] }, true],
    ['nothing finished yet', { deletionTimestamp: '2026-11-29T10:00:03Z', deletionGracePeriodSeconds: 3, finishedAts: [undefined] }, false],
  ];
  for (const [name, input, want] of table) it(name, () => expect(deletedBeforeTerminated(input)).to.equal(want));
});

describe('core/capture/decidedByCopy', () => {
  const fin = '2026-11-29T10:00:05.000Z';
  const ended = { restartCount: 0, state: 'terminated' as const, containerID: 'c://1', terminated: { exitCode: 0, finishedAt: fin, containerID: 'c://1' } };
  const base: Parameters<typeof decidedByCopy>[0] = { ends: [{ kind: 'stored' }], finals: [{ name: 'main', restart: 0, finishedAt: fin }], views: { main: ended } };
  const table: [string, Partial<Parameters<typeof decidedByCopy>[0]>, boolean][] = [
    ['the copy shows the last captured run terminated: decides', {}, true],
    ['the copy still shows it running (behind the read that located its end)', { views: { main: { restartCount: 0, state: 'running', containerID: 'c://1' } } }, false],
    ['another finishedAt: not the run that was captured', { views: { main: { ...ended, terminated: { ...ended.terminated, finishedAt: '2026-11-29T10:00:09.000Z' } } } }, false],
    ['a later run exists (restartCount moved)', { views: { main: { ...ended, restartCount: 1 } } }, false],
    ['the run shown in lastState only (back-off): not decided here', { views: { main: { restartCount: 0, state: 'waiting', last: ended.terminated } } }, false],
    ['the container is not in the copy', { views: {} }, false],
    ['the run\'s end time was never recorded', { finals: [{ name: 'main', restart: 0 }] }, false],
    ['a run ended with a gap: the fresh read decides (a pod seen gone)', { ends: [{ kind: 'partial', reason: 'PodDeleted', message: 'm' }] }, false],
    ['no container captured', { finals: [] }, false],
    ['two containers, one not shown ended', { finals: [{ name: 'main', restart: 0, finishedAt: fin }, { name: 'side', restart: 0, finishedAt: fin }], ends: [{ kind: 'stored' }, { kind: 'stored' }], views: { main: ended, side: { restartCount: 0, state: 'running' } } }, false],
    ['two containers, both shown ended', { finals: [{ name: 'main', restart: 0, finishedAt: fin }, { name: 'side', restart: 2, finishedAt: fin }], ends: [{ kind: 'stored' }, { kind: 'stored' }], views: { main: ended, side: { ...ended, restartCount: 2 } } }, true],
  ];
  for (const [name, input, want] of table) it(name, () => expect(decidedByCopy({ ...base, ...input })).to.equal(want));
});
