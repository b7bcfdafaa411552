// --metrics-auth: /metrics only for callers the cluster authorizes, as
// kube-rbac-proxy does it, in-process. The bearer token is sent to the
// apiserver as a TokenReview (authentication.k8s.io/v1); the user it names is
// then checked with a SubjectAccessReview (authorization.k8s.io/v1) for the
// non-resource URL `get /metrics`. Grant a scraper that with a ClusterRole
// rule `nonResourceURLs: ["/metrics"], verbs: ["get"]` (the chart ships one).
//
// Results are cached for a short time by the token's sha256, so a scrape every
// few seconds costs two API calls per cache period, not per scrape.
import { createHash } from 'node:crypto';
import type { KubeApi } from '../adapters/kube-api.ts';

export interface MetricsAuthResult {
  status: 200 | 401 | 403 | 500;
  message: string;
  user?: string;
}

interface TokenReview {
  status?: { authenticated?: boolean; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> }; error?: string };
}
interface SubjectAccessReview {
  status?: { allowed?: boolean; denied?: boolean; reason?: string };
}

export interface MetricsAuthOptions {
  api: Pick<KubeApi, 'request'>;
  /** The non-resource path authorized; default /metrics. */
  path?: string;
  cacheMs?: number;
  now?: () => number;
}

export class MetricsAuthorizer {
  private readonly o: MetricsAuthOptions;
  private readonly cache = new Map<string, { at: number; result: MetricsAuthResult }>();

  constructor(o: MetricsAuthOptions) {
    this.o = o;
  }

  async check(authorization: string | undefined): Promise<MetricsAuthResult> {
    const m = /^Bearer +(\S+)$/i.exec(authorization ?? '');
    if (!m) return { status: 401, message: 'a bearer token is required (Authorization: Bearer …)' };
    const token = m[1]!;
    const key = createHash('sha256').update(token).digest('hex');
    const now = (this.o.now ?? Date.now)();
    const hit = this.cache.get(key);
    if (hit && now - hit.at < (this.o.cacheMs ?? 10_000)) return hit.result;
    const result = await this.review(token);
    // Errors talking to the apiserver are not cached: the next scrape asks again.
    if (result.status !== 500) {
      if (this.cache.size > 1000) this.cache.clear();
      this.cache.set(key, { at: now, result });
    }
    return result;
  }

  private async review(token: string): Promise<MetricsAuthResult> {
    let tr: TokenReview;
    try {
      tr = await this.o.api.request<TokenReview>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } });
    } catch (err) {
      return { status: 500, message: `TokenReview failed: ${(err as Error).message}` };
    }
    const user = tr.status?.user;
    if (!tr.status?.authenticated || !user?.username) return { status: 401, message: `token not authenticated${tr.status?.error ? `: ${tr.status.error}` : ''}` };
    let sar: SubjectAccessReview;
    try {
      sar = await this.o.api.request<SubjectAccessReview>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: user.username,
          ...(user.uid ? { uid: user.uid } : {}),
          groups: user.groups ?? [],
          ...(user.extra ? { extra: user.extra } : {}),
          nonResourceAttributes: { path: this.o.path ?? '/metrics', verb: 'get' },
        },
      });
    } catch (err) {
      return { status: 500, message: `SubjectAccessReview failed: ${(err as Error).message}`, user: user.username };
    }
    if (!sar.status?.allowed) return { status: 403, message: `user ${user.username} may not get ${this.o.path ?? '/metrics'}${sar.status?.reason ? `: ${sar.status.reason}` : ''}`, user: user.username };
    return { status: 200, message: 'ok', user: user.username };
  }
}
