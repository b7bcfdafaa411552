// The conformance suite's machinery: the same pod played on the node
// simulator (sim-1) and on a hollow kubelet (the kubelet's own code, node
// LOGTAIL_KUBELET_NODE), observed the same way through the apiserver, and
// normalised so that what differs only by timing, names or IDs compares equal.
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { TestCluster } from '../fixture.ts';
import { api, apiJson, podManifest, type PodOptions } from '../simulator/helpers.ts';

export const SIM_NODE = 'sim-1';

export type Side = 'sim' | 'kubelet';
export const SIDES: readonly Side[] = ['sim', 'kubelet'];

/** The hollow kubelet's node; the suite fails (does not skip) without one. */
export function kubeletNode(c: TestCluster): string {
  const n = c.env.LOGTAIL_KUBELET_NODE;
  if (!n) throw new Error('this cluster has no hollow kubelet (LOGTAIL_KUBELET_NODE is not set in its env): the conformance suite needs `npm run cluster -- up` from a tree with the hollow kubelet');
  return n;
}

export interface Twin {
  ns: string;
  /** Pod name per side. */
  name: Record<Side, string>;
}

export function twinNames(ns: string, base: string): Twin {
  return { ns, name: { sim: `${base}-s`, kubelet: `${base}-k` } };
}

export async function createTwin(c: TestCluster, twin: Twin, o: PodOptions & { initContainers?: { name: string; restartPolicy?: string }[] }): Promise<void> {
  const node: Record<Side, string> = { sim: SIM_NODE, kubelet: kubeletNode(c) };
  await Promise.all(
    SIDES.map(async (side) => {
      const m = podManifest(twin.ns, twin.name[side], { ...o, nodeName: node[side] }) as { spec: { containers: Record<string, unknown>[]; initContainers?: Record<string, unknown>[] } };
      if (o.initContainers) m.spec.initContainers = o.initContainers.map((i) => ({ name: i.name, image: 'busybox', ...(i.restartPolicy ? { restartPolicy: i.restartPolicy } : {}) }));
      // The kubelet pulls an image without a tag (policy Always) at every start, and with
      // a dozen pods at once its pull QPS limit answers ErrImagePull / ImagePullBackOff
      // (seen on kubelet-1; the simulator pulls nothing). Not what this suite compares.
      for (const ctr of [...m.spec.containers, ...(m.spec.initContainers ?? [])]) ctr.imagePullPolicy = 'IfNotPresent';
      await apiJson(c, 'POST', `/api/v1/namespaces/${twin.ns}/pods`, m);
    }),
  );
}

// ---- pods as JSON --------------------------------------------------------

export interface CStatus {
  name: string;
  state: Record<string, Record<string, unknown> | undefined>;
  lastState: Record<string, Record<string, unknown> | undefined>;
  restartCount: number;
  ready: boolean;
  started?: boolean;
  containerID?: string;
}

export interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  status: {
    phase?: string;
    reason?: string;
    conditions?: { type: string; status: string; reason?: string }[];
    containerStatuses?: CStatus[];
    initContainerStatuses?: CStatus[];
  };
}

export async function getPod(c: TestCluster, ns: string, name: string): Promise<Pod | null> {
  const r = await api(c, 'GET', `/api/v1/namespaces/${ns}/pods/${name}`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`get pod ${ns}/${name}: ${r.status} ${r.body.toString()}`);
  return JSON.parse(r.body.toString()) as Pod;
}

// ---- normalisation -----------------------------------------------------------

/** Container IDs become c0, c1, … in order of first appearance (per pod), so relations survive. */
export class IdMap {
  private readonly ids = new Map<string, string>();
  of(id: unknown): string | undefined {
    if (typeof id !== 'string' || id === '') return undefined;
    let v = this.ids.get(id);
    if (!v) {
      v = `c${this.ids.size}`;
      this.ids.set(id, v);
    }
    return v;
  }
}

function normText(s: unknown, pod: Pod): unknown {
  if (typeof s !== 'string') return s;
  return s.split(pod.metadata.uid).join('UID').split(pod.metadata.name).join('POD');
}

