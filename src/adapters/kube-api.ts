// The operator's few writes and direct reads, as plain JSON over HTTPS with the
// operator's credentials (kube-credentials.ts). Plain requests keep the patch content types and the
// error statuses explicit (the generated client hides both).
import { Agent, request, type RequestOptions } from 'node:https';
import { shareSecureContext } from './tls-context.ts';
import { request as httpRequest } from 'node:http';
import type { V1Pod } from '@kubernetes/client-node';
import type { KubeCredentials } from './kube-credentials.ts';
import { logTailPath, logTailsPath } from '../core/spec.ts';
import { policyPath } from '../core/policy.ts';

export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 409;
}

/** 5xx, 429 and socket errors are worth retrying; 4xx are answers. */
export function isTransientApiError(err: unknown): boolean {
  if (err instanceof KubeApiError) return err.status >= 500 || err.status === 429 || err.status === 0;
  return true;
}

export interface KubeEvent {
  /** When set, the Event gets this exact name: creating it twice is a 409, which makes "exactly once" events possible. */
  name?: string;
  involved: { kind: string; apiVersion: string; namespace: string; name: string; uid?: string };
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** Connections to the apiserver for plain requests (status writes, events, reads, lists); log streams have their own. */
const MAX_SOCKETS = 32;

export class KubeApi {
  private readonly kc: KubeCredentials;
  private readonly agent: Agent;
  private readonly server: URL;

  constructor(kc: KubeCredentials) {
    this.kc = kc;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
    this.agent = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  }

  close(): void {
    this.agent.destroy();
  }

  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<T> {
    const opts: RequestOptions = {
      method,
      protocol: this.server.protocol,
      hostname: this.server.hostname,
      port: this.server.port,
      path: (this.server.pathname.replace(/\/$/, '') || '') + path,
      headers: { Accept: 'application/json' } as Record<string, string>,
      agent: this.server.protocol === 'https:' ? this.agent : undefined,
      timeout: timeoutMs,
    };
    await this.kc.applyToHTTPSOptions(opts);
    // client-node's KubeConfig (the fallback) puts its own agent here, one that does not keep connections
    // alive: every request would be a new TLS handshake (CPU on both sides,
    // and at 1,000 captures thousands of them). Ours keeps them, at most
    // MAX_SOCKETS; a proxy agent is kept, ours cannot replace it.
    if (this.server.protocol === 'https:' && !this.kc.getCurrentCluster()?.proxyUrl) opts.agent = this.agent;
    if (this.server.protocol === 'https:') shareSecureContext(opts);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      (opts.headers as Record<string, string>)['Content-Type'] = contentType;
      (opts.headers as Record<string, string>)['Content-Length'] = String(payload.length);
    }
    const doRequest = this.server.protocol === 'https:' ? request : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = doRequest(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            try {
              resolve((text ? JSON.parse(text) : {}) as T);
            } catch (err) {
              reject(err);
            }
            return;
          }
          let reason = 'Unknown';
          let message = text.slice(0, 500);
          try {
            const s = JSON.parse(text) as { reason?: string; message?: string };
            reason = s.reason ?? reason;
            message = s.message ?? message;
          } catch {
            /* not a Status object */
          }
          reject(new KubeApiError(status, reason, `${method} ${path}: ${status} ${message}`));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  async getPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    try {
      return await this.request<V1Pod>('GET', `/api/v1/namespaces/${namespace}/pods/${name}`);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  logTailPath(namespace: string, name: string): string {
    return logTailPath(namespace, name);
  }

  async patchLogTailStatus(namespace: string, name: string, status: unknown): Promise<void> {
    await this.request('PATCH', this.logTailPath(namespace, name) + '/status', { status }, 'application/merge-patch+json');
  }

  /**
   * Adds or removes one finalizer with a JSON patch guarded by a `test` on the
   * current list, so a concurrent change to finalizers makes it fail (422)
   * instead of clobbering someone else's entry.
   */
  async setFinalizer(namespace: string, name: string, current: string[] | undefined, finalizer: string, present: boolean): Promise<void> {
    const list = current ?? [];
    const has = list.includes(finalizer);
    if (has === present) return;
    const ops: unknown[] = [];
    if (present) {
      if (current === undefined) ops.push({ op: 'add', path: '/metadata/finalizers', value: [finalizer] });
      else ops.push({ op: 'test', path: '/metadata/finalizers', value: list }, { op: 'add', path: '/metadata/finalizers/-', value: finalizer });
    } else {
      ops.push({ op: 'test', path: '/metadata/finalizers', value: list }, { op: 'remove', path: `/metadata/finalizers/${list.indexOf(finalizer)}` });
    }
    await this.request('PATCH', this.logTailPath(namespace, name), ops, 'application/json-patch+json');
  }

  async deleteLogTail(namespace: string, name: string, uid: string): Promise<void> {
    try {
      await this.request('DELETE', this.logTailPath(namespace, name), { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid } });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Creates a core/v1 Event; returns false when an Event of that exact name exists already. */
  async createEvent(ev: KubeEvent, component = 'logtail-operator'): Promise<boolean> {
    const now = new Date().toISOString();
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: ev.name ? { name: ev.name, namespace: ev.involved.namespace } : { generateName: `${ev.involved.name}.`, namespace: ev.involved.namespace },
      involvedObject: ev.involved,
      type: ev.type,
      reason: ev.reason,
      message: ev.message.slice(0, 1000),
      source: { component },
      reportingComponent: component,
      reportingInstance: process.env.HOSTNAME ?? 'local',
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      await this.request('POST', `/api/v1/namespaces/${ev.involved.namespace}/events`, body);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }
  /** Creates a LogTail (a policy's capture of one pod); false when one of that name exists already. */
  async createLogTail(namespace: string, body: unknown): Promise<boolean> {
    try {
      await this.request('POST', logTailsPath(namespace), body);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  async patchPolicyStatus(namespace: string, name: string, status: unknown): Promise<void> {
    await this.request('PATCH', policyPath(namespace, name) + '/status', { status }, 'application/merge-patch+json');
  }

  /**
   * spec.holdPod: adds or removes one finalizer of a pod with a JSON patch that
   * first tests the pod's UID (never another pod of that name) and the
   * resourceVersion it was read at (any concurrent change, e.g. someone
   * else's finalizer, makes it a 422 instead of a clobbered list). Needs
   * `patch pods`, granted only with the chart's holdPod.enabled.
   */
  async setPodFinalizer(namespace: string, name: string, seen: { uid: string; resourceVersion: string; finalizers?: string[] | undefined }, finalizer: string, present: boolean): Promise<void> {
    const list = seen.finalizers ?? [];
    if (list.includes(finalizer) === present) return;
    const ops: unknown[] = [
      { op: 'test', path: '/metadata/uid', value: seen.uid },
      { op: 'test', path: '/metadata/resourceVersion', value: seen.resourceVersion },
    ];
    if (present) ops.push(seen.finalizers === undefined ? { op: 'add', path: '/metadata/finalizers', value: [finalizer] } : { op: 'add', path: '/metadata/finalizers/-', value: finalizer });
    else ops.push({ op: 'remove', path: `/metadata/finalizers/${list.indexOf(finalizer)}` });
    await this.request('PATCH', `/api/v1/namespaces/${namespace}/pods/${name}`, ops, 'application/json-patch+json');
  }
}
