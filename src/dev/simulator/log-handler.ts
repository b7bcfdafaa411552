// `GET /containerLogs/{namespace}/{pod}/{container}` as the kubelet answers
// it, plus the per-connection faults (http500Count, cutEveryBytes,
// endStreamAfterBytes, stallAfterBytes).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LogStore } from './log-store.ts';
import type { PodRunner } from './pod-runner.ts';
import { LogCursor, parseLogQuery, type LogRequest } from './render.ts';
import { firstFault, sendWithFaults, type ByteSource } from './fault-stream.ts';
import type { Faults } from './script.ts';
import { nowNs, parseRfc3339 } from './time.ts';

const BATCH_BYTES = 1 << 20;

export interface LogHost {
  findPod(node: string, namespace: string, name: string): PodRunner | undefined;
  log(msg: string): void;
}

function writeError(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(message);
}

export function handleKubeletRequest(host: LogHost, node: string, req: IncomingMessage, res: ServerResponse): void {
  serve(host, node, req, res).catch((err: unknown) => {
    host.log(`node ${node}: ${req.url}: ${(err as Error).stack ?? String(err)}`);
    if (!res.headersSent) writeError(res, 500, (err as Error).message);
    else res.destroy();
  });
}

async function serve(host: LogHost, node: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://kubelet');
  const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
  if (!m || req.method !== 'GET') {
    if (url.pathname === '/healthz') return writeError(res, 200, 'ok');
    return writeError(res, 404, '404 page not found\n');
  }
  const [namespace, podName, container] = [m[1]!, m[2]!, m[3]!].map((s) => decodeURIComponent(s)) as [string, string, string];
  const q = parseLogQuery(url.searchParams, nowNs(), parseRfc3339);
  if (!q.ok) return writeError(res, q.status, q.message);
  const pod = host.findPod(node, namespace, podName);
  if (!pod) return writeError(res, 404, `pod "${podName}" does not exist`);
  if (pod.http500Left > 0) {
    pod.http500Left--;
    host.log(`pod ${namespace}/${podName}: http500Count fault: 500 (${pod.http500Left} left)`);
    return writeError(res, 500, 'simulated kubelet failure (http500Count fault)');
  }
  const target = pod.logTarget(container, q.previous);
  if (!target.ok) return writeError(res, target.status, target.message);
  await stream(target.store, q.req, pod.effectiveFaults(), res);
}

/** The simulator's log store as a byte source: waits for the container to write more, ends when the log is complete. */
function cursorSource(store: LogStore, req: LogRequest): ByteSource {
  const cursor = new LogCursor(store, req);
  return {
    async next(closed) {
      for (;;) {
        const buf = await cursor.read(BATCH_BYTES);
        if (buf !== null && buf.length > 0) return buf;
        if (cursor.done) return null;
        if (buf === null) {
          let gone = false;
          await Promise.race([store.changed(), closed.then(() => (gone = true))]);
          if (gone) return null;
        }
      }
    },
  };
}

async function stream(store: LogStore, req: LogRequest, faults: Faults, res: ServerResponse): Promise<void> {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  await sendWithFaults(cursorSource(store, req), firstFault(faults), res);
}
