// Our kubeconfig loader's in-cluster path (src/adapters/kube-credentials.ts)
// against the real kube-apiserver: a service-account directory laid out as
// the kubelet's projected volume (files behind a `..data` symlink swapped on
// rotation) with tokens from `kubectl create token`; the apiserver says who
// each request was (SelfSubjectReview), so a rotated token is seen in use.
import { expect } from 'chai';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeApi } from '../../../src/adapters/kube-api.ts';
import { loadKubeCredentials } from '../../../src/adapters/kube-credentials.ts';
import { KubeWatch } from '../../../src/adapters/kube-watch.ts';
import { cluster, createNamespace, uniqueName } from '../fixture.ts';

describe('adapters/kube-credentials in-cluster, against a real apiserver', function () {
  this.timeout(120_000);

  it('uses the service-account token, and the rotated one as soon as the kubelet swaps it', async () => {
    const c = await cluster();
    const ns = uniqueName('incluster');
    await createNamespace(c, ns);
    const token = async (sa: string) => {
      const r = await c.kubectl(['-n', ns, 'create', 'token', sa, '--duration', '10m']);
      if (r.code !== 0) throw new Error(`create token: ${r.stderr}`);
      return r.stdout.trim();
    };
    for (const sa of ['first', 'second']) {
      const r = await c.kubectl(['-n', ns, 'create', 'serviceaccount', sa]);
      if (r.code !== 0) throw new Error(`create serviceaccount: ${r.stderr}`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'logtail-incluster-'));
    try {
      const sa = join(dir, 'serviceaccount');
      mkdirSync(sa);
      const project = async (gen: number, who: string) => {
        const data = join(sa, `..gen${gen}`);
        mkdirSync(data);
        writeFileSync(join(data, 'token'), await token(who));
        copyFileSync(c.state.caFile, join(data, 'ca.crt'));
        writeFileSync(join(data, 'namespace'), ns);
        symlinkSync(`..gen${gen}`, join(sa, '..data_tmp'));
        renameSync(join(sa, '..data_tmp'), join(sa, '..data'));
      };
      await project(1, 'first');
      for (const f of ['token', 'ca.crt', 'namespace']) symlinkSync(join('..data', f), join(sa, f));

      const url = new URL(c.state.apiserverUrl);
      const creds = await loadKubeCredentials({ env: { KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port }, serviceAccountDir: sa, recheckMs: 0 });
      expect(creds.fallback).to.equal(false);
      expect(creds.namespace).to.equal(ns);
      const api = new KubeApi(creds);
      const whoami = async () =>
        (await api.request<{ status: { userInfo: { username: string } } }>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' })).status.userInfo.username;
      try {
        expect(await whoami()).to.equal(`system:serviceaccount:${ns}:first`);
        await project(2, 'second');
        expect(await whoami()).to.equal(`system:serviceaccount:${ns}:second`);
      } finally {
        api.close();
      }

      // The watch transport on the same credentials: the apiserver answers (403: the service account may not list; not 401).
      const done = await new Promise<unknown>((resolve) => {
        void new KubeWatch(creds).watch(`/api/v1/namespaces/${ns}/configmaps`, {}, () => {}, resolve);
      });
      expect((done as { statusCode?: number }).statusCode).to.equal(403);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
