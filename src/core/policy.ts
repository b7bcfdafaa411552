// LogTailPolicy: capture every matching pod created after the policy, each
// through an ordinary LogTail. Pure decisions only (no I/O): selector
// matching, the LogTail's deterministic name and object, which pods to
// capture, and the policy's status. src/runtime/policy-controller.ts acts on
// them.

import { createHash } from 'node:crypto';
import type { V1ObjectMeta } from '@kubernetes/client-node';
import { GROUP, VERSION, KIND, SPEC_FIELDS, type LogTail, type LogTailSpec } from './spec.ts';

export const POLICY_KIND = 'LogTailPolicy';
export const POLICY_PLURAL = 'logtailpolicies';
export const POLICY_SHORT_NAME = 'ltp';
/** Label on every LogTail a policy created: the policy's name. */
export const POLICY_LABEL = 'logtail.dev/policy';
/** Annotation on such a LogTail: the UID of the pod it was created for. */
export const POD_UID_ANNOTATION = 'logtail.dev/pod-uid';
export const POLICY_RESOURCE = { group: GROUP, version: VERSION, plural: POLICY_PLURAL } as const;

export function policiesPath(namespace?: string): string {
  const base = `/apis/${GROUP}/${VERSION}`;
  return namespace ? `${base}/namespaces/${namespace}/${POLICY_PLURAL}` : `${base}/${POLICY_PLURAL}`;
}

export function policyPath(namespace: string, name: string): string {
  return `${policiesPath(namespace)}/${name}`;
}

/** A standard metav1.LabelSelector. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

/** The LogTail spec fields a policy's template may set: all but podName. */
export type PolicyTemplate = Omit<LogTailSpec, 'podName'>;
export const TEMPLATE_FIELDS = SPEC_FIELDS.filter((f) => f !== 'podName');

export const PHASES = ['Pending', 'Streaming', 'Complete', 'Incomplete', 'Failed'] as const;
export type PhaseCounts = Record<(typeof PHASES)[number], number>;

export interface LogTailPolicyStatus {
  observedGeneration: number;
  /** Pods in the namespace that match the selector and were created after the policy. */
  matchedPods: number;
  /** LogTails this policy created (labelled and owned by it) that exist now. */
  logTails: number;
  /** The same LogTails by phase (a LogTail without status counts as Pending). */
  phases: PhaseCounts;
}

export interface LogTailPolicy {
  apiVersion: string;
  kind: string;
  metadata: V1ObjectMeta;
  spec: { selector: LabelSelector; template?: PolicyTemplate };
  status?: LogTailPolicyStatus;
}

/** The few pod fields the decisions read. */
export interface PodView {
  metadata?: { name?: string; namespace?: string; uid?: string; labels?: Record<string, string>; creationTimestamp?: Date | string };
  status?: { phase?: string; containerStatuses?: Array<{ state?: { terminated?: { finishedAt?: Date | string } } }>; initContainerStatuses?: Array<{ state?: { terminated?: { finishedAt?: Date | string } } }> };
}

/**
 * metav1.LabelSelectorAsSelector's semantics (apimachinery
 * pkg/apis/meta/v1/helpers.go, pkg/labels/selector.go Matches): a missing
 * selector matches nothing, an empty one everything; NotIn and DoesNotExist
 * match a pod without the key; an unknown operator matches nothing.
 */
