// Renders the Helm chart with the toolchain's helm and hands the objects back
// as plain JSON, for the chart's unit tests (render only) and its e2e proofs
// (applied to the local control plane).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT, ensureToolchain } from '../../../src/dev/cluster.ts';
import { run, type RunResult } from '../../../src/dev/proc.ts';

export const CHART_DIR = join(REPO_ROOT, 'deploy', 'helm', 'logtail-operator');
export const CHART_CRD = join(CHART_DIR, 'crds', 'logtail.dev_logtails.yaml');
export const SOURCE_CRD = join(REPO_ROOT, 'crds', 'logtail.dev_logtails.yaml');
export const CHART_POLICY_CRD = join(CHART_DIR, 'crds', 'logtail.dev_logtailpolicies.yaml');
/** A store the chart accepts; the chart deliberately has no default bucket. */
export const S3_VALUES = join(CHART_DIR, 'ci', 's3-values.yaml');
export const FILE_VALUES = join(CHART_DIR, 'ci', 'file-store-values.yaml');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

export interface Container {
  name: string;
  image: string;
  env?: Array<{ name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }>;
  securityContext?: Record<string, unknown>;
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  ports?: Array<{ name: string; containerPort: number }>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}

export interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: Array<{ name: string; emptyDir?: Record<string, unknown>; persistentVolumeClaim?: { claimName: string } }>;
}

export interface Deployment extends K8sObject {
  spec: { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

let helmBin: Promise<string> | undefined;
let helmHome: string | undefined;

/** The pinned helm from the toolchain (built once, cached). */
export function helmPath(): Promise<string> {
  if (!helmBin) {
    helmBin = (async () => {
      const bin = process.env.LOGTAIL_TOOLCHAIN_BIN ?? (await ensureToolchain());
      return join(bin, 'helm');
    })();
  }
  return helmBin;
}

/** Runs helm with its state in a private directory, so the user's repos and plugins never take part. */
export async function helm(args: string[]): Promise<RunResult> {
  if (!helmHome) {
    helmHome = mkdtempSync(join(tmpdir(), 'logtail-helm-'));
    for (const d of ['cache', 'config', 'data']) mkdirSync(join(helmHome, d));
  }
  const env = {
    ...process.env,
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_DATA_HOME: join(helmHome, 'data'),
  };
  return run(await helmPath(), args, { env, timeoutMs: 60_000 });
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** Values files, applied in order before `values`. Default: the S3 store example. */
  valuesFiles?: string[];
  values?: Record<string, unknown>;
}

/** `helm template` output as text plus the exit status; does not throw. */
export async function renderRaw(o: RenderOptions = {}): Promise<RunResult> {
  const args = ['template', o.release ?? 'lt', CHART_DIR, '--namespace', o.namespace ?? 'logtail-system'];
  for (const f of o.valuesFiles ?? [S3_VALUES]) args.push('-f', f);
  if (o.values) {
    const dir = mkdtempSync(join(tmpdir(), 'logtail-values-'));
    const file = join(dir, 'values.json');
    writeFileSync(file, JSON.stringify(o.values));
    args.push('-f', file);
  }
  return helm(args);
}

/** Rendered objects; throws with helm's message when rendering fails. */
export async function render(o: RenderOptions = {}): Promise<K8sObject[]> {
  const r = await renderRaw(o);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return parseManifests(r.stdout);
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(`bad YAML from helm: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

export function find<T extends K8sObject = K8sObject>(objs: K8sObject[], kind: string, name?: string, namespace?: string): T {
  const hit = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name) && (namespace === undefined || o.metadata.namespace === namespace));
  if (hit.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}${namespace ? ` in ${namespace}` : ''}, found ${hit.length}: ${objs.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return hit[0] as T;
}

export function all(objs: K8sObject[], kind: string): K8sObject[] {
  return objs.filter((o) => o.kind === kind);
}

export function rulesOf(obj: K8sObject): PolicyRule[] {
  return (obj as unknown as { rules: PolicyRule[] }).rules;
}

export function envOf(c: Container): Record<string, string | undefined> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
}

/** The operator's container of the rendered Deployment. */
export function operatorContainer(d: Deployment): Container {
  const c = d.spec.template.spec.containers.find((x) => x.name === 'operator');
  if (!c) throw new Error('no container named operator');
  return c;
}

/** One row per (group, resource, verb[, name]) so rule lists compare regardless of how they are grouped. */
export function flattenRules(rules: PolicyRule[]): string[] {
  const out: string[] = [];
  for (const r of rules) {
    for (const g of r.apiGroups ?? ['<none>'])
      for (const res of r.resources ?? r.nonResourceURLs ?? [])
        for (const v of r.verbs)
          for (const n of r.resourceNames ?? ['*']) out.push(`${g === '' ? 'core' : g}|${res}|${v}|${n}`);
  }
  return [...new Set(out)].sort();
}
