// The operator's entry point: configuration, store, HTTP endpoints, leader
// election, the controller, and a staged shutdown on SIGTERM/SIGINT.
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi } from '../adapters/kube-api.ts';
import { normalizeStoreUrl, storeFromUrl } from '../adapters/store/index.ts';
import { Controller } from '../runtime/controller.ts';
import { LeaderElector, kubeLeaseApi } from '../runtime/leader-election.ts';
import { createLogger } from '../runtime/logger.ts';
import { createMetrics } from '../runtime/metrics.ts';
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

const kc = new KubeConfig();
if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
else kc.loadFromDefault();

const storeUrl = normalizeStoreUrl(config.store);
const store = storeFromUrl(storeUrl, {
  endpoint: config.s3Endpoint,
  region: config.s3Region ?? 'us-east-1',
  forcePathStyle: config.s3ForcePathStyle,
});
const metrics = createMetrics();
const api = new KubeApi(kc);
const controller = new Controller({
  kc,
  api,
  store,
  logger,
  metrics,
  watchNamespaces: config.watchNamespaces,
  maxConcurrentStreams: config.maxConcurrentStreams,
  idleTimeoutMs: config.idleTimeoutMs,
  statusIntervalMs: config.statusIntervalMs,
  finalizerDeadlineMs: config.shutdownTimeoutMs,
});

let elector: LeaderElector | undefined;
let electorRun: Promise<void> | undefined;
let leading = !config.leaderElect;
let stopping = false;
const lifetime = new AbortController();

function listen(addr: string): Server | undefined {
  if (addr === 'off') return undefined;
  const i = addr.lastIndexOf(':');
  const host = i > 0 ? addr.slice(0, i) : undefined;
  const port = Number(addr.slice(i + 1));
  const srv = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/healthz') {
      res.writeHead(stopping ? 503 : 200).end(stopping ? 'stopping\n' : 'ok\n');
    } else if (url === '/readyz') {
      // Ready: caches synced while leading, or a healthy standby.
      const ok = !stopping && (leading ? controller.ready() : (elector?.healthy() ?? false));
      res.writeHead(ok ? 200 : 503).end(ok ? 'ok\n' : 'not ready\n');
    } else if (url === '/metrics') {
      metrics.registry
        .metrics()
        .then((text: string) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text))
        .catch((err: unknown) => res.writeHead(500).end(String(err)));
    } else {
      res.writeHead(404).end();
    }
  });
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
  leaderElect: config.leaderElect,
  server: kc.getCurrentCluster()?.server,
});

if (config.leaderElect) {
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
    onStartedLeading: async () => {
      leading = true;
      logger.info('leading', { identity });
      await controller.start();
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
} else {
  controller.start().catch((err: unknown) => {
    logger.error('controller failed to start', { error: String((err as Error)?.stack ?? err) });
    process.exitCode = 1;
    void shutdown('start-failed');
  });
}
