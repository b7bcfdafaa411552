import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileContent, LogStore, MAX_RECORD_BYTES, MemoryContent, STDERR, STDOUT } from '../../../src/dev/simulator/log-store.ts';
import { DEFAULT_REQUEST, LogCursor, parseLogQuery, renderAll, type LogRequest } from '../../../src/dev/simulator/render.ts';
import { formatTs, joinNs, parseRfc3339 } from '../../../src/dev/simulator/time.ts';

const T0 = 1_800_000_000; // seconds

function rec(store: LogStore, sec: number, nsec: number, content: string, opts: { partial?: boolean; stderr?: boolean } = {}) {
  store.append(T0 + sec, nsec, opts.stderr ? STDERR : STDOUT, opts.partial ?? false, Buffer.from(content));
}

function ts(sec: number, nsec: number): string {
  return formatTs(joinNs(T0 + sec, nsec));
}

function req(r: Partial<LogRequest>): LogRequest {
  return { ...DEFAULT_REQUEST, ...r };
}

async function render(store: LogStore, r: Partial<LogRequest>): Promise<string> {
  return (await renderAll(store, req(r))).toString();
}

describe('simulator log rendering', () => {
  let store: LogStore;
  beforeEach(() => {
    store = new LogStore(new MemoryContent());
    rec(store, 0, 1, 'one\n');
    rec(store, 0, 2, 'err\n', { stderr: true });
    // A long line: two partial chunks and the final one, each stamped.
    rec(store, 1, 100, 'AAAA', { partial: true });
    rec(store, 2, 200, 'BBBB', { partial: true });
    rec(store, 2, 300, 'CC\n');
    rec(store, 3, 0, 'last\n');
    store.commit();
  });

  it('writes stdout and stderr interleaved, content only', async () => {
    expect(await render(store, {})).to.equal('one\nerr\nAAAABBBBCC\nlast\n');
  });

  it('prefixes only the first chunk of a line with its timestamp', async () => {
    expect(await render(store, { timestamps: true })).to.equal(`${ts(0, 1)} one\n${ts(0, 2)} err\n${ts(1, 100)} AAAABBBBCC\n${ts(3, 0)} last\n`);
  });

  it('applies sinceTime to each chunk: a line whose first chunk is older continues without a prefix', async () => {
    const since = joinNs(T0 + 2, 0);
    expect(await render(store, { timestamps: true, since })).to.equal(`BBBBCC\n${ts(3, 0)} last\n`);
    expect(await render(store, { since })).to.equal('BBBBCC\nlast\n');
  });

  it('keeps records stamped exactly at sinceTime', async () => {
    expect(await render(store, { since: joinNs(T0 + 3, 0) })).to.equal('last\n');
    expect(await render(store, { since: joinNs(T0 + 3, 1) })).to.equal('');
  });

  it('counts tailLines in records (chunks), prefixing the first one shown', async () => {
    expect(await render(store, { tailLines: 2 })).to.equal('CC\nlast\n');
    expect(await render(store, { tailLines: 2, timestamps: true })).to.equal(`${ts(2, 300)} CC\n${ts(3, 0)} last\n`);
    expect(await render(store, { tailLines: 0 })).to.equal('');
    expect(await render(store, { tailLines: 100 })).to.equal('one\nerr\nAAAABBBBCC\nlast\n');
  });

  it('cuts at limitBytes, prefixes included', async () => {
    expect(await render(store, { limitBytes: 6 })).to.equal('one\ner');
    const full = `${ts(0, 1)} one\n`;
    expect(await render(store, { limitBytes: full.length + 3, timestamps: true })).to.equal(full + ts(0, 2).slice(0, 3));
  });

  it('hands out big outputs in batches without losing a byte', async () => {
    const s = new LogStore(new MemoryContent());
    let expected = '';
    for (let i = 0; i < 5000; i++) {
      const line = `line ${i} ${'x'.repeat(i % 50)}\n`;
      s.append(T0, i, i % 7 === 0 ? STDERR : STDOUT, false, Buffer.from(line));
      expected += `${formatTs(joinNs(T0, i))} ${line}`;
    }
    s.commit();
    const c = new LogCursor(s, req({ timestamps: true }));
    const parts: Buffer[] = [];
    let batches = 0;
    while (!c.done) {
      const b = await c.read(4096);
      if (!b) break;
      parts.push(b);
      batches++;
    }
    expect(batches).to.be.greaterThan(10);
    expect(Buffer.concat(parts).toString()).to.equal(expected);
  });

  it('follows: waits for new records and ends once the run finished and all was sent', async () => {
    const s = new LogStore(new MemoryContent());
    rec(s, 0, 0, 'a\n');
    s.commit();
    const c = new LogCursor(s, req({ follow: true }));
    expect((await c.read(1024))!.toString()).to.equal('a\n');
    expect(await c.read(1024)).to.equal(null);
    expect(c.done).to.equal(false);
    const changed = s.changed();
    rec(s, 1, 0, 'b\n');
    // not visible before commit
    expect(await c.read(1024)).to.equal(null);
    s.commit();
    await changed;
    expect((await c.read(1024))!.toString()).to.equal('b\n');
    rec(s, 2, 0, 'c');
    s.finish();
    expect((await c.read(1024))!.toString()).to.equal('c');
    expect(c.done).to.equal(true);
  });

  it('a request without follow sees the log as it was when it came', async () => {
    const s = new LogStore(new MemoryContent());
    rec(s, 0, 0, 'a\n');
    s.commit();
    const c = new LogCursor(s, req({}));
    rec(s, 1, 0, 'b\n');
    s.commit();
    expect((await c.read(1024))!.toString()).to.equal('a\n');
    expect(c.done).to.equal(true);
  });

  it('rotation: a new request reads only the current file, an open follow continues across', async () => {
    // Each record is 40 bytes of CRI overhead + content; rotate after ~2 records.
    const s = new LogStore(new MemoryContent(), { maxFileSize: 90 });
    rec(s, 0, 0, 'r1\n');
    s.commit();
    const follower = new LogCursor(s, req({ follow: true }));
    rec(s, 0, 1, 'r2\n'); // file reaches 86
    rec(s, 0, 2, 'r3\n'); // 129 >= 90: rotated after this record
    rec(s, 0, 3, 'r4\n');
    s.commit();
    expect(s.rotationStart).to.equal(3);
    expect(await render(s, {})).to.equal('r4\n');
    expect(await render(s, { tailLines: 10 })).to.equal('r4\n');
    s.finish();
    const got: string[] = [];
    while (!follower.done) {
      const b = await follower.read(1024);
      if (!b) break;
      got.push(b.toString());
    }
    expect(got.join('')).to.equal('r1\nr2\nr3\nr4\n');
  });

  it('keeps content in the recorded file, readable as soon as it is committed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-store-'));
    try {
      const file = join(dir, 'app.log');
      const s = new LogStore(new FileContent(file));
      let expected = '';
      for (let i = 0; i < 3000; i++) {
        const line = `${i} ${'y'.repeat(i % 700)}\n`;
        rec(s, 0, i, line);
        expected += line;
        if (i % 1000 === 0) s.commit();
      }
      s.commit();
      expect(readFileSync(file, 'utf8')).to.equal(expected);
      expect(await render(s, {})).to.equal(expected);
      s.close();
      let err: unknown = null;
      await renderAll(s, DEFAULT_REQUEST).catch((e: unknown) => (err = e));
      expect(String(err)).to.match(/closed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('timestampOffset: 35-byte prefixes with local time and the offset; sinceTime compares instants', async () => {
    const s = new LogStore(new MemoryContent(), { offsetMinutes: -210 });
    rec(s, 0, 5, 'one\n');
    rec(s, 1, 100, 'AAAA', { partial: true });
    rec(s, 2, 200, 'BB\n');
    rec(s, 3, 0, 'last');
    s.commit();
    const local = (sec: number, nsec: number) => formatTs(joinNs(T0 + sec, nsec), -210);
    const all = await render(s, { timestamps: true });
    expect(all).to.equal(`${local(0, 5)} one\n${local(1, 100)} AAAABB\n${local(3, 0)} last`);
    expect(local(0, 5)).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}-03:30$/);
    for (const line of all.split('\n')) expect(line.indexOf(' ')).to.equal(35);
    // The same instant written in UTC or another offset selects the same records.
    const sinceUtc = joinNs(T0 + 2, 0);
    const sinceLocal = parseRfc3339(formatTs(sinceUtc, -210))!;
    const sincePlus = parseRfc3339(formatTs(sinceUtc, 330))!;
    for (const since of [sinceUtc, sinceLocal, sincePlus]) expect(await render(s, { timestamps: true, since })).to.equal(`BB\n${local(3, 0)} last`);
    // limitBytes counts the longer prefixes.
    expect(await render(s, { timestamps: true, limitBytes: 40 })).to.equal(`${local(0, 5)} one\n`);
  });

  it('timestampOffset: the CRI file is 5 bytes longer per record, so rotation comes sooner', () => {
    const utc = new LogStore(new MemoryContent(), { maxFileSize: 129 });
    const off = new LogStore(new MemoryContent(), { maxFileSize: 129, offsetMinutes: 60 });
    for (const s of [utc, off]) for (let i = 0; i < 3; i++) rec(s, 0, i, 'r\n');
    // 3 × (40 + 2) = 126 < 129; with an offset 3 × 47 = 141: rotated after the third record.
    expect(utc.rotationStart).to.equal(0);
    expect(off.rotationStart).to.equal(3);
  });

  it('refuses timestamps that go backwards', () => {
    const s = new LogStore(new MemoryContent());
    rec(s, 1, 0, 'a\n');
    expect(() => rec(s, 0, 999, 'b\n')).to.throw(/must not decrease/);
  });

  it('MAX_RECORD_BYTES is the runtime maximum of 16 KiB', () => {
    expect(MAX_RECORD_BYTES).to.equal(16384);
  });
});

