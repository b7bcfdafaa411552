// Status of a LogTail and the condition bookkeeping around it. Pure functions:
// the reconciler computes the next status and writes it only if it differs.

/** The capture's progress. Complete: every byte stored. Incomplete: stored with a known gap. Failed: nothing trustworthy stored. */
export type Phase = 'Pending' | 'Streaming' | 'Complete' | 'Incomplete' | 'Failed';
export const PHASES: readonly Phase[] = ['Pending', 'Streaming', 'Complete', 'Incomplete', 'Failed'];

/** The target pod's outcome. */
export type PodResult = 'Succeeded' | 'Failed' | 'Unknown';

export type ContainerState = 'Waiting' | 'Streaming' | 'Terminated' | 'Stored' | 'Gap' | 'Failed';
export const CONTAINER_STATES: readonly ContainerState[] = ['Waiting', 'Streaming', 'Terminated', 'Stored', 'Gap', 'Failed'];
export const POD_RESULTS: readonly PodResult[] = ['Succeeded', 'Failed', 'Unknown'];

/** The conditions that follow the phase (conditionsForPhase). */
export type PhaseConditionType = 'Streaming' | 'Complete' | 'Finished';
export const PHASE_CONDITION_TYPES: readonly PhaseConditionType[] = ['Streaming', 'Complete', 'Finished'];
/**
 * Truncated: a run was longer than spec.maxBytes (set only with spec.maxBytes).
 * PodHeld: spec.holdPod's finalizer on the pod (src/core/hold.ts); set only for a LogTail with holdPod.
 */
export type ConditionType = PhaseConditionType | 'Truncated' | 'PodHeld';
export const CONDITION_TYPES: readonly ConditionType[] = [...PHASE_CONDITION_TYPES, 'Truncated', 'PodHeld'];
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export const Reason = {
  WaitingForPod: 'WaitingForPod',
  WaitingForSlot: 'WaitingForSlot',
  Streaming: 'Streaming',
  Captured: 'Captured',
  LogGap: 'LogGap',
  KubeletUnreachable: 'KubeletUnreachable',
  PodNotFound: 'PodNotFound',
  PodDeleted: 'PodDeleted',
  StoreUnavailable: 'StoreUnavailable',
  InvalidSpec: 'InvalidSpec',
  KeyExists: 'KeyExists',
  MalformedLines: 'MalformedLines',
  ContainerRemoved: 'ContainerRemoved',
  Truncated: 'Truncated',
} as const;

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface StoredObject {
  uri: string;
  /** Size of the stored object (compressed size under gzip). */
  size: number;
  /** SHA-256 (hex) of the log bytes before compression. */
  sha256: string;
  /** SHA-256 (hex) of the stored object's bytes. */
  objectSha256: string;
}

export interface StatusCheckpoint {
  time: string;
  ordinal: number;
  offset: number;
}

export interface ContainerCapture {
  name: string;
  init: boolean;
  /** restartCount of the captured container instance. */
  restart: number;
  state: ContainerState;
  exitCode?: number;
  /** Termination reason reported by the kubelet: Completed, Error, OOMKilled… */
  reason?: string;
  startedAt?: string;
  finishedAt?: string;
  bytes: number;
  lines: number;
  object?: StoredObject;
  streamRetries: number;
  lastError?: string;
  checkpoint?: StatusCheckpoint;
  firstTimestamp?: string;
  /** Lines without a valid kubelet timestamp prefix, stored as received; > 0 means not Complete. */
  malformedLines?: number;
  /** Bytes left out under spec.maxBytes (head and tail kept around a marker line); > 0 means not Complete. */
  truncatedBytes?: number;
  /**
   * While the run is being written: what of its object is durable in the
   * store and where in the log that ends. A later process (restart, new
   * leader, upgrade) continues the object from here (docs/design.md, "Crash safety").
   */
  upload?: UploadCheckpoint;
}

/** Format of status.containers[].upload this code writes and continues. */
export const UPLOAD_FORMAT = 1;

