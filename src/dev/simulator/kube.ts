// A small JSON client for the writes a kubelet makes (status patches,
// bindings, events, leases, deletes). The typed client would reserialize
// bodies (dates, micro-times) its own way; a kubelet's writes are plain JSON
// patches, so the simulator sends exactly what it means. Reads go through
// @kubernetes/client-node informers (see simulator.ts).
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

export class ApiError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(method: string, path: string, status: number, body: unknown) {
    const msg = typeof body === 'object' && body !== null && 'message' in body ? String((body as { message: unknown }).message) : String(body);
    super(`${method} ${path}: ${status} ${msg}`);
    this.status = status;
    this.body = body;
  }
}

export const MERGE_PATCH = 'application/merge-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';

export class KubeRest {
  readonly kc: KubeConfig;
  private readonly base: URL;
  private readonly opts: https.RequestOptions;
  private readonly agent: https.Agent;

  private constructor(kc: KubeConfig, opts: https.RequestOptions) {
    this.kc = kc;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.base = new URL(cluster.server);
    this.opts = opts;
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 32, ca: opts.ca, cert: opts.cert, key: opts.key, rejectUnauthorized: opts.rejectUnauthorized ?? true });
  }

  static async fromFile(path: string): Promise<KubeRest> {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    const opts: https.RequestOptions = { headers: {} };
    await kc.applyToHTTPSOptions(opts);
    return new KubeRest(kc, opts);
  }

  request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<T> {
    const url = new URL(path, this.base);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { ...(this.opts.headers as Record<string, string>), Accept: 'application/json' };
    if (payload) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = payload.length;
    }
    return new Promise<T>((resolve, reject) => {
      const req = https.request(url, { method, headers, agent: this.agent, auth: this.opts.auth, servername: this.opts.servername }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            /* not JSON: keep the text */
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(parsed as T);
          else reject(new ApiError(method, url.pathname, status, parsed));
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url.pathname}: timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T = unknown>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
  patch<T = unknown>(path: string, body: unknown, contentType = MERGE_PATCH): Promise<T> {
    return this.request<T>('PATCH', path, body, contentType);
  }
  delete<T = unknown>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('DELETE', path, body);
  }

  close(): void {
    this.agent.destroy();
  }
}

export function isStatus(err: unknown, ...codes: number[]): boolean {
  return err instanceof ApiError && codes.includes(err.status);
}

/** Minimal shapes of the objects the simulator reads (plain JSON from the API). */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  creationTimestamp?: string;
}

export interface ContainerSpec {
  name: string;
  image?: string;
  restartPolicy?: string;
}

export interface PodJson {
  metadata: ObjectMeta;
  spec: {
    nodeName?: string;
    schedulerName?: string;
    nodeSelector?: Record<string, string>;
    restartPolicy?: string;
    initContainers?: ContainerSpec[];
    containers: ContainerSpec[];
    terminationGracePeriodSeconds?: number;
  };
  status?: { phase?: string; conditions?: { type: string; status: string }[]; containerStatuses?: unknown[] };
}

export interface NodeJson {
  metadata: ObjectMeta;
  spec?: { unschedulable?: boolean };
}