function normState(st: Record<string, Record<string, unknown> | undefined> | undefined, ids: IdMap, pod: Pod): string {
  if (!st) return '-';
  const kind = Object.keys(st).find((k) => st[k] !== undefined);
  if (!kind) return '{}';
  const v = st[kind]!;
  const parts: string[] = [kind];
  if (v.reason !== undefined) parts.push(`reason=${String(v.reason)}`);
  if (v.exitCode !== undefined) parts.push(`exit=${String(v.exitCode)}`);
  if (v.message !== undefined) parts.push(`msg=${String(normText(v.message, pod))}`);
  const id = ids.of(v.containerID);
  if (id) parts.push(`id=${id}`);
  return parts.join(' ');
}

export function normContainer(cs: CStatus, ids: IdMap, pod: Pod): string {
  return [
    cs.name,
    `state(${normState(cs.state, ids, pod)})`,
    `last(${normState(cs.lastState, ids, pod)})`,
    `rc=${cs.restartCount}`,
    `ready=${cs.ready}`,
    `started=${String(cs.started)}`,
    `id=${ids.of(cs.containerID) ?? '-'}`,
  ].join(' ');
}

/** One status as a comparable line: phase, conditions, init and regular containers; times and IDs normalised. */
export function normPod(pod: Pod, ids: IdMap): string {
  const s = pod.status;
  const conds = (s.conditions ?? [])
    .map((c) => `${c.type}=${c.status}${c.reason ? '/' + c.reason : ''}`)
    .sort()
    .join(',');
  const init = (s.initContainerStatuses ?? []).map((x) => normContainer(x, ids, pod));
  const regular = (s.containerStatuses ?? []).map((x) => normContainer(x, ids, pod));
  return [`phase=${s.phase ?? '-'}${s.reason ? '/' + s.reason : ''}`, `deleting=${pod.metadata.deletionTimestamp !== undefined}`, `conds[${conds}]`, ...init.map((x) => `init ${x}`), ...regular].join(' | ');
}

/**
 * States the kubelet may or may not write: its PLEG notices container changes
 * by relisting every second and its status manager writes the latest status
 * asynchronously, so a state that lasted less than about a second (the first
 * status before anything started, a short run, the instant between an exit
 * and an immediate restart or between the end of a back-off and the restart,
 * the write before the terminal phase) is sometimes not written at all —
 * seen in the runs of this suite. Every state with a non-terminal phase is
 * such a state; the terminal ones and the deletion are not optional.
 */
export function optionalState(norm: string): boolean {
  if (norm.startsWith('DELETED')) return false;
  return norm.startsWith('phase=Running') || norm.startsWith('phase=Pending');
}

/**
 * Aligns the simulator's timeline with the kubelet's: every kubelet state must
 * appear in the simulator's, in order; the simulator may have more states
 * only where they are optional (the kubelet sometimes skips them). Returns
 * the simulator states skipped, or throws with both timelines on a mismatch.
 */
export function alignTimelines(sim: string[], kubelet: string[]): { skipped: string[]; mismatch: string | null } {
  const skipped: string[] = [];
  let i = 0;
  for (let j = 0; j < kubelet.length; j++) {
    while (i < sim.length && sim[i] !== kubelet[j] && optionalState(sim[i]!)) skipped.push(sim[i++]!);
    if (i >= sim.length || sim[i] !== kubelet[j]) return { skipped, mismatch: `kubelet state ${j} has no counterpart in the simulator's timeline (at its state ${i}):\n  kubelet:   ${kubelet[j]}\n  simulator: ${sim[i] ?? '(end)'}` };
    i++;
  }
  while (i < sim.length) {
    if (!optionalState(sim[i]!)) return { skipped, mismatch: `the simulator has more states than the kubelet:\n  ${sim[i]}` };
    skipped.push(sim[i++]!);
  }
  return { skipped, mismatch: null };
}

/** Consecutive duplicates removed. */
export function distinct(xs: string[]): string[] {
  return xs.filter((x, i) => i === 0 || x !== xs[i - 1]);
}

// ---- watching ----------------------------------------------------------------

export interface Watch {
  /** Normalised status of every watch event (ADDED/MODIFIED/DELETED), in order. */
  events: { type: string; norm: string; pod: Pod; atMs: number }[];
  /** Resolves when `until` held for an event (or rejects on timeout). */
  done: Promise<void>;
  stop(): void;
}

