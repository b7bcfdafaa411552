import { expect } from 'chai';
import { ResumeFilter, ResumeMismatchError, compareTimestamps, isKubeletTimestamp, sinceTimeOf, stampedInLaterSecond, timestampMs, type Checkpoint } from '../../../src/core/resume-filter.ts';
import {
  LogBuilder,
  RECORD_MAX,
  Rng,
  expectedOutput,
  formatTs,
  renderStream,
  renderStreamMarked,
  type ReferenceLog,
} from './kubelet-sim.ts';

const T0 = 1_795_000_000_000_000_000n; // 2026-11-18, nanoseconds
const MS = 1_000_000n;
const SEC = 1_000_000_000n;

function randomText(rng: Rng, len: number): Buffer {
  const alphabet = Buffer.from('abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789-:.{}"\\\r\t\u0000é', 'utf8');
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = alphabet[rng.int(0, alphabet.length - 1)] as number;
  return b;
}

function line(rng: Rng, len: number): Buffer {
  return Buffer.concat([randomText(rng, len), Buffer.from('\n')]);
}

/** Short lines in bursts: many lines share a second, runs share the exact timestamp and content. */
function burstLog(seed: number, offsetMin = 0): ReferenceLog {
  const rng = new Rng(seed);
  const b = new LogBuilder(T0, offsetMin);
  for (let i = 0; i < 1500; i++) {
    const r = rng.next();
    if (r < 0.15) {
      const content = line(rng, rng.int(0, 40));
      const n = rng.int(2, 25);
      for (let k = 0; k < n; k++) b.line(content);
      b.advance(BigInt(rng.int(0, 3)) * MS);
    } else if (r < 0.2) {
      b.line('\n').advance(0n);
    } else if (r < 0.25) {
      // Content that itself looks like a prefix must be kept verbatim.
      b.line(`${formatTs(T0)} not a prefix\n`).advance(BigInt(rng.int(1, 90)) * MS);
    } else {
      b.line(line(rng, rng.int(0, 300))).advance(BigInt(rng.int(0, 40)) * MS);
    }
  }
  return b.build();
}

/** Long lines split into records stamped across second boundaries, ending without newline. */
function longLineLog(seed: number, offsetMin = 0): ReferenceLog {
  const rng = new Rng(seed);
  const b = new LogBuilder(T0 + 500n * MS, offsetMin);
  for (let i = 0; i < 60; i++) {
    const r = rng.next();
    if (r < 0.35) {
      b.line(line(rng, rng.int(RECORD_MAX, 5 * RECORD_MAX)), BigInt(rng.int(100, 900)) * MS);
    } else if (r < 0.45) {
      // Identical long lines on one timestamp: only the ordinal tells them apart.
      const content = line(rng, rng.int(RECORD_MAX + 1, 3 * RECORD_MAX));
      for (let k = 0; k < 3; k++) b.line(content, 0n);
    } else if (r < 0.55) {
      // Newlines exactly at and just past a record boundary.
      b.line(line(rng, RECORD_MAX - 1)).line(line(rng, RECORD_MAX), 300n * MS).line(line(rng, 2 * RECORD_MAX), 700n * MS);
    } else {
      for (let k = rng.int(1, 30); k > 0; k--) b.line(line(rng, rng.int(0, 200))).advance(BigInt(rng.int(0, 60)) * MS);
    }
    b.advance(BigInt(rng.int(0, 1500)) * MS);
  }
  b.line(randomText(rng, 2 * RECORD_MAX + 123), 400n * MS); // last line, no newline
  return b.build();
}

interface CaptureResult {
  out: Buffer;
  filter: ResumeFilter;
  connections: number;
  sinceTimes: (string | undefined)[];
}

type CutMode = 'uniform' | 'prefix' | 'mixed';

/**
 * Captures `log` over connections cut at random places; each reconnection
 * asks for filter.sinceTime(), the last connection runs to the end.
 */
