// The fault matrix, object-store rows (docs/reliability.md): the operator on
// the cluster's real S3 server (versitygw). F16 and the bad-input rows run
// side by side first; then F9 stops the S3 server for 30 s (every S3 case of
// this file is over by then), so it runs alone.
import { expect } from 'chai';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run, sleep } from '../../../src/dev/proc.ts';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { apply, createNamespace, getLogTail, installCrd, logTailManifest, podManifest, startOperator, waitForLogTail, type LogTailObject, type OperatorProcess, type PodOptions } from '../operator/harness.ts';
import { Cases, capsOf, recordedPath, sha256, waitPod } from './helpers.ts';
import { readFileSync } from 'node:fs';

describe('fault matrix: the object store (S3, versitygw)', function () {
  let wallStart = 0;
  this.timeout(300_000);
  let c: TestCluster;
  let s3: S3Client;
  let ns: string;
  let prefix: string;
  const ops: OperatorProcess[] = [];
  const cases = new Cases();
  const bucket = () => c.env.LOGTAIL_S3_BUCKET!;

  async function getObject(b: string, key: string): Promise<Buffer> {
    const out = await s3.send(new GetObjectCommand({ Bucket: b, Key: key }));
    return Buffer.from(await out.Body!.transformToByteArray());
  }

  /** sha256 of the S3 object of `cap` = sha256 of the recorded run. */
  async function expectExactS3(lt: LogTailObject, pod: string, what: string): Promise<void> {
    const cap = capsOf(lt)[0];
    expect(cap?.object, `${what}: no object: ${JSON.stringify(lt.status)}`).to.not.equal(undefined);
    const u = new URL(cap!.object!.uri);
    const got = await getObject(u.host, decodeURIComponent(u.pathname.slice(1)));
    const recorded = readFileSync(recordedPath(c, ns, pod, 'main'));
    expect(sha256(got), `${what}: stored ${got.length} B, recorded ${recorded.length} B`).to.equal(sha256(recorded));
    expect(cap!.object!.sha256).to.equal(sha256(recorded));
  }

  async function openUploads(b: string, under: string): Promise<string[]> {
    const out = await s3.send(new ListMultipartUploadsCommand({ Bucket: b, Prefix: under }));
    return (out.Uploads ?? []).map((u) => `${u.Key} ${u.UploadId}`);
  }

  const pod = (name: string, o: PodOptions) => podManifest(ns, name, o);

  before(async function () {
    this.timeout(300_000);
    wallStart = Date.now();
    c = await cluster();
    await installCrd(c);
    ns = uniqueName('mx-s3');
    await createNamespace(c, ns);
    s3 = new S3Client({ endpoint: c.env.LOGTAIL_S3_ENDPOINT, region: c.env.AWS_REGION, forcePathStyle: true, credentials: { accessKeyId: c.env.AWS_ACCESS_KEY_ID!, secretAccessKey: c.env.AWS_SECRET_ACCESS_KEY! } });
    prefix = `matrix-${randomBytes(3).toString('hex')}`;
    ops.push(await startOperator(c, { store: `s3://${bucket()}/${prefix}`, args: ['--s3-endpoint', c.env.LOGTAIL_S3_ENDPOINT!, '--watch-namespaces', ns] }));

    // F16: an object already sits at the key the capture will use.
    cases.start('F16', async () => {
      await apply(c, pod('f16', { script: { containers: { main: { lines: 50, lineBytes: 80, exitCode: 0, startDelaySeconds: 2 } } } }));
      const p = await waitPod(c, ns, 'f16', 'created', (x) => !!x.metadata.uid);
      await s3.send(new PutObjectCommand({ Bucket: bucket(), Key: `${prefix}/${ns}/f16/f16-${p.metadata.uid}/main-0.log`, Body: 'an earlier object, not to be touched\n' }));
      await apply(c, logTailManifest(ns, 'f16', { podName: 'f16' }));
      return waitForLogTail(c, ns, 'f16', 90_000);
    });

    // Deleted mid-capture once a multipart upload is open (over 8 MiB, the part size, streamed).
    cases.start('deleted', async () => {
      await apply(c, pod('gone', { script: { containers: { main: { lines: 100_000, lineBytes: 100, linesPerSecond: 20_000, holdSeconds: -1 } } } }));
      await apply(c, logTailManifest(ns, 'gone', { podName: 'gone' }));
      const lt = await waitForLogTail(c, ns, 'gone', 90_000, (x) => (x.status?.bytes ?? 0) >= 9_500_000);
      const open = await openUploads(bucket(), `${prefix}/${ns}/gone/`);
      if (open.length !== 1) throw new Error(`precondition: one multipart upload open before the delete, found ${JSON.stringify(open)}`);
      const d = await c.kubectl(['delete', 'logtail', 'gone', '-n', ns, '--timeout=60s']);
      if (d.code !== 0) throw new Error(d.stderr);
      await c.kubectl(['delete', 'pod', 'gone', '-n', ns, '--wait=false']);
      return lt;
    });

    // A bucket that disappears after the operator started (it refuses to start without one).
    cases.start('missing bucket', async () => {
      const gone = `mx-gone-${randomBytes(3).toString('hex')}`;
      const ns2 = `${ns}-b`;
      await createNamespace(c, ns2);
      await s3.send(new CreateBucketCommand({ Bucket: gone }));
      ops.push(await startOperator(c, { store: `s3://${gone}/logs`, args: ['--s3-endpoint', c.env.LOGTAIL_S3_ENDPOINT!, '--watch-namespaces', ns2] }));
      const objects = await s3.send(new ListObjectsV2Command({ Bucket: gone }));
      for (const o of objects.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: gone, Key: o.Key! }));
      await s3.send(new DeleteBucketCommand({ Bucket: gone }));
      await apply(c, podManifest(ns2, 'nobucket', { script: { containers: { main: { lines: 50, lineBytes: 80, exitCode: 0 } } } }));
      await apply(c, logTailManifest(ns2, 'nobucket', { podName: 'nobucket' }));
      return waitForLogTail(c, ns2, 'nobucket', 90_000);
    });
  });

  after(async () => {
    console.log(`      [wall] store.test.ts: ${((Date.now() - wallStart) / 1000).toFixed(1)} s`);
    await c?.startS3().catch(() => undefined);
    for (const op of ops) await op.stop('SIGTERM');
    s3?.destroy();
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') for (const op of ops) console.error('operator log tail:\n' + op.log().split('\n').slice(-40).join('\n'));
  });

  it('F16 the key already exists: Failed/KeyExists naming the key, the existing object untouched', async () => {
    const lt = await cases.get('F16');
    expect([lt.status?.phase, lt.status?.reason], JSON.stringify(lt.status)).to.deep.equal(['Failed', 'KeyExists']);
    const p = await waitPod(c, ns, 'f16', 'read', () => true);
    const key = `${prefix}/${ns}/f16/f16-${p.metadata.uid}/main-0.log`;
    expect(lt.status?.message).to.include(key);
    expect((await getObject(bucket(), key)).toString()).to.equal('an earlier object, not to be touched\n');
    expect(await openUploads(bucket(), `${prefix}/${ns}/f16/`)).to.deep.equal([]);
  });

  it('bad input: the LogTail deleted mid-capture: upload aborted, no multipart upload left, no object, finalizer removed', async () => {
    const lt = await cases.get('deleted');
    expect(lt.status?.phase).to.equal('Streaming');
    expect(await getLogTail(c, ns, 'gone'), 'the LogTail is gone: its finalizer was removed').to.equal(undefined);
    expect(await openUploads(bucket(), `${prefix}/${ns}/gone/`)).to.deep.equal([]);
    const objects = await s3.send(new ListObjectsV2Command({ Bucket: bucket(), Prefix: `${prefix}/${ns}/gone/` }));
    expect(objects.Contents ?? []).to.deep.equal([]);
  });

  it('bad input: the bucket missing: Failed/StoreUnavailable with the store\'s message (NoSuchBucket: permanent, not retried)', async () => {
    const lt = await cases.get('missing bucket');
    expect([lt.status?.phase, lt.status?.reason], JSON.stringify(lt.status)).to.deep.equal(['Failed', 'StoreUnavailable']);
    expect(lt.status?.message).to.match(/NoSuchBucket|specified bucket does not exist/);
  });

  it('bad input: wrong credentials: the operator refuses to start (exit 1) with the store\'s message', async () => {
    const r = await run(process.execPath, [join(REPO_ROOT, 'src', 'cmd', 'main.ts'), '--store', `s3://${bucket()}/x`, '--s3-endpoint', c.env.LOGTAIL_S3_ENDPOINT!, '--http-addr', 'off', '--leader-elect=false'], {
      env: { ...process.env, ...c.env, KUBECONFIG: c.kubeconfigPath, AWS_SECRET_ACCESS_KEY: 'wrong-secret' },
      timeoutMs: 90_000,
    });
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stderr).to.match(/logtail-operator: refusing to run: .*SignatureDoesNotMatch|signature/i);
  });

  describe('F9 the S3 server stopped for 30 s mid-capture', function () {
    const f9 = new Cases();

    before(async function () {
      this.timeout(240_000);
      // small: one PUT at the commit, which falls in the outage; multipart: 12 MiB, a part sealed and the commit in it;
      // budget: like small with retry.maxElapsed 10 s, shorter than the outage.
      const small = { lines: 700, lineBytes: 100, linesPerSecond: 100, exitCode: 0 };
      await apply(c, pod('f9-small', { script: { containers: { main: small } } }));
      await apply(c, pod('f9-multi', { script: { containers: { main: { lines: 120_000, lineBytes: 105, linesPerSecond: 6000, exitCode: 0 } } } }));
      await apply(c, pod('f9-budget', { script: { containers: { main: small } } }));
      await apply(c, logTailManifest(ns, 'f9-small', { podName: 'f9-small' }));
      await apply(c, logTailManifest(ns, 'f9-multi', { podName: 'f9-multi' }));
      await apply(c, logTailManifest(ns, 'f9-budget', { podName: 'f9-budget', retry: { initialInterval: '1s', maxInterval: '2s', maxElapsed: '10s' } }));
      await waitForLogTail(c, ns, 'f9-small', 60_000, (x) => (x.status?.bytes ?? 0) > 5_000);
      await c.stopS3();
      const stoppedAt = Date.now();
      for (const n of ['f9-small', 'f9-multi', 'f9-budget']) f9.start(n, () => waitForLogTail(c, ns, n, 180_000));
      await sleep(30_000 - (Date.now() - stoppedAt));
      await c.startS3();
      console.log(`      S3 stopped for ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s`);
    });

    for (const n of ['f9-small', 'f9-multi']) {
      it(`F9 ${n === 'f9-small' ? 'single PUT' : 'multipart'}: retried through the outage, Complete, byte-exact`, async () => {
        const lt = await f9.get(n);
        expect([lt.status?.phase, lt.status?.reason, lt.status?.exitCode], JSON.stringify(lt.status)).to.deep.equal(['Complete', 'Captured', 0]);
        await expectExactS3(lt, n, n);
        expect(await openUploads(bucket(), `${prefix}/${ns}/${n}/`)).to.deep.equal([]);
      });
    }

    it('bad input: the store unavailable longer than retry.maxElapsed: retried, then Failed/StoreUnavailable with the store\'s message', async () => {
      const lt = await f9.get('f9-budget');
      expect([lt.status?.phase, lt.status?.reason], JSON.stringify(lt.status)).to.deep.equal(['Failed', 'StoreUnavailable']);
      expect(lt.status?.message).to.match(/ECONNREFUSED|connect/);
      expect(lt.status?.message).to.match(/gave up after \d+ attempts/);
    });
  });
});