/** Watches one pod by name from now on (start it before creating the pod). */
export function watchPod(c: TestCluster, ns: string, name: string, until: (e: { type: string; pod: Pod }) => boolean, timeoutMs: number): Watch {
  const url = new URL(`/api/v1/namespaces/${ns}/pods?watch=true&fieldSelector=metadata.name%3D${encodeURIComponent(name)}`, c.state.apiserverUrl);
  const ids = new IdMap();
  const events: Watch['events'] = [];
  const t0 = Date.now();
  let req: ReturnType<typeof https.get> | null = null;
  let timer: NodeJS.Timeout | null = null;
  const done = new Promise<void>((resolve, reject) => {
    let buf = '';
    req = https.get(url, { ca: readFileSync(c.state.caFile), headers: { Authorization: `Bearer ${c.state.token}` } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (s: string) => {
        buf += s;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line.trim()) continue;
          const e = JSON.parse(line) as { type: string; object: Pod };
          events.push({ type: e.type, norm: `${e.type === 'DELETED' ? 'DELETED ' : ''}${normPod(e.object, ids)}`, pod: e.object, atMs: Date.now() - t0 });
          if (until({ type: e.type, pod: e.object })) {
            if (timer) clearTimeout(timer);
            req?.destroy();
            resolve();
            return;
          }
        }
      });
      res.on('error', () => undefined);
    });
    req.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    timer = setTimeout(() => {
      req?.destroy();
      reject(new Error(`watch ${ns}/${name}: not done in ${timeoutMs} ms; last: ${events.at(-1)?.norm ?? 'no events'}`));
    }, timeoutMs);
  });
  done.catch(() => undefined);
  return {
    events,
    done,
    stop: () => {
      if (timer) clearTimeout(timer);
      req?.destroy();
    },
  };
}

// ---- logs --------------------------------------------------------------------

export interface LogResponse {
  status: number;
  body: Buffer;
}

export async function podLog(c: TestCluster, ns: string, name: string, query: string, timeoutMs = 60_000): Promise<LogResponse> {
  const r = await api(c, 'GET', `/api/v1/namespaces/${ns}/pods/${name}/log${query ? '?' + query : ''}`, undefined, { timeoutMs });
  return { status: r.status, body: r.body };
}

/** A pod name in an error body replaced by POD (the two sides' pods have different names). */
export function normError(r: LogResponse, name: string): string {
  let msg = r.body.toString();
  try {
    const j = JSON.parse(msg) as { message?: string; reason?: string; code?: number };
    msg = `${j.code} ${j.reason}: ${j.message}`;
  } catch {
    /* plain text */
  }
  return `${r.status} ${msg.split(name).join('POD')}`;
}

/** Timestamp prefixes (Z or ±hh:mm) at line starts replaced by `<TS>`, so content compares across nodes. */
export const PREFIX_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}(?:Z|[+-]\d{2}:\d{2}) /;

export function stripPrefixes(body: Buffer): { text: string; prefixes: string[] } {
  const lines = body.toString('latin1').split('\n');
  const prefixes: string[] = [];
  const out = lines.map((l) => {
    const m = PREFIX_RE.exec(l);
    if (!m) return l;
    prefixes.push(m[0].slice(0, -1));
    return '<TS> ' + l.slice(m[0].length);
  });
  return { text: out.join('\n'), prefixes };
}

/** Instant of an RFC 3339 timestamp with nine fraction digits, in ns. */
export function instantNs(ts: string): bigint {
  const m = /^(.{19})\.(\d{9})(Z|[+-]\d{2}:\d{2})$/.exec(ts);
  if (!m) throw new Error(`not a fixed-width timestamp: ${ts}`);
  const ms = Date.parse(m[1]! + (m[3] === 'Z' ? 'Z' : m[3]!));
  return BigInt(ms) * 1_000_000n + BigInt(m[2]!);
}

/** `run=K` of the first generated line in a body (which run a response served), or a short error text. */
export function runOf(r: LogResponse, name: string): string {
  if (r.status !== 200) return normError(r, name);
  const text = r.body.toString('latin1');
  if (text.startsWith('unable to retrieve container logs for ')) return `200 ${text.replace(/containerd:\/\/[0-9a-f]{64}/, 'ID')}`;
  const m = /run=(\d+)/.exec(text);
  return m ? `run ${m[1]}` : r.body.length === 0 ? 'empty' : 'no run label';
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
