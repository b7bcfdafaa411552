// Helpers for operator e2e tests: the operator runs as a real child process
// against the fixture's apiserver, pods are played by the node simulator.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { freePort, sleep } from '../../../src/dev/proc.ts';
import { cluster, createNamespace, uniqueName, type TestCluster } from '../fixture.ts';

export const CRD_FILE = join(REPO_ROOT, 'crds', 'logtail.dev_logtails.yaml');
export const POLICY_CRD_FILE = join(REPO_ROOT, 'crds', 'logtail.dev_logtailpolicies.yaml');

let crdInstalled: Promise<void> | undefined;

export function installCrd(c: TestCluster): Promise<void> {
  if (!crdInstalled) {
    crdInstalled = (async () => {
      const r = await c.kubectl(['apply', '--server-side', '-f', CRD_FILE, '-f', POLICY_CRD_FILE]);
      if (r.code !== 0) throw new Error(`CRD apply failed: ${r.stderr}`);
      const w = await c.kubectl(['wait', '--for=condition=Established', 'crd/logtails.logtail.dev', 'crd/logtailpolicies.logtail.dev', '--timeout=60s']);
      if (w.code !== 0) throw new Error(`CRD not established: ${w.stderr}`);
    })();
  }
  return crdInstalled;
}

export { createNamespace } from '../fixture.ts';

export async function apply(c: TestCluster, obj: unknown): Promise<void> {
  const r = await c.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
  if (r.code !== 0) throw new Error(`kubectl apply failed: ${r.stderr}`);
}

export interface PodOptions {
  script?: unknown;
  faults?: unknown;
  initContainers?: string[];
  containers?: string[];
  restartPolicy?: 'Never' | 'OnFailure' | 'Always';
  nodeName?: string;
}

export function podManifest(ns: string, name: string, o: PodOptions = {}): Record<string, unknown> {
  const annotations: Record<string, string> = {};
  if (o.script !== undefined) annotations['sim.logtail.dev/script'] = typeof o.script === 'string' ? o.script : JSON.stringify(o.script);
  if (o.faults !== undefined) annotations['sim.logtail.dev/faults'] = typeof o.faults === 'string' ? o.faults : JSON.stringify(o.faults);
  const ctr = (n: string) => ({ name: n, image: 'busybox:stable' });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, annotations },
    spec: {
      restartPolicy: o.restartPolicy ?? 'Never',
      ...(o.nodeName ? { nodeName: o.nodeName } : {}),
      ...(o.initContainers ? { initContainers: o.initContainers.map(ctr) } : {}),
      containers: (o.containers ?? ['main']).map(ctr),
    },
  };
}

export function logTailManifest(ns: string, name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name, namespace: ns }, spec };
}

export interface LogTailObject {
  metadata: { name: string; namespace: string; uid: string; finalizers?: string[]; generation?: number };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    result?: string;
    reason?: string;
    message?: string;
    retries?: number;
    bytes?: number;
    exitCode?: number;
    observedGeneration?: number;
    podUID?: string;
    uncapturedRuns?: Array<{ container: string; init?: boolean; fromRestart: number; toRestart: number; reason: string }>;
    conditions?: Array<{ type: string; status: string; reason: string; message: string; lastTransitionTime: string }>;
    containers?: Array<{
      name: string;
      init?: boolean;
      restart: number;
      state: string;
      exitCode?: number;
      reason?: string;
      bytes: number;
      lines: number;
      streamRetries: number;
      lastError?: string;
      object?: { uri: string; size: number; sha256: string; objectSha256: string };
      truncatedBytes?: number;
    }>;
  };
}

export async function getLogTail(c: TestCluster, ns: string, name: string): Promise<LogTailObject | undefined> {
  const r = await c.kubectl(['get', 'logtail', name, '-n', ns, '-o', 'json']);
  if (r.code !== 0) {
    if (r.stderr.includes('NotFound')) return undefined;
    throw new Error(r.stderr);
  }
  return JSON.parse(r.stdout) as LogTailObject;
}

const TERMINAL = new Set(['Complete', 'Incomplete', 'Failed']);

export async function waitForLogTail(c: TestCluster, ns: string, name: string, timeoutMs: number, until: (lt: LogTailObject) => boolean = (lt) => TERMINAL.has(lt.status?.phase ?? '')): Promise<LogTailObject> {
  const end = Date.now() + timeoutMs;
  let last: LogTailObject | undefined;
  while (Date.now() < end) {
    last = await getLogTail(c, ns, name);
    if (last && until(last)) return last;
    await sleep(300);
  }
  throw new Error(`LogTail ${ns}/${name} did not reach the expected state in ${timeoutMs} ms; last status: ${JSON.stringify(last?.status)}`);
}

