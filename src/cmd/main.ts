// The operator's entry point: configuration, store, HTTP endpoints, leader
// election, the controller, and a staged shutdown on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { hostname } from 'node:os';
import { KubeApi } from '../adapters/kube-api.ts';
import { loadKubeCredentials, type LoadedCredentials } from '../adapters/kube-credentials.ts';
import { readAheadBudget } from '../adapters/log-stream.ts';
import { CaptureError } from '../adapters/errors.ts';
import { retry } from '../adapters/retry.ts';
import { normalizeStoreUrl, storeFromUrl } from '../adapters/store/index.ts';
import { Controller } from '../runtime/controller.ts';
import { AdmissionGate } from '../runtime/admission-gate.ts';
import { PolicyController } from '../runtime/policy-controller.ts';
import { LeaderElector, kubeLeaseApi } from '../runtime/leader-election.ts';
import { ShardMembership, Sharding, kubeShardApi } from '../runtime/sharding.ts';
import { createLogger } from '../runtime/logger.ts';
import { createMetrics } from '../runtime/metrics.ts';
import { MetricsAuthorizer } from '../runtime/metrics-auth.ts';
import { ConfigError, loadConfig } from './config.ts';
import { checkNodeVersion } from './node-version.ts';

checkNodeVersion('logtail-operator');

let cfg;
try {
  cfg = loadConfig(process.argv.slice(2));
} catch (err) {
  if (err instanceof ConfigError) {
    const help = err.message.startsWith('usage:');
    process[help ? 'stdout' : 'stderr'].write(err.message.endsWith('\n') ? err.message : err.message + '\n');
    process.exit(help ? 0 : 2);
  }
  throw err;
}
const config = cfg;
const logger = createLogger({ level: config.logLevel });

// Our own loader (in-cluster service account, kubeconfig files with tokens or
// client certificates); client-node's KubeConfig only for what it does not
// handle (exec, auth-provider, basic auth, impersonation, proxy-url).
let kc: LoadedCredentials;
try {
  kc = await loadKubeCredentials({ kubeconfig: config.kubeconfig });
} catch (err) {
  logger.error('cannot load credentials', { error: (err as Error).message });
  process.stderr.write(`logtail-operator: cannot load credentials: ${(err as Error).message}\n`);
  process.exit(1);
}
logger.info('credentials', { source: kc.source, clientNodeKubeConfig: kc.fallback });

const storeUrl = normalizeStoreUrl(config.store);
const store = await storeFromUrl(storeUrl, {
  endpoint: config.s3Endpoint,
  region: config.s3Region ?? 'us-east-1',
  forcePathStyle: config.s3ForcePathStyle,
  ...(config.s3Sse ? { sse: config.s3Sse } : {}),
  ...(config.s3SseKmsKeyId ? { sseKmsKeyId: config.s3SseKmsKeyId } : {}),
  ...(config.s3CaBundle ? { caBundle: config.s3CaBundle } : {}),
  ...(config.spoolDir ? { spoolDir: config.spoolDir } : {}),
});
readAheadBudget.limit = config.bufferMemory;
const metrics = createMetrics();
const api = new KubeApi(kc);
// --shard: one Lease per replica; only the owner of a LogTail reconciles it (runtime/sharding.ts).
const membership = config.shard
  ? new ShardMembership({
      api: kubeShardApi(api),
      namespace: config.leaderElectionNamespace,
      group: config.leaderElectionId,
      id: config.shardId,
      leaseDurationMs: config.shardLeaseDurationMs,
      ...(process.env.POD_NAME && process.env.POD_UID ? { pod: { name: process.env.POD_NAME, uid: process.env.POD_UID } } : {}),
      logger,
    })
  : undefined;
const sharding = membership ? new Sharding({ membership, api: kubeShardApi(api), logger, onOwned: (n) => metrics.shardOwned.set(n) }) : undefined;
const controller = new Controller({
  kc,
  api,
  store,
  logger,
  metrics,
  watchNamespaces: config.watchNamespaces,
  maxConcurrentStreams: config.maxConcurrentStreams,
  ...(config.maxStreamsPerNamespace ? { maxStreamsPerNamespace: config.maxStreamsPerNamespace } : {}),
  minStreamHoldMs: config.minStreamHoldMs,
  idleTimeoutMs: config.idleTimeoutMs,
  statusIntervalMs: config.statusIntervalMs,
  statusWritesPerSecond: config.statusWritesPerSecond,
  finalizerDeadlineMs: config.shutdownTimeoutMs,
  ...(config.spoolDir ? { spoolDir: config.spoolDir } : {}),
  holdPodEnabled: config.enableHoldPod,
  ...(sharding ? { shard: sharding } : {}),
});

