import { expect } from 'chai';
import { TS_OFFSET_PREFIX_LEN, TS_PREFIX_LEN, TsWriter, formatSeconds, formatTs, joinNs, nowNs, parseOffset, parseRfc3339, splitNs } from '../../../src/dev/simulator/time.ts';

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

  it('formats a fixed offset as local time and ±hh:mm, 35 bytes; a zero offset as Z', () => {
    const t = parseRfc3339('2026-11-27T10:00:05.123456789Z')!;
    expect(formatTs(t, -210)).to.equal('2026-11-27T06:30:05.123456789-03:30');
    expect(formatTs(t, -210)).to.have.length(35);
    expect(formatTs(t, 345)).to.equal('2026-11-27T15:45:05.123456789+05:45');
    expect(formatTs(t, 0)).to.equal('2026-11-27T10:00:05.123456789Z');
    // Crossing midnight and a year boundary.
    expect(formatTs(parseRfc3339('2027-01-01T01:00:00Z')!, -120)).to.equal('2026-12-31T23:00:00.000000000-02:00');
    // The rendered text is the same instant.
    expect(parseRfc3339(formatTs(t, -210))).to.equal(t);
    expect(parseRfc3339(formatTs(t, 345))).to.equal(t);
  });

  it('parses ±hh:mm offsets', () => {
    expect(parseOffset('-03:30')).to.equal(-210);
    expect(parseOffset('+00:00')).to.equal(0);
    expect(parseOffset('+14:00')).to.equal(840);
    for (const bad of ['03:30', '+3:30', '+24:00', '+01:60', 'Z', '+0130', '']) expect(parseOffset(bad), bad).to.equal(null);
  });

  it('TsWriter with an offset writes what formatTs formats, plus a space', () => {
    const w = new TsWriter(-210);
    expect(w.len).to.equal(TS_OFFSET_PREFIX_LEN);
    const times = [parseRfc3339('2026-11-27T10:00:05.123456789Z')!, parseRfc3339('2026-11-27T10:00:05.2Z')!, parseRfc3339('2026-11-28T02:29:59.999999999Z')!];
    const buf = Buffer.alloc(w.len * times.length);
    times.forEach((t, i) => {
      const { sec, nsec } = splitNs(t);
      w.write(buf, i * w.len, sec, nsec);
    });
    expect(buf.toString()).to.equal(times.map((t) => formatTs(t, -210) + ' ').join(''));
  });

  it('splits and joins nanoseconds', () => {
    const t = nowNs();
    const { sec, nsec } = splitNs(t);
    expect(joinNs(sec, nsec)).to.equal(t);
    expect(formatSeconds(parseRfc3339('2026-11-27T10:00:05.9Z')!)).to.equal('2026-11-27T10:00:05Z');
  });
});