function capture(log: ReferenceLog, keep: boolean, seed: number, cuts: number, mode: CutMode, inPlace = false): CaptureResult {
  const rng = new Rng(seed);
  const filter = new ResumeFilter({ keepTimestamps: keep, inPlace });
  const out: Buffer[] = [];
  const sinceTimes: (string | undefined)[] = [];
  let connections = 0;
  for (let conn = 0; conn <= cuts; conn++) {
    const since = filter.sinceTime();
    sinceTimes.push(since);
    const { bytes, prefixAt } = renderStreamMarked(log, since);
    let cut = bytes.length;
    if (conn < cuts) {
      const inPrefix = mode === 'prefix' || (mode === 'mixed' && rng.chance(0.5));
      if (inPrefix && prefixAt.length > 0) {
        cut = Math.min(bytes.length, (prefixAt[rng.int(0, prefixAt.length - 1)] as number) + rng.int(0, 32));
      } else {
        cut = rng.int(0, bytes.length);
      }
    }
    filter.beginConnection();
    connections++;
    feed(filter, bytes.subarray(0, cut), rng, out, inPlace);
  }
  return { out: Buffer.concat(out), filter, connections, sinceTimes };
}

function feed(filter: ResumeFilter, stream: Buffer, rng: Rng, out: Buffer[], inPlace = false): void {
  let pos = 0;
  while (pos < stream.length) {
    const size = rng.chance(0.3) ? rng.int(1, 40) : rng.int(1, 70_000);
    const view = stream.subarray(pos, Math.min(stream.length, pos + size));
    // In-place mode may rearrange the chunk: give it a private copy, and keep
    // only references to what it emits, so a later change would show.
    const chunk = inPlace ? Buffer.from(view) : view;
    filter.push(chunk, (b) => {
      expect(b.length).to.be.greaterThan(0);
      out.push(b);
    });
    pos += chunk.length;
  }
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function expectExact(res: CaptureResult, log: ReferenceLog, keep: boolean, label: string): void {
  const want = expectedOutput(log, keep);
  const at = firstDifference(res.out, want);
  expect(at, `${label}: output differs at byte ${at} of ${want.length} (got ${res.out.length}, ${res.connections} connections)`).to.equal(-1);
  const contentBytes = log.lines.reduce((s, l) => s + l.content.length, 0);
  const fullLines = log.lines.filter((l) => l.content[l.content.length - 1] === 10).length;
  expect(res.filter.contentBytes, `${label}: contentBytes`).to.equal(contentBytes);
  expect(res.filter.bytes, `${label}: bytes (stored)`).to.equal(want.length);
  expect(res.filter.lines, `${label}: lines`).to.equal(fullLines);
  expect(res.filter.gaps, `${label}: gaps`).to.equal(0);
  expect(res.filter.malformedLines, `${label}: malformed`).to.equal(0);
  expect(res.filter.firstTimestamp).to.equal(log.lines[0]?.ts);
}

describe('core/resume-filter', () => {
  describe('a single connection', () => {
    it('strips prefixes, or keeps them, byte-exactly', () => {
      const log = new LogBuilder(T0).line('a\n').line('\n').advance(5n * MS).line('bc\n').line('tail').build();
      for (const keep of [false, true]) {
        const f = new ResumeFilter({ keepTimestamps: keep });
        const out: Buffer[] = [];
        f.beginConnection();
        f.push(renderStream(log), (b) => out.push(b));
        expect(Buffer.concat(out).toString()).to.equal(expectedOutput(log, keep).toString());
        expect(f.lines).to.equal(3);
        // bytes: what is stored (prefixes included when kept); contentBytes: what the container wrote.
        expect(f.bytes).to.equal(expectedOutput(log, keep).length);
        expect(f.contentBytes).to.equal(2 + 1 + 3 + 4);
      }
      const f = new ResumeFilter({ keepTimestamps: false });
      const out: Buffer[] = [];
      f.push(renderStream(log), (b) => out.push(b));
      expect(Buffer.concat(out).toString()).to.equal('a\n\nbc\ntail');
    });

    it('emits a long line as its bytes arrive, never holding more than a prefix', () => {
      const content = Buffer.alloc(1024 * 1024, 'x');
      const log = new LogBuilder(T0).line(Buffer.concat([content, Buffer.from('\n')])).build();
      const stream = renderStream(log);
      const f = new ResumeFilter({ keepTimestamps: false });
      let emitted = 0;
      for (let pos = 0; pos < stream.length; pos += 65536) {
        f.push(stream.subarray(pos, pos + 65536), (b) => (emitted += b.length));
        // Everything but the 31-byte prefix has come out already.
        expect(emitted).to.equal(Math.min(stream.length, pos + 65536) - 31);
      }
    });

    it('holds a prefix split across chunks, even one byte at a time', () => {
      const log = new LogBuilder(T0).line('first\n').advance(SEC).line('second\n').line('x').build();
      const stream = renderStream(log);
      for (const keep of [false, true]) {
        const f = new ResumeFilter({ keepTimestamps: keep });
        const out: Buffer[] = [];
        for (let i = 0; i < stream.length; i++) f.push(stream.subarray(i, i + 1), (b) => out.push(b));
        expect(Buffer.concat(out).equals(expectedOutput(log, keep))).to.equal(true);
      }
    });

    it('emits one buffer per push and leaves the input untouched', () => {
      const log = new LogBuilder(T0).line('a\n').line('b\n').line('c\n').build();
      const stream = renderStream(log);
      const copy = Buffer.from(stream);
      const f = new ResumeFilter({ keepTimestamps: false });
      const out: Buffer[] = [];
      f.push(stream, (b) => out.push(b));
      expect(out.map((b) => b.toString())).to.deep.equal(['a\nb\nc\n']);
      expect(stream.equals(copy)).to.equal(true);
      const k = new ResumeFilter({ keepTimestamps: true });
      const outK: Buffer[] = [];
      k.push(stream, (b) => outK.push(b));
      // Nothing to strip: the chunk itself goes out.
      expect(outK).to.have.length(1);
      expect(outK[0]).to.equal(stream);
    });
  });

  describe('checkpoints', () => {
    it('names the line in progress by timestamp, ordinal and emitted bytes', () => {
      const log = new LogBuilder(T0).line('aa\n').line('aa\n').line('bbbb\n').build();
      const stream = renderStream(log);
      const f = new ResumeFilter({ keepTimestamps: false });
      expect(f.checkpoint()).to.equal(undefined);
      expect(f.sinceTime()).to.equal(undefined);
      const ts = formatTs(T0);
      f.push(stream.subarray(0, 34 + 31 + 1), () => {});
      expect(f.checkpoint()).to.deep.equal({ time: ts, ordinal: 1, offset: 1, complete: false } satisfies Checkpoint);
      f.push(stream.subarray(66, 68), () => {});
      expect(f.checkpoint()).to.deep.equal({ time: ts, ordinal: 1, offset: 3, complete: true });
      // A prefix without content yet does not start the line.
      f.push(stream.subarray(68, 68 + 31), () => {});
      expect(f.checkpoint()).to.deep.equal({ time: ts, ordinal: 1, offset: 3, complete: true });
      f.push(stream.subarray(99), () => {});
      expect(f.checkpoint()).to.deep.equal({ time: ts, ordinal: 2, offset: 5, complete: true });
      expect(f.sinceTime()).to.equal(ts.slice(0, 19) + 'Z');
    });

    it('replays nothing twice and drops nothing after a cut inside a burst of identical lines', () => {
      const b = new LogBuilder(T0 + 999n * MS);
      for (let i = 0; i < 10; i++) b.line('same\n');
      const log = b.advance(2n * MS).line('next second\n').build();
      const stream = renderStream(log);
      const f = new ResumeFilter({ keepTimestamps: false });
      const out: Buffer[] = [];
      f.beginConnection();
      f.push(stream.subarray(0, 4 * 36 + 31 + 2), (x) => out.push(x)); // 4 lines and "sa"
      f.beginConnection();
      f.push(renderStream(log, f.sinceTime()), (x) => out.push(x));
      expect(Buffer.concat(out).toString()).to.equal('same\n'.repeat(10) + 'next second\n');
      expect(f.lines).to.equal(11);
    });

    it('re-emits a prefix only for a line none of whose bytes went out', () => {
      const log = new LogBuilder(T0).line('one\n').line('two\n').build();
      const stream = renderStream(log);
      for (const cut of [35, 35 + 10, 35 + 31, 35 + 32, 35 + 33]) {
        const f = new ResumeFilter({ keepTimestamps: true });
        const out: Buffer[] = [];
        f.push(stream.subarray(0, cut), (x) => out.push(x));
        f.beginConnection();
        f.push(renderStream(log, f.sinceTime()), (x) => out.push(x));
        expect(Buffer.concat(out).toString(), `cut at ${cut}`).to.equal(expectedOutput(log, true).toString());
      }
    });

    it('resumes from a checkpoint given to the constructor (e.g. after an operator restart)', () => {
      const log = burstLog(7);
      const stream = renderStream(log);
      const first = new ResumeFilter({ keepTimestamps: false });
      const stored: Buffer[] = [];
      first.push(stream.subarray(0, Math.floor(stream.length / 2)), (x) => stored.push(x));
      const cp = first.checkpoint();
      expect(cp).to.not.equal(undefined);
      const { complete: _complete, ...fromStatus } = cp as Checkpoint;
      const second = new ResumeFilter({ keepTimestamps: false, checkpoint: fromStatus });
      expect(second.sinceTime()).to.equal(first.sinceTime());
      expect(second.resuming).to.equal(true);
      second.beginConnection();
      second.push(renderStream(log, second.sinceTime()), (x) => stored.push(x));
      expect(second.resuming).to.equal(false);
      expect(Buffer.concat(stored).equals(expectedOutput(log, false))).to.equal(true);
      expect(second.bytes + first.bytes).to.equal(expectedOutput(log, false).length);
    });

    it('rejects a malformed constructor checkpoint', () => {
      expect(() => new ResumeFilter({ keepTimestamps: false, checkpoint: { time: '2026-11-27T10:00:05Z', ordinal: 0, offset: 0 } })).to.throw(/timestamp/);
      const time = formatTs(T0);
      expect(() => new ResumeFilter({ keepTimestamps: false, checkpoint: { time, ordinal: -1, offset: 0 } })).to.throw(/ordinal/);
      expect(() => new ResumeFilter({ keepTimestamps: false, checkpoint: { time, ordinal: 0, offset: 1.5 } })).to.throw(/offset/);
      expect(isKubeletTimestamp(time)).to.equal(true);
      expect(isKubeletTimestamp(time.replace('Z', '+'))).to.equal(false);
      const offset = formatTs(T0, -210);
      expect(new ResumeFilter({ keepTimestamps: false, checkpoint: { time: offset, ordinal: 0, offset: 0 } }).checkpoint()?.time).to.equal(offset);
    });
  });

  describe('resuming through a simulated kubelet', () => {
    const rounds = [
      { name: 'bursts of identical lines', make: burstLog, seeds: 12, cuts: 12 },
      { name: 'lines over 16 KiB across seconds', make: longLineLog, seeds: 8, cuts: 10 },
    ];
    for (const r of rounds) {
      for (const keep of [false, true]) {
        for (const mode of ['uniform', 'prefix', 'mixed'] as CutMode[]) {
          it(`${r.name}, keepTimestamps=${keep}, cuts ${mode}`, () => {
            for (let seed = 1; seed <= r.seeds; seed++) {
              const log = r.make(seed);
              const res = capture(log, keep, seed * 7919 + (keep ? 1 : 0), r.cuts, mode);
              expectExact(res, log, keep, `seed ${seed}`);
            }
          });
        }
      }
    }

    it('starts some resumed connections inside a long line (the case the drop rule is for)', () => {
      let headless = 0;
      for (let seed = 1; seed <= 8; seed++) {
        const log = longLineLog(seed);
        const res = capture(log, false, seed, 10, 'uniform');
        for (const since of res.sinceTimes) {
          if (since === undefined) continue;
          const s = renderStream(log, since);
          if (!isKubeletTimestamp(s.subarray(0, 30).toString('latin1'))) headless++;
        }
      }
      expect(headless).to.be.greaterThan(0);
    });

    it('survives a cut at every byte of a small log', () => {
      const b = new LogBuilder(T0 + 999_999_000n);
      b.line('x\n').line('x\n').advance(1000n).line(Buffer.concat([Buffer.alloc(RECORD_MAX + 5, 'y'), Buffer.from('\n')]), 2000n);
      b.line('x\n').line('z');
      const log = b.build();
      const full = renderStream(log);
      for (const keep of [false, true]) {
        for (let cut = 0; cut <= full.length; cut += cut < 200 || cut > full.length - 200 ? 1 : 97) {
          const f = new ResumeFilter({ keepTimestamps: keep });
          const out: Buffer[] = [];
          f.push(full.subarray(0, cut), (x) => out.push(x));
          f.beginConnection();
          f.push(renderStream(log, f.sinceTime()), (x) => out.push(x));
          expect(Buffer.concat(out).equals(expectedOutput(log, keep)), `keep=${keep} cut=${cut}`).to.equal(true);
        }
      }
    });
  });

  describe('draining through a tailLines window', () => {
    const t = (n: number) => `2026-11-27T10:00:05.00000000${n}Z `;
    const full = Buffer.from(`${t(1)}one\n${t(2)}same\n${t(2)}same\n${t(3)}last\n`);
    const start = () => {
      const f = new ResumeFilter({ keepTimestamps: false });
      const out: Buffer[] = [];
      f.beginConnection();
      // the first connection carried "one" and the first "same", then broke
      f.push(full.subarray(0, full.indexOf('same\n') + 5), (b) => out.push(b));
      return { f, out };
    };

    it('emits exactly the missing lines when the window starts before the checkpoint', () => {
      const { f, out } = start();
      f.beginConnection({ tailWindow: true });
      f.push(full, (b) => out.push(b));
      expect(Buffer.concat(out).toString()).to.equal('one\nsame\nsame\nlast\n');
    });

    it("refuses a window that starts at the checkpoint's timestamp, where ordinals cannot be trusted", () => {
      const { f, out } = start();
      f.beginConnection({ tailWindow: true });
      const window = full.subarray(full.indexOf(t(2)) + t(2).length + 5); // starts at the second "same"
      expect(() => f.push(window, (b) => out.push(b))).to.throw(ResumeMismatchError).with.property('kind', 'window');
      // the replay that follows still resumes exactly
      f.beginConnection();
      f.push(full, (b) => out.push(b));
      expect(Buffer.concat(out).toString()).to.equal('one\nsame\nsame\nlast\n');
    });
  });

  describe('in-place mode (the caller hands over its chunks)', () => {
    for (const keep of [false, true]) {
      it(`is byte-exact across random cuts and never changes what it emitted (keepTimestamps=${keep})`, () => {
        for (let seed = 1; seed <= 8; seed++) {
          for (const make of [burstLog, longLineLog]) {
            const log = make(seed);
            expectExact(capture(log, keep, seed * 7919, 8, 'mixed', true), log, keep, `${make.name} seed ${seed}`);
          }
        }
      });
    }
  });

  describe('timestamps with an offset (CRI-O on a node not on UTC)', () => {
    // The kubelet prints `2006-01-02T15:04:05.000000000Z07:00`: `Z`, or `+hh:mm` / `-hh:mm`.
    const zones = [
      { name: 'Z', offsetMin: 0 },
      { name: '-03:30', offsetMin: -210 },
      { name: '+01:00', offsetMin: 60 },
      { name: '+05:45', offsetMin: 345 },
      { name: '-12:00', offsetMin: -720 },
      { name: '+14:00', offsetMin: 840 },
    ];

    for (const z of zones) {
      for (const keep of [false, true]) {
        it(`resumes byte-exactly across random cuts, zone ${z.name}, keepTimestamps=${keep}`, () => {
          for (let seed = 1; seed <= 4; seed++) {
            for (const make of [burstLog, longLineLog]) {
              const log = make(seed, z.offsetMin);
              for (const inPlace of [false, true]) {
                const res = capture(log, keep, seed * 31 + z.offsetMin, 8, 'mixed', inPlace);
                expectExact(res, log, keep, `${make.name} seed ${seed} inPlace=${inPlace}`);
              }
            }
          }
        });
      }
    }

    it('asks sinceTime for the UTC second of the checkpoint instant', () => {
      const table: [string, string][] = [
        ['2026-11-27T10:00:05.123456789Z', '2026-11-27T10:00:05Z'],
        ['2026-11-27T10:00:05.123456789+01:00', '2026-11-27T09:00:05Z'],
        ['2026-11-27T10:00:05.999999999-03:30', '2026-11-27T13:30:05Z'],
        ['2026-11-27T23:59:59.999999999-00:30', '2026-11-28T00:29:59Z'],
        ['2026-01-01T00:00:00.000000000+14:00', '2025-12-31T10:00:00Z'],
        ['2028-02-29T12:00:00.500000000+05:45', '2028-02-29T06:15:00Z'],
      ];
      for (const [time, want] of table) {
        expect(sinceTimeOf(time), time).to.equal(want);
        const f = new ResumeFilter({ keepTimestamps: false, checkpoint: { time, ordinal: 0, offset: 0 } });
        expect(f.sinceTime(), time).to.equal(want);
      }
    });

    it('compares instants, not strings', () => {
      const table: [string, string, number][] = [
        ['2026-11-27T10:00:05.000000001Z', '2026-11-27T10:00:05.000000002Z', -1],
        ['2026-11-27T10:00:05.000000001+01:00', '2026-11-27T09:00:05.000000001Z', 0],
        ['2026-11-27T10:00:05.000000001+01:00', '2026-11-27T09:30:00.000000000Z', -1],
        ['2026-11-27T08:59:59.000000000-00:30', '2026-11-27T10:00:05.000000000+01:00', 1],
        ['2026-11-27T02:30:00.000000000+01:00', '2026-11-27T02:59:00.000000000+02:00', 1],
        ['2026-11-27T00:00:00.000000000+00:00', '2026-11-27T00:00:00.000000000Z', 0],
      ];
      for (const [a, b, want] of table) {
        expect(Math.sign(compareTimestamps(a, b)), `${a} vs ${b}`).to.equal(want);
        expect(Math.sign(compareTimestamps(b, a)), `${b} vs ${a}`).to.equal(-want);
      }
    });

    it('tells whether a line was stamped after a container finished, by instant', () => {
      const finished = '2026-11-27T10:00:05Z';
      const table: [string, boolean][] = [
        ['2026-11-27T10:00:05.999999999Z', false],
        ['2026-11-27T10:00:06.000000000Z', true],
        ['2026-11-27T11:00:05.999999999+01:00', false], // 10:00:05Z: a string compare says later
        ['2026-11-27T11:00:06.000000000+01:00', true],
        ['2026-11-27T06:30:06.000000000-03:30', true], // 10:00:06Z: a string compare says earlier
        ['2026-11-27T06:30:05.500000000-03:30', false],
      ];
      for (const [ts, want] of table) expect(stampedInLaterSecond(ts, finished), ts).to.equal(want);
      expect(stampedInLaterSecond('2026-11-27T10:00:06.000000000Z', '2026-11-27T10:00:05.999Z')).to.equal(true);
      expect(() => stampedInLaterSecond('2026-11-27T10:00:06.000000000Z', 'yesterday')).to.throw(RangeError);
      expect(timestampMs('2026-11-27T11:00:05.123456789+01:00')).to.equal(Date.parse('2026-11-27T10:00:05.123Z'));
    });

    it('recognises the kubelet layouts and nothing else', () => {
      const table: [string, boolean][] = [
        ['2026-11-27T10:00:05.123456789Z', true],
        ['2026-11-27T10:00:05.123456789-03:30', true],
        ['2026-11-27T10:00:05.123456789+14:00', true],
        ['2026-11-27T10:00:05Z', false],
        ['2026-11-27T10:00:05.123Z', false],
        ['2026-11-27T10:00:05.123456789+0100', false],
        ['2026-11-27T10:00:05.123456789+01', false],
        ['2026-11-27 10:00:05.123456789Z', false],
        ['2026-11-27T10:00:05.123456789z', false],
        ['2026-13-27T10:00:05.123456789Z', false],
        ['2026-11-27T24:00:05.123456789Z', false],
        ['2026-11-27T10:00:05.123456789+01:60', false],
        ['2026-11-27T10:00:05.123456789Z ', false],
      ];
      for (const [ts, want] of table) expect(isKubeletTimestamp(ts), ts).to.equal(want);
    });

    it('resumes across a daylight saving change, where local times repeat', () => {
      // 03:00 at +02:00 becomes 02:00 at +01:00: the same wall-clock second twice.
      const change = 1_792_890_000_000_000_000n; // 2026-10-25T01:00:00Z
      const b = new LogBuilder(change - 2n * SEC, 120);
      for (let i = 0; i < 6; i++) b.line(`summer ${i}\n`).advance(300n * MS);
      b.advance(200n * MS).zone(60); // exactly 01:00:00Z: local 03:00 turns 02:00
      for (let i = 0; i < 6; i++) b.line(`winter ${i}\n`).advance(300n * MS);
      b.advance(3596n * SEC + 200n * MS); // local 02:59:58 again, an hour later
      for (let i = 0; i < 4; i++) b.line(`an hour later ${i}\n`).advance(400n * MS);
      const log = b.build();
      expect(log.lines[0]?.ts.endsWith('+02:00')).to.equal(true);
      expect(log.lines[6]?.ts).to.equal('2026-10-25T02:00:00.000000000+01:00');
      expect(log.lines[12]?.ts).to.equal('2026-10-25T02:59:58.000000000+01:00');
      expect(log.lines[0]?.ts).to.equal('2026-10-25T02:59:58.000000000+02:00');
      const full = renderStream(log);
      for (const keep of [false, true]) {
        for (let cut = 0; cut <= full.length; cut += 3) {
          const f = new ResumeFilter({ keepTimestamps: keep });
          const out: Buffer[] = [];
          f.push(full.subarray(0, cut), (x) => out.push(x));
          f.beginConnection();
          f.push(renderStream(log, f.sinceTime()), (x) => out.push(x));
          expect(Buffer.concat(out).equals(expectedOutput(log, keep)), `keep=${keep} cut=${cut}`).to.equal(true);
          expect(f.gaps + f.malformedLines, `keep=${keep} cut=${cut}`).to.equal(0);
        }
      }
    });

    it('refuses a tailLines window whose first line is later in time though earlier as a string', () => {
      const log = new LogBuilder(T0, 60).line('one\n').advance(SEC).line('two\n').zone(-30).advance(SEC).line('three\n').build();
      const f = new ResumeFilter({ keepTimestamps: false });
      const stream = renderStream(log);
      f.push(stream.subarray(0, 36 + 4 + 36 + 2), () => {}); // "one" and "tw"
      const lastOnly = renderStream({ records: log.records.slice(2), lines: log.lines.slice(2) });
      expect(lastOnly.toString('latin1') < stream.toString('latin1')).to.equal(true);
      f.beginConnection({ tailWindow: true });
      expect(() => f.push(lastOnly, () => {})).to.throw(ResumeMismatchError).with.property('kind', 'window');
    });

    it('counts every line it cannot parse, mid-stream, and stores it as received', () => {
      const ts = formatTs(T0, -210);
      const bad = [
        '2026-11-27T10:00:05Z short\n',
        '2026-11-27T10:00:05.123Z millis\n',
        '2026-11-27T10:00:05.123456789+0100 no colon\n',
        '2026-11-27 10:00:05.123456789Z space\n',
        '2026-11-27T10:00:05.123456789+01:00\n',
        'plain text\n',
        '\n',
        // Same second as its neighbours, one fraction digit not a digit (the hot path checks only the differing digits).
        `${ts.slice(0, 25)}x${ts.slice(26)} fraction\n`,
        // Same layout and zone, impossible fields.
        `${ts.slice(0, 5)}13${ts.slice(7)} month 13\n`,
        `${ts.slice(0, 8)}31${ts.slice(10)} 31 November\n`,
        `${ts.slice(0, 11)}24${ts.slice(13)} hour 24\n`,
        `${ts.slice(0, 30)}24:00 offset hour 24\n`,
      ];
      for (const line of bad) {
        for (const chunk of [1, 7, 1000]) {
          const f = new ResumeFilter({ keepTimestamps: false });
          const out: Buffer[] = [];
          const stream = Buffer.from(`${ts} a\n${line}${ts} b\n`);
          for (let i = 0; i < stream.length; i += chunk) f.push(stream.subarray(i, i + chunk), (x) => out.push(x));
          expect(Buffer.concat(out).toString(), JSON.stringify(line)).to.equal(`a\n${line}b\n`);
          expect(f.malformedLines, JSON.stringify(line)).to.equal(1);
        }
      }
    });
  });

  describe('anomalies', () => {
    it('counts a gap when the replay no longer holds the checkpoint line, and carries on', () => {
      const b = new LogBuilder(T0);
      for (let i = 0; i < 5; i++) b.line(`line ${i}\n`).advance(SEC);
      const log = b.build();
      const f = new ResumeFilter({ keepTimestamps: false });
      const out: Buffer[] = [];
      const stream = renderStream(log);
      f.push(stream.subarray(0, 2 * 38 + 31 + 3), (x) => out.push(x)); // "lin" of line 2
      // Rotation lost lines 2 and 3: the new file starts at line 4.
      const rotated: ReferenceLog = { records: log.records.slice(4), lines: log.lines.slice(4) };
      f.beginConnection();
      f.push(renderStream(rotated, f.sinceTime()), (x) => out.push(x));
      expect(Buffer.concat(out).toString()).to.equal('line 0\nline 1\nlinline 4\n');
      expect(f.gaps).to.equal(1);
      expect(f.lastAnomaly).to.match(/checkpoint line/);
    });

    it('stores a log file that starts inside a long line, once, across a reconnection from the top', () => {
      const log = new LogBuilder(T0).line('tail of an older line\n').line('next\n').build();
      const stream = renderStream(log).subarray(31); // the first line's prefix rotated away
      const f = new ResumeFilter({ keepTimestamps: false });
      const out: Buffer[] = [];
      f.push(stream.subarray(0, 10), (x) => out.push(x));
      expect(f.sinceTime()).to.equal(undefined);
      f.beginConnection();
      f.push(stream, (x) => out.push(x));
      expect(Buffer.concat(out).toString()).to.equal('tail of an older line\nnext\n');
      expect(f.malformedLines).to.equal(0);
    });

    it('stores a line without prefix in mid-stream as is and counts it', () => {
      const ts = formatTs(T0);
      const f = new ResumeFilter({ keepTimestamps: false });
      const out: Buffer[] = [];
      f.push(Buffer.from(`${ts} a\n2026-oops\n${ts} b\n`), (x) => out.push(x));
      expect(Buffer.concat(out).toString()).to.equal('a\n2026-oops\nb\n');
      expect(f.malformedLines).to.equal(1);
    });
  });

  it('filters a 50 MiB push in one go (self-check, no timing assertion)', function () {
    this.timeout(60_000);
    const lineLen = 200;
    const n = Math.floor((50 * 1024 * 1024) / lineLen);
    const proto = Buffer.from(`${formatTs(T0)} ${'x'.repeat(lineLen - 32)}\n`);
    const big = Buffer.allocUnsafe(n * proto.length);
    for (let i = 0; i < n; i++) proto.copy(big, i * proto.length);
    for (const keep of [false, true]) {
      const f = new ResumeFilter({ keepTimestamps: keep });
      let size = 0;
      const t = process.hrtime.bigint();
      f.push(big, (b) => (size += b.length));
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      expect(size).to.equal(keep ? big.length : big.length - n * 31);
      expect(f.lines).to.equal(n);
      expect(f.checkpoint()).to.deep.equal({ time: formatTs(T0), ordinal: n - 1, offset: lineLen - 31, complete: true });
      console.log(`      50 MiB, keepTimestamps=${keep}: ${ms.toFixed(0)} ms`);
    }
  });
});