// LogTailPolicy: creates LogTails, which the controller above captures.
const policyController = config.policies ? new PolicyController({ kc, api, logger, metrics, watchNamespaces: config.watchNamespaces }) : undefined;

// --require-admission-policy: hold the controller back until the policy exists.
const gate = config.requireAdmissionPolicy
  ? new AdmissionGate({
      api,
      logger,
      names: { policy: config.admissionPolicyName, binding: config.admissionPolicyBindingName },
      watchNamespaces: config.watchNamespaces,
      recheckMs: config.admissionPolicyRecheckMs,
    })
  : undefined;

/** Starts the controller, after the admission policy check when one is required. */
async function startCapturing(signal: AbortSignal): Promise<void> {
  if (gate && !(await gate.waitUntilPresent(signal))) return;
  await controller.start();
  // Not awaited: its informers wait for the logtailpolicies CRD (retrying) without holding captures back.
  policyController?.start().catch((err: unknown) => logger.error('policy controller failed to start', { error: String(err) }));
}

let elector: LeaderElector | undefined;
let electorRun: Promise<void> | undefined;
let leading = !config.leaderElect;
let stopping = false;
const lifetime = new AbortController();

// --metrics-auth: /metrics behind TokenReview + SubjectAccessReview.
const metricsAuth = config.metricsAuth ? new MetricsAuthorizer({ api }) : undefined;

function serveMetrics(req: IncomingMessage, res: ServerResponse): void {
  const send = () =>
    metrics.registry
      .metrics()
      .then((text: string) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text))
      .catch((err: unknown) => res.writeHead(500).end(String(err)));
  if (!metricsAuth) {
    void send();
    return;
  }
  metricsAuth
    .check(req.headers.authorization)
    .then((r) => {
      if (r.status === 200) return send();
      if (r.status === 500) logger.warn('metrics authorization failed', { error: r.message });
      else logger.debug('metrics request refused', { status: r.status, reason: r.message });
      res.writeHead(r.status, { 'Content-Type': 'text/plain', ...(r.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {}) }).end(r.message + '\n');
    })
    .catch((err: unknown) => res.writeHead(500).end(String(err)));
}

function listen(addr: string): Server | undefined {
  if (addr === 'off') return undefined;
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i) : undefined;
  const port = Number(addr.slice(i + 1));
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (url === '/healthz') {
      res.writeHead(stopping ? 503 : 200).end(stopping ? 'stopping\n' : 'ok\n');
    } else if (url === '/readyz') {
      // Ready: caches synced while leading (with --shard: and our Lease renewed), or a healthy standby.
      const ok = !stopping && (leading ? controller.ready() && (membership?.healthy() ?? true) : (elector?.healthy() ?? false));
      const blocked = leading ? gate?.blockedBecause() : undefined;
      res.writeHead(ok ? 200 : 503).end(ok ? 'ok\n' : blocked ? `not ready: ${blocked}\n` : 'not ready\n');
    } else if (url === '/metrics') {
      serveMetrics(req, res);
    } else {
      res.writeHead(404).end();
    }
  };
  const srv: Server =
    config.httpTlsCertFile && config.httpTlsKeyFile
      ? (createHttpsServer({ cert: readFileSync(config.httpTlsCertFile), key: readFileSync(config.httpTlsKeyFile) }, handler) as unknown as Server)
      : createServer(handler);
  srv.on('error', (err) => {
    logger.error('http server failed', { addr, error: String(err) });
    process.exitCode = 1;
    void shutdown('http-error');
  });
  srv.listen(port, host);
  return srv;
}

