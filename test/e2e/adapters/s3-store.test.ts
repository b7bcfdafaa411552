// The S3 store against a real S3 implementation (the Versity gateway the
// test cluster runs). LOGTAIL_S3_ENDPOINT etc. in the environment point it at
// an already running gateway instead of starting the cluster.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import {
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { setTimeout as delay } from 'node:timers/promises';
import type { CaptureError } from '../../../src/adapters/errors.ts';
import { CONDITIONAL_WRITE_PROBE_KEY, S3Store } from '../../../src/adapters/store/s3-store.ts';
import type { ObjectWriter } from '../../../src/adapters/store/types.ts';
import { cluster, uniqueName } from '../fixture.ts';
import { rejection } from '../../unit/support/errors.ts';

const MiB = 1024 * 1024;
const OPTS = { contentType: 'text/plain; charset=utf-8' };

/** Deterministic pseudo-random bytes, fast enough for tens of MiB. */
function pattern(seed: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  for (let i = size - (size % 4); i < size; i++) b[i] = i & 0xff;
  return b;
}

async function writeAll(w: ObjectWriter, total: number, chunk = 64 * 1024, seed = 1): Promise<string> {
  const h = createHash('sha256');
  for (let off = 0, i = 0; off < total; off += chunk, i++) {
    const b = pattern(seed * 100_000 + i, Math.min(chunk, total - off));
    h.update(b);
    await w.write(b);
  }
  return h.digest('hex');
}

