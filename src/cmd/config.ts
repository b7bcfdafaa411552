// Operator settings: every flag has an environment variable, flags win.
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseDuration } from '../core/duration.ts';
import { parseByteSize } from '../core/quantity.ts';

export interface OperatorConfig {
  store: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3ForcePathStyle: boolean;
  s3Sse?: 'AES256' | 'aws:kms';
  s3SseKmsKeyId?: string;
  s3CaBundle?: string;
  watchNamespaces: string[];
  maxConcurrentStreams: number;
  maxStreamsPerNamespace?: number;
  minStreamHoldMs: number;
  bufferMemory: number;
  spoolDir?: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  shard: boolean;
  shardId: string;
  shardLeaseDurationMs: number;
  httpAddr: string;
  idleTimeoutMs: number;
  statusIntervalMs: number;
  statusWritesPerSecond: number;
  shutdownTimeoutMs: number;
  kubeconfig?: string;
  logLevel: string;
  requireAdmissionPolicy: boolean;
  admissionPolicyName: string;
  admissionPolicyBindingName: string;
  admissionPolicyRecheckMs: number;
  metricsAuth: boolean;
  httpTlsCertFile?: string;
  httpTlsKeyFile?: string;
  policies: boolean;
  enableHoldPod: boolean;
}

interface FlagDef {
  flag: string;
  env: string;
  help: string;
  kind: 'string' | 'bool' | 'int' | 'duration' | 'list' | 'bytes';
}

const IN_CLUSTER = existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token') && !!process.env.KUBERNETES_SERVICE_HOST;

