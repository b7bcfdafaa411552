import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addNode, down, kubectl, loadState, up } from '../../../src/dev/cluster.ts';
import { isAlive } from '../../../src/dev/proc.ts';
import { cluster } from '../fixture.ts';

function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('local control plane', function () {
  this.timeout(180_000);

  it('serves the built kubectl v1.37.2 against apiserver v1.37.2 with RBAC and service-account tokens', async () => {
    const c = await cluster();
    const v = await c.kubectl(['version', '-o', 'json']);
    expect(v.code, v.stderr).to.equal(0);
    const parsed = JSON.parse(v.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    expect(parsed.clientVersion.gitVersion).to.equal('v1.37.2');
    expect(parsed.serverVersion.gitVersion).to.equal('v1.37.2');
    const sa = await c.kubectl(['create', 'serviceaccount', `tok-${Date.now()}`, '-n', 'default']);
    expect(sa.code, sa.stderr).to.equal(0);
    const name = sa.stdout.match(/serviceaccount\/(\S+)/)![1]!;
    const tok = await c.kubectl(['create', 'token', name, '-n', 'default']);
    expect(tok.code, tok.stderr).to.equal(0);
    expect(tok.stdout.trim().split('.')).to.have.length(3);
    // RBAC is on: a fresh service account may not list secrets
    const can = await c.kubectl(['auth', 'can-i', 'list', 'secrets', `--as=system:serviceaccount:default:${name}`]);
    expect(can.stdout.trim()).to.equal('no');
  });

  it('writes an env file with the contract variables', async () => {
    const c = await cluster();
    const env = readFileSync(join(c.dir, 'env'), 'utf8');
    for (const k of ['KUBECONFIG', 'LOGTAIL_TOOLCHAIN_BIN', 'LOGTAIL_SIM_DIR', 'LOGTAIL_S3_ENDPOINT', 'LOGTAIL_S3_BUCKET', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'LOGTAIL_KUBELET_NODE']) {
      expect(env, k).to.match(new RegExp(`^export ${k}='[^']+'$`, 'm'));
    }
  });

  it('runs a second cluster side by side (with its hollow kubelet and an added node), and down leaves no process and no port open', async () => {
    const first = await cluster();
    const dir = mkdtempSync(join(tmpdir(), 'logtail-second-'));
    const second = await up({ dir, simulator: false, log: () => undefined });
    let added: Awaited<ReturnType<typeof addNode>> | undefined;
    try {
      expect(second.apiserverPort).to.not.equal(first.state.apiserverPort);
      const r = await kubectl(second, ['get', 'ns', 'default', '-o', 'name']);
      expect(r.code, r.stderr).to.equal(0);
      // Its own kubelet-1 (same node name, other apiserver, other port) and a
      // bootstrapping node whose approver is still waiting when down comes.
      expect(second.env.LOGTAIL_KUBELET_NODE).to.equal('kubelet-1');
      added = await addNode(dir, { name: 'extra', csrDelaySeconds: 3600 });
      const nodes = await kubectl(second, ['get', 'nodes', '-o', 'name']);
      expect(nodes.stdout.trim().split('\n').sort()).to.deep.equal(['node/extra', 'node/kubelet-1']);
      expect(isAlive(added.approverPid)).to.equal(true);
    } finally {
      await down(dir);
    }
    const state = loadState(dir);
    const names = state.procs.map((p) => p.name).sort();
    expect(names).to.include.members(['hollow-kubelet-kubelet-1', 'kubelet-proxy-kubelet-1', 'hollow-kubelet-extra', 'csr-approver-extra']);
    for (const p of state.procs) expect(isAlive(p.pid), `${p.name} pid ${p.pid}`).to.equal(false);
    expect(await portOpen(state.apiserverPort)).to.equal(false);
    expect(await portOpen(Number(new URL(state.s3.endpoint).port))).to.equal(false);
    expect(state.kubelets).to.have.length(2);
    for (const k of state.kubelets!) {
      expect(await portOpen(k.port, k.nodeIp), `${k.name} ${k.nodeIp}:${k.port}`).to.equal(false);
      if (k.proxied) expect(await portOpen(k.port), `${k.name} 127.0.0.1:${k.port}`).to.equal(false);
    }
    // the first cluster is untouched
    const again = await first.kubectl(['get', 'ns', 'default', '-o', 'name']);
    expect(again.code).to.equal(0);
  });
});
