import { expect } from 'chai';
import { type StoredSoFar, judgeWindow, proofPlan } from '../../../../src/core/capture/drain.ts';

const ts = (s: number, ns = 0) => `2026-11-29T10:00:${String(s).padStart(2, '0')}.${String(ns).padStart(9, '0')}Z`;
const line = (t: string, content: string) => `${t} ${content}\n`;
const win = (...ls: string[]) => Buffer.from(ls.join(''), 'latin1');
const stored = (time: string, ordinal: number, offset: number, lines: number, complete = true): StoredSoFar => ({ checkpoint: { time, ordinal, offset, complete }, bytes: 1000, lines });

describe('core/capture/drain', () => {
  describe('proofPlan', () => {
    const table: [string, StoredSoFar, unknown][] = [
      ['empty log: ask for one record, expect none', { checkpoint: undefined, bytes: 0, lines: 0 }, { kind: 'window', tailLines: 1 }],
      ['untimestamped bytes only', { checkpoint: undefined, bytes: 5, lines: 1 }, { kind: 'impossible' }],
      ['last line unique in its timestamp: 2 records', stored(ts(1), 0, 4, 10), { kind: 'window', tailLines: 2 }],
      ['5 trailing lines share the timestamp: 6 records', stored(ts(1), 4, 4, 10), { kind: 'window', tailLines: 6 }],
      ['single-line log', stored(ts(1), 0, 4, 1), { kind: 'window', tailLines: 1 }],
      ['every stored line has one timestamp', stored(ts(1), 2, 4, 3), { kind: 'impossible' }],
      ['no final newline', stored(ts(1), 0, 4, 3, false), { kind: 'impossible' }],
      ['last line of 40 KiB (3 records): 4 records', stored(ts(1), 0, 40 * 1024, 10), { kind: 'window', tailLines: 4 }],
      ['single line of 40 KiB: its 3 records', stored(ts(1), 0, 40 * 1024, 1), { kind: 'window', tailLines: 3 }],
    ];
    for (const [what, s, want] of table) {
      it(what, () => {
        const p = proofPlan(s);
        expect(p.kind === 'impossible' ? { kind: p.kind } : p).to.deep.equal(want);
      });
    }
  });

  describe('judgeWindow', () => {
    const s = stored(ts(2), 0, 4, 10); // last stored line "abc\n" at ts(2)
    const table: [string, Buffer, StoredSoFar, number, string][] = [
      ['exactly N records ending at the checkpoint: drained', win(line(ts(1), 'x'), line(ts(2), 'abc')), s, 2, 'drained'],
      ['a cut window (fewer records than asked): inconclusive', win(line(ts(2), 'abc')), s, 2, 'inconclusive'],
      // Defect 3: a response cut exactly at a record boundary at the checkpoint is not proof.
      ['empty response: inconclusive', win(), s, 2, 'inconclusive'],
      ['the window goes past the checkpoint: more', win(line(ts(2), 'abc'), line(ts(3), 'z')), s, 2, 'more'],
      ['more lines with the checkpoint timestamp than stored: more', win(line(ts(1), 'x'), line(ts(2), 'abc'), line(ts(2), 'abc')), s, 3, 'more'],
      ['cut inside the last line: inconclusive', Buffer.concat([win(line(ts(1), 'x')), Buffer.from(ts(2) + ' ab')]), s, 2, 'inconclusive'],
      ['last line of another length: inconclusive', win(line(ts(1), 'x'), line(ts(2), 'abcd')), s, 2, 'inconclusive'],
      ['ends before the checkpoint: inconclusive', win(line(ts(0), 'x'), line(ts(1), 'y')), s, 2, 'inconclusive'],
      ['no timestamp prefix: inconclusive', win('garbage\n'), s, 2, 'inconclusive'],
      ['same-timestamp run whole and counted: drained', win(line(ts(1), 'x'), line(ts(2), 'abc'), line(ts(2), 'abc')), stored(ts(2), 1, 4, 10), 3, 'drained'],
      ['same-timestamp run without an older line: inconclusive', win(line(ts(2), 'abc'), line(ts(2), 'abc')), stored(ts(2), 1, 4, 10), 2, 'inconclusive'],
      // A single line ending the window is confirmed by a window one record wider: the last of a burst of
      // identical lines sharing its timestamp ends the first window the same way.
      ['single-line log, one record equal: confirm', win(line(ts(2), 'abc')), stored(ts(2), 0, 4, 1), 1, 'confirm'],
      ['empty log, empty window: drained', win(), { checkpoint: undefined, bytes: 0, lines: 0 }, 1, 'drained'],
      ['empty log, a line in the window: more', win(line(ts(2), 'abc')), { checkpoint: undefined, bytes: 0, lines: 0 }, 1, 'more'],
    ];
    for (const [what, resp, st, n, want] of table) it(what, () => expect(judgeWindow(resp, st, n).kind).to.equal(want));

    it('confirms a single line with a window one record wider that holds it alone', () => {
      const one = stored(ts(2), 0, 4, 1);
      expect(judgeWindow(win(line(ts(2), 'abc')), one, 1)).to.deep.equal({ kind: 'confirm', tailLines: 2 });
      expect(judgeWindow(win(line(ts(2), 'abc')), one, 2, true).kind, 'the log is that line').to.equal('drained');
      expect(judgeWindow(win(line(ts(2), 'abc'), line(ts(2), 'abc')), one, 2, true).kind, 'a burst: two lines of its timestamp').to.equal('more');
      expect(judgeWindow(win(line(ts(1), 'x'), line(ts(2), 'abc')), one, 2, true).kind, 'an older line before it').to.equal('drained');
      expect(judgeWindow(win(line(ts(2), 'abc')), one, 2).kind, 'not confirming: a window of fewer records than asked').to.equal('inconclusive');
      const long = 'y'.repeat(40 * 1024 - 1);
      const oneLong = stored(ts(2), 0, long.length + 1, 1);
      expect(judgeWindow(win(line(ts(2), long)), oneLong, 3)).to.deep.equal({ kind: 'confirm', tailLines: 4 });
      expect(judgeWindow(win(line(ts(2), long)), oneLong, 4, true).kind).to.equal('drained');
    });

    it('asks for a wider window when it does not reach back past the last timestamp', () => {
      const v = judgeWindow(win(line(ts(2), 'abc'), line(ts(2), 'abc')), stored(ts(2), 1, 4, 10), 2);
      expect(v).to.deep.include({ kind: 'inconclusive', wider: true });
    });

    it('counts a line over 16 KiB as several records', () => {
      const long = 'y'.repeat(40 * 1024 - 1);
      const st = stored(ts(2), 0, long.length + 1, 10);
      // 3 records (40 KiB) + 1: a window of 4 records is whole
      expect(judgeWindow(win(line(ts(1), 'x'), line(ts(2), long)), st, 4).kind).to.equal('drained');
      expect(judgeWindow(win(line(ts(1), 'x'), line(ts(2), long)), st, 5).kind).to.equal('inconclusive');
    });
  });
});

describe('core/capture/drain with offset timestamps (CRI-O on a node not on UTC)', () => {
  const off = (s: number) => `2026-11-29T06:30:${String(s).padStart(2, '0')}.000000000-03:30`;
  it('reads 35-byte prefixes and compares instants', () => {
    const st: StoredSoFar = { checkpoint: { time: off(2), ordinal: 0, offset: 4, complete: true }, bytes: 100, lines: 5 };
    expect(judgeWindow(Buffer.from(`${off(1)} x\n${off(2)} abc\n`), st, 2).kind).to.equal('drained');
    // the same instant written in UTC is the same line's timestamp
    expect(judgeWindow(Buffer.from(`${off(1)} x\n2026-11-29T10:00:02.000000000Z abc\n`), st, 2).kind).to.equal('drained');
    expect(judgeWindow(Buffer.from(`${off(2)} abc\n${off(3)} z\n`), st, 2).kind).to.equal('more');
  });
});
