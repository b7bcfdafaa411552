// The operator's own kubeconfig loader (issue 11 item 2, "Idle cost").
//
// client-node's KubeConfig module (dist/config.js) pulls in every generated
// API client: ~80 MiB of RSS in a process that only needs a server URL, a CA,
// a client certificate or a bearer token. This module loads those itself, for
// the two ways the operator is normally run:
// - in a pod: the service account (KUBERNETES_SERVICE_HOST/PORT, the token
//   file re-read when it changes — projected tokens rotate —, ca.crt, the
//   namespace file), as client-go's rest.InClusterConfig
//   (k8s.io/client-go@v0.37.2 rest/config.go) and its file token source
//   (transport/token_source.go, which re-reads the file every minute; here a
//   stat at most once a second);
// - kubeconfig files: one file or a list ($KUBECONFIG semantics of client-go,
//   tools/clientcmd/loader.go: missing files skipped, the first file to set a
//   cluster/user/context or current-context wins, relative paths resolved
//   against the file's directory); the current context or a named one; cluster
//   server, certificate-authority(-data), insecure-skip-tls-verify,
//   tls-server-name; user token, tokenFile (re-read when it changes),
//   client-certificate(-data), client-key(-data). Where both a file and its
//   -data are given, -data wins (client-go's validation says "…-data will
//   override").
// Anything else that changes how requests are made (exec plugins,
// auth-provider, username/password, impersonation, a proxy-url) is handed to
// client-node's KubeConfig, imported only then, behind the same interface;
// `source` says which path was taken and why (main.ts logs it).
import { readFileSync, statSync, type Stats } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';

/** What the operator uses of a kubeconfig; client-node's KubeConfig has the same shape. */
export interface KubeCredentials {
  getCurrentCluster(): { server: string; proxyUrl?: string | undefined } | null;
  /** Sets ca, cert, key, servername, rejectUnauthorized and the Authorization header (and, for a proxy, opts.agent). */
  applyToHTTPSOptions(opts: RequestOptions): Promise<void>;
}

/** A loaded kubeconfig: where it came from, for the start-up log. */
export interface LoadedCredentials extends KubeCredentials {
  /** e.g. "in-cluster service account", "kubeconfig /x (context c)", "client-node KubeConfig (fallback: user u uses exec)". */
  readonly source: string;
  /** True when client-node's KubeConfig does the work (its module is then loaded). */
  readonly fallback: boolean;
  /** The service account's namespace in a pod, the context's namespace in a kubeconfig. */
  readonly namespace: string | undefined;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface LoadOptions {
  /** One kubeconfig file, or several separated by ':' ($KUBECONFIG). Default: $KUBECONFIG, else in-cluster, else ~/.kube/config. */
  kubeconfig?: string | undefined;
  /** A context other than current-context. */
  context?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Default /var/run/secrets/kubernetes.io/serviceaccount. */
  serviceAccountDir?: string;
  home?: string;
  /** How often a token/CA/certificate file is stat'ed for a change. Default 1 s. */
  recheckMs?: number;
}

// A file read once and again only when its (inode, size, mtime) changed;
// stat'ed at most once per `recheckMs`. A failed re-read keeps the last content.
class WatchedFile {
  readonly path: string;
  readonly #recheckMs: number;
  #content: Buffer;
  #stamp: string;
  #checkedAt: number;

  constructor(path: string, recheckMs: number) {
    this.path = path;
    this.#recheckMs = recheckMs;
    this.#stamp = stampOf(statSync(path));
    this.#content = readFileSync(path);
    this.#checkedAt = Date.now();
  }

