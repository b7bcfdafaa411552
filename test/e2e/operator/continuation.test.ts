// Continuation after a crash (docs/design.md, "Crash safety"): a later
// operator process continues the object an earlier one left unfinished, from
// the durable checkpoint in status (containers[].upload), on the real file
// store and on the real S3 server the cluster starts (versitygw).
//  (a) SIGKILL mid-capture, the pod finishes and is deleted while no operator
//      runs: Incomplete/PodDeleted with the object an exact prefix of the
//      container's output, at least what was durable before the kill;
//  (b) SIGKILL after the log was rotated, restart after the container ended:
//      Complete and byte-exact (reading again from the top would end LogGap);
//  (c) both across a leader change between two replicas;
//  (d) an upgrade: the operator of an earlier commit starts the capture and is
//      stopped (SIGTERM: final checkpoint, upload left in place), this one
//      finishes it.
// Each checks that no multipart upload / temp file is left behind.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { sleep } from '../../../src/dev/proc.ts';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { apply, createNamespace, events, getLogTail, installCrd, logTailManifest, podManifest, simOutputPath, startOperator, uriToPath, waitForFile, waitForLogTail, type LogTailObject, type OperatorProcess } from './harness.ts';

/**
 * The commit that introduced continuation (format 1 checkpoints): the
 * "previous operator" of the upgrade test. It is in main's history once the
 * branch is merged with a merge commit.
 */
const FEATURE_COMMIT = '93fc51afd842f295ff08a3d0a8fd039f8e7f614a';

interface Upload {
  id: string;
  parts?: number;
  objectBytes: number;
  bytes: number;
  lines: number;
}

function uploadOf(lt: LogTailObject | undefined): Upload | undefined {
  return (lt?.status?.containers?.[0] as { upload?: Upload } | undefined)?.upload;
}

function tempFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[]).filter((f) => f.endsWith('.tmp'));
}