/**
 * The LogTail once its finalizer is gone. The operator removes it with a
 * patch after the terminal status, so a LogTail read the instant it turned
 * terminal may still carry it; a finalizer that stays past the bound fails.
 */
export async function waitForFinalizerRemoved(c: TestCluster, ns: string, name: string, timeoutMs = 20_000): Promise<LogTailObject> {
  return waitForLogTail(c, ns, name, timeoutMs, (lt) => TERMINAL.has(lt.status?.phase ?? '') && !(lt.metadata.finalizers ?? []).includes('logtail.dev/finalizer'));
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The simulator's record of what the container wrote, complete once it terminated. */
export function simOutputPath(c: TestCluster, ns: string, pod: string, container: string): string {
  return join(c.env.LOGTAIL_SIM_DIR!, ns, pod, `${container}.log`);
}

export async function waitForFile(path: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > end) throw new Error(`${path} did not appear`);
    await sleep(200);
  }
}

export function uriToPath(uri: string): string {
  if (!uri.startsWith('file://')) throw new Error(`not a file URI: ${uri}`);
  return fileURLToPath(uri);
}

export async function events(c: TestCluster, ns: string, name: string): Promise<Array<{ reason: string; message: string; type: string; metadata: { name: string } }>> {
  const r = await c.kubectl(['get', 'events', '-n', ns, '--field-selector', `involvedObject.kind=LogTail,involvedObject.name=${name}`, '-o', 'json']);
  if (r.code !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { items: Array<{ reason: string; message: string; type: string; metadata: { name: string } }> }).items;
}

