// A small JSON client for the writes a kubelet makes (status patches,
// bindings, events, leases, deletes). The typed client would reserialize
// bodies (dates, micro-times) its own way; a kubelet's writes are plain JSON
// patches, so the simulator sends exactly what it means. Reads go through
// @kubernetes/client-node informers (see simulator.ts).
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi, KubeApiError } from '../../adapters/kube-api.ts';

// The operator's own JSON client does the HTTP; this file only adds the
// kubelet's vocabulary of writes.
export { KubeApiError as ApiError };

export const MERGE_PATCH = 'application/merge-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';

export class KubeRest {
  readonly kc: KubeConfig;
  private readonly api: KubeApi;

  private constructor(kc: KubeConfig) {
    this.kc = kc;
    this.api = new KubeApi(kc);
  }

  static async fromFile(path: string): Promise<KubeRest> {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return new KubeRest(kc);
  }

  request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<T> {
    return this.api.request<T>(method, path, body, contentType, timeoutMs);
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
    this.api.close();
  }
}

export function isStatus(err: unknown, ...codes: number[]): boolean {
  return err instanceof KubeApiError && codes.includes(err.status);
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
