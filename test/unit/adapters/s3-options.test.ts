// The S3 store's start-up check and options (issue 12, item 6), against a
// stand-in server on 127.0.0.1: refuse a store that ignores If-None-Match: *
// (on PutObject or on CompleteMultipartUpload), pass one that honours it,
// send SSE-S3 / SSE-KMS headers, trust a custom CA bundle.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaptureError } from '../../../src/adapters/errors.ts';
import { CONDITIONAL_WRITE_PROBE_KEY, S3Store, sseParams } from '../../../src/adapters/store/s3-store.ts';
import { startStandIn, type StandIn } from './s3-standin.ts';
import { rejection } from '../support/errors.ts';

const CREDS = { accessKeyId: 'AK', secretAccessKey: 'SK' };

/** A PutObject (the SDK adds ?x-id=PutObject), not a part upload or a tagging call. */
const isPutObject = (r: { method: string; url: string }) => r.method === 'PUT' && !/[?&](partNumber|tagging)\b/.test(r.url);

describe('adapters/store/s3-store: start-up check and options (stand-in S3 server)', function () {
  this.timeout(30_000);
  const servers: StandIn[] = [];
  const stores: S3Store[] = [];
  const store = (s: StandIn, extra: Record<string, unknown> = {}) => {
    const st = new S3Store('s3://probe-bucket/logs', { endpoint: s.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: CREDS, ...extra });
    stores.push(st);
    return st;
  };
  const standIn = async (o: Parameters<typeof startStandIn>[0]) => {
    const s = await startStandIn(o);
    servers.push(s);
    return s;
  };

  afterEach(async () => {
    for (const st of stores.splice(0)) await st.close();
    for (const s of servers.splice(0)) await s.close();
  });

  it('refuses a server that ignores If-None-Match: * on PutObject, with a message that says so', async () => {
    const s = await standIn({ honourOnPut: false, honourOnComplete: false });
    const e = await rejection(store(s).verifyConditionalWrites());
    expect(e.kind).to.equal('permanent');
    expect(e.message).to.match(/does not honour "If-None-Match: \*": a second PutObject with If-None-Match: \* replaced the existing object s3:\/\/probe-bucket\/logs\/\.logtail-probes\/if-none-match/);
    expect(e.message).to.match(/refusing to run on this store/);
    const puts = s.requests.filter(isPutObject);
    expect(puts).to.have.length(2);
    for (const p of puts) expect(p.headers['if-none-match']).to.equal('*');
  });

  it('refuses a server that honours it on PutObject but not on CompleteMultipartUpload, and aborts nothing it completed', async () => {
    const s = await standIn({ honourOnPut: true, honourOnComplete: false });
    const e = await rejection(store(s).verifyConditionalWrites());
    expect(e.message).to.match(/CompleteMultipartUpload with If-None-Match: \* replaced the existing object/);
    const complete = s.requests.find((r) => r.method === 'POST' && r.url.includes('uploadId='));
    expect(complete?.headers['if-none-match']).to.equal('*');
  });

  it('passes a server that honours it on both paths, at a first and at a later start, leaving one probe object and no open upload', async () => {
    const s = await standIn({ honourOnPut: true, honourOnComplete: true });
    await store(s).verifyConditionalWrites();
    await store(s).verifyConditionalWrites();
    expect([...s.objects.keys()]).to.deep.equal([`/probe-bucket/logs/${CONDITIONAL_WRITE_PROBE_KEY}`]);
    const aborts = s.requests.filter((r) => r.method === 'DELETE' && r.url.includes('uploadId='));
    expect(aborts).to.have.length(2);
  });

  it('sends SSE-KMS with the key id on the probe, on multipart uploads and on single PUTs', async () => {
    const s = await standIn({ honourOnPut: true, honourOnComplete: true });
    const st = store(s, { sse: 'aws:kms', sseKmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/test-key' });
    await st.verifyConditionalWrites();
    const w = await st.create('team-a/lt/p/main-0.log', { contentType: 'text/plain' });
    await w.write(Buffer.from('hello\n'));
    await w.commit({ sha256: 'a'.repeat(64), objectSha256: 'a'.repeat(64) });
    const writes = s.requests.filter((r) => isPutObject(r) || (r.method === 'POST' && /[?&]uploads\b/.test(r.url)));
    expect(writes.length).to.be.at.least(3);
    for (const r of writes) {
      expect(r.headers['x-amz-server-side-encryption'], `${r.method} ${r.url}`).to.equal('aws:kms');
      expect(r.headers['x-amz-server-side-encryption-aws-kms-key-id']).to.equal('arn:aws:kms:eu-west-1:111122223333:key/test-key');
    }
  });

  it('sends SSE-S3 (AES256) without a key id; refuses a key id without aws:kms', async () => {
    const s = await standIn({ honourOnPut: true, honourOnComplete: true });
    await store(s, { sse: 'AES256' }).verifyConditionalWrites();
    const put = s.requests.find(isPutObject)!;
    expect(put.headers['x-amz-server-side-encryption']).to.equal('AES256');
    expect(put.headers).to.not.have.property('x-amz-server-side-encryption-aws-kms-key-id');
    expect(() => sseParams({ sse: 'AES256', sseKmsKeyId: 'k' })).to.throw(CaptureError, /needs server-side encryption aws:kms/);
    expect(sseParams({})).to.deep.equal({});
  });

  it('trusts an https endpoint signed by a private CA only with --s3-ca-bundle', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'logtail-s3-ca-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=private S3 CA', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'ca.pem')], { stdio: 'ignore' });
    const s = await standIn({ honourOnPut: true, honourOnComplete: true, tls: { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'ca.pem')) } });
    const untrusted = await rejection(store(s).verifyConditionalWrites());
    expect(untrusted.message).to.match(/self[- ]signed|certificate/i);
    await store(s, { caBundle: join(dir, 'ca.pem') }).verifyConditionalWrites();
    expect(() => new S3Store('s3://probe-bucket', { caBundle: join(dir, 'missing.pem') })).to.throw(CaptureError, /S3 CA bundle .*missing\.pem/);
  });
});
