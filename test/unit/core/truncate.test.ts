import { expect } from 'chai';
import { HeadTracker, LINE_SLACK, MAX_MAX_BYTES, MIN_MAX_BYTES, headCut, layout, markerLine, markerText, stampAt, tailStart, truncateWhole } from '../../../src/core/truncate.ts';

const TS = '2026-11-29T10:00:05.123456789Z';
const TS2 = '2026-11-29T10:00:06.000000001Z';
const TSO = '2026-11-29T07:00:05.123456789-03:00';

/** n lines of `len` bytes each (newline included), content from a counter so every byte position is distinct. */
function lines(n: number, len: number, stamp?: string): Buffer {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const pre = stamp ? `${stamp} ` : '';
    const body = `${i}:`.padEnd(len - 1 - pre.length, 'abcdefghij'[i % 10]);
    out.push(`${pre}${body}\n`);
  }
  return Buffer.from(out.join(''), 'latin1');
}

describe('core/truncate (spec.maxBytes)', () => {
  describe('layout', () => {
    const cases: Array<[number]> = [[MIN_MAX_BYTES], [4096], [1 << 20], [1 << 30], [MAX_MAX_BYTES]];
    for (const [max] of cases) {
      it(`maxBytes=${max}: head + tail + the longest marker fit, halves differ by at most one byte`, () => {
        const l = layout(max);
        expect(l.head + l.tail + l.reserve).to.equal(max);
        expect(l.tail - l.head).to.be.oneOf([0, 1]);
        expect(l.head).to.be.greaterThan(0);
        const longest = markerLine(l, Number.MAX_SAFE_INTEGER, false, TSO);
        expect(longest.length).to.equal(l.reserve);
        expect(l.headSure).to.equal(Math.max(0, l.head - LINE_SLACK));
      });
    }
    for (const bad of [MIN_MAX_BYTES - 1, 0, -5, 1.5, MAX_MAX_BYTES + 1, Number.NaN]) {
      it(`refuses maxBytes=${bad}`, () => expect(() => layout(bad)).to.throw(RangeError));
    }
  });

  describe('headCut', () => {
    const l = layout(1 << 20); // head 524k, beyond LINE_SLACK
    const cases: Array<[string, number, number]> = [
      ['no newline in the window: the whole window', 0, l.head],
      ['a newline at the very end of the window', l.head, l.head],
      ['a newline within LINE_SLACK of the end', l.head - 100, l.head - 100],
      ['a newline exactly LINE_SLACK before the end', l.head - LINE_SLACK, l.head - LINE_SLACK],
      ['a newline further back: a long line, cut mid-line', l.head - LINE_SLACK - 1, l.head],
    ];
    for (const [name, lastNl, want] of cases) it(name, () => expect(headCut(l, lastNl)).to.equal(want));
    it('a small window: any newline in it', () => {
      const s = layout(MIN_MAX_BYTES);
      expect(headCut(s, 1)).to.equal(1);
      expect(headCut(s, 0)).to.equal(s.head);
    });
  });

  describe('tailStart', () => {
    const cases: Array<[string, string, number]> = [
      ['starts after the first newline', 'xx\nyyy\nzz\n', 3],
      ['a newline as first byte', '\nabc\n', 1],
      ['no newline: the whole window', 'abcdef', 0],
      ['only newline is the last byte: the whole window, never an empty tail', 'abcdef\n', 0],
    ];
    for (const [name, w, want] of cases) it(name, () => expect(tailStart(Buffer.from(w), w.length)).to.equal(want));
    it('a newline past LINE_SLACK is not looked for', () => {
      const w = Buffer.alloc(LINE_SLACK + 10, 0x61);
      w[LINE_SLACK + 2] = 0x0a;
      expect(tailStart(w, w.length)).to.equal(0);
      w[LINE_SLACK - 1] = 0x0a;
      expect(tailStart(w, w.length)).to.equal(LINE_SLACK);
    });
  });

  describe('marker', () => {
    const l = layout(4096);
    const cases: Array<[string, boolean, string | undefined, string]> = [
      ['after a whole line', true, undefined, '[logtail: truncated, 123 bytes left out (spec.maxBytes=4096)]\n'],
      ['after a cut line: on a line of its own', false, undefined, '\n[logtail: truncated, 123 bytes left out (spec.maxBytes=4096)]\n'],
      ['timestamped like the kubelet', true, TS, `${TS} [logtail: truncated, 123 bytes left out (spec.maxBytes=4096)]\n`],
      ['timestamped with an offset, after a cut line', false, TSO, `\n${TSO} [logtail: truncated, 123 bytes left out (spec.maxBytes=4096)]\n`],
    ];
    for (const [name, endsLine, stamp, want] of cases) it(name, () => expect(markerLine(l, 123, endsLine, stamp).toString('latin1')).to.equal(want));
    it('a timestamped marker is a valid kubelet line', () => {
      const m = markerLine(l, 5, true, TS);
      expect(stampAt(m, 0)).to.equal(TS);
      expect(markerText(5, 4096)).to.match(/^\[logtail: truncated, 5 bytes left out/);
    });
  });

  describe('truncateWhole', () => {
    const max = 2048;
    const l = layout(max);
    it('a log of exactly maxBytes is stored whole', () => {
      const c = Buffer.alloc(max, 0x61);
      expect(truncateWhole(c, max, false)).to.deep.equal({ stored: c, truncatedBytes: 0 });
    });
    it('maxBytes + 1 without newlines: both windows whole, the marker on its own line', () => {
      const c = Buffer.alloc(max + 1);
      for (let i = 0; i < c.length; i++) c[i] = 0x41 + (i % 26);
      const { stored, truncatedBytes } = truncateWhole(c, max, false);
      expect(truncatedBytes).to.equal(max + 1 - l.head - l.tail);
      expect(stored.subarray(0, l.head)).to.deep.equal(c.subarray(0, l.head));
      expect(stored.subarray(stored.length - l.tail)).to.deep.equal(c.subarray(c.length - l.tail));
      expect(stored.subarray(l.head, stored.length - l.tail).toString()).to.equal(`\n${markerText(truncatedBytes, max)}`);
      expect(stored.length).to.be.at.most(max);
    });
    it('lines: cuts on line boundaries; stored never exceeds maxBytes', () => {
      const c = lines(100, 50);
      const { stored, truncatedBytes } = truncateWhole(c, max, false);
      const head = Math.floor(l.head / 50) * 50;
      const tail = Math.floor(l.tail / 50) * 50;
      expect(truncatedBytes).to.equal(c.length - head - tail);
      expect(stored.toString()).to.equal(c.subarray(0, head).toString() + markerText(truncatedBytes, max) + c.subarray(c.length - tail).toString());
      expect(stored.length).to.be.at.most(max);
    });
    it('timestamps: the marker carries the stamp of the head\'s last line', () => {
      const c = Buffer.concat([lines(10, 60, TS), lines(90, 60, TS2)]);
      const head = Math.floor(l.head / 60) * 60; // 15 lines: its last one stamped TS2
      const { stored, truncatedBytes } = truncateWhole(c, max, true);
      expect(stored.subarray(head).toString().split('\n')[0]).to.equal(`${TS2} [logtail: truncated, ${truncatedBytes} bytes left out (spec.maxBytes=${max})]`);
    });
    it('timestamps false: a line that looks stamped gives the marker no stamp', () => {
      const c = lines(100, 60, TS);
      expect(truncateWhole(c, max, false).stored.toString()).to.include(`\n${markerText(c.length - Math.floor(l.head / 60) * 60 - Math.floor(l.tail / 60) * 60, max)}`);
      expect(truncateWhole(c, max, false).stored.toString()).not.to.include(`${TS} [logtail`);
    });
  });

  describe('HeadTracker agrees with the whole-buffer scan', () => {
    const TSB = Buffer.from(TS);
    const samples: Array<[string, Buffer]> = [
      ['stamped lines', lines(20, 40, TS)],
      ['a line that is only a prefix', Buffer.from(`${TS} \n${TS2} \nxyz`)],
      ['a malformed last line', Buffer.concat([lines(3, 40, TS), Buffer.from('not a stamp at all, but long enough to judge\n')])],
      ['a prefix cut at the window end', Buffer.concat([lines(2, 40, TS), TSB.subarray(0, 20)])],
      ['no stamp at all', Buffer.from('a\nb\nc')],
    ];
    for (const [name, c] of samples) {
      for (const split of [1, 7, 31, 36, 37, 1000]) {
        it(`${name}, fed in pieces of ${split}`, () => {
          const t = new HeadTracker();
          for (let i = 0; i < c.length; i += split) t.push(c.subarray(i, i + split));
          expect(t.pos).to.equal(c.length);
          expect(t.lastNewlineEnd).to.equal(c.lastIndexOf(0x0a) + 1);
          // The stamp a scan of the whole buffer finds, the head being c up to its last newline.
          const cut = t.lastNewlineEnd > 0 ? t.lastNewlineEnd : c.length;
          let want: string | undefined;
          for (let p = 0; p < cut; ) {
            const nl = c.indexOf(0x0a, p);
            const end = nl < 0 ? c.length : nl + 1;
            want = stampAt(c, p, Math.min(p + 37, end, cut)) ?? want;
            if (end >= cut) break;
            p = end;
          }
          expect(t.stampFor(cut)).to.equal(want);
        });
      }
    }
  });
});
