// `logtail logs -f NAME`: follow a capture live with the user's own
// credentials (pods/log of the LogTail's pod, each container run from its
// start), then, once the LogTail has finished, check that every run printed
// equals the object the operator stored (sha256 of the content) and say so on
// stderr. The stream is not trusted for anything: the stored object is the
// record, and a difference (e.g. the kubelet rotated the file before we read
// it, or a run restarted before we opened it) is reported, exit status 1.
import { createHash, type Hash } from 'node:crypto';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { KubeApi } from '../adapters/kube-api.ts';
import type { LogTail } from '../core/spec.ts';
import type { ContainerCapture } from '../core/status.ts';
import { containerView, servedRuns } from '../core/capture/runs.ts';

export const TERMINAL_PHASES = ['Complete', 'Incomplete', 'Failed'];

/** One container run printed by the follower. */
export interface PrintedRun {
  container: string;
  restart: number;
  /** The run's container ID as the pod status named it when the stream was opened. */
  containerID?: string;
  bytes: number;
  sha256: string;
}

export type RunCheck = { run: PrintedRun; ok: true; object: string } | { run: PrintedRun; ok: false; why: string };

/** Compares each printed run with the LogTail's stored capture of that container run. */
export function checkPrinted(lt: LogTail, printed: PrintedRun[]): RunCheck[] {
  const caps = (lt.status?.containers ?? []) as ContainerCapture[];
  return printed.map((run) => {
    const cap = caps.find((c) => c.name === run.container && c.restart === run.restart);
    if (!cap) return { run, ok: false, why: `the LogTail has no capture of ${run.container} restart ${run.restart}` };
    if (!cap.object) return { run, ok: false, why: `${run.container} restart ${run.restart} was not stored (state ${cap.state}${cap.reason ? `, ${cap.reason}` : ''})` };
    if (cap.object.sha256 !== run.sha256) {
      return { run, ok: false, why: `printed ${run.bytes} bytes with sha256 ${run.sha256}, the stored object ${cap.object.uri} has ${cap.bytes} bytes with sha256 ${cap.object.sha256}` };
    }
    return { run, ok: true, object: cap.object.uri };
  });
}

/** The container to follow: -c, else the LogTail's only container, else the pod's only one. */
export function chooseContainer(lt: LogTail, pod: V1Pod | undefined, wanted: string | undefined): string {
  if (wanted) return wanted;
  const names = lt.spec.containers ?? [...(pod?.spec?.initContainers ?? []), ...(pod?.spec?.containers ?? [])].map((c) => c.name);
  if (names.length === 1) return names[0]!;
  throw new Error(`LogTail "${lt.metadata.name}" captures ${names.length ? `several containers (${names.join(', ')})` : 'containers of a pod that does not exist yet'}; choose one with -c`);
}

