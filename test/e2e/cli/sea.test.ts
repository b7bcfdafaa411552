// Issue 13 item 6: `npm run build:cli` builds kubectl-logtail as one
// self-contained executable (Node SEA from the pinned Node 24), which reads a
// capture with no Node on PATH at all, directly and as a kubectl plugin; the
// krew manifest carries the sha256 of the archive the same build packed. Also
// the printed checkout command (bin/logtail) with only the system Node on PATH.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run as runCmd } from '../../../src/dev/proc.ts';
import { ARCHIVE, BINARY, KREW_MANIFEST } from '../../../scripts/build-cli.ts';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { apply, createNamespace, installCrd, logTailManifest, podManifest, simOutputPath, startOperator, waitForFile, waitForLogTail, type OperatorProcess } from '../operator/harness.ts';

describe('cli: kubectl-logtail as a single executable (SEA), no Node on PATH', function () {
  this.timeout(600_000);
  let c: TestCluster;
  let op: OperatorProcess;
  let ns: string;
  let pathWithoutNode: string;
  let want: Buffer;

  before(async function () {
    this.timeout(900_000);
    const t0 = Date.now();
    const b = await runCmd(process.execPath, [join(REPO_ROOT, 'scripts', 'build-cli.ts')], { timeoutMs: 600_000 });
    expect(b.code, b.stderr).to.equal(0);
    process.stderr.write(`      build:cli ${((Date.now() - t0) / 1000).toFixed(1)} s, ${(statSync(BINARY).size / 1048576).toFixed(1)} MiB binary, ${(statSync(ARCHIVE).size / 1048576).toFixed(1)} MiB archive\n`);
    c = await cluster();
    await installCrd(c);
    ns = uniqueName('sea');
    await createNamespace(c, ns);
    op = await startOperator(c);
    await apply(c, podManifest(ns, 'p', { script: { containers: { main: { lines: 2000, lineBytes: 100, linesPerSecond: 4000, exitCode: 0 } } } }));
    await apply(c, logTailManifest(ns, 'p', { podName: 'p' }));
    const lt = await waitForLogTail(c, ns, 'p', 60_000);
    expect(lt.status?.phase).to.equal('Complete');
    await waitForFile(simOutputPath(c, ns, 'p', 'main'));
    want = readFileSync(simOutputPath(c, ns, 'p', 'main'));
    // a PATH holding kubectl and the plugin, and no node
    pathWithoutNode = mkdtempSync(join(tmpdir(), 'no-node-'));
    symlinkSync(join(c.state.bin, 'kubectl'), join(pathWithoutNode, 'kubectl'));
    symlinkSync(BINARY, join(pathWithoutNode, 'kubectl-logtail'));
  });

  after(async () => {
    await op?.stop('SIGTERM');
  });

  const env = () => ({ PATH: pathWithoutNode, HOME: tmpdir(), KUBECONFIG: c.kubeconfigPath });

  it('has no node on that PATH', () => {
    // spawnSync: the shell exits at once, and run() writing its stdin could race that (EPIPE)
    const r = spawnSync('/bin/sh', ['-c', 'command -v node || echo none'], { env: env(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(r.stdout.trim()).to.equal('none');
  });

  it('kubectl-logtail get prints the verified capture', async () => {
    const r = await runCmd(BINARY, ['get', 'p', '-n', ns], { env: env() });
    expect(r.code, r.stderr).to.equal(0);
    expect(Buffer.from(r.stdout).equals(want)).to.equal(true);
    expect(r.stderr).to.match(/^verified sha256 [0-9a-f]{64}/);
  });

  it('kubectl logtail (plugin discovery on PATH) does the same', async () => {
    const r = await runCmd(join(pathWithoutNode, 'kubectl'), ['logtail', 'logs', 'p', '-n', ns], { env: env() });
    expect(r.code, r.stderr).to.equal(0);
    expect(Buffer.from(r.stdout).equals(want)).to.equal(true);
  });

  it('bin/logtail from the checkout works with only the system Node on PATH', async () => {
    const r = await runCmd(join(REPO_ROOT, 'bin', 'logtail'), ['get', 'p', '-n', ns], { env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: tmpdir(), KUBECONFIG: c.kubeconfigPath } });
    expect(r.code, r.stderr).to.equal(0);
    expect(Buffer.from(r.stdout).equals(want)).to.equal(true);
  });

  it('the krew manifest names the built archive by its sha256', () => {
    const m = parse(readFileSync(KREW_MANIFEST, 'utf8')) as { kind: string; metadata: { name: string }; spec: { platforms: Array<{ sha256: string; bin: string; uri: string }> } };
    expect(m.kind).to.equal('Plugin');
    expect(m.metadata.name).to.equal('logtail');
    const sha = createHash('sha256').update(readFileSync(ARCHIVE)).digest('hex');
    expect(m.spec.platforms[0]!.sha256).to.equal(sha);
    expect(m.spec.platforms[0]!.bin).to.equal('kubectl-logtail');
    expect(m.spec.platforms[0]!.uri).to.match(/kubectl-logtail-linux-amd64\.tar\.gz$/);
  });

  it('the archive unpacks (tar) to exactly the executable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'krew-unpack-'));
    const r = await runCmd('tar', ['-xzf', ARCHIVE, '-C', dir]);
    expect(r.code, r.stderr).to.equal(0);
    expect(readFileSync(join(dir, 'kubectl-logtail')).equals(readFileSync(BINARY))).to.equal(true);
    expect(statSync(join(dir, 'kubectl-logtail')).mode & 0o111).to.not.equal(0);
  });
});
