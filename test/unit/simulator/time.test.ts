import { expect } from 'chai';
import { TS_PREFIX_LEN, TsWriter, formatSeconds, formatTs, joinNs, nowNs, parseRfc3339, splitNs } from '../../../src/dev/simulator/time.ts';

describe('simulator time', () => {
  it('formats fixed-width RFC3339 with nine fraction digits', () => {
    expect(formatTs(parseRfc3339('2026-11-27T10:00:05Z')!)).to.equal('2026-11-27T10:00:05.000000000Z');
    expect(formatTs(parseRfc3339('2026-11-27T10:00:05.5Z')!)).to.equal('2026-11-27T10:00:05.500000000Z');
    expect(formatTs(parseRfc3339('2026-11-27T10:00:05.000000007Z')!)).to.equal('2026-11-27T10:00:05.000000007Z');
  });

  it('parses offsets and rejects garbage', () => {
    expect(parseRfc3339('2026-11-27T12:00:05+02:00')).to.equal(parseRfc3339('2026-11-27T10:00:05Z'));
    expect(parseRfc3339('2026-11-27 10:00:05')).to.equal(null);
    expect(parseRfc3339('')).to.equal(null);
  });

  it('TsWriter writes what formatTs formats, plus a space', () => {
    const w = new TsWriter();
    const buf = Buffer.alloc(TS_PREFIX_LEN * 3);
    const times = [parseRfc3339('2026-11-27T10:00:05.123456789Z')!, parseRfc3339('2026-11-27T10:00:05.2Z')!, parseRfc3339('2026-12-31T23:59:59.999999999Z')!];
    times.forEach((t, i) => {
      const { sec, nsec } = splitNs(t);
      w.write(buf, i * TS_PREFIX_LEN, sec, nsec);
    });
    expect(buf.toString()).to.equal(times.map((t) => formatTs(t) + ' ').join(''));
  });

  it('splits and joins nanoseconds', () => {
    const t = nowNs();
    const { sec, nsec } = splitNs(t);
    expect(joinNs(sec, nsec)).to.equal(t);
    expect(formatSeconds(parseRfc3339('2026-11-27T10:00:05.9Z')!)).to.equal('2026-11-27T10:00:05Z');
  });
});
