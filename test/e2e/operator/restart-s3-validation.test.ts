import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run as runCmd, sleep } from '../../../src/dev/proc.ts';
import { cluster, uniqueName } from '../fixture.ts';
import { apply, createNamespace, events, getLogTail, installCrd, logTailManifest, podManifest, sha256File, simOutputPath, startOperator, uriToPath, useOperatorSuite, waitForFile, waitForFinalizerRemoved, waitForLogTail } from './harness.ts';

describe('operator: crash safety', function () {
  this.timeout(240_000);
  const s = useOperatorSuite({ namespaces: ['crash'] });

  it('resumes after SIGKILL mid-stream: byte-exact object, exactly one terminal event', async () => {
    const op1 = await startOperator(s.c);
    const storeDir = op1.storeDir;
    await apply(s.c, podManifest(s.ns, 'victim', { script: { containers: { main: { lines: 6000, lineBytes: 100, linesPerSecond: 600, exitCode: 0 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'victim', { podName: 'victim' }));
    await waitForLogTail(s.c, s.ns, 'victim', 60_000, (lt) => (lt.status?.bytes ?? 0) > 50_000);
    await op1.stop('SIGKILL');
    const mid = await getLogTail(s.c, s.ns, 'victim');
    expect(mid?.status?.phase).to.equal('Streaming');
    await sleep(1500);
    const op2 = await startOperator(s.c, { storeDir });
    try {
      const lt = await waitForLogTail(s.c, s.ns, 'victim', 90_000);
      expect(lt.status?.phase, `${lt.status?.message}\n${op2.log().slice(-3000)}`).to.equal('Complete');
      const want = await sha256File(simOutputPath(s.c, s.ns, 'victim', 'main'));
      expect(await sha256File(uriToPath(lt.status!.containers![0]!.object!.uri))).to.equal(want);
      const terminal = (await events(s.c, s.ns, 'victim')).filter((e) => ['Complete', 'Incomplete', 'Failed'].includes(e.reason));
      expect(terminal).to.have.length(1);
      // Removed by a patch after the terminal status: waited for, bounded.
      const after = await waitForFinalizerRemoved(s.c, s.ns, 'victim');
      expect(after.metadata.finalizers ?? []).to.not.include('logtail.dev/finalizer');
    } finally {
      await op2.stop();
    }
  });
});

describe('operator: S3 store', function () {
  this.timeout(180_000);

  it('captures into S3 (versitygw) with a verified size and checksums', async () => {
    const c = await cluster();
    await installCrd(c);
    const ns = uniqueName('s3');
    await createNamespace(c, ns);
    const op = await startOperator(c, { store: `s3://${c.env.LOGTAIL_S3_BUCKET}/captures`, args: ['--s3-endpoint', c.env.LOGTAIL_S3_ENDPOINT!] });
    try {
      await apply(c, podManifest(ns, 'tos3', { script: { containers: { main: { lines: 30000, lineBytes: 120, linesPerSecond: 30000, exitCode: 0 } } } }));
      await apply(c, logTailManifest(ns, 'tos3', { podName: 'tos3' }));
      const lt = await waitForLogTail(c, ns, 'tos3', 90_000);
      expect(lt.status?.phase, `${lt.status?.message}\n${op.log().slice(-3000)}`).to.equal('Complete');
      const obj = lt.status!.containers![0]!.object!;
      expect(obj.uri.startsWith(`s3://${c.env.LOGTAIL_S3_BUCKET}/captures/${ns}/`), obj.uri).to.equal(true);
      const u = new URL(obj.uri);
      const s3 = new S3Client({ endpoint: c.env.LOGTAIL_S3_ENDPOINT, region: c.env.AWS_REGION, forcePathStyle: true, credentials: { accessKeyId: c.env.AWS_ACCESS_KEY_ID!, secretAccessKey: c.env.AWS_SECRET_ACCESS_KEY! } });
      const got = await s3.send(new GetObjectCommand({ Bucket: u.host, Key: decodeURIComponent(u.pathname.slice(1)) }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      s3.destroy();
      const recorded = simOutputPath(c, ns, 'tos3', 'main');
      await waitForFile(recorded);
      expect(createHash('sha256').update(bytes).digest('hex')).to.equal(await sha256File(recorded));
      expect(obj.size).to.equal(bytes.length);

      // the CLI reads it back from S3 and verifies the checksum
      const cli = await runCmd(process.execPath, [join(REPO_ROOT, 'src', 'cmd', 'logtail.ts'), 'get', 'tos3', '-n', ns], { env: { ...process.env, ...c.env } });
      expect(cli.code, cli.stderr).to.equal(0);
      expect(createHash('sha256').update(cli.stdout).digest('hex')).to.equal(await sha256File(recorded));
      expect(cli.stderr).to.match(/verified sha256/);
    } finally {
      await op.stop();
    }
  });
});

describe('CRD validation at apply', function () {
  this.timeout(60_000);
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['missing podName', {}, /podName/],
    ['bad compression', { podName: 'p', compression: 'zip' }, /compression/],
    ['bad duration', { podName: 'p', retry: { initialInterval: 'soon' } }, /initialInterval|duration/i],
    ['key template leaving its folder', { podName: 'p', keyTemplate: '../{container}-{restart}.log' }, /keyTemplate|\.\./],
    ['key template without {container}', { podName: 'p', keyTemplate: '{pod}.log' }, /container/],
  ];
  for (const [what, spec, msg] of bad) {
    it(`refuses ${what}`, async () => {
      const c = await cluster();
      await installCrd(c);
      const r = await c.kubectl(['apply', '-n', 'default', '-f', '-'], { input: JSON.stringify(logTailManifest('default', `bad-${Date.now()}`, spec)) });
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.match(/is invalid/);
      expect(r.stderr).to.match(msg);
    });
  }

  it('refuses a change of podName', async () => {
    const c = await cluster();
    await installCrd(c);
    const name = uniqueName('immut');
    await apply(c, logTailManifest('default', name, { podName: 'a' }));
    const r = await c.kubectl(['apply', '-n', 'default', '-f', '-'], { input: JSON.stringify(logTailManifest('default', name, { podName: 'b' })) });
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(/immutable/i);
    await c.kubectl(['delete', 'logtail', name, '-n', 'default', '--wait=false']);
  });
});
