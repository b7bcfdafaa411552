import { expect } from 'chai';
import { LogStore, MAX_RECORD_BYTES, MemoryContent, STDERR, STDOUT } from '../../../src/dev/simulator/log-store.ts';
import { OutputGenerator } from '../../../src/dev/simulator/output.ts';
import { DEFAULT_REQUEST, renderAll } from '../../../src/dev/simulator/render.ts';
import { parseScript, type ContainerScript } from '../../../src/dev/simulator/script.ts';
import { formatTs, joinNs, parseRfc3339 } from '../../../src/dev/simulator/time.ts';

const START = parseRfc3339('2027-03-01T12:00:00Z')!;
const SEC = 1_000_000_000n;

function containerScript(spec: unknown): ContainerScript {
  const r = parseScript(JSON.stringify({ containers: { app: spec } }), ['app']);
  if (!r.ok) throw new Error(r.error);
  return r.value.containers.get('app')!;
}

/** Runs a script to the end on a simulated clock; returns the store. */
function runAll(spec: unknown, clockStepNs = SEC / 100n): LogStore {
  const store = new LogStore(new MemoryContent());
  const gen = new OutputGenerator(containerScript(spec), START, 'app', 0);
  let now = START;
  for (let i = 0; i < 1_000_000; i++) {
    const r = gen.step(now, 1 << 20, store);
    store.commit();
    if (r.done) return store;
    now = r.nextDue === null ? now : r.nextDue > now ? r.nextDue : now + clockStepNs;
  }
  throw new Error('script did not finish');
}

function recordTs(store: LogStore, i: number): bigint {
  return joinNs(store.sec(i), store.nsec(i));
}

async function content(store: LogStore): Promise<Buffer> {
  return renderAll(store, DEFAULT_REQUEST);
}

