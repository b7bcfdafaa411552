// The node simulator: registers simulated Nodes (status, Leases, one HTTPS
// endpoint each), binds unscheduled pods to them as a scheduler would, and
// plays every pod bound to them (PodRunner). Reads come from supervised
// @kubernetes/client-node informers; writes are plain JSON (kube.ts).
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeInformer, type Informer, type KubernetesObject } from '@kubernetes/client-node';
import { KubeRest, isStatus, MERGE_PATCH, type NodeJson, type PodJson } from './kube.ts';
import { handleKubeletRequest } from './log-handler.ts';
import { NodeServer } from './node-server.ts';
import { PodRunner } from './pod-runner.ts';
import { FAULTS_ANNOTATION, INVALID_REASON, parseFaults, type Faults } from './script.ts';
import { formatSeconds, nowNs } from './time.ts';

export interface SimulatorOptions {
  kubeconfig: string;
  simDir: string;
  stateDir: string;
  tlsCert: string;
  tlsKey: string;
  nodes: string[];
  log?: (msg: string) => void;
}

export const KUBELET_VERSION = 'v1.37.2';
const LEASE_NS = 'kube-node-lease';
const HEARTBEAT_MS = 10_000;
const NODE_STATUS_EVERY = 4; // heartbeats

interface SimNode {
  name: string;
  server: NodeServer;
  fresh: boolean;
  index: number;
  nextIp: number;
  faults: Faults;
  faultsRaw: string | undefined;
  labels: Record<string, string>;
  unschedulable: boolean;
  uid: string | null;
  bootId: string;
}

function microTime(ns: bigint): string {
  const s = formatSeconds(ns).slice(0, 19);
  const micros = String((ns / 1000n) % 1_000_000n).padStart(6, '0');
  return `${s}.${micros}Z`;
}

export class Simulator {
  private readonly opts: SimulatorOptions;
  private rest!: KubeRest;
  private readonly nodes = new Map<string, SimNode>();
  private readonly runners = new Map<string, PodRunner>();
  private readonly byName = new Map<string, PodRunner>();
  private readonly binding = new Set<string>();
  private readonly informers: Informer<KubernetesObject>[] = [];
  private heartbeat: NodeJS.Timeout | null = null;
  private beats = 0;
  private rr = 0;
  private stopped = false;
  private tls!: { cert: Buffer; key: Buffer };
  readonly log: (msg: string) => void;

  constructor(opts: SimulatorOptions) {
    this.opts = opts;
    this.log = opts.log ?? ((m) => process.stdout.write(`${new Date().toISOString()} ${m}\n`));
  }

  get readyFile(): string {
    return join(this.opts.stateDir, 'ready.json');
  }

  async start(): Promise<void> {
    this.tls = { cert: readFileSync(this.opts.tlsCert), key: readFileSync(this.opts.tlsKey) };
    mkdirSync(this.opts.simDir, { recursive: true });
    mkdirSync(this.opts.stateDir, { recursive: true });
    this.rest = await KubeRest.fromFile(this.opts.kubeconfig);
    await this.ensureLeaseNamespace();
    for (const name of this.opts.nodes) await this.registerNode(name, false);
    this.startInformer<NodeJson>('/api/v1/nodes', (n) => this.onNode(n), () => undefined);
    this.startInformer<PodJson>(
      '/api/v1/pods',
      (p) => this.onPod(p),
      (p) => this.onPodGone(p),
    );
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
    const ready = { pid: process.pid, nodes: Object.fromEntries([...this.nodes.values()].map((n) => [n.name, n.server.port])) };
    const tmp = this.readyFile + '.tmp';
    writeFileSync(tmp, JSON.stringify(ready, null, 2) + '\n');
    renameSync(tmp, this.readyFile);
    this.log(`ready: ${JSON.stringify(ready)}`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const inf of this.informers) await inf.stop().catch(() => undefined);
    for (const n of this.nodes.values()) n.server.close();
    this.rest?.close();
    rmSync(this.readyFile, { force: true });
  }

  // ---- informers ------------------------------------------------------

