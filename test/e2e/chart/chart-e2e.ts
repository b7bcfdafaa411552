// Helpers for the chart's proofs on the local control plane: apply what
// `helm template` renders, ask the authorizer about the chart's
// ServiceAccount, and run the operator with that ServiceAccount's token.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../../../src/dev/proc.ts';
import { cluster, createNamespace, uniqueName, type TestCluster } from '../fixture.ts';
import { launchOperator, type LaunchedOperator } from '../operator/harness.ts';
import { CHART_CRD, CHART_POLICY_CRD, renderRaw, parseManifests, type RenderOptions, type K8sObject, type Deployment } from '../../unit/chart/chart-helpers.ts';

export const PSA_VIOLATION_WARNING = /would violate PodSecurity "restricted:latest"/;
export const PSA_REFUSED = /violates PodSecurity "restricted:latest"/;

let crd: Promise<void> | undefined;

/** The CRD as the chart ships it (helm installs crds/ before the templates). */
export function installChartCrd(c: TestCluster): Promise<void> {
  if (!crd) {
    crd = (async () => {
      const r = await c.kubectl(['apply', '--server-side', '--force-conflicts', '-f', CHART_CRD, '-f', CHART_POLICY_CRD]);
      if (r.code !== 0) throw new Error(`CRD apply failed: ${r.stderr}`);
      const w = await c.kubectl(['wait', '--for=condition=Established', 'crd/logtails.logtail.dev', 'crd/logtailpolicies.logtail.dev', '--timeout=60s']);
      if (w.code !== 0) throw new Error(`CRD not established: ${w.stderr}`);
    })();
  }
  return crd;
}

export async function mustKubectl(c: TestCluster, args: string[], input?: string): Promise<string> {
  const r = await c.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

export { createNamespace } from '../fixture.ts';

export interface Rendered {
  text: string;
  objects: K8sObject[];
  deployment: Deployment;
}

export async function renderChart(o: RenderOptions): Promise<Rendered> {
  const r = await renderRaw(o);
  if (r.code !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  const objects = parseManifests(r.stdout);
  const deployment = objects.find((x) => x.kind === 'Deployment') as Deployment | undefined;
  if (!deployment) throw new Error('the chart rendered no Deployment');
  return { text: r.stdout, objects, deployment };
}

export interface ChartReleaseOptions {
  /** uniqueName prefix of the release name. */
  release: string;
  /** uniqueName prefix of the release namespace. */
  releaseNs: string;
  /** uniqueName prefixes of more namespaces (`s.ns` is the first): the ones under test. */
  namespaces?: string[];
  /** Helm values; a function is given the names of `namespaces`. */
  values?: Record<string, unknown> | ((namespaces: string[]) => Record<string, unknown>);
  /** Resources deleted from `namespaces` in `after` (no operator is left to hold them; a later test's operator must not pick them up). */
  deleteAfter?: string;
  /** Run in `after` before anything is deleted (e.g. stopping operators that use the release's RBAC). */
  beforeCleanup?: () => Promise<unknown>;
}

export interface ChartRelease {
  readonly c: TestCluster;
  readonly release: string;
  readonly releaseNs: string;
  /** The first of `namespaces`. */
  readonly ns: string;
  readonly namespaces: string[];
  readonly rendered: Rendered;
}

/**
 * The chart applied for real, as mocha hooks of the calling `describe`:
 * `before` gets the cluster, installs the chart's CRDs, creates the release
 * namespace and `namespaces`, renders the chart and applies it; `after` runs
 * `beforeCleanup`, deletes `deleteAfter` from `namespaces` and then what was
 * applied (its cluster-scoped objects would outlive the namespaces).
 */
export function useChartRelease(o: ChartReleaseOptions): ChartRelease {
  let c: TestCluster | undefined;
  let rendered: Rendered | undefined;
  const release = uniqueName(o.release);
  const releaseNs = uniqueName(o.releaseNs);
  const namespaces = (o.namespaces ?? []).map((prefix) => uniqueName(prefix));
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`useChartRelease: no ${what} (before() failed)`);
    return v;
  };

  before(async function () {
    this.timeout(600_000);
    c = await cluster();
    await installChartCrd(c);
    for (const ns of [releaseNs, ...namespaces]) await createNamespace(c, ns);
    const values = typeof o.values === 'function' ? o.values(namespaces) : o.values;
    rendered = await renderChart({ release, namespace: releaseNs, ...(values ? { values } : {}) });
    await mustKubectl(c, ['apply', '-f', '-'], rendered.text);
  });

  after(async function () {
    this.timeout(90_000);
    await o.beforeCleanup?.();
    if (!c) return;
    if (o.deleteAfter) for (const ns of namespaces) await c.kubectl(['delete', o.deleteAfter, '--all', '-n', ns, '--wait=false']);
    if (rendered) await c.kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { input: rendered.text });
  });

  return {
    get c() {
      return need(c, 'cluster');
    },
    release,
    releaseNs,
    get ns() {
      return need(namespaces[0], 'namespace');
    },
    namespaces,
    get rendered() {
      return need(rendered, 'rendered chart');
    },
  };
}