/** An operator running as a child process; killed if the test process exits. */
export interface LaunchedOperator {
  child: ChildProcess;
  logFile: string;
  httpPort: number;
  log(): string;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

export interface OperatorProcess extends LaunchedOperator {
  storeDir: string;
}

const running = new Set<LaunchedOperator>();
process.on('exit', () => {
  for (const op of running) op.child.kill('SIGKILL');
});

/**
 * Starts `src/cmd/main.ts` with exactly `env` (nothing else is inherited) on a
 * free --http-addr, and returns once /readyz answers (informers synced, or a
 * healthy standby).
 */
export async function launchOperator(o: { args: string[]; env: NodeJS.ProcessEnv; readyTimeoutMs?: number; stopTimeoutMs?: number; waitFor?: '/readyz' | '/healthz'; isUp?: (port: number) => Promise<boolean>; main?: string }): Promise<LaunchedOperator> {
  const dir = mkdtempSync(join(tmpdir(), 'logtail-op-'));
  const logFile = join(dir, 'operator.log');
  const fd = openSync(logFile, 'a');
  const httpPort = await freePort();
  const child = spawn(process.execPath, [o.main ?? join(REPO_ROOT, 'src', 'cmd', 'main.ts'), '--http-addr', `127.0.0.1:${httpPort}`, ...o.args], { stdio: ['ignore', fd, fd], env: o.env });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const op: LaunchedOperator = {
    child,
    logFile,
    httpPort,
    log: () => readFileSync(logFile, 'utf8'),
    stop: async (signal = 'SIGTERM', timeoutMs = o.stopTimeoutMs ?? 30_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  running.add(op);
  child.on('exit', () => running.delete(op));
  const readyTimeoutMs = o.readyTimeoutMs ?? 30_000;
  const end = Date.now() + readyTimeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`operator exited ${child.exitCode}:\n${op.log()}`);
    try {
      if (o.isUp) {
        if (await o.isUp(httpPort)) return op;
      } else {
        const r = await fetch(`http://127.0.0.1:${httpPort}${o.waitFor ?? '/readyz'}`);
        if (r.ok) return op;
      }
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  throw new Error(`operator not ready in ${readyTimeoutMs / 1000} s:\n${op.log()}`);
}

export interface StartOperatorOptions {
  store?: string;
  args?: string[];
  env?: Record<string, string>;
  storeDir?: string;
  kubeconfig?: string;
  waitFor?: '/readyz' | '/healthz';
  isUp?: (port: number) => Promise<boolean>;
  /** Another build's src/cmd/main.ts (e.g. an older commit's, for an upgrade). */
  main?: string;
}

/** The operator with the fixture's admin kubeconfig and environment, on a filesystem store. */
export async function startOperator(c: TestCluster, o: StartOperatorOptions = {}): Promise<OperatorProcess> {
  const storeDir = o.storeDir ?? mkdtempSync(join(tmpdir(), 'logtail-store-'));
  mkdirSync(storeDir, { recursive: true });
  const op = await launchOperator({
    args: ['--store', o.store ?? `file://${storeDir}`, '--status-interval', '500ms', ...(o.args ?? [])],
    env: { ...process.env, ...c.env, KUBECONFIG: o.kubeconfig ?? c.kubeconfigPath, LOG_LEVEL: 'debug', ...o.env },
    ...(o.waitFor ? { waitFor: o.waitFor } : {}),
    ...(o.isUp ? { isUp: o.isUp } : {}),
    ...(o.main ? { main: o.main } : {}),
  });
  return Object.assign(op, { storeDir });
}

const logTail = (op: LaunchedOperator, lines: number): string => op.log().split('\n').slice(-lines).join('\n');

export interface OperatorSuiteOptions {
  /** uniqueName prefixes of the namespaces created in `before`, in order (`suite.ns` is the first). */
  namespaces?: string[];
  /** Operators started in `before` after the namespaces, in order (`suite.ops`, `suite.op` the first); a function is given the suite. */
  operators?: Array<StartOperatorOptions | ((s: OperatorSuite) => StartOperatorOptions)>;
  /** Lines of each operator's log printed when a test fails (default 40). */
  logLines?: number;
  /** Cleanup in `after` while the operators still run (skipped if `before` did not get the cluster). */
  beforeStop?: (s: OperatorSuite) => Promise<unknown>;
  /** Cleanup in `after` once they are stopped (skipped likewise). */
  afterStop?: (s: OperatorSuite) => Promise<unknown>;
}

export interface OperatorSuite {
  readonly c: TestCluster;
  /** The first namespace. */
  readonly ns: string;
  readonly namespaces: string[];
  /** The first operator. Assign one started later (or a replacement): the suite stops it in `after`. */
  op: OperatorProcess;
  readonly ops: OperatorProcess[];
  /** An operator for the running test only: stopped (SIGTERM) after it. */
  operator(o?: StartOperatorOptions): Promise<OperatorProcess>;
}

/**
 * The shared setup of the operator e2e suites, as mocha hooks of the calling
 * `describe`: `before` gets the cluster, installs the CRDs, creates the
 * namespaces and starts the operators; `afterEach` prints each operator's log
 * tail when the test failed and stops the test's own operators; `after` stops
 * the suite's operators (a SIGSTOPped one is continued first) and prints the
 * log of one that did not exit 0. Hooks the caller registers later run after
 * these, of the same kind.
 */
export function useOperatorSuite(o: OperatorSuiteOptions = {}): OperatorSuite {
  let c: TestCluster | undefined;
  const namespaces: string[] = [];
  const ops: OperatorProcess[] = [];
  const testOps: OperatorProcess[] = [];
  const lines = o.logLines ?? 40;
  const suite: OperatorSuite = {
    get c() {
      if (!c) throw new Error('useOperatorSuite: no cluster (before() failed)');
      return c;
    },
    get ns() {
      const ns = namespaces[0];
      if (ns === undefined) throw new Error('useOperatorSuite: no namespace');
      return ns;
    },
    namespaces,
    get op() {
      const op = ops[0];
      if (!op) throw new Error('useOperatorSuite: no operator started');
      return op;
    },
    set op(op: OperatorProcess) {
      ops[0] = op;
    },
    ops,
    async operator(so = {}) {
      const op = await startOperator(suite.c, so);
      testOps.push(op);
      return op;
    },
  };

  before(async function () {
    this.timeout(300_000);
    c = await cluster();
    await installCrd(c);
    for (const prefix of o.namespaces ?? []) {
      const ns = uniqueName(prefix);
      await createNamespace(c, ns);
      namespaces.push(ns);
    }
    for (const so of o.operators ?? []) ops.push(await startOperator(c, typeof so === 'function' ? so(suite) : so));
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') for (const op of [...ops, ...testOps]) console.error('operator log tail:\n' + logTail(op, lines));
    await Promise.all(testOps.map((op) => op.stop('SIGTERM')));
    testOps.length = 0;
  });

  after(async function () {
    if (c && o.beforeStop) await o.beforeStop(suite);
    const codes = await Promise.all(
      ops.map((op) => {
        if (op.child.exitCode === null && op.child.signalCode === null) op.child.kill('SIGCONT');
        return op.stop('SIGTERM');
      }),
    );
    codes.forEach((code, i) => {
      if (code !== 0 && code !== null) console.error(`operator exited ${code}:\n` + logTail(ops[i]!, lines));
    });
    if (c && o.afterStop) await o.afterStop(suite);
  });

  return suite;
}
