// spec.maxBytes end to end, and the labels a bucket lifecycle rule matches:
// a run longer than the cap is stored as head + marker + tail (computed from
// the simulator's recording / the kubelet's timestamped log), Incomplete with
// reason Truncated, shown by `kubectl get lt`; a run within it stays
// Complete. The file store writes <object>.logtail.json beside each object,
// the S3 store (versitygw) tags it.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, GetObjectTaggingCommand, S3Client } from '@aws-sdk/client-s3';
import { layout, truncateWhole } from '../../../src/core/truncate.ts';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run as runCmd } from '../../../src/dev/proc.ts';
import { apply, logTailManifest, podManifest, simOutputPath, uriToPath, useOperatorSuite, waitForFile, waitForLogTail, type LogTailObject } from './harness.ts';

const MAX = 65_536;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Checks a truncated object against the full log it was cut from. */
function expectTruncated(lt: LogTailObject, stored: Buffer, full: Buffer, timestamps: boolean): void {
  const want = truncateWhole(full, MAX, timestamps);
  const ctr = lt.status!.containers![0]!;
  expect([lt.status?.phase, lt.status?.reason, lt.status?.result], lt.status?.message).to.deep.equal(['Incomplete', 'Truncated', 'Succeeded']);
  expect(ctr.state).to.equal('Stored');
  expect(stored.length, 'never more than maxBytes').to.be.at.most(MAX);
  expect(stored.equals(want.stored), `stored ${stored.length} bytes, want ${want.stored.length}`).to.equal(true);
  expect(ctr.truncatedBytes).to.equal(want.truncatedBytes);
  // Independently of the reference: a prefix of the log, one marker line, a suffix of it, every byte accounted for.
  const text = stored.toString('latin1');
  const m = /(?:\S+ )?\[logtail: truncated, (\d+) bytes left out \(spec\.maxBytes=65536\)\]\n/.exec(text)!;
  expect(Number(m[1])).to.equal(ctr.truncatedBytes);
  const head = stored.subarray(0, m.index);
  const tail = stored.subarray(m.index + m[0].length);
  expect(full.subarray(0, head.length).equals(head)).to.equal(true);
  expect(full.subarray(full.length - tail.length).equals(tail)).to.equal(true);
  expect(head.length + Number(m[1]) + tail.length).to.equal(full.length);
  const l = layout(MAX);
  expect(head.length).to.be.within(1, l.head);
  expect(tail.length).to.be.within(1, l.tail);
  expect(ctr.bytes).to.equal(stored.length);
  expect(ctr.object!.sha256, 'sha256 of the stored content').to.equal(sha(stored));
  const cond = lt.status!.conditions!.find((x) => x.type === 'Truncated');
  expect([cond?.status, cond?.reason]).to.deep.equal(['True', 'Truncated']);
}

