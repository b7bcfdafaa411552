// The operator refuses to run on an S3 store that ignores If-None-Match: *
// (issue 12, item 6): "never overwrite" depends on it. The store here is a
// stand-in server that ignores the header, because that is the condition under
// test (the Versity gateway the cluster runs honours it; the operator starts
// on it in every S3 test, and s3-store.test.ts checks the probe there).
import { expect } from 'chai';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run } from '../../../src/dev/proc.ts';
import { startStandIn, type StandIn } from '../../unit/adapters/s3-standin.ts';
import { startOperator, useOperatorSuite } from './harness.ts';

describe('operator: refuses an S3 store that ignores If-None-Match', function () {
  this.timeout(120_000);
  const suite = useOperatorSuite();
  const standIns: StandIn[] = [];

  after(async () => {
    for (const s of standIns) await s.close();
  });

  const env = () => ({ ...process.env, ...suite.c.env, KUBECONFIG: suite.c.kubeconfigPath, AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK', AWS_REGION: 'us-east-1' });

  it('exits 1 at start-up with a message naming the store and the header, having captured nothing', async () => {
    const s = await startStandIn({ honourOnPut: false, honourOnComplete: false });
    standIns.push(s);
    const r = await run(process.execPath, [join(REPO_ROOT, 'src', 'cmd', 'main.ts'), '--store', 's3://ignoring-bucket/logs', '--s3-endpoint', s.endpoint, '--http-addr', 'off', '--leader-elect=false'], { env: env(), timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stderr).to.match(/logtail-operator: refusing to run: the S3 store at s3:\/\/ignoring-bucket\/logs does not honour "If-None-Match: \*"/);
    expect(r.stdout).to.match(/refusing to run: the object store cannot guarantee that a stored log is never overwritten/);
    // the controller never started: no list or watch of LogTails
    expect(r.stdout).to.not.match(/"leading"|informer.*started/);
  });

  it('starts normally on a stand-in that honours the header', async () => {
    const s = await startStandIn({ honourOnPut: true, honourOnComplete: true });
    standIns.push(s);
    const op = await startOperator(suite.c, { store: 's3://honouring-bucket/logs', args: ['--s3-endpoint', s.endpoint], env: { AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK', AWS_REGION: 'us-east-1' } });
    try {
      expect(op.log()).to.match(/store refuses overwrites/);
    } finally {
      await op.stop();
    }
  });
});
