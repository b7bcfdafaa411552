// What a stored object carries so a bucket lifecycle rule (S3) or a clean-up
// job (file store) can find it without the LogTail: S3 object tags, and on the
// file store a sidecar record `<object>.logtail.json`. Pure.
//
// S3's limits on object tags (Amazon S3 User Guide, "Categorizing your
// storage using tags"): at most 10 per object, keys up to 128 and values up
// to 256 Unicode characters, case-sensitive, made of letters, digits, spaces
// and `+ - = . _ : / @`; the `aws:` prefix is reserved. Every tag here is
// checked against them (objectTags drops one that would break them rather
// than fail a commit whose object already exists).
import type { Retention } from './spec.ts';

/** Appended to an object's path on the file store for its record; no object key may end with it. */
export const SIDECAR_SUFFIX = '.logtail.json';
export const LABEL_PREFIX = 'logtail.dev/';

export const MAX_TAGS = 10;
export const MAX_TAG_KEY = 128;
export const MAX_TAG_VALUE = 256;
const TAG_CHARS = /^[\p{L}\p{N}\s+\-=._:/@]*$/u;

/** Where an object came from: the LogTail, its namespace and pod, the container, the retention it was stored under. */
export interface ObjectOrigin {
  namespace: string;
  logtail: string;
  retention: Retention;
  pod: string;
  container: string;
  /** The LogTailPolicy that created the LogTail (its `logtail.dev/policy` label), if any. */
  policy?: string | undefined;
}

/** Why a tag breaks S3's rules, or undefined. */
export function tagProblem(key: string, value: string): string | undefined {
  if (key.length === 0 || [...key].length > MAX_TAG_KEY) return `key must have 1 to ${MAX_TAG_KEY} characters`;
  if ([...value].length > MAX_TAG_VALUE) return `value must have at most ${MAX_TAG_VALUE} characters`;
  if (key.toLowerCase().startsWith('aws:')) return 'the aws: prefix is reserved';
  if (!TAG_CHARS.test(key) || !TAG_CHARS.test(value)) return 'only letters, digits, spaces and + - = . _ : / @ are allowed';
  return undefined;
}

/** The labels of an object, in a fixed order: retention, namespace, LogTail, pod, container, policy. */
export function originLabels(o: ObjectOrigin): Record<string, string> {
  return {
    [`${LABEL_PREFIX}retention`]: o.retention,
    [`${LABEL_PREFIX}namespace`]: o.namespace,
    [`${LABEL_PREFIX}logtail`]: o.logtail,
    [`${LABEL_PREFIX}pod`]: o.pod,
    [`${LABEL_PREFIX}container`]: o.container,
    ...(o.policy ? { [`${LABEL_PREFIX}policy`]: o.policy } : {}),
  };
}

/**
 * The S3 tag set of a committed object: its checksums (`sha256`,
 * `objectSha256`, as before) and its labels; at most 10, each within S3's
 * rules (one that is not is left out).
 */
export function objectTags(sums: { sha256: string; objectSha256: string }, labels: Record<string, string> = {}): { Key: string; Value: string }[] {
  const all = [
    { Key: 'sha256', Value: sums.sha256 },
    { Key: 'objectSha256', Value: sums.objectSha256 },
    ...Object.entries(labels).map(([Key, Value]) => ({ Key, Value })),
  ];
  return all.filter((t) => tagProblem(t.Key, t.Value) === undefined).slice(0, MAX_TAGS);
}

/** The file store's record next to an object: the same facts as the S3 tags, plus its size and commit time. */
export interface SidecarRecord {
  apiVersion: 'logtail.dev/v1alpha1';
  kind: 'StoredObject';
  /** The object's file name (the record sits beside it). */
  object: string;
  size: number;
  sha256: string;
  objectSha256: string;
  /** RFC 3339, when the object was committed. */
  committedAt: string;
  labels: Record<string, string>;
}

export function sidecarRecord(o: { object: string; size: number; sha256: string; objectSha256: string; committedAt: Date; labels?: Record<string, string> }): SidecarRecord {
  return {
    apiVersion: 'logtail.dev/v1alpha1',
    kind: 'StoredObject',
    object: o.object,
    size: o.size,
    sha256: o.sha256,
    objectSha256: o.objectSha256,
    committedAt: o.committedAt.toISOString(),
    labels: { ...(o.labels ?? {}) },
  };
}

/** A key the file store must refuse: its file name would be another object's record. */
export function isSidecarName(key: string): boolean {
  return key.endsWith(SIDECAR_SUFFIX);
}