async function shutdown(why: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info('shutting down', { why, activeCaptures: controller.activeCaptures() });
  const hard = setTimeout(() => {
    logger.error('shutdown deadline passed; exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs + 5000);
  hard.unref();
  try {
    await controller.stop('OperatorExiting', config.shutdownTimeoutMs);
  } catch (err) {
    logger.error('error while stopping captures', { error: String(err) });
  }
  // Only after every capture stopped: releasing the Lease lets the other replicas take our LogTails at once.
  await membership?.stop();
  await policyController?.stop().catch((err: unknown) => logger.error('error while stopping the policy controller', { error: String(err) }));
  lifetime.abort();
  await electorRun?.catch(() => undefined);
  server?.close();
  api.close();
  await store.close?.();
  logger.info('stopped');
  // winston flushes asynchronously
  setTimeout(() => process.exit(process.exitCode ?? 0), 100);
}

process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

const server = listen(config.httpAddr);
logger.info('starting', {
  store: storeUrl,
  watchNamespaces: config.watchNamespaces.length ? config.watchNamespaces : 'all',
  maxConcurrentStreams: config.maxConcurrentStreams,
  bufferMemory: config.bufferMemory,
  ...(storeUrl.startsWith('s3://') ? { spoolDir: config.spoolDir ?? 'default (TMPDIR/logtail-spool)' } : {}),
  leaderElect: config.leaderElect,
  ...(config.shard ? { shard: config.shardId } : {}),
  requireAdmissionPolicy: config.requireAdmissionPolicy,
  metricsAuth: config.metricsAuth,
  httpTls: !!config.httpTlsCertFile,
  server: kc.getCurrentCluster()?.server,
});

// "Never overwrite" rests on the store: an S3 server that ignores
// If-None-Match: * would silently replace objects. Check before anything runs,
// standbys included; refuse to run (exit 1) on such a store. Transient errors
// (store not reachable yet) are retried for a while first.
if (store.verifyConditionalWrites) {
  try {
    await retry(() => store.verifyConditionalWrites!(), { initialIntervalMs: 500, maxIntervalMs: 5_000, maxElapsedMs: 60_000 }, {
      classify: (e) => (e instanceof CaptureError ? e.kind : 'transient'),
      onRetry: (e, attempt) => logger.warn('store check failed; retrying', { attempt, error: (e as Error).message }),
    });
    logger.info('store refuses overwrites (If-None-Match: * honoured on PutObject and CompleteMultipartUpload)', { store: storeUrl });
  } catch (err) {
    const e = err instanceof Error && err.name === 'RetryExhaustedError' && err.cause instanceof Error ? err.cause : (err as Error);
    logger.error('refusing to run: the object store cannot guarantee that a stored log is never overwritten', { store: storeUrl, error: e.message });
    process.stderr.write(`logtail-operator: refusing to run: ${e.message}\n`);
    process.exitCode = 1;
    await shutdown('store-check-failed');
  }
}

if (stopping) {
  // refused above; shutdown() exits
} else if (config.leaderElect) {
  const identity = `${hostname()}-${process.pid}`;
  elector = new LeaderElector({
    api: kubeLeaseApi(api),
    namespace: config.leaderElectionNamespace,
    name: config.leaderElectionId,
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    logger,
    onStartedLeading: async (term: AbortSignal) => {
      leading = true;
      logger.info('leading', { identity });
      await startCapturing(AbortSignal.any([term, lifetime.signal]));
    },
    onStoppedLeading: () => {
      leading = false;
      if (stopping) return;
      // Another replica may already be capturing: stop at once and let the
      // Deployment restart us as a standby.
      logger.error('lost leadership; exiting');
      process.exitCode = 1;
      void shutdown('lost-leadership');
    },
  });
  electorRun = elector.run(lifetime.signal);
} else if (membership) {
  membership.onChange = () => {
    metrics.shardMembers.set(membership.live().length);
    controller.resync();
  };
  membership.onLost = () => {
    // Another replica may take our LogTails once our Lease looks expired to it: stop every capture now.
    // We keep renewing; a new term starts when that succeeds, and our earlier claims are then claimed afresh.
    controller.stopCaptures('LostLeadership');
  };
  // Our Lease first, and one look at the members, so the first reconciles already hash over them.
  membership
    .start()
    .then(() => startCapturing(lifetime.signal))
    .catch((err: unknown) => {
      logger.error('controller failed to start', { error: String((err as Error)?.stack ?? err) });
      process.exitCode = 1;
      void shutdown('start-failed');
    });
} else {
  startCapturing(lifetime.signal).catch((err: unknown) => {
    logger.error('controller failed to start', { error: String((err as Error)?.stack ?? err) });
    process.exitCode = 1;
    void shutdown('start-failed');
  });
}
