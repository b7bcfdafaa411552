// spec.holdPod: a finalizer on the target pod keeps its API object (its final
// status, and the apiserver's route to the kubelet for its logs) after the pod
// is deleted, until the capture has ended. Pure decisions; the runtime
// (src/runtime/pod-hold.ts) patches the pod. docs/design.md, "Holding the pod".
//
// One finalizer per LogTail, named after the LogTail's UID: several LogTails
// may capture one pod, and each releases only its own hold, with no shared
// bookkeeping (a shared finalizer would need a count that survives restarts).
// The UID, not the name, so a LogTail deleted and recreated under the same
// name never releases, or keeps, its predecessor's hold, and a stale hold's
// owner can be looked up exactly.

export const HOLD_FINALIZER_PREFIX = 'logtail.dev/hold-';

/** `logtail.dev/hold-<LogTail UID>`: a qualified name (the UID is 36 characters of [0-9a-f-]). */
export function holdFinalizer(logTailUid: string): string {
  return HOLD_FINALIZER_PREFIX + logTailUid;
}

/** The UID of the LogTail a hold finalizer belongs to; undefined for any other finalizer. */
export function holdOwner(finalizer: string): string | undefined {
  if (!finalizer.startsWith(HOLD_FINALIZER_PREFIX)) return undefined;
  const uid = finalizer.slice(HOLD_FINALIZER_PREFIX.length);
  return uid === '' ? undefined : uid;
}

/** Reasons of the `PodHeld` condition (docs/status.md). */
export const HoldReason = {
  /** True: the finalizer is on the pod. */
  Held: 'Held',
  /** False: removed because the capture ended (every object committed, or it ended otherwise). */
  Released: 'Released',
  /** False: removed `holdTimeout` after the pod's deletionTimestamp; the capture goes on. */
  HoldTimeout: 'HoldTimeout',
  /** False: the operator runs without --enable-hold-pod, or was refused the patch (403). */
  HoldNotPermitted: 'HoldNotPermitted',
  /** False: the pod was already being deleted when the capture first saw it; the apiserver refuses new finalizers then. */
  HoldTooLate: 'HoldTooLate',
  /** Not a condition (the LogTail is going): the reason logged and used when the LogTail's deletion released the hold. */
  LogTailDeleted: 'LogTailDeleted',
} as const;
export type HoldReasonName = (typeof HoldReason)[keyof typeof HoldReason];

/** What the hold logic needs of a pod. */
export interface HoldPodView {
  uid?: string | undefined;
  deletionTimestamp?: string | Date | undefined;
  finalizers?: string[] | undefined;
}

/**
 * When the hold runs out: `holdTimeout` after the pod's deletionTimestamp
 * (the end of its grace period: the apiserver sets it to the deletion request
 * plus the grace period). undefined while the pod is not being deleted — a
 * hold on a pod nobody deletes delays nothing. Measured from the pod's own
 * field, so a restarted operator computes the same instant.
 */
export function holdDeadline(pod: HoldPodView, holdTimeoutMs: number): number | undefined {
  if (!pod.deletionTimestamp) return undefined;
  const t = pod.deletionTimestamp instanceof Date ? pod.deletionTimestamp.getTime() : Date.parse(pod.deletionTimestamp);
  return Number.isFinite(t) ? t + holdTimeoutMs : undefined;
}

export interface HoldInput {
  /** spec.holdPod */
  holdPod: boolean;
  /** --enable-hold-pod */
  enabled: boolean;
  /** The LogTail's finalizer: `holdFinalizer(uid)`. */
  finalizer: string;
  holdTimeoutMs: number;
  /** The capture has ended: terminal status written (every object committed, or Failed/Incomplete). */
  captureEnded: boolean;
  /** The LogTail has a deletionTimestamp (or is gone). */
  logTailDeleting: boolean;
  /** The pod bound to the capture (undefined: no such pod, or another UID under its name). */
  pod: HoldPodView | undefined;
  /** The reason of the LogTail's current PodHeld condition, if any. */
  previous?: string | undefined;
  now: number;
}

