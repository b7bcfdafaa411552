import { expect } from 'chai';
import type { KubeApi } from '../../../src/adapters/kube-api.ts';
import { MetricsAuthorizer } from '../../../src/runtime/metrics-auth.ts';

interface Call {
  path: string;
  body: { spec: Record<string, unknown> };
}

/** An apiserver that knows two tokens: "scraper" (may get /metrics) and "nobody" (may not). */
function fakeApi(calls: Call[]): Pick<KubeApi, 'request'> {
  return {
    request: (async (method: string, path: string, body: { spec: Record<string, unknown> }) => {
      expect(method).to.equal('POST');
      calls.push({ path, body });
      if (path.endsWith('/tokenreviews')) {
        const token = body.spec.token as string;
        if (token === 'scraper' || token === 'nobody') return { status: { authenticated: true, user: { username: `system:serviceaccount:mon:${token}`, groups: ['system:serviceaccounts'] } } };
        return { status: { authenticated: false, error: 'invalid bearer token' } };
      }
      const user = body.spec.user as string;
      return { status: { allowed: user.endsWith(':scraper'), reason: user.endsWith(':scraper') ? 'RBAC: allowed' : '' } };
    }) as KubeApi['request'],
  };
}

describe('runtime/metrics-auth (--metrics-auth: TokenReview + SubjectAccessReview)', () => {
  it('401 without a bearer token or with one the apiserver does not authenticate', async () => {
    const calls: Call[] = [];
    const a = new MetricsAuthorizer({ api: fakeApi(calls) });
    expect((await a.check(undefined)).status).to.equal(401);
    expect((await a.check('Basic Zm9vOmJhcg==')).status).to.equal(401);
    expect(calls).to.have.length(0);
    const r = await a.check('Bearer forged');
    expect(r.status).to.equal(401);
    expect(r.message).to.match(/invalid bearer token/);
  });

  it('403 for an authenticated user without get /metrics; 200 for one with it, asking about the non-resource URL', async () => {
    const calls: Call[] = [];
    const a = new MetricsAuthorizer({ api: fakeApi(calls) });
    const no = await a.check('Bearer nobody');
    expect(no.status).to.equal(403);
    expect(no.message).to.match(/system:serviceaccount:mon:nobody may not get \/metrics/);
    const yes = await a.check('Bearer scraper');
    expect(yes).to.deep.include({ status: 200, user: 'system:serviceaccount:mon:scraper' });
    const sar = calls.filter((c) => c.path === '/apis/authorization.k8s.io/v1/subjectaccessreviews').at(-1)!;
    expect(sar.body.spec).to.deep.include({ user: 'system:serviceaccount:mon:scraper', groups: ['system:serviceaccounts'], nonResourceAttributes: { path: '/metrics', verb: 'get' } });
  });

  it('caches a decision briefly per token, and errors not at all', async () => {
    const calls: Call[] = [];
    let now = 0;
    const a = new MetricsAuthorizer({ api: fakeApi(calls), cacheMs: 1000, now: () => now });
    await a.check('Bearer scraper');
    await a.check('Bearer scraper');
    expect(calls).to.have.length(2);
    now = 1500;
    await a.check('Bearer scraper');
    expect(calls).to.have.length(4);
    let fail = true;
    const flaky = new MetricsAuthorizer({
      api: {
        request: (async () => {
          if (fail) throw new Error('connection refused');
          return { status: { authenticated: false } };
        }) as KubeApi['request'],
      },
    });
    expect((await flaky.check('Bearer x')).status).to.equal(500);
    fail = false;
    expect((await flaky.check('Bearer x')).status).to.equal(401);
  });
});