describe('operator: continuation after a crash', function () {
  this.timeout(240_000);
  let c: TestCluster;
  let ns: string;
  let s3: S3Client;
  const ops: OperatorProcess[] = [];

  before(async function () {
    this.timeout(300_000);
    c = await cluster();
    await installCrd(c);
    ns = uniqueName('cont');
    await createNamespace(c, ns);
    s3 = new S3Client({ endpoint: c.env.LOGTAIL_S3_ENDPOINT, region: c.env.AWS_REGION, forcePathStyle: true, credentials: { accessKeyId: c.env.AWS_ACCESS_KEY_ID!, secretAccessKey: c.env.AWS_SECRET_ACCESS_KEY! } });
  });

  after(() => s3?.destroy());

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') for (const op of ops) console.error('operator log tail:\n' + op.log().split('\n').slice(-40).join('\n'));
    await Promise.all(ops.map((op) => op.stop('SIGKILL')));
    ops.length = 0;
  });

  async function operator(o: Parameters<typeof startOperator>[1] = {}): Promise<OperatorProcess> {
    const op = await startOperator(c, o);
    ops.push(op);
    return op;
  }

  async function objectBytes(uri: string): Promise<Buffer> {
    if (uri.startsWith('file://')) return readFileSync(uriToPath(uri));
    const u = new URL(uri);
    const got = await s3.send(new GetObjectCommand({ Bucket: u.host, Key: decodeURIComponent(u.pathname.slice(1)) }));
    return Buffer.from(await got.Body!.transformToByteArray());
  }

  async function multipartUploads(prefix: string): Promise<string[]> {
    const out = await s3.send(new ListMultipartUploadsCommand({ Bucket: c.env.LOGTAIL_S3_BUCKET!, Prefix: prefix }));
    return (out.Uploads ?? []).map((u) => `${u.Key} ${u.UploadId}`);
  }

  async function deletePod(name: string): Promise<void> {
    const r = await c.kubectl(['delete', 'pod', name, '-n', ns, '--wait=true', '--timeout=60s']);
    expect(r.code, r.stderr).to.equal(0);
  }

  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  /** The object is an exact prefix of the container's output, at least `min` bytes, with the checksums in status. */
  async function expectPrefix(lt: LogTailObject, pod: string, min: number, gzip = false): Promise<Buffer> {
    const obj = lt.status!.containers![0]!.object!;
    const raw = await objectBytes(obj.uri);
    // Under gzip every durable boundary ends a member: the object is one valid gzip file.
    const got = gzip ? gunzipSync(raw) : raw;
    const want = readFileSync(simOutputPath(c, ns, pod, 'main'));
    expect(got.length, 'object shorter than what was durable before the kill').to.be.at.least(min);
    expect(got.length).to.be.below(want.length);
    expect(want.subarray(0, got.length).equals(got), 'object is not a prefix of the container output').to.equal(true);
    expect(obj.sha256).to.equal(sha(got));
    expect(obj.objectSha256).to.equal(sha(raw));
    expect(obj.size).to.equal(raw.length);
    return got;
  }

  async function expectExact(lt: LogTailObject, pod: string): Promise<void> {
    const obj = lt.status!.containers![0]!.object!;
    const got = await objectBytes(obj.uri);
    const want = readFileSync(simOutputPath(c, ns, pod, 'main'));
    expect(sha(got), `object of ${pod}`).to.equal(sha(want));
    expect(obj.sha256).to.equal(sha(want));
  }

  /** (a): kill while streaming, the pod ends and is deleted, then a new operator. */
  async function deletedWhileDown(store: 'file' | 's3', lines: number, lineBytes: number, rate: number, until: (u: Upload) => boolean, gzip = false): Promise<void> {
    const pod = `gone-${store}`;
    const s3Store = `s3://${c.env.LOGTAIL_S3_BUCKET}/cont`;
    const args = store === 's3' ? ['--s3-endpoint', c.env.LOGTAIL_S3_ENDPOINT!] : [];
    const op1 = await operator({ args, ...(store === 's3' ? { store: s3Store } : {}) });
    await apply(c, podManifest(ns, pod, { script: { containers: { main: { lines, lineBytes, linesPerSecond: rate, exitCode: 0 } } } }));
    await apply(c, logTailManifest(ns, pod, { podName: pod, ...(gzip ? { compression: 'gzip' } : {}) }));
    const mid = await waitForLogTail(c, ns, pod, 60_000, (lt) => uploadOf(lt) !== undefined && until(uploadOf(lt)!));
    await op1.stop('SIGKILL');
    // What the next process finds: the last status written.
    const durable = uploadOf(await getLogTail(c, ns, pod))!;
    expect(durable.bytes).to.be.at.least(uploadOf(mid)!.bytes);
    await waitForFile(simOutputPath(c, ns, pod, 'main'), 60_000);
    await deletePod(pod);
    const op2 = await operator({ args, storeDir: op1.storeDir, ...(store === 's3' ? { store: s3Store } : {}) });
    const lt = await waitForLogTail(c, ns, pod, 60_000);
    expect(`${lt.status?.phase}/${lt.status?.reason}`, `${lt.status?.message}\n${op2.log().slice(-3000)}`).to.equal('Incomplete/PodDeleted');
    expect(lt.status?.result).to.equal('Unknown');
    await expectPrefix(lt, pod, durable.bytes, gzip);
    expect(op2.log()).to.include('continuing an object an earlier process left');
    expect(uploadOf(lt)).to.equal(undefined);
    if (store === 's3') expect(await multipartUploads(`cont/${ns}/`)).to.deep.equal([]);
    else expect(tempFiles(op1.storeDir)).to.deep.equal([]);
  }

  it('(a) file store, gzip: SIGKILL, the pod finishes and is deleted meanwhile: Incomplete/PodDeleted with the durable prefix', async () => {
    await deletedWhileDown('file', 20_000, 100, 2000, (u) => u.bytes > 300_000, true);
  });

  it('(a) S3: SIGKILL after a part is durable, the pod is deleted meanwhile: Incomplete/PodDeleted, no multipart upload left', async () => {
    // Parts are 8 MiB: the log is 12 MB, read as it is written.
    await deletedWhileDown('s3', 60_000, 200, 10_000, (u) => (u.parts ?? 0) >= 1);
  });

  it('S3: SIGKILL after a part is durable, restarted while the container runs: later parts appended, Complete, byte-exact', async () => {
    const s3Store = `s3://${c.env.LOGTAIL_S3_BUCKET}/cont2`;
    const args = ['--s3-endpoint', c.env.LOGTAIL_S3_ENDPOINT!];
    const op1 = await operator({ args, store: s3Store });
    await apply(c, podManifest(ns, 'more', { script: { containers: { main: { lines: 100_000, lineBytes: 200, linesPerSecond: 10_000, exitCode: 0 } } } }));
    await apply(c, logTailManifest(ns, 'more', { podName: 'more' }));
    await waitForLogTail(c, ns, 'more', 60_000, (lt) => (uploadOf(lt)?.parts ?? 0) >= 1);
    await op1.stop('SIGKILL');
    const durable = uploadOf(await getLogTail(c, ns, 'more'))!;
    const op2 = await operator({ args, store: s3Store, storeDir: op1.storeDir });
    const lt = await waitForLogTail(c, ns, 'more', 60_000);
    expect(`${lt.status?.phase}/${lt.status?.reason}`, `${lt.status?.message}\n${op2.log().slice(-3000)}`).to.equal('Complete/Captured');
    await expectExact(lt, 'more');
    expect(lt.status!.containers![0]!.object!.size).to.be.greaterThan(durable.objectBytes);
    expect(op2.log()).to.include('continuing an object an earlier process left');
    expect(await multipartUploads(`cont2/${ns}/`)).to.deep.equal([]);
  });

  /** A pod whose log the runtime rotates at 1 MiB (140 bytes a record): files start at lines 1, 7491, 14981. */
  const rotating = (name: string) => podManifest(ns, name, { script: { containers: { main: { lines: 18_000, lineBytes: 100, linesPerSecond: 1000, exitCode: 0 } } }, faults: { containerLogMaxSize: '1Mi' } });
  const pastLastRotation = (u: Upload) => u.lines > 15_200;

  it('(b) SIGKILL after the log was rotated, restart after the container ended: Complete, byte-exact', async () => {
    const op1 = await operator();
    await apply(c, rotating('rot'));
    await apply(c, logTailManifest(ns, 'rot', { podName: 'rot' }));
    await waitForLogTail(c, ns, 'rot', 60_000, (lt) => uploadOf(lt) !== undefined && pastLastRotation(uploadOf(lt)!));
    await op1.stop('SIGKILL');
    const atKill = await getLogTail(c, ns, 'rot');
    expect(atKill?.status?.phase).to.equal('Streaming');
    await waitForFile(simOutputPath(c, ns, 'rot', 'main'), 60_000);
    const op2 = await operator({ storeDir: op1.storeDir });
    const lt = await waitForLogTail(c, ns, 'rot', 60_000);
    expect(`${lt.status?.phase}/${lt.status?.reason}`, `${lt.status?.message}\n${op2.log().slice(-3000)}`).to.equal('Complete/Captured');
    await expectExact(lt, 'rot');
    expect(op2.log()).to.include('continuing an object an earlier process left');
    expect(tempFiles(op1.storeDir)).to.deep.equal([]);
  });

  it('(c) a leader change between two replicas: a deleted pod ends with its durable prefix, a rotated log Complete', async () => {
    const lease = uniqueName('lease');
    const args = ['--leader-elect', '--leader-election-namespace', ns, '--leader-election-id', lease];
    const first = await operator({ args });
    await sleep(1000);
    const second = await operator({ args, storeDir: first.storeDir });
    await apply(c, rotating('lrot'));
    await apply(c, podManifest(ns, 'lgone', { script: { containers: { main: { lines: 40_000, lineBytes: 100, linesPerSecond: 2000, exitCode: 0 } } } }));
    await apply(c, logTailManifest(ns, 'lrot', { podName: 'lrot' }));
    await apply(c, logTailManifest(ns, 'lgone', { podName: 'lgone' }));
    await waitForLogTail(c, ns, 'lrot', 60_000, (lt) => uploadOf(lt) !== undefined && pastLastRotation(uploadOf(lt)!));
    const holder = (await c.kubectl(['get', 'lease', lease, '-n', ns, '-o', 'jsonpath={.spec.holderIdentity}'])).stdout;
    const leader = holder.endsWith(`-${first.child.pid}`) ? first : second;
    const standby = leader === first ? second : first;
    await leader.stop('SIGKILL');
    const durable = uploadOf(await getLogTail(c, ns, 'lgone'))!;
    expect(durable.bytes).to.be.greaterThan(0);
    // The standby takes over once the lease has expired (15 s): the pod is gone by then.
    await waitForFile(simOutputPath(c, ns, 'lgone', 'main'), 60_000);
    await deletePod('lgone');
    const rot = await waitForLogTail(c, ns, 'lrot', 90_000);
    expect(`${rot.status?.phase}/${rot.status?.reason}`, `${rot.status?.message}\n${standby.log().slice(-3000)}`).to.equal('Complete/Captured');
    await expectExact(rot, 'lrot');
    const gone = await waitForLogTail(c, ns, 'lgone', 60_000);
    expect(`${gone.status?.phase}/${gone.status?.reason}`, gone.status?.message).to.equal('Incomplete/PodDeleted');
    await expectPrefix(gone, 'lgone', durable.bytes);
    expect(standby.log()).to.include('continuing an object an earlier process left');
    expect(tempFiles(first.storeDir)).to.deep.equal([]);
  });

  // S3 versions of (b) and (c). On S3 only uploaded parts are durable, cut at checkpoints from 8 MiB of content, so
  // the kill comes once a part is (status.containers[].upload.parts >= 1). The runtime rotates at 10 MiB (140 bytes a
  // record: the second file starts at line ~74 900); the first part ends past line 83 886 (8 MiB of 100-byte lines),
  // so the durable checkpoint is in the last file, and the container (140 000 lines in 19 s: 90 000 at 10 000/s, the
  // rest at 5 000/s so that an operator lagging under load is still reading when it is killed) ends before the
  // second rotation. Reading again from the top would find the log starting at line ~74 900: LogGap, not Complete.
  const S3_ROTATION_RECORDS = Math.floor((10 * 1024 * 1024) / 140);
  const rotatingS3 = (name: string) =>
    podManifest(ns, name, {
      script: { containers: { main: { segments: [{ lines: 90_000, lineBytes: 100, linesPerSecond: 10_000 }, { lines: 50_000, lineBytes: 100, linesPerSecond: 5_000 }], exitCode: 0 } } },
      faults: { containerLogMaxSize: '10Mi' },
    });
  const partDurable = (lt: LogTailObject) => (uploadOf(lt)?.parts ?? 0) >= 1;

  /** The durable checkpoint after the kill: at least one part, past the rotation. */
  async function durableS3(name: string): Promise<Upload> {
    const lt = await getLogTail(c, ns, name);
    expect(lt?.status?.phase, 'still capturing at the kill').to.equal('Streaming');
    const u = uploadOf(lt)!;
    expect(u.parts, 'parts durable at the kill').to.be.at.least(1);
    expect(u.lines, 'the durable checkpoint is past the rotation').to.be.greaterThan(S3_ROTATION_RECORDS + 1);
    return u;
  }

  it('(b) S3: SIGKILL after the log was rotated and a part is durable, restart after the container ended: Complete, byte-exact', async () => {
    const s3Store = `s3://${c.env.LOGTAIL_S3_BUCKET}/cont-b`;
    const args = ['--s3-endpoint', c.env.LOGTAIL_S3_ENDPOINT!];
    const op1 = await operator({ args, store: s3Store });
    await apply(c, rotatingS3('rots3'));
    await apply(c, logTailManifest(ns, 'rots3', { podName: 'rots3' }));
    await waitForLogTail(c, ns, 'rots3', 90_000, partDurable);
    await op1.stop('SIGKILL');
    const durable = await durableS3('rots3');
    await waitForFile(simOutputPath(c, ns, 'rots3', 'main'), 60_000);
    // What a read from the top gets now: the last file only, not the run's first line.
    const served = await c.kubectl(['logs', 'rots3', '-n', ns, '--limit-bytes=300']);
    expect(served.code, served.stderr).to.equal(0);
    const firstLine = (b: string) => b.slice(0, b.indexOf('\n') + 1);
    expect(firstLine(served.stdout)).to.not.equal(firstLine(readFileSync(simOutputPath(c, ns, 'rots3', 'main')).subarray(0, 300).toString('latin1')));
    const op2 = await operator({ args, store: s3Store, storeDir: op1.storeDir });
    const lt = await waitForLogTail(c, ns, 'rots3', 90_000);
    expect(`${lt.status?.phase}/${lt.status?.reason}`, `${lt.status?.message}\n${op2.log().slice(-3000)}`).to.equal('Complete/Captured');
    await expectExact(lt, 'rots3');
    expect(lt.status!.containers![0]!.object!.size).to.be.greaterThan(durable.objectBytes);
    expect(op2.log()).to.include('continuing an object an earlier process left');
    expect(await multipartUploads(`cont-b/${ns}/`)).to.deep.equal([]);
  });

  it('(c) S3: a leader change between two replicas after the log was rotated and a part is durable: Complete, byte-exact', async () => {
    const s3Store = `s3://${c.env.LOGTAIL_S3_BUCKET}/cont-c`;
    const lease = uniqueName('lease');
    const args = ['--s3-endpoint', c.env.LOGTAIL_S3_ENDPOINT!, '--leader-elect', '--leader-election-namespace', ns, '--leader-election-id', lease];
    const first = await operator({ args, store: s3Store });
    await sleep(1000);
    const second = await operator({ args, store: s3Store, storeDir: first.storeDir });
    await apply(c, rotatingS3('lrots3'));
    await apply(c, logTailManifest(ns, 'lrots3', { podName: 'lrots3' }));
    await waitForLogTail(c, ns, 'lrots3', 90_000, partDurable);
    const holder = (await c.kubectl(['get', 'lease', lease, '-n', ns, '-o', 'jsonpath={.spec.holderIdentity}'])).stdout;
    const leader = holder.endsWith(`-${first.child.pid}`) ? first : second;
    const standby = leader === first ? second : first;
    await leader.stop('SIGKILL');
    const durable = await durableS3('lrots3');
    // The standby takes over once the lease has expired (15 s): the container has ended by then (19 s of output).
    const lt = await waitForLogTail(c, ns, 'lrots3', 120_000);
    expect(`${lt.status?.phase}/${lt.status?.reason}`, `${lt.status?.message}\n${standby.log().slice(-3000)}`).to.equal('Complete/Captured');
    await expectExact(lt, 'lrots3');
    expect(lt.status!.containers![0]!.object!.size).to.be.greaterThan(durable.objectBytes);
    expect(standby.log()).to.include('continuing an object an earlier process left');
    expect(await multipartUploads(`cont-c/${ns}/`)).to.deep.equal([]);
  });

  it('(d) an upgrade mid-capture: the previous commit\'s operator starts it, this one finishes it', async () => {
    // The earlier build, from git history, with this checkout's node_modules.
    const dir = mkdtempSync(join(tmpdir(), 'logtail-prev-'));
    try {
      execFileSync('sh', ['-c', `git -C "${REPO_ROOT}" archive --format=tar ${FEATURE_COMMIT} src package.json | tar -x -C "${dir}"`]);
      symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
      const old = await operator({ main: join(dir, 'src', 'cmd', 'main.ts') });
      await apply(c, podManifest(ns, 'upg', { script: { containers: { main: { lines: 20_000, lineBytes: 100, linesPerSecond: 2000, exitCode: 0 } } } }));
      await apply(c, logTailManifest(ns, 'upg', { podName: 'upg' }));
      await waitForLogTail(c, ns, 'upg', 60_000, (lt) => (uploadOf(lt)?.bytes ?? 0) > 200_000);
      // A rolling update: SIGTERM, the old operator writes its final checkpoint and leaves the upload.
      expect(await old.stop('SIGTERM')).to.equal(0);
      const handed = uploadOf(await getLogTail(c, ns, 'upg'));
      expect(handed, 'final checkpoint after SIGTERM').to.not.equal(undefined);
      expect(tempFiles(old.storeDir)).to.have.length(1);
      const op = await operator({ storeDir: old.storeDir });
      const lt = await waitForLogTail(c, ns, 'upg', 60_000);
      expect(`${lt.status?.phase}/${lt.status?.reason}`, `${lt.status?.message}\n${op.log().slice(-3000)}`).to.equal('Complete/Captured');
      await expectExact(lt, 'upg');
      expect(op.log()).to.include('continuing an object an earlier process left');
      expect((await events(c, ns, 'upg')).filter((e) => e.reason === 'NotContinued')).to.deep.equal([]);
      expect(tempFiles(old.storeDir)).to.deep.equal([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
