// The S3 writer spools parts to disk (issue 11 item 1): no part is held in
// memory, the spool never holds more than queueSize + 1 parts per writer, the
// object arrives byte-exact in part order, and commit and abort leave the
// spool empty. Against the stand-in S3 server on 127.0.0.1.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Store, UPLOAD_READ_BYTES } from '../../../src/adapters/store/s3-store.ts';
import { startStandIn, type StandIn } from './s3-standin.ts';

const CREDS = { accessKeyId: 'AK', secretAccessKey: 'SK' };

/** Bytes of every file under dir (the writer's spool subdirectories included). */
function spoolBytes(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    files++;
    bytes += statSync(join(e.parentPath, e.name)).size;
  }
  return { files, bytes };
}

describe('adapters/store/s3-store: parts spooled to disk (stand-in S3 server)', function () {
  this.timeout(30_000);
  let s: StandIn;
  let spool: string;
  let st: S3Store;
  const PART = 64 * 1024;

  beforeEach(async () => {
    s = await startStandIn({ honourOnPut: true, honourOnComplete: true });
    spool = mkdtempSync(join(tmpdir(), 'logtail-spool-test-'));
    st = new S3Store('s3://spool-bucket/x', { endpoint: s.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: CREDS, partSizeBytes: PART, queueSize: 2, spoolDir: spool });
  });
  afterEach(async () => {
    await st.close();
    await s.close();
  });

  it('uploads a many-part object byte-exactly with at most queueSize + 1 parts in the spool, and empties it on commit', async () => {
    const w = await st.create('ns/lt/pod/main/0.log', { contentType: 'text/plain' });
    const h = createHash('sha256');
    let peak = 0;
    for (let i = 0; i < 40; i++) {
      // 40 chunks of 10 000 bytes: parts are cut across chunk boundaries
      const chunk = Buffer.alloc(10_000, String.fromCharCode(97 + (i % 26)));
      h.update(chunk);
      await w.write(chunk);
      peak = Math.max(peak, spoolBytes(spool).bytes);
    }
    expect(peak).to.be.at.most(3 * PART);
    const sha = h.digest('hex');
    const res = await w.commit({ sha256: sha, objectSha256: sha });
    expect(res.size).to.equal(400_000);
    const stored = s.objects.get('spool-bucket/x/ns/lt/pod/main/0.log') ?? [...s.objects.entries()].find(([k]) => k.endsWith('ns/lt/pod/main/0.log'))?.[1];
    expect(stored, [...s.objects.keys()].join(',')).to.not.equal(undefined);
    expect(createHash('sha256').update(stored!).digest('hex')).to.equal(sha);
    const parts = s.requests.filter((r) => r.method === 'PUT' && /[?&]partNumber=/.test(r.url));
    expect(parts.length).to.equal(Math.ceil(400_000 / PART));
    expect(spoolBytes(spool)).to.deep.equal({ files: 0, bytes: 0 });
  });

  it('sends an object under one part with a single PUT from the spool', async () => {
    const w = await st.create('ns/lt/pod/main/1.log', { contentType: 'text/plain' });
    await w.write(Buffer.from('one line\n'));
    // small writes are gathered (up to 32 KiB per open object) before they reach the spool file
    expect(spoolBytes(spool).bytes).to.equal(0);
    await w.write(Buffer.alloc(40 << 10, 120));
    expect(spoolBytes(spool).bytes).to.equal(32 << 10);
    await w.commit({ sha256: 'a'.repeat(64), objectSha256: 'a'.repeat(64) });
    const stored = [...s.objects.values()].find((b) => b.length === 9 + (40 << 10));
    expect(stored?.subarray(0, 9).toString()).to.equal('one line\n');
    expect(s.requests.some((r) => r.method === 'POST' && /[?&]uploads\b/.test(r.url))).to.equal(false);
    expect(spoolBytes(spool).files).to.equal(0);
  });

  // Many captures end together and every writer uploads at once: what each
  // upload holds in flight scales with the size of its file stream's reads.
  it('uploads parts and single PUTs from the spool in reads of UPLOAD_READ_BYTES (16 KiB), not Node\'s 64 KiB', async () => {
    const bodies: Array<{ command: string; highWaterMark: number }> = [];
    const send = st.client.send.bind(st.client);
    (st.client as unknown as { send: (c: { constructor: { name: string }; input: { Body?: unknown } }) => unknown }).send = (c) => {
      const body = c.input.Body as { readableHighWaterMark?: number } | undefined;
      if (body && typeof body.readableHighWaterMark === 'number') bodies.push({ command: c.constructor.name, highWaterMark: body.readableHighWaterMark });
      return send(c as never);
    };
    const multi = await st.create('ns/lt/pod/main/3.log', { contentType: 'text/plain' });
    await multi.write(Buffer.alloc(2 * PART + 100, 120));
    await multi.commit({ sha256: 'a'.repeat(64), objectSha256: 'a'.repeat(64) });
    const single = await st.create('ns/lt/pod/main/4.log', { contentType: 'text/plain' });
    await single.write(Buffer.alloc(PART - 1, 121));
    await single.commit({ sha256: 'a'.repeat(64), objectSha256: 'a'.repeat(64) });
    expect(bodies.map((b) => b.command).sort()).to.deep.equal(['PutObjectCommand', 'UploadPartCommand', 'UploadPartCommand', 'UploadPartCommand']);
    for (const b of bodies) expect(b.highWaterMark, b.command).to.equal(UPLOAD_READ_BYTES).and.equal(16 * 1024);
    expect([...s.objects.values()].some((o) => o.length === 2 * PART + 100)).to.equal(true);
    expect([...s.objects.values()].some((o) => o.length === PART - 1)).to.equal(true);
  });

  it('abort removes the spooled parts', async () => {
    const w = await st.create('ns/lt/pod/main/2.log', { contentType: 'text/plain' });
    await w.write(Buffer.alloc(PART + 100, 120));
    expect(spoolBytes(spool).bytes).to.be.greaterThan(0);
    await w.abort();
    expect(spoolBytes(spool).files).to.equal(0);
  });

  // Issue 10, F9: a store outage at the commit must not lose what was read.
  it('retries a single-PUT commit the store answers 503 to, within the retry budget given at create', async () => {
    const w = await st.create('ns/lt/pod/main/3.log', { contentType: 'text/plain', retry: { initialIntervalMs: 10, maxIntervalMs: 20, maxElapsedMs: 20_000 } });
    await w.write(Buffer.from('one line\n'));
    s.failWrites = 8; // more than the SDK's own three attempts
    await w.commit({ sha256: 'a'.repeat(64), objectSha256: 'a'.repeat(64) });
    expect(s.failWrites).to.equal(0);
    expect([...s.objects.entries()].find(([k]) => k.endsWith('ns/lt/pod/main/3.log'))?.[1]?.toString()).to.equal('one line\n');
    expect(spoolBytes(spool).files).to.equal(0);
  });

  it('retries a CompleteMultipartUpload the store answers 503 to', async () => {
    const w = await st.create('ns/lt/pod/main/4.log', { contentType: 'text/plain', retry: { initialIntervalMs: 10, maxIntervalMs: 20, maxElapsedMs: 20_000 } });
    await w.write(Buffer.alloc(PART * 2 + 10, 120));
    s.failWrites = 8;
    const res = await w.commit({ sha256: 'b'.repeat(64), objectSha256: 'b'.repeat(64) });
    expect(res.size).to.equal(PART * 2 + 10);
    expect(s.failWrites).to.equal(0);
  });

  it('gives up when the budget is spent: StoreUnavailable with the store\'s message, the spool emptied', async () => {
    const w = await st.create('ns/lt/pod/main/5.log', { contentType: 'text/plain', retry: { initialIntervalMs: 10, maxIntervalMs: 20, maxElapsedMs: 300 } });
    await w.write(Buffer.from('one line\n'));
    s.failWrites = 1_000;
    const err = await w.commit({ sha256: 'c'.repeat(64), objectSha256: 'c'.repeat(64) }).then(
      () => undefined,
      (e: unknown) => e as { reason?: string; message?: string },
    );
    expect(err?.reason).to.equal('StoreUnavailable');
    expect(err?.message).to.match(/unavailable \(failWrites\)|ServiceUnavailable/);
    expect(err?.message).to.match(/gave up after \d+ attempts in \d+ s/);
    expect(spoolBytes(spool).files).to.equal(0);
  });
});