describe('operator: spec.maxBytes and object labels', function () {
  this.timeout(120_000);
  // One operator per store, each scoped to its namespace.
  const s = useOperatorSuite({
    namespaces: ['maxf', 'maxs'],
    operators: [(x) => ({ args: ['--watch-namespaces', x.ns] }), (x) => ({ store: `s3://${x.c.env.LOGTAIL_S3_BUCKET}/captures`, args: ['--s3-endpoint', x.c.env.LOGTAIL_S3_ENDPOINT!, '--watch-namespaces', x.namespaces[1]!] })],
    logLines: 30,
  });

  it('file store, gzip: a run over maxBytes is head + marker + tail before compression, Incomplete/Truncated, with a sidecar record; kubectl get lt shows Truncated', async () => {
    await apply(s.c, podManifest(s.ns, 'big', { script: { containers: { main: { lines: 3000, lineBytes: 90, linesPerSecond: 3000, exitCode: 0 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'big', { podName: 'big', maxBytes: MAX, compression: 'gzip', retention: 'Delete' }));
    const lt = await waitForLogTail(s.c, s.ns, 'big', 60_000);
    const recorded = simOutputPath(s.c, s.ns, 'big', 'main');
    await waitForFile(recorded);
    const path = uriToPath(lt.status!.containers![0]!.object!.uri);
    const object = readFileSync(path);
    expectTruncated(lt, gunzipSync(object), readFileSync(recorded), false);
    expect(lt.status!.containers![0]!.object!.objectSha256).to.equal(sha(object));
    const rec = JSON.parse(readFileSync(`${path}.logtail.json`, 'utf8')) as Record<string, unknown>;
    expect(rec).to.include({ kind: 'StoredObject', size: object.length, sha256: lt.status!.containers![0]!.object!.sha256, objectSha256: sha(object) });
    expect(rec.labels).to.deep.equal({
      'logtail.dev/retention': 'Delete',
      'logtail.dev/namespace': s.ns,
      'logtail.dev/logtail': 'big',
      'logtail.dev/pod': 'big',
      'logtail.dev/container': 'main',
    });
    const get = await s.c.kubectl(['get', 'lt', 'big', '-n', s.ns]);
    expect(get.stdout.split('\n')[0]).to.match(/\bREASON\b/);
    expect(get.stdout.split('\n')[1]).to.match(/\bIncomplete\b.*\bTruncated\b/);
    // The CLI: describe says what was cut; get prints the stored (verified) content once told a cut log is fine.
    const cli = (args: string[]) => runCmd(process.execPath, [join(REPO_ROOT, 'src', 'cmd', 'logtail.ts'), ...args], { env: { ...process.env, ...s.c.env } });
    const d = await cli(['describe', 'big', '-n', s.ns]);
    expect(d.stdout).to.match(new RegExp(`truncated: ${lt.status!.containers![0]!.truncatedBytes} bytes left out between head and tail \\(spec.maxBytes=65536\\)`));
    expect(d.stdout).to.match(/Truncated +True +Truncated/);
    expect((await cli(['get', 'big', '-n', s.ns])).code, 'not Complete').to.equal(1);
    const out = await cli(['get', 'big', '-n', s.ns, '--allow-incomplete']);
    expect(out.code, out.stderr).to.equal(0);
    expect(sha(Buffer.from(out.stdout, 'latin1'))).to.equal(lt.status!.containers![0]!.object!.sha256);
  });

  it('file store: a run within maxBytes is stored whole and stays Complete', async () => {
    await apply(s.c, podManifest(s.ns, 'small', { script: { containers: { main: { lines: 500, lineBytes: 100, exitCode: 0 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'small', { podName: 'small', maxBytes: MAX }));
    const lt = await waitForLogTail(s.c, s.ns, 'small', 60_000);
    expect([lt.status?.phase, lt.status?.reason], lt.status?.message).to.deep.equal(['Complete', 'Captured']);
    const recorded = simOutputPath(s.c, s.ns, 'small', 'main');
    await waitForFile(recorded);
    const path = uriToPath(lt.status!.containers![0]!.object!.uri);
    expect(readFileSync(path).equals(readFileSync(recorded))).to.equal(true);
    expect(lt.status!.containers![0]!.truncatedBytes).to.equal(undefined);
    expect(lt.status!.conditions!.find((x) => x.type === 'Truncated')?.status).to.equal('False');
    expect((JSON.parse(readFileSync(`${path}.logtail.json`, 'utf8')) as { labels: Record<string, string> }).labels['logtail.dev/retention']).to.equal('Retain');
  });

  it('S3, timestamps: the marker is a timestamped line; the object carries the lifecycle tags', async () => {
    await apply(s.c, podManifest(s.namespaces[1]!, 'big', { script: { containers: { main: { lines: 3000, lineBytes: 90, linesPerSecond: 3000, exitCode: 0 } } } }));
    await apply(s.c, logTailManifest(s.namespaces[1]!, 'big', { podName: 'big', maxBytes: MAX, timestamps: true }));
    const lt = await waitForLogTail(s.c, s.namespaces[1]!, 'big', 60_000);
    // The whole timestamped log as the kubelet serves it.
    const logs = await s.c.kubectl(['logs', 'big', '-n', s.namespaces[1]!, '--timestamps']);
    expect(logs.code, logs.stderr).to.equal(0);
    const u = new URL(lt.status!.containers![0]!.object!.uri);
    const Bucket = u.host;
    const Key = decodeURIComponent(u.pathname.slice(1));
    const s3 = new S3Client({ endpoint: s.c.env.LOGTAIL_S3_ENDPOINT, region: s.c.env.AWS_REGION, forcePathStyle: true, credentials: { accessKeyId: s.c.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s.c.env.AWS_SECRET_ACCESS_KEY! } });
    try {
      const got = await s3.send(new GetObjectCommand({ Bucket, Key }));
      const stored = Buffer.from(await got.Body!.transformToByteArray());
      expectTruncated(lt, stored, Buffer.from(logs.stdout, 'latin1'), true);
      expect(stored.toString('latin1')).to.match(/\n\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z \[logtail: truncated, \d+ bytes left out/);
      const tags = await s3.send(new GetObjectTaggingCommand({ Bucket, Key }));
      const map = Object.fromEntries((tags.TagSet ?? []).map((t) => [t.Key, t.Value]));
      expect(map).to.deep.equal({
        sha256: sha(stored),
        objectSha256: sha(stored),
        'logtail.dev/retention': 'Retain',
        'logtail.dev/namespace': s.namespaces[1]!,
        'logtail.dev/logtail': 'big',
        'logtail.dev/pod': 'big',
        'logtail.dev/container': 'main',
      });
    } finally {
      s3.destroy();
    }
  });
});