  get(): Buffer {
    const now = Date.now();
    if (now - this.#checkedAt < this.#recheckMs) return this.#content;
    this.#checkedAt = now;
    try {
      const stamp = stampOf(statSync(this.path));
      if (stamp !== this.#stamp) {
        this.#content = readFileSync(this.path);
        this.#stamp = stamp;
      }
    } catch {
      // Mid-rotation (the kubelet swaps a symlink) or gone: keep what we had.
    }
    return this.#content;
  }
}

function stampOf(s: Stats): string {
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

type Source = { data: Buffer } | { file: WatchedFile } | undefined;

function sourceBytes(s: Source): Buffer | undefined {
  if (!s) return undefined;
  return 'data' in s ? s.data : s.file.get();
}

interface Resolved {
  server: string;
  ca: Source;
  cert: Source;
  key: Source;
  token: string | undefined;
  tokenFile: WatchedFile | undefined;
  servername: string | undefined;
  insecure: boolean;
}

/** Credentials the operator applies itself (no client-node module loaded). */
class OwnCredentials implements LoadedCredentials {
  readonly source: string;
  readonly fallback = false;
  readonly namespace: string | undefined;
  readonly #r: Resolved;
  #lastToken: string | undefined;

  constructor(source: string, namespace: string | undefined, r: Resolved) {
    this.source = source;
    this.namespace = namespace;
    this.#r = r;
    this.#lastToken = r.token;
    if (r.tokenFile) {
      const t = r.tokenFile.get().toString('utf8').trim();
      if (!t && !r.token) throw new Error(`read empty token from file ${r.tokenFile.path}`);
      if (t) this.#lastToken = t;
    }
  }

  getCurrentCluster(): { server: string; proxyUrl?: string } {
    return { server: this.#r.server };
  }

  /** The bearer token now: the token file's content when it has one (re-read when it changed), else the static token. */
  token(): string | undefined {
    if (this.#r.tokenFile) {
      const t = this.#r.tokenFile.get().toString('utf8').trim();
      if (t) this.#lastToken = t;
    }
    return this.#lastToken;
  }

  async applyToHTTPSOptions(opts: RequestOptions): Promise<void> {
    const r = this.#r;
    if (r.insecure) opts.rejectUnauthorized = false;
    if (r.servername) opts.servername = r.servername;
    const ca = sourceBytes(r.ca);
    if (ca) opts.ca = ca;
    const cert = sourceBytes(r.cert);
    if (cert) opts.cert = cert;
    const key = sourceBytes(r.key);
    if (key) opts.key = key;
    const token = this.token();
    if (token) {
      const headers = (opts.headers ?? {}) as Record<string, string>;
      headers.Authorization = `Bearer ${token}`;
      opts.headers = headers;
    }
  }
}

/** client-node's KubeConfig behind the interface (its module is imported by the caller). */
export function credentialsFromKubeConfig(kc: KubeConfig, source: string): LoadedCredentials {
  const ctx = kc.getContextObject(kc.getCurrentContext());
  return {
    source,
    fallback: true,
    namespace: ctx?.namespace,
    getCurrentCluster: () => kc.getCurrentCluster(),
    applyToHTTPSOptions: (opts) => kc.applyToHTTPSOptions(opts),
  };
}

// ---------------------------------------------------------------------------
// In-cluster

function inCluster(o: LoadOptions): LoadedCredentials | undefined {
  const env = o.env ?? process.env;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  const dir = o.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const tokenPath = join(dir, 'token');
  if (!host || !port) return undefined;
  try {
    statSync(tokenPath);
  } catch {
    return undefined;
  }
  const recheck = o.recheckMs ?? 1000;
  let ca: Source;
  try {
    ca = { file: new WatchedFile(join(dir, 'ca.crt'), recheck) };
  } catch {
    ca = undefined; // client-go logs and goes on with the system roots
  }
  let namespace: string | undefined;
  try {
    namespace = readFileSync(join(dir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    namespace = undefined;
  }
  const server = `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  return new OwnCredentials(`in-cluster service account (${dir}, ${server})`, namespace, {
    server,
    ca,
    cert: undefined,
    key: undefined,
    token: undefined,
    tokenFile: new WatchedFile(tokenPath, recheck),
    servername: undefined,
    insecure: false,
  });
}

// ---------------------------------------------------------------------------
// Kubeconfig files

type Obj = Record<string, unknown>;
interface Named {
  name: string;
  value: Obj;
}
interface Merged {
  currentContext: string | undefined;
  clusters: Map<string, Obj>;
  users: Map<string, Obj>;
  contexts: Map<string, Obj>;
}

const PATH_FIELDS: Record<'cluster' | 'user', string[]> = {
  cluster: ['certificate-authority'],
  user: ['client-certificate', 'client-key', 'tokenFile'],
};

/** User fields this loader applies; `extensions` changes nothing about a request. */
const OWN_USER_FIELDS = new Set(['token', 'tokenFile', 'client-certificate', 'client-certificate-data', 'client-key', 'client-key-data', 'extensions']);
const OWN_CLUSTER_FIELDS = new Set(['server', 'certificate-authority', 'certificate-authority-data', 'insecure-skip-tls-verify', 'tls-server-name', 'disable-compression', 'extensions']);

function namedList(v: unknown, what: string, file: string): Named[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`${file}: ${what}s is not a list`);
  return v.map((e: unknown) => {
    const o = e as Obj | null;
    if (!o || typeof o.name !== 'string') throw new Error(`${file}: a ${what} without a name`);
    return { name: o.name, value: (o[what] ?? {}) as Obj };
  });
}

function absolutize(value: Obj, fields: string[], base: string): Obj {
  const out: Obj = { ...value };
  for (const f of fields) {
    const p = out[f];
    if (typeof p === 'string' && p && !isAbsolute(p)) out[f] = join(base, p);
  }
  return out;
}

async function mergeFiles(files: string[]): Promise<{ merged: Merged; read: string[] }> {
  const { parse } = await import('yaml');
  const merged: Merged = { currentContext: undefined, clusters: new Map(), users: new Map(), contexts: new Map() };
  const read: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // client-go skips missing files
      throw err;
    }
    read.push(file);
    const doc = (parse(text) ?? {}) as Obj;
    const base = dirname(file);
    // The first file to set a key wins.
    for (const c of namedList(doc.clusters, 'cluster', file)) if (!merged.clusters.has(c.name)) merged.clusters.set(c.name, absolutize(c.value, PATH_FIELDS.cluster, base));
    for (const u of namedList(doc.users, 'user', file)) if (!merged.users.has(u.name)) merged.users.set(u.name, absolutize(u.value, PATH_FIELDS.user, base));
    for (const c of namedList(doc.contexts, 'context', file)) if (!merged.contexts.has(c.name)) merged.contexts.set(c.name, c.value);
    const cur = doc['current-context'];
    if (merged.currentContext === undefined && typeof cur === 'string' && cur) merged.currentContext = cur;
  }
  return { merged, read };
}

function str(o: Obj, k: string): string | undefined {
  const v = o[k];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function b64(o: Obj, k: string): Buffer | undefined {
  const v = str(o, k);
  return v === undefined ? undefined : Buffer.from(v, 'base64');
}

function fileOrData(o: Obj, fileKey: string, dataKey: string, recheck: number): Source {
  const data = b64(o, dataKey);
  if (data) return { data };
  const f = str(o, fileKey);
  return f ? { file: new WatchedFile(f, recheck) } : undefined;
}

/** Why this context needs client-node's KubeConfig, or undefined when the loader handles it. */
function unsupported(userName: string, user: Obj, clusterName: string, cluster: Obj): string | undefined {
  const u = Object.keys(user).filter((k) => !OWN_USER_FIELDS.has(k) && user[k] !== undefined && user[k] !== null && user[k] !== '');
  if (u.length) return `user ${userName} uses ${u.join(', ')}`;
  const c = Object.keys(cluster).filter((k) => !OWN_CLUSTER_FIELDS.has(k) && cluster[k] !== undefined && cluster[k] !== null && cluster[k] !== '');
  if (c.length) return `cluster ${clusterName} uses ${c.join(', ')}`;
  return undefined;
}

async function fallbackKubeConfig(m: Merged, contextName: string, why: string, files: string[]): Promise<LoadedCredentials> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  // The merged view (client-go's precedence, paths already absolute), so both paths read the same configuration.
  kc.loadFromString(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': contextName,
      clusters: [...m.clusters].map(([name, cluster]) => ({ name, cluster })),
      users: [...m.users].map(([name, user]) => ({ name, user })),
      contexts: [...m.contexts].map(([name, context]) => ({ name, context })),
    }),
  );
  kc.setCurrentContext(contextName);
  return credentialsFromKubeConfig(kc, `client-node KubeConfig (fallback: ${why}; ${files.join(', ')}, context ${contextName})`);
}

async function fromFiles(files: string[], o: LoadOptions): Promise<LoadedCredentials> {
  const { merged: m, read } = await mergeFiles(files);
  if (read.length === 0) throw new Error(`kubeconfig: none of ${files.join(', ')} exists`);
  const contextName = o.context ?? m.currentContext;
  if (!contextName) throw new Error(`kubeconfig ${read.join(', ')}: no current-context (and no context given)`);
  const ctx = m.contexts.get(contextName);
  if (!ctx) throw new Error(`kubeconfig ${read.join(', ')}: context "${contextName}" not found`);
  const clusterName = str(ctx, 'cluster') ?? '';
  const userName = str(ctx, 'user') ?? '';
  const cluster = m.clusters.get(clusterName);
  if (!cluster) throw new Error(`kubeconfig ${read.join(', ')}: cluster "${clusterName}" of context "${contextName}" not found`);
  const user = userName ? m.users.get(userName) : {};
  if (!user) throw new Error(`kubeconfig ${read.join(', ')}: user "${userName}" of context "${contextName}" not found`);
  const server = str(cluster, 'server');
  if (!server) throw new Error(`kubeconfig ${read.join(', ')}: cluster "${clusterName}" has no server`);
  const why = unsupported(userName, user, clusterName, cluster);
  if (why) return fallbackKubeConfig(m, contextName, why, read);
  const recheck = o.recheckMs ?? 1000;
  const tokenFile = str(user, 'tokenFile');
  return new OwnCredentials(`kubeconfig ${read.join(', ')} (context ${contextName}, ${server})`, str(ctx, 'namespace'), {
    server,
    ca: fileOrData(cluster, 'certificate-authority', 'certificate-authority-data', recheck),
    cert: fileOrData(user, 'client-certificate', 'client-certificate-data', recheck),
    key: fileOrData(user, 'client-key', 'client-key-data', recheck),
    token: str(user, 'token'),
    tokenFile: tokenFile ? new WatchedFile(tokenFile, recheck) : undefined,
    servername: str(cluster, 'tls-server-name'),
    insecure: cluster['insecure-skip-tls-verify'] === true,
  });
}

/**
 * The operator's credentials: `kubeconfig` (one file or a ':' list) when
 * given, else $KUBECONFIG, else the in-cluster service account, else
 * ~/.kube/config. Throws when none is there.
 */
export async function loadKubeCredentials(o: LoadOptions = {}): Promise<LoadedCredentials> {
  const env = o.env ?? process.env;
  const list = o.kubeconfig || env.KUBECONFIG;
  if (list) {
    const files = list.split(delimiter).filter(Boolean);
    return fromFiles(files, o);
  }
  const own = inCluster(o);
  if (own) return own;
  const home = o.home ?? env.HOME ?? homedir();
  const file = join(home, '.kube', 'config');
  try {
    statSync(file);
  } catch {
    throw new Error(`no kubeconfig: no --kubeconfig or $KUBECONFIG, not in a pod (KUBERNETES_SERVICE_HOST/PORT and ${join(o.serviceAccountDir ?? SERVICE_ACCOUNT_DIR, 'token')}), no ${file}`);
  }
  return fromFiles([file], o);
}