function statusOf(pod: V1Pod | undefined, container: string) {
  return [...(pod?.status?.initContainerStatuses ?? []), ...(pod?.status?.containerStatuses ?? [])].find((s) => s.name === container);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FollowDeps {
  kc: KubeConfig;
  api: KubeApi;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  pollMs?: number;
}

/** Opens pods/log?follow=true for the container's current run, with the kubeconfig's credentials. */
async function openLog(kc: KubeConfig, ns: string, pod: string, container: string, timestamps: boolean, previous: boolean): Promise<IncomingMessage> {
  const server = new URL(kc.getCurrentCluster()!.server);
  const q = new URLSearchParams({ container, follow: 'true', ...(timestamps ? { timestamps: 'true' } : {}), ...(previous ? { previous: 'true' } : {}) });
  const opts: RequestOptions = {
    method: 'GET',
    protocol: server.protocol,
    hostname: server.hostname,
    port: server.port,
    path: `${server.pathname.replace(/\/$/, '')}/api/v1/namespaces/${ns}/pods/${pod}/log?${q}`,
    headers: {},
  };
  await kc.applyToHTTPSOptions(opts);
  const req = (server.protocol === 'https:' ? httpsRequest : httpRequest)(opts);
  return new Promise((resolve, reject) => {
    req.on('response', resolve);
    req.on('error', reject);
    req.end();
  });
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').slice(0, 500);
}

/** Copies a response to `out` with backpressure while hashing it; resolves with the byte count. */
async function copy(res: IncomingMessage, out: NodeJS.WritableStream, h: Hash): Promise<number> {
  let n = 0;
  for await (const chunk of res) {
    const b = chunk as Buffer;
    h.update(b);
    n += b.length;
    if (!out.write(b)) await new Promise((r) => out.once('drain', r));
  }
  return n;
}

/**
 * The oldest run the kubelet serves that was not printed yet, by container
 * ID, with the request that reads it (core/capture/runs.ts: the kubelet's
 * semantics, shared with the operator). restartCount alone would mislead:
 * the kubelet bumps it only when the next container is created.
 */
function newRun(pod: V1Pod | undefined, container: string, printed: PrintedRun[]): { restart: number; containerID: string; previous: boolean } | undefined {
  const run = servedRuns(containerView(statusOf(pod, container))).find((r) => !printed.some((p) => p.containerID === r.id));
  return run ? { restart: run.index, containerID: run.id, previous: run.previous } : undefined;
}

/** Prints one run (current, or previous=true); undefined when the log cannot be read yet. */
async function printRun(d: FollowDeps, lt: LogTail, container: string, run: { restart: number; containerID: string; previous: boolean }): Promise<PrintedRun | undefined> {
  const ns = lt.metadata.namespace!;
  const res = await openLog(d.kc, ns, lt.spec.podName, container, !!lt.spec.timestamps, run.previous);
  if (res.statusCode !== 200) {
    const body = await readBody(res);
    if (res.statusCode === 400) return undefined; // "waiting to start"
    throw new Error(`reading pods/log of ${ns}/${lt.spec.podName} container ${container}: ${res.statusCode} ${body}`);
  }
  const h = createHash('sha256');
  const bytes = await copy(res, d.out, h);
  return { container, restart: run.restart, containerID: run.containerID, bytes, sha256: h.digest('hex') };
}

async function waitForFinish(d: FollowDeps, lt: LogTail): Promise<LogTail> {
  for (;;) {
    const now = await d.api.request<LogTail>('GET', d.api.logTailPath(lt.metadata.namespace!, lt.metadata.name!));
    if (TERMINAL_PHASES.includes(now.status?.phase ?? '')) return now;
    await sleep(d.pollMs ?? 500);
  }
}

/**
 * Follows every run of `container` until the LogTail has finished, then
 * checks what was printed. Returns true when every run equals its stored object.
 */
export async function follow(d: FollowDeps, lt: LogTail, container: string): Promise<boolean> {
  const printed: PrintedRun[] = [];
  let current = lt;
  while (!TERMINAL_PHASES.includes(current.status?.phase ?? '')) {
    const run = newRun(await d.api.getPod(lt.metadata.namespace!, lt.spec.podName), container, printed);
    const got = run ? await printRun(d, lt, container, run) : undefined;
    if (got) printed.push(got);
    else await sleep(d.pollMs ?? 500);
    current = await d.api.request<LogTail>('GET', d.api.logTailPath(lt.metadata.namespace!, lt.metadata.name!));
  }
  current = await waitForFinish(d, current);
  if (printed.length === 0) {
    d.err.write(`logtail: LogTail "${lt.metadata.name}" finished (${current.status?.phase}) before any run of ${container} could be read live; use "logtail get" for the stored object\n`);
    return false;
  }
  let ok = true;
  for (const r of checkPrinted(current, printed)) {
    if (r.ok) d.err.write(`logtail: verified: the ${r.run.bytes} bytes printed for ${container} restart ${r.run.restart} equal the stored object ${r.object} (sha256 ${r.run.sha256})\n`);
    else {
      ok = false;
      d.err.write(`logtail: NOT verified: ${r.why}\n`);
    }
  }
  if (current.status?.phase !== 'Complete') d.err.write(`logtail: LogTail "${lt.metadata.name}" ended ${current.status?.phase}${current.status?.reason ? ` (${current.status.reason})` : ''}\n`);
  return ok && current.status?.phase === 'Complete';
}
