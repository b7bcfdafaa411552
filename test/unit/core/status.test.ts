import { expect } from 'chai';
import {
  MAX_CONTAINER_ENTRIES,
  MAX_UNCAPTURED_RUNS,
  trimContainerEntries,
  addUncapturedRuns,
  completeBlocker,
  conditionsForPhase,
  isTerminalPhase,
  k8sTime,
  phaseFromContainers,
  setCondition,
  statusEquals,
  totals,
  type Condition,
  type ContainerState,
  type Phase,
  type UncapturedList,
  type UncapturedRuns,
} from '../../../src/core/status.ts';

const t1 = new Date('2026-11-27T10:00:00.123Z');
const t2 = new Date('2026-11-27T10:05:00Z');

describe('core/status', () => {
  it('writes condition times as whole-second RFC 3339', () => {
    expect(k8sTime(t1)).to.equal('2026-11-27T10:00:00Z');
  });

  describe('setCondition', () => {
    it('appends a new condition stamped now', () => {
      const out = setCondition([], { type: 'Streaming', status: 'True', reason: 'Streaming', message: 'm', observedGeneration: 1 }, t1);
      expect(out).to.deep.equal([
        { type: 'Streaming', status: 'True', reason: 'Streaming', message: 'm', lastTransitionTime: '2026-11-27T10:00:00Z', observedGeneration: 1 },
      ]);
    });

    it('keeps lastTransitionTime unless the status flips, and replaces in place', () => {
      const start: Condition[] = [
        { type: 'Streaming', status: 'False', reason: 'WaitingForPod', message: '', lastTransitionTime: 'T0' },
        { type: 'Finished', status: 'False', reason: 'WaitingForPod', message: '', lastTransitionTime: 'T0' },
      ];
      const same = setCondition(start, { type: 'Streaming', status: 'False', reason: 'WaitingForSlot', message: 'queued' }, t2);
      expect(same[0]).to.deep.equal({ type: 'Streaming', status: 'False', reason: 'WaitingForSlot', message: 'queued', lastTransitionTime: 'T0' });
      const flipped = setCondition(start, { type: 'Streaming', status: 'True', reason: 'Streaming', message: '' }, t2);
      expect(flipped.map((c) => c.type)).to.deep.equal(['Streaming', 'Finished']);
      expect(flipped[0]?.lastTransitionTime).to.equal('2026-11-27T10:05:00Z');
      expect(start[0]?.status).to.equal('False'); // input untouched
    });
  });

  describe('conditionsForPhase', () => {
    const table: [Phase, string, string, string][] = [
      ['Pending', 'False', 'False', 'False'],
      ['Streaming', 'True', 'False', 'False'],
      ['Complete', 'False', 'True', 'True'],
      ['Incomplete', 'False', 'False', 'True'],
      ['Failed', 'False', 'False', 'True'],
    ];
    for (const [phase, streaming, complete, finished] of table) {
      it(`${phase}: Streaming=${streaming} Complete=${complete} Finished=${finished}`, () => {
        const out = conditionsForPhase(phase, 'Why', 'because', 3, undefined, t1);
        expect(out.map((c) => [c.type, c.status])).to.deep.equal([
          ['Streaming', streaming],
          ['Complete', complete],
          ['Finished', finished],
        ]);
        for (const c of out) {
          expect(c.reason).to.equal('Why');
          expect(c.message).to.equal('because');
          expect(c.observedGeneration).to.equal(3);
          expect(c.lastTransitionTime).to.equal('2026-11-27T10:00:00Z');
        }
      });
    }

    it('carries transition times across phases and keeps foreign conditions', () => {
      const foreign = { type: 'Other', status: 'True', reason: 'X', message: '', lastTransitionTime: 'T0' } as unknown as Condition;
      const pending = conditionsForPhase('Pending', 'WaitingForPod', '', 1, [foreign], t1);
      const streaming = conditionsForPhase('Streaming', 'Streaming', '', 1, pending, t2);
      const byType = Object.fromEntries(streaming.map((c) => [c.type, c]));
      expect(byType.Streaming?.lastTransitionTime).to.equal('2026-11-27T10:05:00Z');
      expect(byType.Complete?.lastTransitionTime).to.equal('2026-11-27T10:00:00Z');
      expect(byType.Finished?.lastTransitionTime).to.equal('2026-11-27T10:00:00Z');
      expect(byType.Other).to.deep.equal(foreign);
    });
  });

  it('classifies terminal phases', () => {
    expect((['Pending', 'Streaming', 'Complete', 'Incomplete', 'Failed', undefined] as (Phase | undefined)[]).map(isTerminalPhase)).to.deep.equal([
      false,
      false,
      true,
      true,
      true,
      false,
    ]);
  });

  describe('statusEquals', () => {
    it('compares deeply, arrays in order, undefined as absent', () => {
      const a = { phase: 'Streaming', containers: [{ name: 'a', bytes: 1 }, { name: 'b', bytes: 2 }], lastError: undefined };
      expect(statusEquals(a, { containers: [{ bytes: 1, name: 'a' }, { name: 'b', bytes: 2 }], phase: 'Streaming' })).to.equal(true);
      expect(statusEquals(a, { ...a, containers: [{ name: 'b', bytes: 2 }, { name: 'a', bytes: 1 }] })).to.equal(false);
      expect(statusEquals(a, { ...a, containers: [{ name: 'a', bytes: 1 }, { name: 'b', bytes: 3 }] })).to.equal(false);
      expect(statusEquals(a, { ...a, lastError: 'x' })).to.equal(false);
      expect(statusEquals({ x: [] }, { x: {} })).to.equal(false);
      expect(statusEquals({ x: null }, { x: undefined })).to.equal(false);
      expect(statusEquals({ x: 0 }, { x: '0' })).to.equal(false);
      expect(statusEquals(undefined, undefined)).to.equal(true);
      expect(statusEquals(undefined, {})).to.equal(false);
      expect(statusEquals({ t: new Date(5) }, { t: new Date(5) })).to.equal(true);
      expect(statusEquals({ t: new Date(5) }, { t: new Date(6) })).to.equal(false);
    });
  });

  it('derives the capture phase from container states', () => {
    const p = (...s: ContainerState[]) => phaseFromContainers(s.map((state) => ({ state })));
    expect(p()).to.equal('Pending');
    expect(p('Waiting', 'Waiting')).to.equal('Pending');
    expect(p('Stored', 'Waiting')).to.equal('Streaming');
    expect(p('Stored', 'Terminated')).to.equal('Streaming');
    expect(p('Stored', 'Stored')).to.equal('Complete');
    expect(p('Stored', 'Gap')).to.equal('Incomplete');
    expect(p('Stored', 'Failed')).to.equal('Incomplete');
    expect(p('Failed', 'Failed')).to.equal('Failed');
    expect(totals([{ bytes: 5, streamRetries: 1 }, { bytes: 7, streamRetries: 2 }])).to.deep.equal({ bytes: 12, retries: 3 });
  });

  it('is not Complete with malformed lines or uncaptured runs (table)', () => {
    const gap: UncapturedRuns = { container: 'c', fromRestart: 0, toRestart: 2, reason: 'LogGap' };
    const table: { name: string; containers: { state: ContainerState; malformedLines?: number; truncatedBytes?: number }[]; runs?: UncapturedList; phase: Phase; reason?: string }[] = [
      { name: 'all stored', containers: [{ state: 'Stored' }, { state: 'Stored', malformedLines: 0 }], phase: 'Complete' },
      { name: 'one malformed line', containers: [{ state: 'Stored' }, { state: 'Stored', malformedLines: 1 }], phase: 'Incomplete', reason: 'MalformedLines' },
      { name: 'listed uncaptured runs', containers: [{ state: 'Stored' }], runs: { uncapturedRuns: [gap] }, phase: 'Incomplete', reason: 'LogGap' },
      { name: 'only dropped runs', containers: [{ state: 'Stored' }], runs: { uncapturedRuns: [], uncapturedRunsDropped: 4 }, phase: 'Incomplete', reason: 'LogGap' },
      { name: 'malformed and still streaming', containers: [{ state: 'Stored', malformedLines: 3 }, { state: 'Streaming' }], phase: 'Streaming', reason: 'MalformedLines' },
      { name: 'all failed', containers: [{ state: 'Failed' }], runs: { uncapturedRuns: [gap] }, phase: 'Failed', reason: 'LogGap' },
      { name: 'a run stored cut under maxBytes', containers: [{ state: 'Stored' }, { state: 'Stored', truncatedBytes: 10 }], phase: 'Incomplete', reason: 'Truncated' },
      { name: 'truncatedBytes 0 is not a cut', containers: [{ state: 'Stored', truncatedBytes: 0 }], phase: 'Complete' },
      { name: 'malformed lines win over a cut', containers: [{ state: 'Stored', truncatedBytes: 10, malformedLines: 1 }], phase: 'Incomplete', reason: 'MalformedLines' },
      { name: 'uncaptured runs win over a cut', containers: [{ state: 'Stored', truncatedBytes: 10 }], runs: { uncapturedRuns: [gap] }, phase: 'Incomplete', reason: 'LogGap' },
    ];
    for (const t of table) {
      expect(phaseFromContainers(t.containers, t.runs), t.name).to.equal(t.phase);
      expect(completeBlocker(t.containers, t.runs)?.reason, t.name).to.equal(t.reason);
    }
    expect(completeBlocker([{ malformedLines: 2 }, { malformedLines: 3 }])?.message).to.match(/^5 line/);
    expect(completeBlocker([{}], { uncapturedRuns: [gap], uncapturedRunsDropped: 4 })?.message).to.match(/^7 container run/);
    expect(completeBlocker([{ truncatedBytes: 5 }, {}, { truncatedBytes: 7 }])?.message).to.match(/^2 run\(s\) longer than spec.maxBytes .*: 12 byte\(s\) left out$/);
  });

  describe('addUncapturedRuns', () => {
    const r = (fromRestart: number, toRestart: number, container = 'c', reason = 'LogGap'): UncapturedRuns => ({ container, fromRestart, toRestart, reason });
    const table: { name: string; start: UncapturedRuns[]; add: UncapturedRuns; want: UncapturedRuns[] }[] = [
      { name: 'first range', start: [], add: r(0, 4), want: [r(0, 4)] },
      { name: 'adjacent after', start: [r(0, 4)], add: r(5, 5), want: [r(0, 5)] },
      { name: 'adjacent before', start: [r(3, 4)], add: r(1, 2), want: [r(1, 4)] },
      { name: 'the same runs again change nothing', start: [r(0, 4)], add: r(2, 3), want: [r(0, 4)] },
      { name: 'a captured run in between keeps two ranges', start: [r(0, 4)], add: r(6, 7), want: [r(0, 4), r(6, 7)] },
      { name: 'bridging two ranges joins them', start: [r(0, 4), r(6, 7)], add: r(5, 5), want: [r(0, 7)] },
      { name: 'another container', start: [r(0, 4)], add: r(5, 5, 'd'), want: [r(0, 4), r(5, 5, 'd')] },
      { name: 'another reason', start: [r(0, 4)], add: r(5, 5, 'c', 'PodDeleted'), want: [r(0, 4), r(5, 5, 'c', 'PodDeleted')] },
    ];
    for (const t of table) {
      it(t.name, () => {
        const before = structuredClone(t.start);
        const got = addUncapturedRuns({ uncapturedRuns: t.start }, t.add);
        expect(got.uncapturedRuns).to.deep.equal(t.want);
        expect(got.uncapturedRunsDropped).to.equal(0);
        expect(t.start, 'the input is not modified').to.deep.equal(before);
      });
    }

    it('caps the list and counts the runs it could not list', () => {
      let list: UncapturedList = {};
      // A crash-looping container captured every other run: one range per missed run.
      for (let k = 0; k < 1000; k++) list = addUncapturedRuns(list, r(2 * k, 2 * k));
      expect(list.uncapturedRuns).to.have.length(MAX_UNCAPTURED_RUNS);
      expect(list.uncapturedRunsDropped).to.equal(1000 - MAX_UNCAPTURED_RUNS);
      // A listed range still grows once the list is full.
      list = addUncapturedRuns(list, r(1, 1));
      expect(list.uncapturedRuns?.[0]).to.deep.equal(r(0, 2));
      expect(list.uncapturedRunsDropped).to.equal(1000 - MAX_UNCAPTURED_RUNS);
      expect(JSON.stringify(list).length).to.be.lessThan(4096);
    });

    it('refuses a range that is not one', () => {
      expect(() => addUncapturedRuns({}, r(3, 2))).to.throw(RangeError);
      expect(() => addUncapturedRuns({}, r(-1, 2))).to.throw(RangeError);
    });
  });

  describe('trimContainerEntries', () => {
    type E = { name: string; init: boolean; restart: number; state: ContainerState; truncatedBytes?: number };
    const e = (name: string, restart: number, state: ContainerState = 'Stored', init = false): E => ({ name, init, restart, state });
    const table: { name: string; list: E[]; max: number; want: E[]; dropped: number }[] = [
      { name: 'under the cap: unchanged', list: [e('a', 0), e('a', 1)], max: 2, want: [e('a', 0), e('a', 1)], dropped: 0 },
      { name: 'drops the earliest stored runs first', list: [e('a', 0), e('a', 1), e('a', 2), e('a', 3)], max: 2, want: [e('a', 2), e('a', 3)], dropped: 2 },
      { name: 'keeps runs that are not Stored', list: [e('a', 0, 'Gap'), e('a', 1), e('a', 2, 'Failed'), e('a', 3)], max: 3, want: [e('a', 0, 'Gap'), e('a', 2, 'Failed'), e('a', 3)], dropped: 1 },
      { name: "keeps each container's newest entry", list: [e('a', 0), e('b', 0), e('a', 1), e('b', 0, 'Stored', true)], max: 1, want: [e('b', 0), e('a', 1), e('b', 0, 'Stored', true)], dropped: 1 },
      { name: 'may stay over the cap rather than drop what decides the phase', list: [e('a', 0, 'Gap'), e('a', 1, 'Streaming')], max: 1, want: [e('a', 0, 'Gap'), e('a', 1, 'Streaming')], dropped: 0 },
      { name: 'keeps a truncated stored run (its truncatedBytes decides the outcome)', list: [{ ...e('a', 0), truncatedBytes: 3 }, e('a', 1), e('a', 2)], max: 2, want: [{ ...e('a', 0), truncatedBytes: 3 }, e('a', 2)], dropped: 1 },
    ];
    for (const t of table) {
      it(t.name, () => {
        const before = structuredClone(t.list);
        const got = trimContainerEntries(t.list, 5, t.max);
        expect(got.containers).to.deep.equal(t.want);
        expect(got.storedRunsDropped).to.equal(5 + t.dropped);
        expect(t.list).to.deep.equal(before);
      });
    }

    it('bounds a container captured on every one of thousands of restarts', () => {
      let list: E[] = [];
      let dropped = 0;
      for (let k = 0; k < 5000; k++) ({ containers: list, storedRunsDropped: dropped } = trimContainerEntries([...list, e('crashy', k)], dropped));
      expect(list).to.have.length(MAX_CONTAINER_ENTRIES);
      expect(list.at(-1)).to.deep.equal(e('crashy', 4999));
      expect(dropped).to.equal(5000 - MAX_CONTAINER_ENTRIES);
    });
  });
});
