// Issue 11 item 2, "Idle cost": what the operator loads at start. client-node's
// KubeConfig (dist/config.js, which pulls in every generated API client) is
// loaded only when the kubeconfig needs it (exec, auth-provider, …); of
// client-node the operator loads ListWatch (cache.js) and what cache.js
// imports, nothing else.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';

const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');

/** Starts src/cmd/main.ts on `kubeconfig` (a server nobody listens on), stops it once it logged "starting"; its log and the client-node files it loaded. */
async function startAndStop(dir: string, kubeconfig: string): Promise<{ log: string; clientNode: string[]; generated: number }> {
  const trace = join(dir, `trace-${Math.random()}`);
  const child = spawn(
    NODE,
    ['--import', join(REPO_ROOT, 'test', 'unit', 'support', 'import-trace.ts'), join(REPO_ROOT, 'src', 'cmd', 'main.ts'),
      '--kubeconfig', kubeconfig, '--store', `file://${join(dir, 'store')}`, '--http-addr', '127.0.0.1:0', '--leader-elect', 'false', '--policies', 'false'],
    { env: { ...process.env, LOGTAIL_IMPORT_TRACE: trace }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout.on('data', (b: Buffer) => (log += b.toString()));
  child.stderr.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const deadline = Date.now() + 30_000;
  while (!/"message":"starting"/.test(log)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`operator did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 500)); // the informers' first list attempts
  child.kill('SIGTERM');
  await exited;
  const urls = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  const cn = urls.filter((u) => u.includes('/@kubernetes/client-node/dist/'));
  return {
    log,
    clientNode: cn.filter((u) => !u.includes('/dist/gen/')).map((u) => u.replace(/.*\/client-node\/dist\//, '')).sort(),
    generated: cn.filter((u) => u.includes('/dist/gen/')).length,
  };
}

describe('cmd/main: modules loaded at start', function () {
  this.timeout(90_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'logtail-imports-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function kubeconfig(name: string, user: Record<string, unknown>): string {
    const f = join(dir, name);
    writeFileSync(
      f,
      JSON.stringify({
        clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:9', 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
        'current-context': 'c',
      }),
    );
    return f;
  }

  it('a token kubeconfig: our loader, and of client-node only cache.js (ListWatch) and its imports, never config.js', async () => {
    const r = await startAndStop(dir, kubeconfig('token', { token: 't' }));
    expect(r.log).to.match(/"clientNodeKubeConfig":false/);
    expect(r.log).to.match(/"source":"kubeconfig [^"]*\(context c, https:\/\/127\.0\.0\.1:9\)"/);
    expect(r.clientNode).to.deep.equal(['cache.js', 'informer.js', 'serializer.js', 'watch.js']);
  });

  it('an exec kubeconfig: client-node\'s KubeConfig, and the log says so', async () => {
    const r = await startAndStop(dir, kubeconfig('exec', { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'false' } }));
    expect(r.log).to.match(/"clientNodeKubeConfig":true/);
    expect(r.log).to.match(/client-node KubeConfig \(fallback: user u uses exec/);
    expect(r.clientNode).to.include('config.js');
  });
});
