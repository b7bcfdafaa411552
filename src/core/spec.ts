// The LogTail custom resource: API identity, spec types, defaults and the
// validation the operator applies itself. The CRD in crds/ validates the same
// rules at admission, but the operator must not trust that: a CRD installed
// without its schema (or an older one) would let anything through.

import type { V1ObjectMeta } from '@kubernetes/client-node';
import { DURATION_PATTERN, MAX_DURATION_LENGTH, parseDuration } from './duration.ts';
import { DEFAULT_KEY_TEMPLATE, validateKeyTemplate } from './key-template.ts';
import type { LogTailStatus } from './status.ts';
import { MAX_MAX_BYTES, MIN_MAX_BYTES } from './truncate.ts';

export const GROUP = 'logtail.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const PLURAL = 'logtails';
export const SINGULAR = 'logtail';
export const KIND = 'LogTail';
export const SHORT_NAME = 'lt';
export const FINALIZER = 'logtail.dev/finalizer';
/** The LogTail resource, in the shape client-node's CustomObjectsApi takes. */
export const LOGTAIL_RESOURCE = { group: GROUP, version: VERSION, plural: PLURAL } as const;

/** API path of the LogTail collection, cluster-wide or in one namespace. */
export function logTailsPath(namespace?: string): string {
  const base = `/apis/${GROUP}/${VERSION}`;
  return namespace ? `${base}/namespaces/${namespace}/${PLURAL}` : `${base}/${PLURAL}`;
}

/** API path of one LogTail; append `/status` for its status subresource. */
export function logTailPath(namespace: string, name: string): string {
  return `${logTailsPath(namespace)}/${name}`;
}

export type Compression = 'none' | 'gzip';
/** Retain: the stored objects outlive the LogTail. Delete: deleting the LogTail deletes them first. */
export type Retention = 'Retain' | 'Delete';
export const RETENTIONS: readonly Retention[] = ['Retain', 'Delete'];
export const COMPRESSIONS: readonly Compression[] = ['none', 'gzip'];

export interface RetrySpec {
  initialInterval?: string;
  maxInterval?: string;
  maxElapsed?: string;
}

export interface LogTailSpec {
  podName: string;
  containers?: string[];
  keyTemplate?: string;
  compression?: Compression;
  timestamps?: boolean;
  retry?: RetrySpec;
  terminatedRetry?: RetrySpec;
  podNotFoundTimeout?: string;
  ttlSecondsAfterFinished?: number;
  retention?: Retention;
  /** Size cap per container run, in bytes of stored content: a longer log keeps its head and tail around a marker line (core/truncate.ts). */
  maxBytes?: number;
  /** Keep the pod's API object (a finalizer) until its logs are stored: src/core/hold.ts. */
  holdPod?: boolean;
  /** How long a hold may delay the pod's removal past its deletionTimestamp. */
  holdTimeout?: string;
}

export interface LogTail {
  apiVersion: string;
  kind: string;
  metadata: V1ObjectMeta;
  spec: LogTailSpec;
  status?: LogTailStatus;
}

/**
 * Exponential backoff with a time budget: the one policy type, used by the
 * spec (`retry`, `terminatedRetry`) and by every retry loop
 * (`adapters/retry.ts`).
 */
export interface RetryPolicy {
  initialIntervalMs: number;
  maxIntervalMs: number;
  /** Time budget: no new attempt starts after this much time without success. */
  maxElapsedMs: number;
  /** 0..1: each delay is drawn uniformly from ±jitter around the nominal one. Default 0.2. */
  jitter?: number;
}

/** A validated spec with every default applied; durations in milliseconds. */
export interface ResolvedSpec {
  podName: string;
  /** undefined: every init and regular container of the pod, in pod order. */
  containers: string[] | undefined;
  keyTemplate: string;
  compression: Compression;
  /** true: store the kubelet's timestamp prefixes; false: strip them. */
  timestamps: boolean;
  retry: RetryPolicy;
  /** Backoff for reading containerStatuses[].state.terminated after the pod finished. */
  terminatedRetry: RetryPolicy;
  podNotFoundTimeoutMs: number;
  ttlSecondsAfterFinished: number | undefined;
  retention: Retention;
  /** undefined: no cap. */
  maxBytes: number | undefined;
  holdPod: boolean;
  holdTimeoutMs: number;
}