export function selectorMatches(sel: LabelSelector | undefined | null, labels: Record<string, string> | undefined): boolean {
  if (!sel) return false;
  const l = labels ?? {};
  const has = (k: string) => Object.prototype.hasOwnProperty.call(l, k);
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (!has(k) || l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const vals = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has(e.key) || !vals.includes(l[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has(e.key) && vals.includes(l[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has(e.key)) return false;
        break;
      case 'DoesNotExist':
        if (has(e.key)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

export const MAX_NAME = 63;
const HASH_LEN = 8;

/**
 * The LogTail's name for (policy, pod): `<policy>-<pod>-<hash>`, a DNS-1123
 * label of at most 63 characters. The hash (8 hex digits of sha256 over
 * policy name, pod name and pod UID) keeps names of different policies and of
 * successive pods of the same name (a StatefulSet's pod recreated) apart; the
 * readable part is cut, at a letter or digit, when the whole would be longer.
 * Dots (allowed in pod names) become dashes.
 */
export function logTailNameFor(policyName: string, podName: string, podUid: string): string {
  const hash = createHash('sha256').update(`${policyName}\n${podName}\n${podUid}`).digest('hex').slice(0, HASH_LEN);
  let base = `${policyName}-${podName}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  base = base.slice(0, MAX_NAME - HASH_LEN - 1).replace(/[^a-z0-9]+$/, '');
  return base ? `${base}-${hash}` : hash;
}

function time(t: Date | string | undefined): number {
  return t === undefined ? NaN : t instanceof Date ? t.getTime() : Date.parse(t);
}

/**
 * Whether the policy captures this pod: same namespace, selector matches, and
 * created no earlier than the policy. creationTimestamp has one-second
 * resolution (metav1.Time is serialized as RFC 3339 without fractions), so a
 * pod created in the policy's own second is captured: the author may read
 * every pod's log in the namespace (admission), and a pod missed is worse
 * than one captured.
 */
export function policySelects(policy: LogTailPolicy, pod: PodView): boolean {
  if (!pod.metadata?.uid || !pod.metadata.name) return false;
  if (pod.metadata.namespace !== policy.metadata.namespace) return false;
  const created = time(pod.metadata.creationTimestamp);
  const since = time(policy.metadata.creationTimestamp);
  if (!(created >= since)) return false;
  return selectorMatches(policy.spec?.selector, pod.metadata.labels);
}

/** When the pod's last container finished, if it has finished (phase Succeeded or Failed). */
export function podFinishedAt(pod: PodView): number | undefined {
  if (pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed') return undefined;
  const all = [...(pod.status.containerStatuses ?? []), ...(pod.status.initContainerStatuses ?? [])];
  const t = all.map((s) => time(s.state?.terminated?.finishedAt)).filter((x) => !Number.isNaN(x));
  return t.length ? Math.max(...t) : undefined;
}

export type CreateDecision = { create: true; name: string } | { create: false; why: 'not-selected' | 'exists' | 'created-before' | 'ttl-passed' | 'policy-deleting' };

/**
 * Whether to create the LogTail for `pod` now. `existing` is whether a LogTail
 * of that name is in the cache, `createdBefore` whether this process created
 * it before (so one deleted since, by a user or its TTL, is not made again).
 * After a restart that memory is gone; then a finished pod whose LogTail's TTL
 * would have run out already (finish + ttlSecondsAfterFinished ≤ now) is
 * taken as captured and deleted, not re-captured.
 */
export function decideCreate(policy: LogTailPolicy, pod: PodView, existing: boolean, createdBefore: boolean, now: number): CreateDecision {
  if (policy.metadata.deletionTimestamp) return { create: false, why: 'policy-deleting' };
  if (!policySelects(policy, pod)) return { create: false, why: 'not-selected' };
  if (existing) return { create: false, why: 'exists' };
  if (createdBefore) return { create: false, why: 'created-before' };
  const ttl = policy.spec.template?.ttlSecondsAfterFinished;
  const finished = podFinishedAt(pod);
  if (ttl !== undefined && ttl !== null && finished !== undefined && finished + ttl * 1000 <= now) return { create: false, why: 'ttl-passed' };
  return { create: true, name: logTailNameFor(policy.metadata.name!, pod.metadata!.name!, pod.metadata!.uid!) };
}

/** The LogTail a policy creates for a pod: its template plus podName, labelled and owned by the policy. */
export function logTailFor(policy: LogTailPolicy, pod: PodView, name: string): LogTail {
  const template: Record<string, unknown> = {};
  for (const f of TEMPLATE_FIELDS) {
    const v = (policy.spec.template as Record<string, unknown> | undefined)?.[f];
    if (v !== undefined) template[f] = v;
  }
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: KIND,
    metadata: {
      name,
      namespace: policy.metadata.namespace!,
      labels: { [POLICY_LABEL]: policy.metadata.name! },
      annotations: { [POD_UID_ANNOTATION]: pod.metadata!.uid! },
      ownerReferences: [{ apiVersion: `${GROUP}/${VERSION}`, kind: POLICY_KIND, name: policy.metadata.name!, uid: policy.metadata.uid!, controller: true, blockOwnerDeletion: false }],
    },
    spec: { ...(template as PolicyTemplate), podName: pod.metadata!.name! },
  };
}

/** Whether a LogTail belongs to this policy: its label and its controller owner reference. */
export function ownedBy(policy: LogTailPolicy, lt: { metadata?: V1ObjectMeta }): boolean {
  if (lt.metadata?.labels?.[POLICY_LABEL] !== policy.metadata.name) return false;
  return (lt.metadata?.ownerReferences ?? []).some((o) => o.kind === POLICY_KIND && o.uid === policy.metadata.uid && o.controller === true);
}

export function policyStatus(policy: LogTailPolicy, pods: PodView[], logTails: Array<{ metadata?: V1ObjectMeta; status?: { phase?: string } }>): LogTailPolicyStatus {
  const phases = Object.fromEntries(PHASES.map((p) => [p, 0])) as PhaseCounts;
  let n = 0;
  for (const lt of logTails) {
    if (!ownedBy(policy, lt)) continue;
    n++;
    const p = (PHASES as readonly string[]).includes(lt.status?.phase ?? '') ? (lt.status!.phase as keyof PhaseCounts) : 'Pending';
    phases[p]++;
  }
  return {
    observedGeneration: policy.metadata.generation ?? 0,
    matchedPods: pods.filter((p) => policySelects(policy, p)).length,
    logTails: n,
    phases,
  };
}

export function statusEqual(a: LogTailPolicyStatus | undefined, b: LogTailPolicyStatus): boolean {
  if (!a) return false;
  return a.observedGeneration === b.observedGeneration && a.matchedPods === b.matchedPods && a.logTails === b.logTails && PHASES.every((p) => a.phases?.[p] === b.phases[p]);
}
