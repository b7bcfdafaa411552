// `GET /containerLogs/{namespace}/{pod}/{container}` as the kubelet answers
// it, plus the per-connection faults (http500Count, cutEveryBytes,
// endStreamAfterBytes, stallAfterBytes).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LogStore } from './log-store.ts';
import type { PodRunner } from './pod-runner.ts';
import { LogCursor, parseLogQuery, type LogRequest } from './render.ts';
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

type FaultAction = 'cut' | 'stall' | 'end';

function firstFault(f: Faults): { at: number; action: FaultAction } | null {
  const c: { at: number; action: FaultAction }[] = [];
  if (f.cutEveryBytes !== undefined) c.push({ at: f.cutEveryBytes, action: 'cut' });
  if (f.stallAfterBytes !== undefined) c.push({ at: f.stallAfterBytes, action: 'stall' });
  if (f.endStreamAfterBytes !== undefined) c.push({ at: f.endStreamAfterBytes, action: 'end' });
  if (c.length === 0) return null;
  c.sort((a, b) => a.at - b.at);
  return c[0]!;
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function write(res: ServerResponse, buf: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const ok = res.write(buf, () => resolve(ok));
  });
}

async function stream(store: LogStore, req: LogRequest, faults: Faults, res: ServerResponse): Promise<void> {
  const cursor = new LogCursor(store, req);
  const fault = firstFault(faults);
  let closed = false;
  const closedP = new Promise<void>((r) =>
    res.once('close', () => {
      closed = true;
      r();
    }),
  );
  res.on('error', () => undefined);
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  let sent = 0;
  for (;;) {
    if (closed) return;
    if (fault && sent >= fault.at) {
      if (fault.action === 'stall') return; // no bytes, no FIN: the client has to give up
      if (fault.action === 'end') {
        res.end();
        return;
      }
      // cut: the bytes written so far are on their way; then drop the connection.
      res.socket?.destroy();
      return;
    }
    const buf = await cursor.read(BATCH_BYTES);
    if (closed) return;
    if (buf === null) {
      if (cursor.done) break;
      await Promise.race([store.changed(), closedP]);
      continue;
    }
    let piece = buf;
    if (fault && sent + piece.length > fault.at) piece = piece.subarray(0, fault.at - sent);
    if (piece.length === 0) {
      if (cursor.done) break;
      continue;
    }
    sent += piece.length;
    const flushed = write(res, piece);
    if (res.writableNeedDrain) await Promise.race([drained(res), closedP]);
    // A cut must not drop the bytes it promised: wait until they left.
    if (fault && sent >= fault.at) await Promise.race([flushed, closedP]);
    if (cursor.done && !(fault && sent >= fault.at)) break;
  }
  if (!closed) res.end();
}