describe('adapters/store/s3-store (e2e)', function () {
  this.timeout(300_000);
  let env: Record<string, string | undefined>;
  let store: S3Store;
  let admin: S3Client;
  let bucket: string;
  let prefix: string;

  before(async function () {
    env = process.env.LOGTAIL_S3_ENDPOINT ? process.env : (await cluster()).env;
    for (const k of ['LOGTAIL_S3_ENDPOINT', 'LOGTAIL_S3_BUCKET', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
      if (!env[k]) throw new Error(`${k} is not set by the test cluster`);
    }
    bucket = env.LOGTAIL_S3_BUCKET as string;
    prefix = uniqueName('s3store');
    const credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID as string, secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string };
    store = new S3Store(`s3://${bucket}/${prefix}/`, {
      endpoint: env.LOGTAIL_S3_ENDPOINT,
      region: env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: true,
      credentials,
    });
    admin = new S3Client({
      endpoint: env.LOGTAIL_S3_ENDPOINT,
      region: env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: true,
      credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  });

  after(async () => {
    await store?.close();
    admin?.destroy();
  });

  async function openUploads(key: string): Promise<string[]> {
    const out = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}/${key}` }));
    return (out.Uploads ?? []).map((u) => u.UploadId ?? '');
  }

  async function readHash(uri: string): Promise<{ sha256: string; size: number }> {
    const h = createHash('sha256');
    let size = 0;
    for await (const c of await store.read(uri)) {
      h.update(c as Buffer);
      size += (c as Buffer).length;
    }
    return { sha256: h.digest('hex'), size };
  }

  it('the start-up check passes on the Versity gateway: If-None-Match: * honoured on PutObject and CompleteMultipartUpload, at a first and a later start', async () => {
    await store.verifyConditionalWrites();
    await store.verifyConditionalWrites();
    expect(await openUploads(CONDITIONAL_WRITE_PROBE_KEY)).to.deep.equal([]);
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/${CONDITIONAL_WRITE_PROBE_KEY}` }));
    expect(head.ContentLength).to.be.greaterThan(0);
  });

  it('round-trips a 64 MiB multipart upload byte-exactly and tags it with the checksums', async () => {
    const key = 'ns/pod/app/big.log';
    const w = await store.create(key, OPTS);
    expect(w.uri).to.equal(`s3://${bucket}/${prefix}/${key}`);
    const sha = await writeAll(w, 64 * MiB);
    const meta = { sha256: sha, objectSha256: 'f'.repeat(64) };
    expect(await store.head(w.uri)).to.equal(undefined, 'invisible before commit');
    const res = await w.commit(meta);
    expect(res).to.deep.equal({ uri: w.uri, size: 64 * MiB });
    expect(await store.head(w.uri)).to.deep.equal({ size: 64 * MiB });
    expect(await readHash(w.uri)).to.deep.equal({ sha256: sha, size: 64 * MiB });
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/${key}` }));
    expect(head.ContentType).to.equal(OPTS.contentType);
    const tags = await admin.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: `${prefix}/${key}` }));
    expect(Object.fromEntries((tags.TagSet ?? []).map((t) => [t.Key, t.Value]))).to.deep.equal(meta);
    expect(await openUploads(key)).to.deep.equal([]);
  });

  it('tags an object with its lifecycle labels at commit, and again through label() (an adopted object)', async () => {
    const key = 'ns/lt/main-0.log';
    const w = await store.create(key, OPTS);
    await w.write(Buffer.from('one line\n'));
    const labels = { 'logtail.dev/retention': 'Delete', 'logtail.dev/namespace': 'ns', 'logtail.dev/logtail': 'lt', 'logtail.dev/pod': 'p.with.dots-1', 'logtail.dev/container': 'main', 'logtail.dev/policy': 'ci' };
    await w.commit({ sha256: 'a'.repeat(64), objectSha256: 'b'.repeat(64), labels });
    const read = async () => Object.fromEntries(((await admin.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: `${prefix}/${key}` }))).TagSet ?? []).map((t) => [t.Key, t.Value]));
    expect(await read()).to.deep.equal({ sha256: 'a'.repeat(64), objectSha256: 'b'.repeat(64), ...labels });
    await store.label(w.uri, { sha256: 'c'.repeat(64), objectSha256: 'd'.repeat(64), labels: { 'logtail.dev/retention': 'Retain' }, size: 9 });
    expect(await read()).to.deep.equal({ sha256: 'c'.repeat(64), objectSha256: 'd'.repeat(64), 'logtail.dev/retention': 'Retain' });
  });

  it('stores a small object with its content encoding in a single PUT', async () => {
    const key = 'small.log.gz';
    const w = await store.create(key, { contentType: 'text/plain', contentEncoding: 'gzip' });
    await w.write(Buffer.from('tiny'));
    expect((await w.commit({ sha256: '1'.repeat(64), objectSha256: '2'.repeat(64) })).size).to.equal(4);
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/${key}` }));
    expect(head.ContentEncoding).to.equal('gzip');
    expect(head.ContentLength).to.equal(4);
  });

  it('delete removes an object (spec.retention: Delete), and a second delete of it is not an error', async () => {
    const w = await store.create('to-delete.log', { contentType: 'text/plain' });
    await w.write(Buffer.from('bye'));
    const { uri } = await w.commit({ sha256: '9'.repeat(64), objectSha256: '9'.repeat(64) });
    expect(await store.head(uri)).to.deep.equal({ size: 3 });
    await store.delete(uri);
    expect(await store.head(uri)).to.equal(undefined);
    await store.delete(uri);
  });

  it('a second create of an existing key fails with KeyExists and the first content stays (single PUT)', async () => {
    const key = 'dup-small.log';
    const a = await store.create(key, OPTS);
    await a.write(Buffer.from('first\n'));
    await a.commit({ sha256: '3'.repeat(64), objectSha256: '3'.repeat(64) });
    const b = await store.create(key, OPTS);
    await b.write(Buffer.from('second, different\n'));
    const e = await rejection(b.commit({ sha256: '4'.repeat(64), objectSha256: '4'.repeat(64) }));
    expect([e.reason, e.kind]).to.deep.equal(['KeyExists', 'permanent']);
    const chunks: Buffer[] = [];
    for await (const c of await store.read(`${key}`)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).to.equal('first\n');
  });

  it('a second create of an existing key fails with KeyExists and the first content stays (multipart)', async () => {
    const key = 'dup-big.log';
    const a = await store.create(key, OPTS);
    const shaA = await writeAll(a, 12 * MiB, 256 * 1024, 7);
    await a.commit({ sha256: shaA, objectSha256: shaA });
    const b = await store.create(key, OPTS);
    await writeAll(b, 20 * MiB, 256 * 1024, 8);
    const e = await rejection(b.commit({ sha256: '5'.repeat(64), objectSha256: '5'.repeat(64) }));
    expect(e.reason).to.equal('KeyExists');
    expect(await readHash(`s3://${bucket}/${prefix}/${key}`)).to.deep.equal({ sha256: shaA, size: 12 * MiB });
    expect(await openUploads(key)).to.deep.equal([], 'the failed multipart upload was aborted');
  });

  it('abort leaves no object and no open multipart upload', async () => {
    const key = 'aborted.log';
    const w = await store.create(key, OPTS);
    await writeAll(w, 20 * MiB, 256 * 1024, 9);
    // Make sure a multipart upload really is open, or this test proves nothing.
    let open: string[] = [];
    for (let i = 0; i < 100 && open.length === 0; i++) {
      open = await openUploads(key);
      if (open.length === 0) await delay(50);
    }
    expect(open).to.have.length(1);
    await w.abort();
    await w.abort();
    expect(await openUploads(key)).to.deep.equal([]);
    expect(await store.head(w.uri)).to.equal(undefined);
    expect((await rejection(w.write(Buffer.from('x')))).kind).to.equal('permanent');
  });

  it('abort of a small unfinished object leaves nothing', async () => {
    const w = await store.create('aborted-small.log', OPTS);
    await w.write(Buffer.from('never\n'));
    await w.abort();
    expect(await store.head(w.uri)).to.equal(undefined);
  });

  it('a wrong secret is StoreDenied (permanent), on commit and on head', async () => {
    const bad = new S3Store(`s3://${bucket}/${prefix}`, {
      endpoint: env.LOGTAIL_S3_ENDPOINT,
      region: env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID as string, secretAccessKey: 'definitely-wrong' },
    });
    try {
      const w = await bad.create('denied.log', OPTS);
      await w.write(Buffer.from('x'));
      const e = await rejection(w.commit({ sha256: '6'.repeat(64), objectSha256: '6'.repeat(64) }));
      expect([e.reason, e.kind]).to.deep.equal(['StoreDenied', 'permanent']);
      const h = await rejection(bad.head('denied.log'));
      expect([h.reason, h.kind]).to.deep.equal(['StoreDenied', 'permanent']);
      // A multipart attempt is denied too and leaves nothing behind.
      const big = await bad.create('denied-big.log', OPTS);
      const failed = await writeAll(big, 24 * MiB, 256 * 1024, 10).then(
        () => big.commit({ sha256: '7'.repeat(64), objectSha256: '7'.repeat(64) }),
      ).then(
        () => new Error('expected a rejection'),
        (err: unknown) => err,
      );
      expect((failed as CaptureError).reason).to.equal('StoreDenied');
      await big.abort();
    } finally {
      await bad.close();
    }
    expect(await store.head('denied.log')).to.equal(undefined);
  });

  it('a missing bucket is StoreDenied (permanent)', async () => {
    const none = new S3Store(`s3://no-such-bucket-${Date.now()}`, {
      endpoint: env.LOGTAIL_S3_ENDPOINT,
      region: env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID as string, secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string },
    });
    try {
      const w = await none.create('x.log', OPTS);
      await w.write(Buffer.from('x'));
      const e = await rejection(w.commit({ sha256: '8'.repeat(64), objectSha256: '8'.repeat(64) }));
      expect([e.reason, e.kind]).to.deep.equal(['StoreDenied', 'permanent']);
    } finally {
      await none.close();
    }
  });

  it('reads a missing object as ObjectNotFound and refuses URIs outside its prefix', async () => {
    const e = await rejection(store.read('missing.log'));
    expect(e.reason).to.equal('ObjectNotFound');
    expect((await rejection(store.read(`s3://${bucket}/elsewhere/x.log`))).reason).to.equal('BadRequest');
    expect((await rejection(store.create('../x.log', OPTS))).reason).to.equal('BadRequest');
  });

  it('an unreachable endpoint is StoreUnavailable (transient)', async () => {
    const down = new S3Store(`s3://${bucket}`, {
      endpoint: 'http://127.0.0.1:1',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    try {
      const e = await rejection(down.head('x.log'));
      expect([e.reason, e.kind]).to.deep.equal(['StoreUnavailable', 'transient']);
    } finally {
      await down.close();
    }
  });
});