/**
 * The durable position of an unfinished object: the store's handle on it,
 * how many of its bytes are durable, and the log position that corresponds
 * exactly to their end. Written at most every --status-interval.
 */
export interface UploadCheckpoint {
  /** UPLOAD_FORMAT of the code that wrote it; another format is not continued. */
  format: number;
  /** S3: the multipart upload ID; file store: the temp file's name beside the object. */
  id: string;
  /** Container ID of the run whose log the bytes are. */
  containerID: string;
  /** S3: parts 1..parts are durable (recovered with ListParts). */
  parts?: number;
  /** Object bytes that are durable (compressed size under gzip; a gzip member ends there). */
  objectBytes: number;
  /** Log bytes in them (the meaning of `bytes`). */
  bytes: number;
  /** Lines in them. */
  lines: number;
  malformedLines?: number;
  /** The resume point at their end. */
  checkpoint: StatusCheckpoint;
  /** A gap the capture noted before this point (`Reason: message`), reported when the object is committed. */
  gap?: string;
}

/**
 * Consecutive runs (restarts) of one container that were not captured, for
 * one reason: the kubelet no longer served them (it keeps the current and
 * the previous run), or they ended faster than they could be read.
 */
export interface UncapturedRuns {
  container: string;
  init?: boolean;
  /** First restart number of the range. */
  fromRestart: number;
  /** Last restart number of the range, inclusive. */
  toRestart: number;
  /** A Reason, e.g. LogGap. */
  reason: string;
}

/** Most entries in status.uncapturedRuns; further runs are only counted (uncapturedRunsDropped). */
export const MAX_UNCAPTURED_RUNS = 32;

/**
 * Most entries in status.containers: one per selected container (at most
 * 256) plus room for recent runs. Older Stored runs beyond it are dropped
 * from the list (their objects stay in the store) and counted in
 * storedRunsDropped, so a crash-looping container whose every run is
 * captured cannot grow the object either (~500 bytes per entry).
 */
export const MAX_CONTAINER_ENTRIES = 512;

export interface LogTailStatus {
  phase: Phase;
  result: PodResult;
  reason?: string;
  message?: string;
  podUID?: string;
  /** Stream retries over all containers. */
  retries: number;
  /** Content bytes captured over all containers. */
  bytes: number;
  startTime?: string;
  completionTime?: string;
  observedGeneration?: number;
  /** Exit code summarising the pod's containers (first non-zero, else 0), once known. */
  exitCode?: number;
  /** One entry per captured container instance, in capture order. */
  containers: ContainerCapture[];
  /** Runs that could not be captured, as ranges; at most MAX_UNCAPTURED_RUNS entries. */
  uncapturedRuns?: UncapturedRuns[];
  /** Uncaptured runs not listed in uncapturedRuns because the list was full. */
  uncapturedRunsDropped?: number;
  /** Entries of older Stored runs removed from containers to bound the status (their objects stay). */
  storedRunsDropped?: number;
  conditions: Condition[];
}