export type ResolveResult = { ok: true; spec: ResolvedSpec } | { ok: false; message: string };

export const DEFAULTS = {
  keyTemplate: DEFAULT_KEY_TEMPLATE,
  compression: 'none' as Compression,
  timestamps: false,
  retry: { initialInterval: '500ms', maxInterval: '10s', maxElapsed: '5m' },
  terminatedRetry: { initialInterval: '200ms', maxInterval: '5s', maxElapsed: '15s' },
  podNotFoundTimeout: '2m',
  holdTimeout: '10m',
} as const;

/** Every key resolveSpec accepts in `spec`; the CRD schema test compares against it. */
export const SPEC_FIELDS = [
  'podName',
  'containers',
  'keyTemplate',
  'compression',
  'timestamps',
  'retry',
  'terminatedRetry',
  'podNotFoundTimeout',
  'ttlSecondsAfterFinished',
  'retention',
  'maxBytes',
  'holdPod',
  'holdTimeout',
] as const satisfies readonly (keyof LogTailSpec)[];
/** Every key resolveSpec accepts in `spec.retry` and `spec.terminatedRetry`. */
export const RETRY_FIELDS = ['initialInterval', 'maxInterval', 'maxElapsed'] as const satisfies readonly (keyof RetrySpec)[];
type Exhaustive<T, L extends readonly PropertyKey[]> = [Exclude<keyof T, L[number]>] extends [never] ? true : never;
const _specComplete: Exhaustive<LogTailSpec, typeof SPEC_FIELDS> = true;
const _retryComplete: Exhaustive<RetrySpec, typeof RETRY_FIELDS> = true;

export const DNS1123_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const DNS1123_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const MAX_CONTAINERS = 256;

/**
 * Upper bounds of the spec's durations, the same in the CRD's CEL rules.
 * Every one is far below 2^31-1 ms (~24.8 days), past which Node's setTimeout
 * fires after 1 ms. interval (retry and terminatedRetry initialInterval and
 * maxInterval): a wait of more than an hour between two attempts only hides
 * a stuck capture. maxElapsed: a day of failing without progress is a
 * capture that will not recover. podNotFoundTimeout: a LogTail must not wait
 * for its pod long after its author stopped caring (or lost access).
 */
export const DURATION_CAPS = {
  interval: { text: '1h', ms: 3_600_000 },
  maxElapsed: { text: '24h', ms: 86_400_000 },
  podNotFoundTimeout: { text: '24h', ms: 86_400_000 },
  /** A hold delays a pod's removal (and what waits for it: a drain, a namespace deletion) by at most this. */
  holdTimeout: { text: '1h', ms: 3_600_000 },
} as const;
type Cap = (typeof DURATION_CAPS)[keyof typeof DURATION_CAPS];

/** ttlSecondsAfterFinished ≤ 30 days: a finished LogTail is kept longer by leaving the field out. */
export const MAX_TTL_SECONDS = 30 * 24 * 3600;

const SUBDOMAIN = new RegExp(DNS1123_SUBDOMAIN_PATTERN);
const LABEL = new RegExp(DNS1123_LABEL_PATTERN);
const DURATION = new RegExp(DURATION_PATTERN);

class SpecError extends Error {}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// The apiserver prunes nulls of non-nullable fields, so null means "not set".
function present(obj: Record<string, unknown>, key: string): boolean {
  return obj[key] !== undefined && obj[key] !== null;
}

function rejectUnknown(obj: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw new SpecError(`${path}.${k}: unknown field (known: ${allowed.join(', ')})`);
    }
  }
}

