import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { ObjectWriter } from '../../../src/adapters/store/types.ts';
import { ContentSink } from '../../../src/runtime/content-sink.ts';
import { Semaphore } from '../../../src/runtime/semaphore.ts';

class SlowWriter implements ObjectWriter {
  readonly uri = 'mem://x';
  chunks: Buffer[] = [];
  inFlight = 0;
  maxInFlight = 0;
  async write(chunk: Buffer): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((r) => setTimeout(r, 1));
    this.chunks.push(Buffer.from(chunk));
    this.inFlight--;
  }
  async commit() {
    return { uri: this.uri, size: Buffer.concat(this.chunks).length };
  }
  async abort() {}
}

describe('semaphore (--max-concurrent-streams)', () => {
  it('grants up to capacity and queues the rest in arrival order', async () => {
    const s = new Semaphore(2);
    await s.acquire();
    await s.acquire();
    const order: number[] = [];
    const a = s.acquire().then(() => order.push(1));
    const b = s.acquire().then(() => order.push(2));
    expect(s.waiting).to.equal(2);
    s.release();
    await a;
    s.release();
    await b;
    expect(order).to.deep.equal([1, 2]);
    expect(s.inUse).to.equal(2);
  });

  it('drops an aborted waiter without granting it a slot', async () => {
    const s = new Semaphore(1);
    await s.acquire();
    const ac = new AbortController();
    const p = s.acquire(ac.signal);
    ac.abort(new Error('stop'));
    let err: unknown;
    await p.catch((e: unknown) => (err = e));
    expect((err as Error).message).to.equal('stop');
    expect(s.waiting).to.equal(0);
    s.release();
    expect(s.inUse).to.equal(0);
  });
});

describe('content sink', () => {
  const data = Buffer.from('line one\nline two\n'.repeat(5000));

  it('hashes content and object alike without compression, one write at a time', async () => {
    const w = new SlowWriter();
    const sink = new ContentSink(w, 'none');
    for (let i = 0; i < data.length; i += 4096) await sink.write(data.subarray(i, i + 4096));
    const d = await sink.finish();
    const want = createHash('sha256').update(data).digest('hex');
    expect(d.sha256).to.equal(want);
    expect(d.objectSha256).to.equal(want);
    expect(Buffer.concat(w.chunks).equals(data)).to.equal(true);
    expect(w.maxInFlight).to.equal(1);
  });

  it('gzips: sha256 is of the content, objectSha256 of the gzip bytes', async () => {
    const w = new SlowWriter();
    const sink = new ContentSink(w, 'gzip');
    for (let i = 0; i < data.length; i += 1000) await sink.write(data.subarray(i, i + 1000));
    const d = await sink.finish();
    const obj = Buffer.concat(w.chunks);
    expect(gunzipSync(obj).equals(data)).to.equal(true);
    expect(d.sha256).to.equal(createHash('sha256').update(data).digest('hex'));
    expect(d.objectSha256).to.equal(createHash('sha256').update(obj).digest('hex'));
    expect(d.objectBytes).to.equal(obj.length);
  });

  it('surfaces a store failure to the writer instead of hanging', async () => {
    const w = new SlowWriter();
    w.write = async () => {
      throw new Error('store down');
    };
    const sink = new ContentSink(w, 'gzip');
    let err: unknown;
    try {
      for (let i = 0; i < 200; i++) await sink.write(Buffer.alloc(64 * 1024, i));
      await sink.finish();
    } catch (e) {
      err = e;
    }
    expect((err as Error)?.message).to.equal('store down');
  });
});