  private startInformer<T>(path: string, onUpsert: (o: T) => void, onDelete: (o: T) => void): void {
    // Objects stay plain JSON: the list is ours, and watch events are parsed JSON.
    const inf = makeInformer<KubernetesObject>(this.rest.kc, path, () => this.rest.get(path));
    const guard = (f: (o: T) => void) => (o: KubernetesObject) => {
      try {
        f(o as unknown as T);
      } catch (err) {
        this.log(`informer ${path}: handler failed: ${(err as Error).stack ?? String(err)}`);
      }
    };
    inf.on('add', guard(onUpsert));
    inf.on('update', guard(onUpsert));
    inf.on('delete', guard(onDelete));
    // client-node stops for good after an error: restart it ourselves.
    inf.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.log(`informer ${path}: ${(err as Error)?.message ?? String(err)}; restarting in 2s`);
      setTimeout(() => {
        if (!this.stopped) inf.start().catch((e: unknown) => this.log(`informer ${path}: start failed: ${(e as Error).message}`));
      }, 2000);
    });
    this.informers.push(inf);
    inf.start().catch((e: unknown) => this.log(`informer ${path}: start failed: ${(e as Error).message}`));
  }

  // ---- nodes ----------------------------------------------------------

  private async ensureLeaseNamespace(): Promise<void> {
    try {
      await this.rest.post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: LEASE_NS } });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
  }

  private async registerNode(name: string, fresh: boolean): Promise<SimNode> {
    const existing = this.nodes.get(name);
    if (existing) return existing;
    const labels: Record<string, string> = {
      'kubernetes.io/hostname': name,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
      'sim.logtail.dev/node': 'true',
      ...(fresh ? { 'sim.logtail.dev/fresh': 'true' } : {}),
    };
    const node: SimNode = {
      name,
      server: new NodeServer(name, this.tls, (req, res) => handleKubeletRequest(this, name, req, res), this.log),
      fresh,
      index: this.nodes.size + 1,
      nextIp: 2,
      faults: {},
      faultsRaw: undefined,
      labels,
      unschedulable: false,
      uid: null,
      bootId: randomUUID(),
    };
    this.nodes.set(name, node);
    await node.server.listen();
    await this.upsertNode(node);
    await this.renewLease(node);
    this.log(`node ${name}: registered, kubelet port ${node.server.port}${fresh ? ' (fresh node)' : ''}`);
    return node;
  }

  private async upsertNode(node: SimNode): Promise<void> {
    try {
      const created = await this.rest.post<NodeJson>('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node.name, labels: node.labels }, spec: {} });
      node.uid = created.metadata.uid;
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
      const cur = await this.rest.get<NodeJson>(`/api/v1/nodes/${node.name}`);
      node.uid = cur.metadata.uid;
      await this.rest.patch(`/api/v1/nodes/${node.name}`, { metadata: { labels: node.labels } });
    }
    await this.patchNodeStatus(node);
  }

  private nodeStatus(node: SimNode): Record<string, unknown> {
    const now = formatSeconds(nowNs());
    const c = (type: string, status: string, reason: string, message: string) => ({ type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: now });
    const res = { cpu: '16', memory: '64Gi', pods: '110', 'ephemeral-storage': '100Gi' };
    // Everything, every time: a merge patch replaces lists, and the addresses
    // and the port are what the apiserver dials.
    return {
      conditions: [
        c('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        c('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        c('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        c('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      capacity: res,
        allocatable: res,
        addresses: [
          { type: 'InternalIP', address: '127.0.0.1' },
          { type: 'Hostname', address: node.name },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: node.server.port } },
        nodeInfo: {
          machineID: createHash('sha256').update(node.name).digest('hex').slice(0, 32),
          systemUUID: createHash('sha256').update('uuid' + node.name).digest('hex').slice(0, 32),
          bootID: node.bootId,
          kernelVersion: '6.1.0-logtail-sim',
          osImage: 'LogTail node simulator',
          containerRuntimeVersion: 'containerd://2.1.0-sim',
          kubeletVersion: KUBELET_VERSION,
          operatingSystem: 'linux',
          architecture: 'amd64',
      },
    };
  }

  private async patchNodeStatus(node: SimNode): Promise<void> {
    await this.rest.patch(`/api/v1/nodes/${node.name}/status`, { status: this.nodeStatus(node) }, MERGE_PATCH);
  }

  private async renewLease(node: SimNode): Promise<void> {
    const path = `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NS}/leases`;
    const renewTime = microTime(nowNs());
    try {
      await this.rest.patch(`${path}/${node.name}`, { spec: { holderIdentity: node.name, leaseDurationSeconds: 40, renewTime } }, MERGE_PATCH);
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      await this.rest.post(path, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name: node.name,
          namespace: LEASE_NS,
          ...(node.uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node.name, uid: node.uid }] } : {}),
        },
        spec: { holderIdentity: node.name, leaseDurationSeconds: 40, renewTime },
      });
    }
  }

  private async beat(): Promise<void> {
    this.beats++;
    for (const node of this.nodes.values()) {
      try {
        await this.renewLease(node);
        if (this.beats % NODE_STATUS_EVERY === 0) await this.patchNodeStatus(node);
      } catch (err) {
        if (isStatus(err, 404)) {
          // Someone deleted the Node: register it again, as a kubelet would.
          await this.upsertNode(node).catch((e: unknown) => this.log(`node ${node.name}: re-register failed: ${(e as Error).message}`));
        } else {
          this.log(`node ${node.name}: heartbeat failed: ${(err as Error).message}`);
        }
      }
    }
  }

  private onNode(obj: NodeJson): void {
    const node = this.nodes.get(obj.metadata.name);
    if (!node) return;
    node.labels = { ...obj.metadata.labels };
    node.unschedulable = obj.spec?.unschedulable === true;
    node.uid = obj.metadata.uid;
    const raw = obj.metadata.annotations?.[FAULTS_ANNOTATION];
    if (raw === node.faultsRaw) return;
    node.faultsRaw = raw;
    const parsed = parseFaults(raw);
    if (!parsed.ok) {
      node.faults = {};
      this.log(`node ${node.name}: ${INVALID_REASON}: ${parsed.error}`);
      void this.nodeEvent(node, parsed.error);
      return;
    }
    node.faults = parsed.value;
    this.log(`node ${node.name}: faults ${JSON.stringify(parsed.value)}`);
    if (parsed.value.tlsAlertSeconds) node.server.refuseTls(parsed.value.tlsAlertSeconds);
  }

  private async nodeEvent(node: SimNode, message: string): Promise<void> {
    const now = formatSeconds(nowNs());
    await this.rest
      .post('/api/v1/namespaces/default/events', {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${node.name}.${randomUUID().slice(0, 8)}`, namespace: 'default' },
        involvedObject: { apiVersion: 'v1', kind: 'Node', name: node.name, uid: node.uid ?? node.name },
        reason: INVALID_REASON,
        message,
        type: 'Warning',
        source: { component: 'kubelet', host: node.name },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      })
      .catch((e: unknown) => this.log(`node ${node.name}: event failed: ${(e as Error).message}`));
  }

  // ---- pods -----------------------------------------------------------

  findPod(node: string, namespace: string, name: string): PodRunner | undefined {
    const r = this.byName.get(`${namespace}/${name}`);
    return r && r.node === node ? r : undefined;
  }

  private host() {
    return {
      rest: this.rest,
      simDir: this.opts.simDir,
      log: this.log,
      openTlsWindow: (node: string, seconds: number) => this.nodes.get(node)?.server.refuseTls(seconds),
      nodeFaults: (node: string) => this.nodes.get(node)?.faults ?? {},
      podIp: (node: string) => {
        const n = this.nodes.get(node);
        if (!n) return '10.244.0.2';
        const ip = `10.244.${n.index % 256}.${n.nextIp}`;
        n.nextIp = n.nextIp >= 254 ? 2 : n.nextIp + 1;
        return ip;
      },
    };
  }

  private onPod(pod: PodJson): void {
    if (this.stopped) return;
    const uid = pod.metadata.uid;
    const runner = this.runners.get(uid);
    if (runner) {
      runner.update(pod);
      return;
    }
    const nodeName = pod.spec.nodeName;
    if (!nodeName) {
      void this.maybeBind(pod);
      return;
    }
    if (!this.nodes.has(nodeName)) return;
    const phase = pod.status?.phase;
    const ns = pod.metadata.namespace ?? 'default';
    if (phase === 'Succeeded' || phase === 'Failed') {
      // Played by an earlier simulator process; only finish a pending deletion.
      if (pod.metadata.deletionTimestamp) void this.forceDelete(pod);
      return;
    }
    if (pod.metadata.deletionTimestamp && !pod.status?.containerStatuses) {
      void this.forceDelete(pod);
      return;
    }
    const r = new PodRunner(pod, nodeName, this.host());
    this.runners.set(uid, r);
    this.byName.set(`${ns}/${pod.metadata.name}`, r);
    this.log(`pod ${ns}/${pod.metadata.name}: starting on ${nodeName}`);
    void r.start();
    if (pod.metadata.deletionTimestamp) r.update(pod);
  }

  private onPodGone(pod: PodJson): void {
    const uid = pod.metadata.uid;
    const r = this.runners.get(uid);
    if (!r) return;
    r.vanish();
    this.runners.delete(uid);
    const key = `${r.namespace}/${r.name}`;
    if (this.byName.get(key) === r) this.byName.delete(key);
    this.log(`pod ${key}: gone`);
  }

  private async forceDelete(pod: PodJson): Promise<void> {
    const ns = pod.metadata.namespace ?? 'default';
    await this.rest
      .delete(`/api/v1/namespaces/${ns}/pods/${pod.metadata.name}`, { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } })
      .catch((err: unknown) => {
        if (!isStatus(err, 404, 409)) this.log(`pod ${ns}/${pod.metadata.name}: delete failed: ${(err as Error).message}`);
      });
  }

  private pickNode(pod: PodJson): SimNode | null {
    const sel = pod.spec.nodeSelector ?? {};
    const candidates = [...this.nodes.values()].filter((n) => !n.fresh && !n.unschedulable && Object.entries(sel).every(([k, v]) => n.labels[k] === v));
    if (candidates.length === 0) return null;
    return candidates[this.rr++ % candidates.length]!;
  }

  private async maybeBind(pod: PodJson): Promise<void> {
    const uid = pod.metadata.uid;
    const ns = pod.metadata.namespace ?? 'default';
    const name = pod.metadata.name;
    if (this.binding.has(uid) || pod.metadata.deletionTimestamp) return;
    if ((pod.spec.schedulerName ?? 'default-scheduler') !== 'default-scheduler') return;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    this.binding.add(uid);
    try {
      const faults = parseFaults(pod.metadata.annotations?.[FAULTS_ANNOTATION]);
      let node: SimNode | null;
      if (faults.ok && faults.value.tlsAlertSeconds) {
        // Like the node an autoscaler provisions for a pending pod: new, and
        // its serving certificate not approved yet.
        const fresh = 'sim-fresh-' + createHash('sha256').update(uid).digest('hex').slice(0, 10);
        node = await this.registerNode(fresh, true);
      } else {
        node = this.pickNode(pod);
      }
      if (!node) {
        this.log(`pod ${ns}/${name}: no simulated node matches its nodeSelector; left pending`);
        await this.rest
          .patch(
            `/api/v1/namespaces/${ns}/pods/${name}/status`,
            {
              status: {
                conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/0 nodes are available: no simulated node matches the pod\'s node selector.', lastProbeTime: null, lastTransitionTime: formatSeconds(nowNs()) }],
              },
            },
            'application/strategic-merge-patch+json',
          )
          .catch(() => undefined);
        return;
      }
      await this.rest.post(`/api/v1/namespaces/${ns}/pods/${name}/binding`, {
        apiVersion: 'v1',
        kind: 'Binding',
        metadata: { name, namespace: ns },
        target: { apiVersion: 'v1', kind: 'Node', name: node.name },
      });
      this.log(`pod ${ns}/${name}: bound to ${node.name}`);
    } catch (err) {
      if (isStatus(err, 404, 409)) return; // gone, or bound by someone else
      this.log(`pod ${ns}/${name}: binding failed: ${(err as Error).message}; retrying`);
      setTimeout(() => {
        this.binding.delete(uid);
        void this.maybeBind(pod);
      }, 1000);
      return;
    }
  }
}
