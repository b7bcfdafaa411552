// Shared helpers for the node simulator's proof tests: a raw client for the
// apiserver (bytes, not strings), the built kubectl with byte-exact stdout,
// and pod manifests carrying the simulator's annotations.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { expect } from 'chai';
import type { TestCluster } from '../fixture.ts';

export interface RawResponse {
  status: number;
  body: Buffer;
  /** The response ended with an error (connection dropped) rather than cleanly. */
  aborted: boolean;
}

/** A request to the apiserver as the admin user; never throws on HTTP status. */
export function api(c: TestCluster, method: string, path: string, body?: unknown, opts: { timeoutMs?: number; contentType?: string } = {}): Promise<RawResponse> {
  const url = new URL(path, c.state.apiserverUrl);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ca: readFileSync(c.state.caFile),
        headers: {
          Authorization: `Bearer ${c.state.token}`,
          Accept: 'application/json',
          ...(payload ? { 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let aborted = false;
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('aborted', () => (aborted = true));
        res.on('error', () => (aborted = true));
        res.on('close', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), aborted: aborted || !res.complete }));
      },
    );
    req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export async function apiJson<T>(c: TestCluster, method: string, path: string, body?: unknown): Promise<T> {
  const r = await api(c, method, path, body);
  if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body.toString()}`);
  return JSON.parse(r.body.toString()) as T;
}

export { createNamespace } from '../fixture.ts';

export interface PodOptions {
  script?: unknown;
  faults?: unknown;
  restartPolicy?: string;
  containers?: string[];
  nodeName?: string;
  terminationGracePeriodSeconds?: number;
}

export function podManifest(ns: string, name: string, o: PodOptions = {}): Record<string, unknown> {
  const annotations: Record<string, string> = {};
  if (o.script !== undefined) annotations['sim.logtail.dev/script'] = typeof o.script === 'string' ? o.script : JSON.stringify(o.script);
  if (o.faults !== undefined) annotations['sim.logtail.dev/faults'] = typeof o.faults === 'string' ? o.faults : JSON.stringify(o.faults);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, annotations },
    spec: {
      restartPolicy: o.restartPolicy ?? 'Never',
      ...(o.nodeName ? { nodeName: o.nodeName } : {}),
      ...(o.terminationGracePeriodSeconds !== undefined ? { terminationGracePeriodSeconds: o.terminationGracePeriodSeconds } : {}),
      containers: (o.containers ?? ['app']).map((n) => ({ name: n, image: 'busybox' })),
    },
  };
}

export interface ContainerStatusJson {
  name: string;
  state: { running?: { startedAt: string }; terminated?: { exitCode: number; reason: string }; waiting?: { reason: string; message?: string } };
  lastState: { terminated?: { exitCode: number } };
  restartCount: number;
  ready: boolean;
}

export interface PodStatusJson {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: ContainerStatusJson[];
  };
}

export async function createPod(c: TestCluster, ns: string, name: string, o: PodOptions = {}): Promise<PodStatusJson> {
  return apiJson<PodStatusJson>(c, 'POST', `/api/v1/namespaces/${ns}/pods`, podManifest(ns, name, o));
}

export async function getPod(c: TestCluster, ns: string, name: string): Promise<PodStatusJson | null> {
  const r = await api(c, 'GET', `/api/v1/namespaces/${ns}/pods/${name}`);
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`get pod ${ns}/${name}: ${r.status} ${r.body.toString()}`);
  return JSON.parse(r.body.toString()) as PodStatusJson;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the pod until `pred` holds; fails with the last status seen. */
export async function waitPod(c: TestCluster, ns: string, name: string, what: string, pred: (p: PodStatusJson | null) => boolean, timeoutMs = 30_000): Promise<PodStatusJson | null> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const last = await getPod(c, ns, name);
    if (pred(last)) return last;
    if (Date.now() > end) expect.fail(`pod ${ns}/${name}: not ${what} after ${timeoutMs} ms; last: ${JSON.stringify(last?.status)}`);
    await sleep(100);
  }
}

export const isPhase = (...phases: string[]) => (p: PodStatusJson | null) => p !== null && phases.includes(p.status.phase ?? '');

/** Waits until the container has really terminated (and so its recording is complete). */
export function waitTerminated(c: TestCluster, ns: string, name: string, timeoutMs = 30_000) {
  return waitPod(c, ns, name, 'terminated', (p) => p !== null && (p.status.containerStatuses ?? []).length > 0 && p.status.containerStatuses!.every((s) => s.state.terminated !== undefined), timeoutMs);
}

export interface KubectlResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** The built kubectl with stdout kept as bytes. */
export function kubectlRaw(c: TestCluster, args: string[], timeoutMs = 120_000): Promise<KubectlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(c.env.LOGTAIL_TOOLCHAIN_BIN!, 'kubectl'), args, { env: { ...process.env, KUBECONFIG: c.kubeconfigPath }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
  });
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export function recorded(c: TestCluster, ns: string, pod: string, container = 'app'): Buffer {
  return readFileSync(join(c.env.LOGTAIL_SIM_DIR!, ns, pod, `${container}.log`));
}

/** Splits `kubectl logs --timestamps` output into [timestamp, rest-of-line] pairs. */
export function timestampedLines(out: Buffer): [string, string][] {
  const text = out.toString('latin1');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  // The prefix is 30 bytes with `Z`, 35 with a numeric offset; it has no space.
  return lines.map((l) => {
    const sp = l.indexOf(' ');
    return [l.slice(0, sp), l.slice(sp + 1)];
  });
}

export const TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$/;

export interface WatchEvent {
  type: string;
  object: PodStatusJson;
}

/** Watches one pod from now on until `until` says stop (or the timeout); returns the events seen. */
export function watchPod(c: TestCluster, ns: string, name: string, until: (e: WatchEvent) => boolean, timeoutMs = 30_000): Promise<WatchEvent[]> {
  const url = new URL(`/api/v1/namespaces/${ns}/pods?watch=true&fieldSelector=metadata.name%3D${encodeURIComponent(name)}`, c.state.apiserverUrl);
  return new Promise((resolve, reject) => {
    const events: WatchEvent[] = [];
    let buf = '';
    const req = https.get(url, { ca: readFileSync(c.state.caFile), headers: { Authorization: `Bearer ${c.state.token}` } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (s: string) => {
        buf += s;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line.trim()) continue;
          const e = JSON.parse(line) as WatchEvent;
          events.push(e);
          if (until(e)) {
            clearTimeout(t);
            req.destroy();
            resolve(events);
            return;
          }
        }
      });
      res.on('error', () => undefined);
    });
    const t = setTimeout(() => {
      req.destroy();
      reject(new Error(`watch ${ns}/${name}: condition not met in ${timeoutMs} ms; saw ${events.map((e) => e.type + ':' + (e.object.status?.phase ?? '')).join(', ')}`));
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(t);
      reject(err);
    });
  });
}

/** The kubelet port the apiserver dials for a node. */
export async function kubeletPort(c: TestCluster, node: string): Promise<number> {
  const n = await apiJson<{ status: { daemonEndpoints: { kubeletEndpoint: { Port: number } } } }>(c, 'GET', `/api/v1/nodes/${node}`);
  return n.status.daemonEndpoints.kubeletEndpoint.Port;
}

/** A request straight to a simulated kubelet (its certificate is not checked, as the apiserver does not). */
export function kubeletGet(port: number, path: string, opts: { timeoutMs?: number } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      let aborted = false;
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('aborted', () => (aborted = true));
      res.on('error', () => (aborted = true));
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), aborted: aborted || !res.complete }));
    });
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.on('error', reject);
  });
}

/**
 * Streams a pod's log through the apiserver and stops after `ms`, returning
 * the status, what arrived and whether the server ended the response by itself.
 */
export function streamFor(c: TestCluster, ns: string, pod: string, query: string, ms: number): Promise<{ status: number; body: Buffer; ended: boolean }> {
  const url = new URL(`/api/v1/namespaces/${ns}/pods/${pod}/log?${query}`, c.state.apiserverUrl);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ended = false;
    let status = 0;
    const finish = () => {
      clearTimeout(t);
      resolve({ status, body: Buffer.concat(chunks), ended });
    };
    const req = https.get(url, { ca: readFileSync(c.state.caFile), headers: { Authorization: `Bearer ${c.state.token}` } }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => {
        ended = true;
        finish();
      });
      res.on('error', () => undefined);
    });
    const t = setTimeout(() => {
      req.destroy();
      finish();
    }, ms);
    req.on('error', (err) => {
      if (status !== 0) finish();
      else {
        clearTimeout(t);
        reject(err);
      }
    });
  });
}