// Field lists of the status types, checked complete at compile time; the CRD
// test compares the YAML's status schema against them.
type Exhaustive<T, L extends readonly PropertyKey[]> = [Exclude<keyof T, L[number]>] extends [never] ? true : never;
export const STATUS_FIELDS = [
  'phase', 'result', 'reason', 'message', 'podUID', 'retries', 'bytes', 'startTime', 'completionTime',
  'observedGeneration', 'exitCode', 'containers', 'uncapturedRuns', 'uncapturedRunsDropped', 'storedRunsDropped', 'conditions',
] as const satisfies readonly (keyof LogTailStatus)[];
export const CONTAINER_CAPTURE_FIELDS = [
  'name', 'init', 'restart', 'state', 'exitCode', 'reason', 'startedAt', 'finishedAt', 'bytes', 'lines', 'object',
  'streamRetries', 'lastError', 'checkpoint', 'firstTimestamp', 'malformedLines', 'truncatedBytes', 'upload',
] as const satisfies readonly (keyof ContainerCapture)[];
export const UNCAPTURED_RUNS_FIELDS = [
  'container', 'init', 'fromRestart', 'toRestart', 'reason',
] as const satisfies readonly (keyof UncapturedRuns)[];
export const STORED_OBJECT_FIELDS = ['uri', 'size', 'sha256', 'objectSha256'] as const satisfies readonly (keyof StoredObject)[];
export const CHECKPOINT_FIELDS = ['time', 'ordinal', 'offset'] as const satisfies readonly (keyof StatusCheckpoint)[];
export const UPLOAD_CHECKPOINT_FIELDS = [
  'format', 'id', 'containerID', 'parts', 'objectBytes', 'bytes', 'lines', 'malformedLines', 'checkpoint', 'gap',
] as const satisfies readonly (keyof UploadCheckpoint)[];
export const CONDITION_FIELDS = [
  'type', 'status', 'reason', 'message', 'lastTransitionTime', 'observedGeneration',
] as const satisfies readonly (keyof Condition)[];
const _statusComplete: Exhaustive<LogTailStatus, typeof STATUS_FIELDS> = true;
const _containerComplete: Exhaustive<ContainerCapture, typeof CONTAINER_CAPTURE_FIELDS> = true;
const _objectComplete: Exhaustive<StoredObject, typeof STORED_OBJECT_FIELDS> = true;
const _checkpointComplete: Exhaustive<StatusCheckpoint, typeof CHECKPOINT_FIELDS> = true;
const _uploadComplete: Exhaustive<UploadCheckpoint, typeof UPLOAD_CHECKPOINT_FIELDS> = true;
const _conditionComplete: Exhaustive<Condition, typeof CONDITION_FIELDS> = true;
const _uncapturedComplete: Exhaustive<UncapturedRuns, typeof UNCAPTURED_RUNS_FIELDS> = true;

/** Kubernetes writes condition times as RFC 3339 with whole seconds. */
export function k8sTime(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

export function isTerminalPhase(p: Phase | undefined): p is 'Complete' | 'Incomplete' | 'Failed' {
  return p === 'Complete' || p === 'Incomplete' || p === 'Failed';
}

export type ConditionUpdate = Omit<Condition, 'lastTransitionTime'> & { lastTransitionTime?: string };

/**
 * Returns a new list with `next` replacing the condition of the same type (in
 * place) or appended. lastTransitionTime is kept unless the status flips;
 * a new condition, or a flip, gets `now`.
 */
export function setCondition(conditions: readonly Condition[] | undefined, next: ConditionUpdate, now: Date): Condition[] {
  const list = conditions ?? [];
  const idx = list.findIndex((c) => c.type === next.type);
  const prev = idx === -1 ? undefined : list[idx];
  const lastTransitionTime =
    prev !== undefined && prev.status === next.status ? prev.lastTransitionTime : (next.lastTransitionTime ?? k8sTime(now));
  const cond: Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime,
    ...(next.observedGeneration !== undefined ? { observedGeneration: next.observedGeneration } : {}),
  };
  if (idx === -1) return [...list, cond];
  const out = [...list];
  out[idx] = cond;
  return out;
}

/**
 * The Streaming, Complete and Finished conditions for a phase, each carrying
 * `reason` and `message`. Streaming is True only while streaming, Complete only
 * in Complete, Finished in every terminal phase. Conditions of other types in
 * `prev` are kept.
 */
export function conditionsForPhase(
  phase: Phase,
  reason: string,
  message: string,
  generation: number | undefined,
  prev: readonly Condition[] | undefined,
  now: Date,
): Condition[] {
  const truth: Record<PhaseConditionType, boolean> = {
    Streaming: phase === 'Streaming',
    Complete: phase === 'Complete',
    Finished: isTerminalPhase(phase),
  };
  let out = [...(prev ?? [])];
  for (const type of PHASE_CONDITION_TYPES) {
    out = setCondition(
      out,
      {
        type,
        status: truth[type] ? 'True' : 'False',
        reason,
        message,
        ...(generation !== undefined ? { observedGeneration: generation } : {}),
      },
      now,
    );
  }
  return out;
}

