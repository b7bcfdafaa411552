// --metrics-auth on the real apiserver (issue 12, item 4): /metrics answers
// only a ServiceAccount token that passes TokenReview and whose user may `get`
// the non-resource URL /metrics (SubjectAccessReview); health stays open.
import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/dev/proc.ts';
import { uniqueName, type TestCluster } from '../fixture.ts';
import { startOperator, useOperatorSuite } from './harness.ts';

async function must(c: TestCluster, args: string[], input?: string): Promise<string> {
  const r = await c.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('operator: --metrics-auth (TokenReview + SubjectAccessReview)', function () {
  this.timeout(120_000);
  let scraperToken: string;
  let otherToken: string;
  const role = uniqueName('lt-metrics-reader');
  const s = useOperatorSuite({
    namespaces: ['mauth'],
    afterStop: (x) => x.c.kubectl(['delete', 'clusterrolebinding,clusterrole', role, '--ignore-not-found', '--wait=false']),
  });

  before(async function () {
    const { c, ns } = s;
    await must(c, ['create', 'serviceaccount', 'scraper', '-n', ns]);
    await must(c, ['create', 'serviceaccount', 'other', '-n', ns]);
    await must(c, ['create', 'clusterrole', role, '--verb=get', '--non-resource-url=/metrics']);
    await must(c, ['create', 'clusterrolebinding', role, `--clusterrole=${role}`, `--serviceaccount=${ns}:scraper`]);
    scraperToken = (await must(c, ['create', 'token', 'scraper', '-n', ns])).trim();
    otherToken = (await must(c, ['create', 'token', 'other', '-n', ns])).trim();
    s.op = await startOperator(c, { args: ['--metrics-auth', '--watch-namespaces', ns] });
  });

  const get = (path: string, token?: string) => fetch(`http://127.0.0.1:${s.op.httpPort}${path}`, token ? { headers: { Authorization: `Bearer ${token}` } } : {});

  it('refuses /metrics without a token (401) and with a forged one (401)', async () => {
    const none = await get('/metrics');
    expect(none.status).to.equal(401);
    expect(none.headers.get('www-authenticate')).to.equal('Bearer');
    expect(await none.text()).to.not.match(/logtail_/);
    const forged = await get('/metrics', scraperToken.slice(0, -4) + 'AAAA');
    expect(forged.status).to.equal(401);
  });

  it('refuses an authenticated ServiceAccount that may not get /metrics (403)', async () => {
    const r = await get('/metrics', otherToken);
    expect(r.status).to.equal(403);
    expect(await r.text()).to.match(new RegExp(`system:serviceaccount:${s.ns}:other may not get /metrics`));
  });

  it('serves the scraper bound to get /metrics', async () => {
    const r = await get('/metrics', scraperToken);
    expect(r.status).to.equal(200);
    expect(await r.text()).to.match(/^# TYPE logtail_/m);
  });

  it('leaves /healthz and /readyz open for the kubelet', async () => {
    expect((await get('/healthz')).status).to.equal(200);
    expect((await get('/readyz')).status).to.equal(200);
  });

  it('with --http-tls-cert-file/--http-tls-key-file serves the same over HTTPS, and not over plain HTTP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'logtail-http-tls-'));
    const gen = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')]);
    expect(gen.code, gen.stderr).to.equal(0);
    const ca = readFileSync(join(dir, 'tls.crt'));
    const httpsGetStatus = (port: number, path: string, token?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsGet({ host: '127.0.0.1', port, path, ca, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
      });
    const tlsOp = await startOperator(s.c, {
      args: ['--metrics-auth', '--watch-namespaces', s.ns, '--http-tls-cert-file', join(dir, 'tls.crt'), '--http-tls-key-file', join(dir, 'tls.key')],
      isUp: async (port) => (await httpsGetStatus(port, '/readyz').catch(() => ({ status: 0 }))).status === 200,
    });
    try {
      expect((await httpsGetStatus(tlsOp.httpPort, '/metrics')).status).to.equal(401);
      const ok = await httpsGetStatus(tlsOp.httpPort, '/metrics', scraperToken);
      expect(ok.status).to.equal(200);
      expect(ok.body).to.match(/^# TYPE logtail_/m);
      const plain = await fetch(`http://127.0.0.1:${tlsOp.httpPort}/healthz`).then(
        (r) => r.status,
        () => 'refused',
      );
      expect(plain).to.not.equal(200);
    } finally {
      await tlsOp.stop();
    }
  });
});
