import { expect } from 'chai';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeCredentials, type LoadedCredentials } from '../../../src/adapters/kube-credentials.ts';

const CA = Buffer.from('-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n');
const CERT = Buffer.from('-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n');
const KEY = Buffer.from('-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n');

async function applied(c: LoadedCredentials): Promise<RequestOptions & { headers: Record<string, string> }> {
  const opts: RequestOptions = { headers: {} };
  await c.applyToHTTPSOptions(opts);
  return opts as RequestOptions & { headers: Record<string, string> };
}

function kubeconfig(o: { clusters?: unknown[]; users?: unknown[]; contexts?: unknown[]; current?: string }): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: o.clusters ?? [], users: o.users ?? [], contexts: o.contexts ?? [], ...(o.current ? { 'current-context': o.current } : {}) });
}

describe('adapters/kube-credentials', function () {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'logtail-creds-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // The kubelet's projected volume: files behind ..data, a symlink swapped atomically on rotation.
  function serviceAccount(token: string, gen = 1): string {
    const sa = join(dir, 'sa');
    mkdirSync(sa, { recursive: true });
    const data = join(sa, `..gen${gen}`);
    mkdirSync(data);
    writeFileSync(join(data, 'token'), token);
    writeFileSync(join(data, 'ca.crt'), CA);
    writeFileSync(join(data, 'namespace'), 'logtail-system');
    symlinkSync(`..gen${gen}`, join(sa, '..data_tmp'));
    renameSync(join(sa, '..data_tmp'), join(sa, '..data'));
    if (gen === 1) for (const f of ['token', 'ca.crt', 'namespace']) symlinkSync(join('..data', f), join(sa, f));
    return sa;
  }

  describe('in-cluster', () => {
    it('uses the service account: https to KUBERNETES_SERVICE_HOST:PORT, ca.crt, the token, the namespace; no client-node', async () => {
      const sa = serviceAccount('tok-1\n');
      const c = await loadKubeCredentials({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: sa });
      expect(c.fallback).to.equal(false);
      expect(c.source).to.match(/^in-cluster service account/);
      expect(c.getCurrentCluster()?.server).to.equal('https://10.96.0.1:443');
      expect(c.getCurrentCluster()?.proxyUrl).to.equal(undefined);
      expect(c.namespace).to.equal('logtail-system');
      const o = await applied(c);
      expect(o.headers.Authorization).to.equal('Bearer tok-1');
      expect(o.ca).to.deep.equal(CA);
      expect(o.rejectUnauthorized).to.equal(undefined);
      expect(o.cert).to.equal(undefined);
    });

    it('puts an IPv6 service host in brackets', async () => {
      const sa = serviceAccount('t');
      const c = await loadKubeCredentials({ env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: sa });
      expect(c.getCurrentCluster()?.server).to.equal('https://[fd00::1]:443');
    });

    it('re-reads the token when the kubelet rotates it (projected token), keeps the last one while the file is unreadable or empty', async () => {
      const sa = serviceAccount('tok-1');
      const c = await loadKubeCredentials({ env: { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '6443' }, serviceAccountDir: sa, recheckMs: 0 });
      expect((await applied(c)).headers.Authorization).to.equal('Bearer tok-1');
      serviceAccount('tok-2-longer', 2);
      expect((await applied(c)).headers.Authorization).to.equal('Bearer tok-2-longer');
      serviceAccount('', 3);
      expect((await applied(c)).headers.Authorization).to.equal('Bearer tok-2-longer');
      rmSync(join(sa, '..data'));
      expect((await applied(c)).headers.Authorization).to.equal('Bearer tok-2-longer');
      serviceAccount('tok-4', 4);
      expect((await applied(c)).headers.Authorization).to.equal('Bearer tok-4');
    });

    it('is not taken without KUBERNETES_SERVICE_HOST/PORT, nor without the token file', async () => {
      const sa = serviceAccount('t');
      const home = join(dir, 'home');
      const err1 = await loadKubeCredentials({ env: { KUBERNETES_SERVICE_HOST: 'h' }, serviceAccountDir: sa, home }).catch((e: Error) => e);
      expect(String(err1)).to.match(/no kubeconfig/);
      const err2 = await loadKubeCredentials({ env: { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: join(dir, 'none'), home }).catch((e: Error) => e);
      expect(String(err2)).to.match(/no kubeconfig/);
    });

    it('--kubeconfig / $KUBECONFIG come before the service account; ~/.kube/config after it', async () => {
      const sa = serviceAccount('sa-token');
      const home = join(dir, 'home');
      mkdirSync(join(home, '.kube'), { recursive: true });
      writeFileSync(join(home, '.kube', 'config'), kubeconfig({ clusters: [{ name: 'k', cluster: { server: 'https://home:1' } }], contexts: [{ name: 'x', context: { cluster: 'k' } }], current: 'x' }));
      const env = { KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '443' };
      expect((await loadKubeCredentials({ env, serviceAccountDir: sa, home })).getCurrentCluster()?.server).to.equal('https://h:443');
      expect((await loadKubeCredentials({ env: {}, serviceAccountDir: sa, home })).getCurrentCluster()?.server).to.equal('https://home:1');
      expect((await loadKubeCredentials({ env: { ...env, KUBECONFIG: join(home, '.kube', 'config') }, serviceAccountDir: sa, home })).getCurrentCluster()?.server).to.equal('https://home:1');
      expect((await loadKubeCredentials({ kubeconfig: join(home, '.kube', 'config'), env, serviceAccountDir: sa, home })).getCurrentCluster()?.server).to.equal('https://home:1');
    });
  });

  describe('kubeconfig files', () => {
    it('applies -data fields: CA, client certificate and key, token, tls-server-name', async () => {
      const f = join(dir, 'kc');
      writeFileSync(
        f,
        kubeconfig({
          clusters: [{ name: 'k', cluster: { server: 'https://api:6443', 'certificate-authority-data': CA.toString('base64'), 'tls-server-name': 'kubernetes.default' } }],
          users: [{ name: 'u', user: { 'client-certificate-data': CERT.toString('base64'), 'client-key-data': KEY.toString('base64'), token: 'static' } }],
          contexts: [{ name: 'c', context: { cluster: 'k', user: 'u', namespace: 'ns1' } }],
          current: 'c',
        }),
      );
      const c = await loadKubeCredentials({ kubeconfig: f, env: {} });
      expect(c.fallback).to.equal(false);
      expect(c.source).to.equal(`kubeconfig ${f} (context c, https://api:6443)`);
      expect(c.namespace).to.equal('ns1');
      const o = await applied(c);
      expect(o.ca).to.deep.equal(CA);
      expect(o.cert).to.deep.equal(CERT);
      expect(o.key).to.deep.equal(KEY);
      expect(o.servername).to.equal('kubernetes.default');
      expect(o.headers.Authorization).to.equal('Bearer static');
      expect(o.rejectUnauthorized).to.equal(undefined);
    });

    it('reads file fields relative to the kubeconfig, and what it sets matches client-node\'s KubeConfig on the same file', async () => {
      mkdirSync(join(dir, 'pki'));
      writeFileSync(join(dir, 'pki', 'ca.crt'), CA);
      writeFileSync(join(dir, 'pki', 'c.crt'), CERT);
      writeFileSync(join(dir, 'pki', 'c.key'), KEY);
      writeFileSync(join(dir, 'pki', 'tok'), 'file-token\n');
      const f = join(dir, 'kc');
      writeFileSync(
        f,
        `apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster:
    server: https://api:6443
    certificate-authority: pki/ca.crt
    insecure-skip-tls-verify: true
users:
- name: u
  user:
    client-certificate: pki/c.crt
    client-key: pki/c.key
    tokenFile: pki/tok
contexts:
- name: c
  context: {cluster: k, user: u}
`,
      );
      const c = await loadKubeCredentials({ kubeconfig: f, env: {} });
      const o = await applied(c);
      expect(o.ca).to.deep.equal(CA);
      expect(o.cert).to.deep.equal(CERT);
      expect(o.key).to.deep.equal(KEY);
      expect(o.rejectUnauthorized).to.equal(false);
      expect(o.headers.Authorization).to.equal('Bearer file-token');
      const kc = new KubeConfig();
      kc.loadFromFile(f);
      const theirs: RequestOptions & { headers?: Record<string, string> } = { headers: {} };
      await kc.applyToHTTPSOptions(theirs);
      expect({ ca: o.ca, cert: o.cert, key: o.key, rejectUnauthorized: o.rejectUnauthorized, server: c.getCurrentCluster()?.server }).to.deep.equal({
        ca: theirs.ca,
        cert: theirs.cert,
        key: theirs.key,
        rejectUnauthorized: theirs.rejectUnauthorized,
        server: kc.getCurrentCluster()?.server,
      });
    });

    it('re-reads a user tokenFile when it changes', async () => {
      writeFileSync(join(dir, 'tok'), 'a');
      const f = join(dir, 'kc');
      writeFileSync(f, kubeconfig({ clusters: [{ name: 'k', cluster: { server: 'https://x' } }], users: [{ name: 'u', user: { tokenFile: join(dir, 'tok') } }], contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }], current: 'c' }));
      const c = await loadKubeCredentials({ kubeconfig: f, env: {}, recheckMs: 0 });
      expect((await applied(c)).headers.Authorization).to.equal('Bearer a');
      writeFileSync(join(dir, 'tok'), 'bb');
      expect((await applied(c)).headers.Authorization).to.equal('Bearer bb');
    });

    it('$KUBECONFIG list: missing files skipped, the first file to set a name or current-context wins; a named context', async () => {
      const a = join(dir, 'a');
      const b = join(dir, 'b');
      writeFileSync(a, kubeconfig({ clusters: [{ name: 'k', cluster: { server: 'https://from-a' } }], users: [{ name: 'u', user: { token: 'ta' } }], contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }] }));
      writeFileSync(
        b,
        kubeconfig({
          clusters: [{ name: 'k', cluster: { server: 'https://from-b' } }, { name: 'k2', cluster: { server: 'https://k2' } }],
          users: [{ name: 'u', user: { token: 'tb' } }],
          contexts: [{ name: 'c', context: { cluster: 'k2', user: 'u' } }, { name: 'd', context: { cluster: 'k2', user: 'u' } }],
          current: 'c',
        }),
      );
      const env = { KUBECONFIG: [join(dir, 'missing'), a, '', b].join(':') };
      const c = await loadKubeCredentials({ env });
      expect(c.getCurrentCluster()?.server).to.equal('https://from-a');
      expect((await applied(c)).headers.Authorization).to.equal('Bearer ta');
      expect(c.source).to.equal(`kubeconfig ${a}, ${b} (context c, https://from-a)`);
      const d = await loadKubeCredentials({ env, context: 'd' });
      expect(d.getCurrentCluster()?.server).to.equal('https://k2');
      const none = await loadKubeCredentials({ env, context: 'nope' }).catch((e: Error) => e);
      expect(String(none)).to.match(/context "nope" not found/);
      const allMissing = await loadKubeCredentials({ env: { KUBECONFIG: join(dir, 'missing') } }).catch((e: Error) => e);
      expect(String(allMissing)).to.match(/none of .* exists/);
    });

    it('unsupported auth (exec, basic auth, proxy-url) is handed to client-node\'s KubeConfig, and says so', async () => {
      const f = join(dir, 'kc');
      writeFileSync(
        f,
        kubeconfig({
          clusters: [
            { name: 'k', cluster: { server: 'https://api', 'certificate-authority-data': CA.toString('base64') } },
            { name: 'p', cluster: { server: 'https://api', 'proxy-url': 'http://proxy:3128' } },
          ],
          users: [
            { name: 'basic', user: { username: 'alice', password: 'pw' } },
            { name: 'exec', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'false' } } },
            { name: 'tok', user: { token: 't' } },
          ],
          contexts: [
            { name: 'basic', context: { cluster: 'k', user: 'basic', namespace: 'n' } },
            { name: 'exec', context: { cluster: 'k', user: 'exec' } },
            { name: 'proxy', context: { cluster: 'p', user: 'tok' } },
          ],
          current: 'basic',
        }),
      );
      const basic = await loadKubeCredentials({ kubeconfig: f, env: {} });
      expect(basic.fallback).to.equal(true);
      expect(basic.source).to.match(/^client-node KubeConfig \(fallback: user basic uses username, password;/);
      expect(basic.namespace).to.equal('n');
      const o = await applied(basic);
      expect(o.auth).to.equal('alice:pw'); // client-node's basic auth
      expect(o.ca).to.deep.equal(CA);
      const exec = await loadKubeCredentials({ kubeconfig: f, env: {}, context: 'exec' });
      expect(exec.fallback).to.equal(true);
      expect(exec.source).to.match(/user exec uses exec/);
      const proxy = await loadKubeCredentials({ kubeconfig: f, env: {}, context: 'proxy' });
      expect(proxy.fallback).to.equal(true);
      expect(proxy.source).to.match(/cluster p uses proxy-url/);
      expect(proxy.getCurrentCluster()?.proxyUrl).to.equal('http://proxy:3128');
      const po = await applied(proxy);
      expect(po.headers.Authorization).to.equal('Bearer t');
      expect(po.agent?.constructor.name).to.match(/Proxy/);
    });

    it('a context without a cluster server, or a missing user, is an error at load', async () => {
      const f = join(dir, 'kc');
      writeFileSync(f, kubeconfig({ clusters: [{ name: 'k', cluster: {} }], contexts: [{ name: 'c', context: { cluster: 'k', user: 'ghost' } }, { name: 'd', context: { cluster: 'k' } }], current: 'c' }));
      expect(String(await loadKubeCredentials({ kubeconfig: f, env: {} }).catch((e: Error) => e))).to.match(/user "ghost" of context "c" not found/);
      expect(String(await loadKubeCredentials({ kubeconfig: f, env: {}, context: 'd' }).catch((e: Error) => e))).to.match(/cluster "k" has no server/);
    });
  });
});
