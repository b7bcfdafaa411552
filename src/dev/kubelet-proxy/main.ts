// Kubelet fault proxy process, started by the cluster launcher in front of a
// hollow kubelet:
//   node src/dev/kubelet-proxy/main.ts --kubeconfig FILE --node-name NAME \
//     --listen IP:PORT --upstream 127.0.0.1:PORT --tls-cert FILE --tls-key FILE \
//     [--upstream-ca FILE] [--ready-file FILE]
// The faults of a log request are read from the API at request time: the
// pod's `sim.logtail.dev/faults` merged over the node's, as the simulator does.
// SIGTERM closes the port and exits.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi, isNotFound } from '../../adapters/kube-api.ts';
import { FAULTS_ANNOTATION, mergeFaults, parseFaults, type Faults } from '../simulator/script.ts';
import { KubeletProxy } from './proxy.ts';

const log = (m: string) => process.stdout.write(`${new Date().toISOString()} ${m}\n`);

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: main.ts --kubeconfig FILE --node-name NAME --listen IP:PORT --upstream HOST:PORT --tls-cert FILE --tls-key FILE [--upstream-ca FILE] [--ready-file FILE]\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    'node-name': { type: 'string' },
    listen: { type: 'string' },
    upstream: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'upstream-ca': { type: 'string' },
    'ready-file': { type: 'string' },
  },
  strict: true,
});
for (const k of ['kubeconfig', 'node-name', 'listen', 'upstream', 'tls-cert', 'tls-key'] as const) if (!values[k]) usage(`missing --${k}`);

function hostPort(v: string, flag: string): [string, number] {
  const i = v.lastIndexOf(':');
  const port = Number(v.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) usage(`--${flag} must be HOST:PORT, got ${v}`);
  return [v.slice(0, i), port];
}

const [listenHost, listenPort] = hostPort(values.listen!, 'listen');
const [upstreamHost, upstreamPort] = hostPort(values.upstream!, 'upstream');
const nodeName = values['node-name']!;
const kc = new KubeConfig();
kc.loadFromFile(values.kubeconfig!);
const api = new KubeApi(kc);

interface Annotated {
  metadata: { annotations?: Record<string, string> };
}

async function annotationOf(path: string): Promise<string | undefined> {
  try {
    return (await api.request<Annotated>('GET', path, undefined, 'application/json', 5000)).metadata.annotations?.[FAULTS_ANNOTATION];
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function parsed(raw: string | undefined, what: string): Faults {
  const p = parseFaults(raw);
  if (p.ok) return p.value;
  // The kubelet's runtime refuses such a pod with an Event; here it just gets no faults.
  log(`${what}: ${p.error}; no faults applied`);
  return {};
}

// The last faults seen per pod, for when the apiserver cannot be asked (it is restarting).
const lastKnown = new Map<string, Faults>();

async function faultsFor(namespace: string, pod: string): Promise<Faults> {
  const key = `${namespace}/${pod}`;
  try {
    const [podRaw, nodeRaw] = await Promise.all([
      annotationOf(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}`),
      annotationOf(`/api/v1/nodes/${encodeURIComponent(nodeName)}`),
    ]);
    const f = mergeFaults(parsed(nodeRaw, `node ${nodeName}`), parsed(podRaw, `pod ${key}`));
    lastKnown.set(key, f);
    if (lastKnown.size > 10_000) lastKnown.delete(lastKnown.keys().next().value!);
    return f;
  } catch (err) {
    const f = lastKnown.get(key) ?? {};
    log(`pod ${key}: reading its faults failed (${(err as Error).message}); using ${JSON.stringify(f)}`);
    return f;
  }
}

const proxy = new KubeletProxy({
  listenHost,
  listenPort,
  upstreamHost,
  upstreamPort,
  cert: readFileSync(values['tls-cert']!),
  key: readFileSync(values['tls-key']!),
  upstreamCa: values['upstream-ca'] ? readFileSync(values['upstream-ca']) : undefined,
  faultsFor,
  log,
});

const readyFile = values['ready-file'];
let stopping = false;
const shutdown = (sig: string) => {
  if (stopping) return;
  stopping = true;
  log(`${sig}: stopping`);
  setTimeout(() => process.exit(0), 2000).unref();
  if (readyFile) rmSync(readyFile, { force: true });
  api.close();
  void proxy.close().finally(() => process.exit(0));
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('uncaughtException', (err) => log(`uncaught: ${err.stack ?? String(err)}`));
process.on('unhandledRejection', (err) => log(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));

try {
  await proxy.listen();
} catch (err) {
  log(`listen on ${listenHost}:${listenPort} failed: ${(err as Error).message}`);
  process.exit(1);
}
log(`node ${nodeName}: proxy ${listenHost}:${proxy.port} -> kubelet ${upstreamHost}:${upstreamPort}`);
if (readyFile) {
  writeFileSync(readyFile + '.tmp', JSON.stringify({ pid: process.pid, port: proxy.port }) + '\n');
  renameSync(readyFile + '.tmp', readyFile);
}