/** A Pod with exactly the Deployment's pod template, as a controller would create it. */
export function podFromTemplate(d: Deployment, name: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: d.metadata.namespace, labels: d.spec.template.metadata.labels },
    spec: d.spec.template.spec,
  };
}

export interface Identity {
  user: string;
  groups: string[];
}

/** The identity a pod running as this ServiceAccount authenticates as. */
export function serviceAccountIdentity(ns: string, sa: string): Identity {
  return { user: `system:serviceaccount:${ns}:${sa}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'] };
}

function asArgs(id: Identity): string[] {
  return [`--as=${id.user}`, ...id.groups.map((g) => `--as-group=${g}`)];
}

/**
 * `kubectl auth can-i` as `id`. `what` is `VERB RESOURCE[/SUBRESOURCE][/NAME]`-style
 * arguments; `ns` undefined means --all-namespaces.
 */
export async function canI(c: TestCluster, id: Identity, verb: string, resource: string, ns: string | undefined, extra: string[] = []): Promise<boolean> {
  const args = ['auth', 'can-i', verb, resource, ...(ns === undefined ? ['--all-namespaces'] : ['-n', ns]), ...extra, ...asArgs(id)];
  const r = await c.kubectl(args);
  const out = r.stdout.trim();
  if (out === 'yes') return true;
  if (out === 'no') return false;
  throw new Error(`kubectl ${args.join(' ')}: unexpected answer (${r.code}) ${r.stdout} ${r.stderr}`);
}

/** `kubectl auth can-i --list` rows as "resource|names|verbs" (non-resource URLs left out). */
export async function canIList(c: TestCluster, id: Identity, ns: string): Promise<Set<string>> {
  const out = await mustKubectl(c, ['auth', 'can-i', '--list', '-n', ns, ...asArgs(id)]);
  const rows = new Set<string>();
  for (const line of out.split('\n').slice(1)) {
    const m = /^(\S+)\s+\[\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]/.exec(line);
    if (!m) continue;
    for (const verb of m[3]!.split(' ').filter(Boolean)) rows.add(`${m[1]}|${m[2] || '*'}|${verb}`);
  }
  return rows;
}

export function kubeconfigWithToken(c: TestCluster, token: string, namespace: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'logtail-sa-kubeconfig-'));
  const file = join(dir, 'kubeconfig');
  const ca = readFileSync(c.state.caFile).toString('base64');
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: local',
      '  cluster:',
      `    server: ${c.state.apiserverUrl}`,
      `    certificate-authority-data: ${ca}`,
      'users:',
      '- name: operator',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: operator',
      '  context:',
      '    cluster: local',
      '    user: operator',
      `    namespace: ${namespace}`,
      'current-context: operator',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return file;
}

export type RunningOperator = LaunchedOperator;

/**
 * The operator as a local process that knows only the given kubeconfig: no
 * admin credentials in its environment, so every API call it makes is
 * authorised as the ServiceAccount.
 */
export function startOperatorAs(o: { kubeconfig: string; podNamespace: string; args: string[] }): Promise<RunningOperator> {
  const home = mkdtempSync(join(tmpdir(), 'logtail-chart-op-'));
  return launchOperator({
    args: ['--kubeconfig', o.kubeconfig, ...o.args],
    env: { PATH: process.env.PATH, HOME: home, POD_NAMESPACE: o.podNamespace, LOG_LEVEL: 'debug', KUBECONFIG: o.kubeconfig },
    readyTimeoutMs: 60_000,
    stopTimeoutMs: 40_000,
  });
}

/** Lines of the operator's log that show the apiserver refusing it. */
export function forbiddenLines(log: string): string[] {
  return log.split('\n').filter((l) => /\b403\b|forbidden/i.test(l));
}

export async function poll<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < end) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(250);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${lastErr ? `; last error: ${String(lastErr)}` : ''}`);
}