/**
 * Deep equality for JSON-shaped status values: arrays compare in order, a key
 * holding undefined equals a missing key. Used to skip no-op status writes.
 */
export function statusEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') {
    return typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b);
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!statusEquals(a[i], bb[i])) return false;
    return true;
  }
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  for (const k of Object.keys(ao)) if (!statusEquals(ao[k], bo[k])) return false;
  for (const k of Object.keys(bo)) if (!(k in ao) && bo[k] !== undefined) return false;
  return true;
}

export type UncapturedList = Pick<LogTailStatus, 'uncapturedRuns' | 'uncapturedRunsDropped'>;

/**
 * The capture phase implied by per-container states: Pending while every
 * container waits, Streaming while any is unfinished, then Complete if all were
 * stored with no malformed line, no run left uncaptured and none truncated, Failed if none
 * stored anything trustworthy, Incomplete otherwise. An empty list is Pending.
 */
export function phaseFromContainers(
  containers: readonly Pick<ContainerCapture, 'state' | 'malformedLines' | 'truncatedBytes'>[],
  uncaptured: UncapturedList = {},
): Phase {
  if (containers.length === 0) return 'Pending';
  if (containers.every((c) => c.state === 'Waiting')) return 'Pending';
  if (containers.some((c) => c.state === 'Waiting' || c.state === 'Streaming' || c.state === 'Terminated')) {
    return 'Streaming';
  }
  if (containers.every((c) => c.state === 'Failed')) return 'Failed';
  if (containers.every((c) => c.state === 'Stored') && completeBlocker(containers, uncaptured) === undefined) return 'Complete';
  return 'Incomplete';
}

/**
 * Why a capture whose objects are all stored is still not Complete, or
 * undefined. In this order (the first wins the reason; a loss nobody asked
 * for says more than a cut the spec asked for): lines that could not be
 * parsed (MalformedLines), runs that were not captured (their reason, e.g.
 * LogGap), runs stored cut under spec.maxBytes (Truncated).
 */
export function completeBlocker(
  containers: readonly Pick<ContainerCapture, 'malformedLines' | 'truncatedBytes'>[],
  uncaptured: UncapturedList = {},
): { reason: string; message: string } | undefined {
  const malformed = containers.reduce((n, c) => n + (c.malformedLines ?? 0), 0);
  if (malformed > 0) {
    return { reason: Reason.MalformedLines, message: `${malformed} line(s) without a valid kubelet timestamp were stored as received` };
  }
  const listed = (uncaptured.uncapturedRuns ?? []).reduce((n, r) => n + r.toRestart - r.fromRestart + 1, 0);
  const runs = listed + (uncaptured.uncapturedRunsDropped ?? 0);
  if (runs > 0) {
    const first = uncaptured.uncapturedRuns?.[0];
    return { reason: first?.reason ?? Reason.LogGap, message: `${runs} container run(s) could not be captured` };
  }
  const t = truncation(containers);
  if (t.runs > 0) return { reason: Reason.Truncated, message: truncationMessage(t) };
  return undefined;
}

/** Runs stored cut under spec.maxBytes, and the bytes they left out. */
export function truncation(containers: readonly Pick<ContainerCapture, 'truncatedBytes'>[]): { runs: number; bytes: number } {
  let runs = 0;
  let bytes = 0;
  for (const c of containers) {
    if (!c.truncatedBytes) continue;
    runs++;
    bytes += c.truncatedBytes;
  }
  return { runs, bytes };
}

export function truncationMessage(t: { runs: number; bytes: number }): string {
  return `${t.runs} run(s) longer than spec.maxBytes stored as head and tail around a marker line: ${t.bytes} byte(s) left out`;
}