describe('simulator containerLogs query', () => {
  const now = joinNs(T0 + 100, 0);
  const parse = (q: string) => parseLogQuery(new URLSearchParams(q), now, parseRfc3339);

  it('decodes the kubelet parameters', () => {
    const r = parse('follow=true&timestamps=1&tailLines=5&limitBytes=10&previous=false&sinceTime=2027-01-15T08:00:00Z');
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.previous).to.equal(false);
    expect(r.req).to.deep.include({ follow: true, timestamps: true, tailLines: 5, limitBytes: 10 });
    expect(r.req.since).to.equal(parseRfc3339('2027-01-15T08:00:00Z'));
  });

  it('turns sinceSeconds into a time before now', () => {
    const r = parse('sinceSeconds=10');
    expect(r.ok && r.req.since).to.equal(now - 10_000_000_000n);
  });

  it('accepts the legacy tail parameter', () => {
    const r = parse('tail=3');
    expect(r.ok && r.req.tailLines).to.equal(3);
    const all = parse('tail=all&tailLines=3');
    expect(all.ok && all.req.tailLines).to.equal(null);
  });

  it('answers bad queries like the kubelet', () => {
    expect(parse('tailLines=x')).to.deep.include({ ok: false, status: 400 });
    expect(parse('sinceTime=yesterday')).to.deep.include({ ok: false, status: 400 });
    expect(parse('tailLines=-1')).to.deep.include({ ok: false, status: 422 });
    expect(parse('limitBytes=0')).to.deep.include({ ok: false, status: 422 });
    expect(parse('sinceSeconds=5&sinceTime=2027-01-15T08:00:00Z')).to.deep.include({ ok: false, status: 422 });
    expect(parse('stream=Stdout')).to.deep.include({ ok: false, status: 400 });
  });
});
