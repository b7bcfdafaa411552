import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { ObjectWriter } from '../../../src/adapters/store/types.ts';
import { layout, markerText, truncateWhole } from '../../../src/core/truncate.ts';
import { ContentSink } from '../../../src/runtime/content-sink.ts';
import { TruncatingSink, fileSpool } from '../../../src/runtime/truncating-sink.ts';

class MemWriter implements ObjectWriter {
  readonly uri = 'mem://x';
  chunks: Buffer[] = [];
  async write(chunk: Buffer): Promise<void> {
    this.chunks.push(Buffer.from(chunk));
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  async commit() {
    return { uri: this.uri, size: this.bytes.length };
  }
  async abort() {}
}

const TS = ['2026-11-29T10:00:05.123456789Z', '2026-11-29T10:00:06.5Z'.replace('.5Z', '.500000000Z'), '2026-11-29T07:00:07.000000000-03:00'];

/** Deterministic content: lines of varying length (some longer than LINE_SLACK when `long`), optionally timestamped. */
function content(total: number, o: { lineLen?: number; stamps?: boolean; newline?: boolean; seed?: number }): Buffer {
  const out = Buffer.alloc(total);
  let x = o.seed ?? 7;
  let p = 0;
  let line = 0;
  while (p < total) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const len = o.lineLen ?? 1 + (x % 200);
    const pre = o.stamps ? `${TS[line % TS.length]} ` : '';
    const s = Buffer.from(pre + `${line}`.padEnd(Math.max(0, len - pre.length - 1), String.fromCharCode(97 + (x % 26))) + (o.newline === false ? '' : '\n'), 'latin1');
    p += s.copy(out, p);
    line++;
  }
  return out;
}

async function run(c: Buffer, maxBytes: number, o: { chunk: number; timestamps?: boolean; gzip?: boolean; spoolDir: string }) {
  const w = new MemWriter();
  const sink = new TruncatingSink(new ContentSink(w, o.gzip ? 'gzip' : 'none'), { maxBytes, timestamps: !!o.timestamps, openSpool: fileSpool(o.spoolDir) });
  for (let i = 0; i < c.length; i += o.chunk) await sink.write(c.subarray(i, i + o.chunk));
  const digest = await sink.finish();
  return { w, digest, stored: o.gzip ? gunzipSync(w.bytes) : w.bytes };
}

describe('runtime/truncating-sink (spec.maxBytes)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'trunc-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const max = 2000;
  const l = layout(max);
  const sizes = [0, 1, l.head - 1, l.head, l.head + 1, max - 1, max, max + 1, max + 2, max + l.reserve, 2 * max, 10 * max + 3, 100_000];
  const shapes: Array<[string, Parameters<typeof content>[1]]> = [
    ['lines of varying length', {}],
    ['one line, no newline', { newline: false, lineLen: 10_000_000 }],
    ['lines longer than either part', { lineLen: 1500 }],
    ['timestamped lines', { stamps: true }],
  ];
  for (const [shape, opts] of shapes) {
    for (const size of sizes) {
      for (const chunk of [1, 13, 512, 1 << 20]) {
        if (chunk === 1 && size > 5000) continue;
        it(`${shape}: ${size} bytes in chunks of ${chunk} → head + marker + tail exactly`, async () => {
          const c = content(size, opts);
          const ts = !!opts.stamps;
          const want = truncateWhole(c, max, ts);
          const { stored, digest } = await run(c, max, { chunk, timestamps: ts, spoolDir: dir });
          expect(stored.equals(want.stored), `stored ${stored.length} bytes, want ${want.stored.length}`).to.equal(true);
          expect(digest.truncatedBytes).to.equal(want.truncatedBytes);
          expect(digest.bytes).to.equal(want.stored.length);
          expect(digest.sha256).to.equal(createHash('sha256').update(want.stored).digest('hex'));
          expect(stored.length).to.be.at.most(Math.max(max, 0));
          if (size > max) {
            expect(digest.truncatedBytes).to.be.greaterThan(0);
            expect(stored.toString('latin1')).to.include(markerText(digest.truncatedBytes, max));
          } else expect(stored.equals(c)).to.equal(true);
          expect(readdirSync(dir), 'spool files removed').to.deep.equal([]);
        });
      }
    }
  }

  it('the count in the marker plus what is kept is every byte read', async () => {
    const c = content(50_000, {});
    const { stored, digest } = await run(c, max, { chunk: 4096, spoolDir: dir });
    const m = /\[logtail: truncated, (\d+) bytes left out/.exec(stored.toString('latin1'))!;
    const marker = stored.toString('latin1').indexOf(m[0]);
    const markerLen = markerText(Number(m[1]), max).length;
    expect(Number(m[1])).to.equal(digest.truncatedBytes);
    expect(marker + (stored.length - marker - markerLen) + Number(m[1])).to.equal(c.length);
    // the head is a prefix of the log and the tail a suffix
    expect(c.subarray(0, marker).equals(stored.subarray(0, marker))).to.equal(true);
    expect(c.subarray(c.length - (stored.length - marker - markerLen)).equals(stored.subarray(marker + markerLen))).to.equal(true);
  });

  it('gzip: truncation applies to the content before compression', async () => {
    const c = content(30_000, { stamps: true });
    const want = truncateWhole(c, max, true);
    const { stored, digest, w } = await run(c, max, { chunk: 1000, timestamps: true, gzip: true, spoolDir: dir });
    expect(stored.equals(want.stored)).to.equal(true);
    expect(digest.objectSha256).to.equal(createHash('sha256').update(w.bytes).digest('hex'));
    expect(digest.sha256).to.equal(createHash('sha256').update(want.stored).digest('hex'));
  });

  describe('a head larger than LINE_SLACK goes straight through', () => {
    const big = 1 << 20;
    const lb = layout(big);
    for (const [name, opts] of [
      ['short lines', {}],
      ['lines of 100 KiB (head cut mid-line)', { lineLen: 100 * 1024 }],
      ['lines of 40 KiB (head cut in the slack)', { lineLen: 40 * 1024 }],
    ] as const) {
      for (const size of [big - 1, big, big + 1, 3 * big + 17]) {
        it(`${name}, ${size} bytes`, async () => {
          const c = content(size, opts);
          const want = truncateWhole(c, big, false);
          const w = new MemWriter();
          const sink = new TruncatingSink(new ContentSink(w, 'none'), { maxBytes: big, timestamps: false, openSpool: fileSpool(dir) });
          for (let i = 0; i < c.length; i += 65_536) {
            await sink.write(c.subarray(i, i + 65_536));
            // What lies before headSure is in the store already: nothing of it waits.
            expect(w.bytes.length).to.be.at.least(Math.min(i + 65_536, lb.headSure, c.length));
          }
          const d = await sink.finish();
          expect(w.bytes.equals(want.stored)).to.equal(true);
          expect(d.truncatedBytes).to.equal(want.truncatedBytes);
        });
      }
    }
  });

  it('destroy removes the spool files', async () => {
    const w = new MemWriter();
    const sink = new TruncatingSink(new ContentSink(w, 'none'), { maxBytes: max, timestamps: false, openSpool: fileSpool(dir) });
    await sink.write(content(10_000, {}));
    expect(readdirSync(dir)).to.have.length(1);
    sink.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(dir)).to.deep.equal([]);
  });
});