function mergeable(r: UncapturedRuns, add: UncapturedRuns): boolean {
  return r.container === add.container && r.reason === add.reason && (r.init ?? false) === (add.init ?? false) &&
    add.fromRestart <= r.toRestart + 1 && add.toRestart >= r.fromRestart - 1;
}

/**
 * Records runs `add.fromRestart..add.toRestart` of a container as not
 * captured. A range overlapping or adjacent to a listed one of the same
 * container and reason extends it (recording the same runs twice changes
 * nothing); otherwise it is appended while the list has room, and only
 * counted in uncapturedRunsDropped once it is full. Returns the new fields.
 */
export function addUncapturedRuns(list: UncapturedList, add: UncapturedRuns, max = MAX_UNCAPTURED_RUNS): Required<UncapturedList> {
  if (!(Number.isSafeInteger(add.fromRestart) && add.fromRestart >= 0 && add.toRestart >= add.fromRestart)) {
    throw new RangeError(`invalid run range ${add.fromRestart}..${add.toRestart}`);
  }
  const runs = (list.uncapturedRuns ?? []).map((r) => ({ ...r }));
  const dropped = list.uncapturedRunsDropped ?? 0;
  const into = runs.find((r) => mergeable(r, add));
  if (into !== undefined) {
    into.fromRestart = Math.min(into.fromRestart, add.fromRestart);
    into.toRestart = Math.max(into.toRestart, add.toRestart);
    // The wider range may now bridge another listed one.
    const bridged = runs.find((r) => r !== into && mergeable(r, into));
    if (bridged !== undefined) {
      into.fromRestart = Math.min(into.fromRestart, bridged.fromRestart);
      into.toRestart = Math.max(into.toRestart, bridged.toRestart);
      runs.splice(runs.indexOf(bridged), 1);
    }
    return { uncapturedRuns: runs, uncapturedRunsDropped: dropped };
  }
  if (runs.length >= max) return { uncapturedRuns: runs, uncapturedRunsDropped: dropped + add.toRestart - add.fromRestart + 1 };
  return { uncapturedRuns: [...runs, { ...add }], uncapturedRunsDropped: dropped };
}

/** Sums of per-container bytes and stream retries, for status.bytes / status.retries. */
export function totals(containers: readonly Pick<ContainerCapture, 'bytes' | 'streamRetries'>[]): {
  bytes: number;
  retries: number;
} {
  let bytes = 0;
  let retries = 0;
  for (const c of containers) {
    bytes += c.bytes;
    retries += c.streamRetries;
  }
  return { bytes, retries };
}

/**
 * Bounds status.containers at `max` entries by removing the oldest entries
 * of Stored runs, never a container's newest entry (the capture continues
 * from it) nor any entry that is not Stored (it decides the phase). Returns
 * the new list and the new storedRunsDropped; the input is not modified.
 */
export function trimContainerEntries<C extends Pick<ContainerCapture, 'name' | 'init' | 'restart' | 'state'> & { truncatedBytes?: number | undefined }>(
  containers: readonly C[],
  storedRunsDropped = 0,
  max = MAX_CONTAINER_ENTRIES,
): { containers: C[]; storedRunsDropped: number } {
  let excess = containers.length - max;
  if (excess <= 0) return { containers: [...containers], storedRunsDropped };
  const newest = new Map<string, number>();
  for (const c of containers) {
    const key = `${c.init}/${c.name}`;
    newest.set(key, Math.max(newest.get(key) ?? -1, c.restart));
  }
  const kept = containers.filter((c) => {
    // A truncated run stays listed: its truncatedBytes decides the outcome.
    const droppable = c.state === 'Stored' && !c.truncatedBytes && c.restart < (newest.get(`${c.init}/${c.name}`) ?? -1);
    if (excess > 0 && droppable) {
      excess--;
      return false;
    }
    return true;
  });
  return { containers: kept, storedRunsDropped: storedRunsDropped + containers.length - kept.length };
}