export type HoldAction =
  | { kind: 'place' }
  | { kind: 'keep'; until: number | undefined }
  | { kind: 'release'; reason: 'Released' | 'HoldTimeout' | 'LogTailDeleted' | 'HoldNotPermitted'; message: string }
  /** Nothing to do on the pod; `reason` set: say so in the PodHeld condition. */
  | { kind: 'none'; reason?: 'HoldNotPermitted' | 'HoldTooLate'; message?: string };

function fmt(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : `${Math.round(ms / 1000)}s`;
}

/** Should the hold be placed, kept, or released now, and why. */
export function decideHold(i: HoldInput): HoldAction {
  const pod = i.pod;
  if (!pod) return { kind: 'none' };
  const held = (pod.finalizers ?? []).includes(i.finalizer);
  if (held) {
    if (i.logTailDeleting) return { kind: 'release', reason: 'LogTailDeleted', message: 'the LogTail is being deleted' };
    if (i.captureEnded) return { kind: 'release', reason: 'Released', message: 'the capture has ended' };
    if (!i.holdPod) return { kind: 'release', reason: 'Released', message: 'spec.holdPod is not set' };
    if (!i.enabled) return { kind: 'release', reason: 'HoldNotPermitted', message: 'the operator runs without --enable-hold-pod: hold released' };
    const until = holdDeadline(pod, i.holdTimeoutMs);
    if (until !== undefined && i.now >= until) {
      return { kind: 'release', reason: 'HoldTimeout', message: `holdTimeout (${fmt(i.holdTimeoutMs)}) passed since the pod's deletionTimestamp; the pod may now go, the capture goes on` };
    }
    return { kind: 'keep', until };
  }
  if (!i.holdPod || i.captureEnded || i.logTailDeleting) return { kind: 'none' };
  // Released or timed out before (this process or an earlier one): never placed again.
  if (i.previous === HoldReason.Released || i.previous === HoldReason.HoldTimeout) return { kind: 'none' };
  if (!i.enabled) {
    return { kind: 'none', reason: 'HoldNotPermitted', message: 'spec.holdPod is set but the operator runs without --enable-hold-pod (chart value holdPod.enabled): capturing without a hold' };
  }
  if (pod.deletionTimestamp) {
    return { kind: 'none', reason: 'HoldTooLate', message: 'the pod was already being deleted when the capture first saw it; the apiserver accepts no new finalizer then: capturing without a hold' };
  }
  return { kind: 'place' };
}

export interface HeldPod {
  namespace: string;
  name: string;
  uid?: string | undefined;
  finalizers?: string[] | undefined;
}

export interface HoldOwnerView {
  /** The LogTail's status phase is terminal (its capture ended). */
  finished: boolean;
}

export interface StaleHold {
  namespace: string;
  name: string;
  uid?: string | undefined;
  finalizer: string;
  why: string;
}

/**
 * Holds no live capture needs: the owner LogTail (by UID) is gone, or has
 * finished. `owners` holds every LogTail the caller can see, by UID; call it
 * only with a synced LogTail cache, or a hold of a LogTail not seen yet is
 * released.
 */
export function staleHolds(pods: readonly HeldPod[], owners: ReadonlyMap<string, HoldOwnerView>): StaleHold[] {
  const out: StaleHold[] = [];
  for (const p of pods) {
    for (const f of p.finalizers ?? []) {
      const uid = holdOwner(f);
      if (uid === undefined) continue;
      const owner = owners.get(uid);
      if (!owner) out.push({ namespace: p.namespace, name: p.name, uid: p.uid, finalizer: f, why: `no LogTail with UID ${uid} exists` });
      else if (owner.finished) out.push({ namespace: p.namespace, name: p.name, uid: p.uid, finalizer: f, why: `LogTail ${uid} has finished` });
    }
  }
  return out;
}
