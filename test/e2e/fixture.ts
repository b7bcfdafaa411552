// One local control plane for the whole e2e run, started lazily by the first
// test that needs it. Set LOGTAIL_TEST_CLUSTER_DIR to reuse a cluster started
// with `npm run cluster -- up --dir DIR` (fast iteration while developing).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addNode, down, killAllSync, kubectl as runKubectl, loadState, removeNode, restartApiserver, startS3, stopS3, up, type AddNodeOptions, type ClusterState, type KubeletInfo } from '../../src/dev/cluster.ts';

export interface TestCluster {
  dir: string;
  kubeconfigPath: string;
  env: Record<string, string>;
  state: ClusterState;
  /** The hollow kubelet's node (real kubelet code, behind the fault proxy): pods target it with spec.nodeName. */
  kubeletNode: string;
  /** `cluster add-node`: a hollow kubelet whose serving certificate is signed csrDelaySeconds after this returns. */
  addNode(o: AddNodeOptions): Promise<KubeletInfo & { approverPid: number }>;
  /** Stops a node added with addNode and deletes its Node. */
  removeNode(name: string): Promise<void>;
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): ReturnType<typeof runKubectl>;
  restartApiserver(): Promise<void>;
  /** Stops the S3 server (versitygw), keeping its data; startS3 brings it back on the same endpoint. */
  stopS3(): Promise<void>;
  startS3(): Promise<void>;
}

let started: Promise<TestCluster> | undefined;
let owned: ClusterState | undefined;

function wrap(state: ClusterState): TestCluster {
  return {
    get kubeletNode(): string {
      const node = state.env.LOGTAIL_KUBELET_NODE;
      if (!node) throw new Error(`the cluster in ${state.dir} runs no hollow kubelet (LOGTAIL_KUBELET_NODE missing from its env): start it without --no-kubelet`);
      return node;
    },
    addNode: (o) => addNode(state.dir, o),
    removeNode: (name) => removeNode(state.dir, name),
    dir: state.dir,
    kubeconfigPath: state.kubeconfigPath,
    env: state.env,
    state,
    kubectl: (args, opts) => runKubectl(state, args, opts),
    restartApiserver: () => restartApiserver(state.dir),
    stopS3: () => stopS3(state.dir),
    startS3: () => startS3(state.dir),
  };
}

export function cluster(): Promise<TestCluster> {
  if (!started) {
    started = (async () => {
      const reuse = process.env.LOGTAIL_TEST_CLUSTER_DIR;
      if (reuse) return wrap(loadState(reuse));
      const dir = mkdtempSync(join(tmpdir(), 'logtail-e2e-'));
      const state = await up({ dir, log: (m) => process.stderr.write(`      ${m}\n`) });
      owned = state;
      return wrap(state);
    })();
  }
  return started;
}

export async function stopCluster(): Promise<void> {
  if (owned) {
    const dir = owned.dir;
    owned = undefined;
    await down(dir);
  }
}

// A root hook: registered once when the first spec file imports this module.
after(async function () {
  this.timeout(60_000);
  await stopCluster();
});

process.on('exit', () => {
  if (owned) killAllSync(owned);
});

let counter = 0;
/** A fresh namespace name per test, so tests never see each other's objects. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid.toString(36)}-${counter}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Creates (or keeps) a namespace with these labels; idempotent, so reruns on a reused cluster work. */
export async function createNamespace(c: TestCluster, ns: string, labels: Record<string, string> = {}): Promise<void> {
  const r = await c.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } }) });
  if (r.code !== 0) throw new Error(`creating namespace ${ns} failed: ${r.stderr}`);
}