function durationField(obj: Record<string, unknown>, key: string, dflt: string, path: string, cap: Cap): number {
  const raw = present(obj, key) ? obj[key] : dflt;
  if (typeof raw !== 'string') throw new SpecError(`${path}.${key}: must be a duration string like "10s"`);
  if (raw.length > MAX_DURATION_LENGTH || !DURATION.test(raw)) {
    throw new SpecError(`${path}.${key}: "${raw.slice(0, 40)}" is not a duration; write e.g. "500ms", "10s", "1m30s", "1.5s"`);
  }
  let ms: number;
  try {
    ms = parseDuration(raw);
  } catch (e) {
    throw new SpecError(`${path}.${key}: ${(e as Error).message}`);
  }
  if (ms <= 0) throw new SpecError(`${path}.${key}: must be greater than zero`);
  if (ms > cap.ms) throw new SpecError(`${path}.${key}: must be at most ${cap.text} (got ${raw})`);
  return ms;
}

function retryField(spec: Record<string, unknown>, key: 'retry' | 'terminatedRetry'): RetryPolicy {
  const path = `spec.${key}`;
  const d = DEFAULTS[key];
  const raw = present(spec, key) ? spec[key] : {};
  if (!isObject(raw)) throw new SpecError(`${path}: must be an object`);
  rejectUnknown(raw, RETRY_FIELDS, path);
  const policy: RetryPolicy = {
    initialIntervalMs: durationField(raw, 'initialInterval', d.initialInterval, path, DURATION_CAPS.interval),
    maxIntervalMs: durationField(raw, 'maxInterval', d.maxInterval, path, DURATION_CAPS.interval),
    maxElapsedMs: durationField(raw, 'maxElapsed', d.maxElapsed, path, DURATION_CAPS.maxElapsed),
  };
  if (policy.initialIntervalMs > policy.maxIntervalMs) {
    throw new SpecError(
      `${path}: initialInterval (${String(raw.initialInterval ?? d.initialInterval)}) must not exceed maxInterval (${String(raw.maxInterval ?? d.maxInterval)})`,
    );
  }
  return policy;
}