describe('simulator output generator', () => {
  it('writes `lines` generated lines of exactly `lineBytes` bytes each', async () => {
    const store = runAll({ lines: 50, lineBytes: 120 });
    const out = await content(store);
    expect(out.length).to.equal(50 * 120);
    const lines = out.toString().split('\n').slice(0, -1);
    expect(lines).to.have.length(50);
    expect(new Set(lines).size).to.equal(50); // every line distinct
    for (const l of lines) expect(l.length).to.equal(119);
    expect(store.length).to.equal(50);
  });

  it('handles tiny lineBytes', async () => {
    expect((await content(runAll({ lines: 3, lineBytes: 1 }))).toString()).to.equal('\n\n\n');
    expect((await content(runAll({ lines: 2, lineBytes: 5 }))).toString()).to.equal('0001\n0002\n');
  });

  it('paces lines at linesPerSecond and stamps them with their time', () => {
    const store = new LogStore(new MemoryContent());
    const gen = new OutputGenerator(containerScript({ lines: 5, lineBytes: 10, linesPerSecond: 2 }), START, 'app', 0);
    let r = gen.step(START, 1 << 20, store);
    expect(store.length).to.equal(1);
    expect(r).to.deep.equal({ done: false, nextDue: START + SEC / 2n });
    gen.step(START + SEC, 1 << 20, store); // lines at 0.5 s and 1 s are due
    expect(store.length).to.equal(3);
    expect(recordTs(store, 1)).to.equal(START + SEC / 2n);
    expect(recordTs(store, 2)).to.equal(START + SEC);
    r = gen.step(START + 10n * SEC, 1 << 20, store);
    expect(store.length).to.equal(5);
    expect(r.done).to.equal(true);
  });

  it('splits lines over 16 KiB into 16 KiB partial records, each stamped a little later', async () => {
    const lineBytes = 2 * MAX_RECORD_BYTES + 100; // content 32867 bytes: P 16384, P 16384, F 99+\n
    const store = runAll({ lines: 2, lineBytes, linesPerSecond: 1 });
    expect(store.length).to.equal(6);
    const flags = Array.from({ length: 6 }, (_, i) => store.partial(i));
    expect(flags).to.deep.equal([true, true, false, true, true, false]);
    expect(store.offset(1) - store.offset(0)).to.equal(MAX_RECORD_BYTES);
    expect(store.offset(3) - store.offset(2)).to.equal(100);
    expect(recordTs(store, 1) > recordTs(store, 0)).to.equal(true);
    expect(recordTs(store, 2) > recordTs(store, 1)).to.equal(true);
    expect(recordTs(store, 3)).to.equal(START + SEC);
    expect((await content(store)).length).to.equal(2 * lineBytes);
    // With timestamps: one prefix per line, not per record.
    const withTs = (await renderAll(store, { ...DEFAULT_REQUEST, timestamps: true })).toString();
    expect(withTs.startsWith(formatTs(START) + ' ')).to.equal(true);
    expect(withTs.length).to.equal(2 * lineBytes + 2 * 31);
  });

  it('a line of exactly 16 KiB content is one full record', () => {
    const store = runAll({ lines: 1, lineBytes: MAX_RECORD_BYTES + 1 });
    expect(store.length).to.equal(1);
    expect(store.partial(0)).to.equal(false);
  });

  it('burst: K consecutive lines share one timestamp', () => {
    const store = runAll({ lines: 10, lineBytes: 20, linesPerSecond: 100, burst: 4 });
    const t = Array.from({ length: 10 }, (_, i) => recordTs(store, i));
    expect(new Set(t.slice(0, 4)).size).to.equal(1);
    expect(new Set(t.slice(4, 8)).size).to.equal(1);
    expect(new Set(t.slice(8)).size).to.equal(1);
    expect(t[4]! > t[3]!).to.equal(true);
    // group g starts at g*K/R seconds
    expect(t[4]).to.equal(START + (4n * SEC) / 100n);
  });

  it('without linesPerSecond, lines still get strictly increasing timestamps', () => {
    const store = runAll({ lines: 100, lineBytes: 10 });
    for (let i = 1; i < 100; i++) expect(recordTs(store, i) > recordTs(store, i - 1)).to.equal(true);
  });

  it('writes text byte-exactly, repeat joins a text without newline into one line, a last fragment is partial', async () => {
    const store = runAll({ text: 'ab\ncd', repeat: 3 });
    expect((await content(store)).toString()).to.equal('ab\ncdab\ncdab\ncd');
    // records: "ab\n", "cdab\n", "cdab\n", "cd"(partial)
    expect(store.length).to.equal(4);
    expect(store.partial(3)).to.equal(true);
    expect(store.partial(2)).to.equal(false);
  });

  it('splits a long text line across repetitions into partial records', async () => {
    const chunk = 'z'.repeat(10_000);
    const store = runAll({ text: chunk, repeat: 4 }); // one 40000-byte line without newline
    expect((await content(store)).length).to.equal(40_000);
    expect(Array.from({ length: store.length }, (_, i) => store.partial(i))).to.deep.equal([true, true, true]);
  });

  it('routes lines to stderr by stream or stderrEvery', () => {
    const store = runAll({ segments: [{ text: 'e\n', stream: 'stderr' }, { lines: 6, lineBytes: 8, stderrEvery: 3 }] });
    const streams = Array.from({ length: store.length }, (_, i) => store.stream(i));
    expect(streams).to.deep.equal([STDERR, STDOUT, STDOUT, STDERR, STDOUT, STDOUT, STDERR]);
  });

  it('waits pauseSeconds before a segment', () => {
    const store = runAll({ segments: [{ text: 'a\n' }, { text: 'b\n', pauseSeconds: 2 }] });
    expect(recordTs(store, 1) - recordTs(store, 0) >= 2n * SEC).to.equal(true);
  });

  it('stops a step at the byte budget and resumes', () => {
    const store = new LogStore(new MemoryContent());
    const gen = new OutputGenerator(containerScript({ lines: 100, lineBytes: 1000 }), START, 'app', 0);
    const r = gen.step(START, 10_000, store);
    expect(r).to.deep.equal({ done: false, nextDue: null });
    expect(store.length).to.equal(10);
    expect(gen.step(START, 1 << 20, store).done).to.equal(true);
    expect(store.length).to.equal(100);
  });
});
