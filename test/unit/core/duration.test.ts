import { expect } from 'chai';
import { DURATION_PATTERN, formatDuration, parseDuration } from '../../../src/core/duration.ts';

describe('core/duration', () => {
  it('parses single and compound terms into milliseconds', () => {
    const cases: [string, number][] = [
      ['500ms', 500],
      ['10s', 10_000],
      ['5m', 300_000],
      ['1h', 3_600_000],
      ['1m30s', 90_000],
      ['1.5s', 1_500],
      ['0.25s', 250],
      ['2h0m1s', 7_201_000],
      ['1h1ms', 3_600_001],
      ['0s', 0],
      ['90s', 90_000],
      ['1.0005s', 1_001],
      ['0.0001s', 1],
      ['0.4ms', 1],
      ['0.0ms', 0],
    ];
    for (const [s, ms] of cases) expect(parseDuration(s), s).to.equal(ms);
  });

  it('rejects anything else with a message naming the input', () => {
    for (const bad of ['', '10', 's', '-1s', '+1s', '1 s', ' 1s', '1s ', '1d', '1us', '1.s', '.5s', '1e3ms', '1S', '1m30', 'ms10', '1h-1m', 'NaN', 'Infinity']) {
      expect(() => parseDuration(bad), JSON.stringify(bad)).to.throw(Error, /duration/);
    }
    expect(() => parseDuration('1x')).to.throw(/"1x"/);
    expect(() => parseDuration('1'.repeat(33) + 's')).to.throw(/longer than 32/);
    expect(() => parseDuration('9'.repeat(25) + 'h')).to.throw(/too large/);
    // Go's limit (int64 nanoseconds), which the CRD's CEL duration() shares.
    expect(parseDuration('2562047h')).to.equal(2_562_047 * 3_600_000);
    expect(() => parseDuration('2562048h')).to.throw(/too large/);
  });

  it('agrees with its exported pattern (used by the CRD)', () => {
    const re = new RegExp(DURATION_PATTERN);
    for (const s of ['500ms', '1m30s', '1.5s', '2h', '1h2m3s4ms']) expect(re.test(s), s).to.equal(true);
    for (const s of ['10', '1.s', '-1s', '1d', '']) expect(re.test(s), s).to.equal(false);
  });

  it('formats compactly and round-trips', () => {
    expect(formatDuration(0)).to.equal('0s');
    expect(formatDuration(500)).to.equal('500ms');
    expect(formatDuration(1500)).to.equal('1.5s');
    expect(formatDuration(1250)).to.equal('1.25s');
    expect(formatDuration(1005)).to.equal('1.005s');
    expect(formatDuration(90_000)).to.equal('1m30s');
    expect(formatDuration(3_600_000)).to.equal('1h');
    expect(formatDuration(7_200_250)).to.equal('2h0.25s');
    expect(formatDuration(-1500)).to.equal('-1.5s');
    expect(formatDuration(1.4)).to.equal('1ms');
    for (const ms of [1, 999, 1000, 1001, 59_999, 60_000, 61_001, 3_599_999, 3_600_001, 86_400_000, 123_456_789]) {
      expect(parseDuration(formatDuration(ms)), String(ms)).to.equal(ms);
    }
    expect(() => formatDuration(Number.NaN)).to.throw();
  });
});