function resolveOrThrow(input: unknown): ResolvedSpec {
  if (!isObject(input)) throw new SpecError('spec: must be an object');
  rejectUnknown(input, SPEC_FIELDS, 'spec');

  const podName = input.podName;
  if (typeof podName !== 'string' || podName === '') throw new SpecError('spec.podName: required');
  if (podName.length > 253 || !SUBDOMAIN.test(podName)) {
    throw new SpecError(`spec.podName: "${podName.slice(0, 60)}" is not a valid pod name (DNS-1123 subdomain)`);
  }

  let containers: string[] | undefined;
  if (present(input, 'containers')) {
    const raw = input.containers;
    if (!Array.isArray(raw)) throw new SpecError('spec.containers: must be a list of container names');
    if (raw.length === 0) throw new SpecError('spec.containers: must not be empty; omit it to capture every container');
    if (raw.length > MAX_CONTAINERS) throw new SpecError(`spec.containers: at most ${MAX_CONTAINERS} entries`);
    const seen = new Set<string>();
    for (const [i, c] of raw.entries()) {
      if (typeof c !== 'string' || c.length > 63 || !LABEL.test(c)) {
        throw new SpecError(`spec.containers[${i}]: ${JSON.stringify(c)} is not a valid container name (DNS-1123 label)`);
      }
      if (seen.has(c)) throw new SpecError(`spec.containers[${i}]: duplicate "${c}"`);
      seen.add(c);
    }
    containers = [...(raw as string[])];
  }

  let keyTemplate: string = DEFAULTS.keyTemplate;
  if (present(input, 'keyTemplate')) {
    if (typeof input.keyTemplate !== 'string') throw new SpecError('spec.keyTemplate: must be a string');
    const problem = validateKeyTemplate(input.keyTemplate);
    if (problem !== undefined) throw new SpecError(`spec.keyTemplate: ${problem}`);
    keyTemplate = input.keyTemplate;
  }

  let compression: Compression = DEFAULTS.compression;
  if (present(input, 'compression')) {
    if (!COMPRESSIONS.includes(input.compression as Compression)) {
      throw new SpecError(`spec.compression: must be one of ${COMPRESSIONS.join(', ')}`);
    }
    compression = input.compression as Compression;
  }

  let timestamps: boolean = DEFAULTS.timestamps;
  if (present(input, 'timestamps')) {
    if (typeof input.timestamps !== 'boolean') throw new SpecError('spec.timestamps: must be true or false');
    timestamps = input.timestamps;
  }

  const retry = retryField(input, 'retry');
  const terminatedRetry = retryField(input, 'terminatedRetry');
  const podNotFoundTimeoutMs = durationField(input, 'podNotFoundTimeout', DEFAULTS.podNotFoundTimeout, 'spec', DURATION_CAPS.podNotFoundTimeout);

  let ttlSecondsAfterFinished: number | undefined;
  if (present(input, 'ttlSecondsAfterFinished')) {
    const ttl = input.ttlSecondsAfterFinished;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0 || ttl > MAX_TTL_SECONDS) {
      throw new SpecError(`spec.ttlSecondsAfterFinished: must be an integer between 0 and ${MAX_TTL_SECONDS} (30 days)`);
    }
    ttlSecondsAfterFinished = ttl;
  }

  let retention: Retention = 'Retain';
  if (present(input, 'retention')) {
    if (!RETENTIONS.includes(input.retention as Retention)) throw new SpecError(`spec.retention: must be one of ${RETENTIONS.join(', ')}`);
    retention = input.retention as Retention;
  }

  let maxBytes: number | undefined;
  if (present(input, 'maxBytes')) {
    const m = input.maxBytes;
    if (typeof m !== 'number' || !Number.isInteger(m) || m < MIN_MAX_BYTES || m > MAX_MAX_BYTES) {
      throw new SpecError(`spec.maxBytes: must be an integer between ${MIN_MAX_BYTES} and ${MAX_MAX_BYTES} (1 TiB) bytes`);
    }
    maxBytes = m;
  }
  let holdPod = false;
  if (present(input, 'holdPod')) {
    if (typeof input.holdPod !== 'boolean') throw new SpecError('spec.holdPod: must be true or false');
    holdPod = input.holdPod;
  }
  const holdTimeoutMs = durationField(input, 'holdTimeout', DEFAULTS.holdTimeout, 'spec', DURATION_CAPS.holdTimeout);

  return {
    podName,
    containers,
    keyTemplate,
    compression,
    timestamps,
    retry,
    terminatedRetry,
    podNotFoundTimeoutMs,
    ttlSecondsAfterFinished,
    retention,
    maxBytes,
    holdPod,
    holdTimeoutMs,
  };
}

/** Validates a LogTail's spec and applies defaults; `message` names the offending field. */
export function resolveSpec(spec: unknown): ResolveResult {
  try {
    return { ok: true, spec: resolveOrThrow(spec) };
  } catch (e) {
    if (e instanceof SpecError) return { ok: false, message: e.message };
    throw e;
  }
}

export interface PodContainerNames {
  initContainers?: { name: string }[] | undefined;
  containers?: { name: string }[] | undefined;
}

export interface SelectedContainer {
  name: string;
  init: boolean;
}

export type SelectResult = { ok: true; containers: SelectedContainer[] } | { ok: false; message: string };

/**
 * The containers to capture, in pod order (init containers first). With
 * `requested` undefined that is every init and regular container; otherwise
 * the requested ones, and a name the pod lacks is an error (a typo must not
 * become a silently empty capture). Ephemeral containers are never included.
 */
export function selectContainers(requested: string[] | undefined, pod: PodContainerNames): SelectResult {
  const all: SelectedContainer[] = [
    ...(pod.initContainers ?? []).map((c) => ({ name: c.name, init: true })),
    ...(pod.containers ?? []).map((c) => ({ name: c.name, init: false })),
  ];
  if (requested === undefined) return { ok: true, containers: all };
  const names = new Set(all.map((c) => c.name));
  const missing = requested.filter((r) => !names.has(r));
  if (missing.length > 0) {
    return {
      ok: false,
      message: `pod has no container named ${missing.map((m) => `"${m}"`).join(', ')} (it has ${all.map((c) => c.name).join(', ') || 'none'})`,
    };
  }
  const wanted = new Set(requested);
  return { ok: true, containers: all.filter((c) => wanted.has(c.name)) };
}