export const FLAGS: Record<keyof OperatorConfig, FlagDef> = {
  store: { flag: '--store', env: 'LOGTAIL_STORE', kind: 'string', help: 'object store URL: file:///abs/dir (a relative path is resolved at start-up) or s3://bucket/prefix. Default file://./logtail-data' },
  s3Endpoint: { flag: '--s3-endpoint', env: 'LOGTAIL_S3_ENDPOINT', kind: 'string', help: 'S3 endpoint URL for S3-compatible servers (default: AWS)' },
  s3Region: { flag: '--s3-region', env: 'AWS_REGION', kind: 'string', help: 'S3 region (default us-east-1)' },
  s3ForcePathStyle: { flag: '--s3-force-path-style', env: 'LOGTAIL_S3_FORCE_PATH_STYLE', kind: 'bool', help: 'path-style S3 addressing (default: true when --s3-endpoint is set)' },
  s3Sse: { flag: '--s3-sse', env: 'LOGTAIL_S3_SSE', kind: 'string', help: 'server-side encryption of every object: AES256 (SSE-S3) or aws:kms (SSE-KMS) (default: none requested; the bucket default applies)' },
  s3SseKmsKeyId: { flag: '--s3-sse-kms-key-id', env: 'LOGTAIL_S3_SSE_KMS_KEY_ID', kind: 'string', help: 'KMS key id or ARN for --s3-sse aws:kms (default: the AWS managed key)' },
  s3CaBundle: { flag: '--s3-ca-bundle', env: 'LOGTAIL_S3_CA_BUNDLE', kind: 'string', help: 'PEM file of CA certificates to trust for an https --s3-endpoint (default: Node\'s built-in roots)' },
  watchNamespaces: { flag: '--watch-namespaces', env: 'LOGTAIL_WATCH_NAMESPACES', kind: 'list', help: 'comma-separated namespaces to watch (default: all); one informer per namespace, so namespaced Roles suffice' },
  maxConcurrentStreams: { flag: '--max-concurrent-streams', env: 'LOGTAIL_MAX_CONCURRENT_STREAMS', kind: 'int', help: 'log streams open at once; further captures wait as phase Pending, reason WaitingForSlot (default 64)' },
  maxStreamsPerNamespace: { flag: '--max-streams-per-namespace', env: 'LOGTAIL_MAX_STREAMS_PER_NAMESPACE', kind: 'int', help: 'at most this many streams for one namespace; slots are shared fairly between namespaces either way (default: no cap)' },
  minStreamHoldMs: { flag: '--min-stream-hold', env: 'LOGTAIL_MIN_STREAM_HOLD', kind: 'duration', help: 'a stream keeps its slot at least this long before a namespace over its fair share is asked to give it back to a waiting namespace (it then resumes from its checkpoint); 0s: at once (default 10s)' },
  bufferMemory: { flag: '--buffer-memory', env: 'LOGTAIL_BUFFER_MEMORY', kind: 'bytes', help: 'process-wide budget for log bytes read ahead of the store, shared by all streams; over it each stream pauses at 64 KiB (backpressure; the kubelet keeps the log) (default 64Mi)' },
  spoolDir: { flag: '--spool-dir', env: 'LOGTAIL_SPOOL_DIR', kind: 'string', help: 'directory where S3 multipart parts wait for upload (a cache; at most 3 parts of 8 MiB per open object) and spec.maxBytes captures keep a run\'s tail (about maxBytes + 1 MiB per stream) (default: $TMPDIR/logtail-spool)' },
  leaderElect: { flag: '--leader-elect', env: 'LOGTAIL_LEADER_ELECT', kind: 'bool', help: 'elect a leader on a coordination.k8s.io Lease (default: true in-cluster, false otherwise)' },
  leaderElectionNamespace: { flag: '--leader-election-namespace', env: 'LOGTAIL_LEADER_ELECTION_NAMESPACE', kind: 'string', help: "namespace of the Lease (default: the pod's namespace in-cluster, else default)" },
  leaderElectionId: { flag: '--leader-election-id', env: 'LOGTAIL_LEADER_ELECTION_ID', kind: 'string', help: 'name of the Lease (default logtail-operator)' },
  shard: { flag: '--shard', env: 'LOGTAIL_SHARD', kind: 'bool', help: 'sharding: every replica captures, each LogTail owned by one live replica (membership: one Lease per replica in --leader-election-namespace, labelled logtail.dev/shard-group=<--leader-election-id>; assignment: rendezvous hash of the LogTail UID; the owner is recorded in the annotation logtail.dev/owner). Replaces --leader-elect (default false)' },
  shardId: { flag: '--shard-id', env: 'LOGTAIL_SHARD_ID', kind: 'string', help: 'this replica\'s id with --shard, unique among the replicas (default: $POD_NAME, else hostname-pid)' },
  shardLeaseDurationMs: { flag: '--shard-lease-duration', env: 'LOGTAIL_SHARD_LEASE_DURATION', kind: 'duration', help: 'with --shard: a replica whose Lease has not changed for this long is gone and its LogTails move; it renews every 2/15 of it and stops every capture when it could not renew for 2/3 of it, claiming afresh once it renews again (default 15s)' },
  httpAddr: { flag: '--http-addr', env: 'LOGTAIL_HTTP_ADDR', kind: 'string', help: 'listen address for /metrics, /healthz, /readyz (default :8080; "off" disables)' },
  idleTimeoutMs: { flag: '--idle-timeout', env: 'LOGTAIL_IDLE_TIMEOUT', kind: 'duration', help: 'a log stream with no byte for this long is treated as stalled and resumed (default 60s)' },
  statusIntervalMs: { flag: '--status-interval', env: 'LOGTAIL_STATUS_INTERVAL', kind: 'duration', help: 'how often at most one capture\'s bytes/checkpoint are written to status while streaming (default 2s; with many captures --status-writes-per-second spreads them further)' },
  statusWritesPerSecond: { flag: '--status-writes-per-second', env: 'LOGTAIL_STATUS_WRITES_PER_SECOND', kind: 'int', help: 'budget for progress (bytes/checkpoint) status writes, all captures together; phase changes and final status go first and are not held back; with N captures streaming each one\'s checkpoint is written at least every max(--status-interval, N / this) seconds (default 20)' },
  shutdownTimeoutMs: { flag: '--shutdown-timeout', env: 'LOGTAIL_SHUTDOWN_TIMEOUT', kind: 'duration', help: 'on SIGTERM, time allowed to stop captures and write their status (default 20s)' },
  kubeconfig: { flag: '--kubeconfig', env: 'KUBECONFIG', kind: 'string', help: 'kubeconfig file, or a list separated by ":" (default: in-cluster config, else ~/.kube/config)' },
  logLevel: { flag: '--log-level', env: 'LOG_LEVEL', kind: 'string', help: 'error, warn, info or debug (default info)' },
  requireAdmissionPolicy: { flag: '--require-admission-policy', env: 'LOGTAIL_REQUIRE_ADMISSION_POLICY', kind: 'bool', help: 'capture only while the ValidatingAdmissionPolicy and binding named below exist (checked at start-up and on each leadership term); until then capture nothing and mark each unfinished LogTail AdmissionPolicyMissing (default false; the chart sets true)' },
  admissionPolicyName: { flag: '--admission-policy-name', env: 'LOGTAIL_ADMISSION_POLICY_NAME', kind: 'string', help: 'name of the ValidatingAdmissionPolicy that --require-admission-policy looks for (default logtail-operator-pod-log-access)' },
  admissionPolicyBindingName: { flag: '--admission-policy-binding-name', env: 'LOGTAIL_ADMISSION_POLICY_BINDING_NAME', kind: 'string', help: 'name of its ValidatingAdmissionPolicyBinding (default: the policy name)' },
  admissionPolicyRecheckMs: { flag: '--admission-policy-recheck-interval', env: 'LOGTAIL_ADMISSION_POLICY_RECHECK_INTERVAL', kind: 'duration', help: 'while the admission policy is missing, how often to look again (default 30s)' },
  metricsAuth: { flag: '--metrics-auth', env: 'LOGTAIL_METRICS_AUTH', kind: 'bool', help: 'serve /metrics only to callers whose bearer token passes a TokenReview and a SubjectAccessReview for get on the non-resource URL /metrics (default false)' },
  httpTlsCertFile: { flag: '--http-tls-cert-file', env: 'LOGTAIL_HTTP_TLS_CERT_FILE', kind: 'string', help: 'PEM certificate (chain): serve --http-addr over HTTPS (with --http-tls-key-file); default plain HTTP' },
  httpTlsKeyFile: { flag: '--http-tls-key-file', env: 'LOGTAIL_HTTP_TLS_KEY_FILE', kind: 'string', help: 'PEM private key for --http-tls-cert-file' },
  enableHoldPod: { flag: '--enable-hold-pod', env: 'LOGTAIL_ENABLE_HOLD_POD', kind: 'bool', help: 'honour spec.holdPod: put a finalizer on a captured pod until its log is stored (needs patch on pods; the chart grants it with holdPod.enabled). Off: such LogTails capture without a hold, condition PodHeld=False/HoldNotPermitted (default false)' },
  policies: { flag: '--policies', env: 'LOGTAIL_POLICIES', kind: 'bool', help: 'run the LogTailPolicy controller: one LogTail per matching pod created after a policy (needs the logtailpolicies CRD; default true)' },
};

function podNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

export class ConfigError extends Error {}

function parseBool(v: string, name: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(`${name}: expected true or false, got "${v}"`);
}

export function usage(): string {
  const lines = ['usage: logtail-operator [flags]', '', 'Every flag can also be set through the environment variable shown.', ''];
  for (const def of Object.values(FLAGS)) lines.push(`  ${def.flag.padEnd(30)} ${def.env.padEnd(34)} ${def.help}`);
  return lines.join('\n') + '\n';
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  const raw = new Map<keyof OperatorConfig, string>();
  for (const [key, def] of Object.entries(FLAGS) as Array<[keyof OperatorConfig, FlagDef]>) {
    const v = env[def.env];
    if (v !== undefined && v !== '') raw.set(key, v);
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') throw new ConfigError(usage());
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    const entry = (Object.entries(FLAGS) as Array<[keyof OperatorConfig, FlagDef]>).find(([, d]) => d.flag === name);
    if (!entry) throw new ConfigError(`unknown flag ${name}\n\n${usage()}`);
    const [key, def] = entry;
    let value: string;
    if (eq > 0) value = a.slice(eq + 1);
    else if (def.kind === 'bool' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) value = 'true';
    else {
      const next = argv[++i];
      if (next === undefined) throw new ConfigError(`${name} needs a value`);
      value = next;
    }
    raw.set(key, value);
  }
  const get = (k: keyof OperatorConfig) => raw.get(k);
  const num = (k: keyof OperatorConfig, dflt: number): number => {
    const v = get(k);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${FLAGS[k].flag}: expected a positive integer, got "${v}"`);
    return n;
  };
  const dur = (k: keyof OperatorConfig, dflt: string): number => {
    const v = get(k) ?? dflt;
    try {
      return parseDuration(v);
    } catch (err) {
      throw new ConfigError(`${FLAGS[k].flag}: ${(err as Error).message}`);
    }
  };
  const bytes = (k: keyof OperatorConfig, dflt: string): number => {
    const v = get(k) ?? dflt;
    try {
      return parseByteSize(v);
    } catch (err) {
      throw new ConfigError(`${FLAGS[k].flag}: ${(err as Error).message}`);
    }
  };
  const s3Endpoint = get('s3Endpoint');
  const sse = get('s3Sse');
  if (sse !== undefined && sse !== 'AES256' && sse !== 'aws:kms') throw new ConfigError(`${FLAGS.s3Sse.flag}: expected AES256 or aws:kms, got "${sse}"`);
  if (get('s3SseKmsKeyId') !== undefined && sse !== 'aws:kms') throw new ConfigError(`${FLAGS.s3SseKmsKeyId.flag} needs ${FLAGS.s3Sse.flag} aws:kms`);
  if (!!get('httpTlsCertFile') !== !!get('httpTlsKeyFile')) throw new ConfigError(`${FLAGS.httpTlsCertFile.flag} and ${FLAGS.httpTlsKeyFile.flag} go together`);
  const shard = get('shard') !== undefined ? parseBool(get('shard')!, FLAGS.shard.flag) : false;
  if (shard && get('leaderElect') !== undefined && parseBool(get('leaderElect')!, FLAGS.leaderElect.flag)) {
    throw new ConfigError(`${FLAGS.shard.flag} and ${FLAGS.leaderElect.flag} exclude each other: with sharding every replica captures`);
  }
  const shardLease = dur('shardLeaseDurationMs', '15s');
  if (shardLease < 3000) throw new ConfigError(`${FLAGS.shardLeaseDurationMs.flag}: at least 3s`);
  return {
    store: get('store') ?? 'file://./logtail-data',
    s3Endpoint,
    s3Region: get('s3Region'),
    s3ForcePathStyle: get('s3ForcePathStyle') !== undefined ? parseBool(get('s3ForcePathStyle')!, FLAGS.s3ForcePathStyle.flag) : !!s3Endpoint,
    s3Sse: sse as OperatorConfig['s3Sse'],
    s3SseKmsKeyId: get('s3SseKmsKeyId'),
    s3CaBundle: get('s3CaBundle'),
    watchNamespaces: (get('watchNamespaces') ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    maxConcurrentStreams: num('maxConcurrentStreams', 64),
    ...(get('maxStreamsPerNamespace') !== undefined ? { maxStreamsPerNamespace: num('maxStreamsPerNamespace', 1) } : {}),
    minStreamHoldMs: dur('minStreamHoldMs', '10s'),
    bufferMemory: bytes('bufferMemory', '64Mi'),
    spoolDir: get('spoolDir'),
    leaderElect: get('leaderElect') !== undefined ? parseBool(get('leaderElect')!, FLAGS.leaderElect.flag) : IN_CLUSTER && !shard,
    shard,
    shardId: get('shardId') ?? (env.POD_NAME || `${hostname()}-${process.pid}`),
    shardLeaseDurationMs: shardLease,
    leaderElectionNamespace: get('leaderElectionNamespace') ?? podNamespace(),
    leaderElectionId: get('leaderElectionId') ?? 'logtail-operator',
    httpAddr: get('httpAddr') ?? ':8080',
    idleTimeoutMs: dur('idleTimeoutMs', '60s'),
    statusIntervalMs: dur('statusIntervalMs', '2s'),
    statusWritesPerSecond: num('statusWritesPerSecond', 20),
    shutdownTimeoutMs: dur('shutdownTimeoutMs', '20s'),
    kubeconfig: get('kubeconfig'),
    logLevel: get('logLevel') ?? 'info',
    requireAdmissionPolicy: get('requireAdmissionPolicy') !== undefined ? parseBool(get('requireAdmissionPolicy')!, FLAGS.requireAdmissionPolicy.flag) : false,
    admissionPolicyName: get('admissionPolicyName') ?? 'logtail-operator-pod-log-access',
    admissionPolicyBindingName: get('admissionPolicyBindingName') ?? get('admissionPolicyName') ?? 'logtail-operator-pod-log-access',
    admissionPolicyRecheckMs: dur('admissionPolicyRecheckMs', '30s'),
    metricsAuth: get('metricsAuth') !== undefined ? parseBool(get('metricsAuth')!, FLAGS.metricsAuth.flag) : false,
    httpTlsCertFile: get('httpTlsCertFile'),
    httpTlsKeyFile: get('httpTlsKeyFile'),
    policies: get('policies') !== undefined ? parseBool(get('policies')!, FLAGS.policies.flag) : true,
    enableHoldPod: get('enableHoldPod') !== undefined ? parseBool(get('enableHoldPod')!, FLAGS.enableHoldPod.flag) : false,
  };
}
