// The LogTail's outcome from how each container's runs ended. Pure.
import type { ContainerView } from './runs.ts';

export type RunEnd =
  | { kind: 'stored' }
  | { kind: 'partial'; reason: string; message: string }
  | { kind: 'failed'; reason: string; message: string };

const RANK = { stored: 0, partial: 1, failed: 2 } as const;

/** The worse of two ends (failed > partial > stored; the first of equals wins). */
export function worse(a: RunEnd, b: RunEnd): RunEnd {
  return RANK[b.kind] > RANK[a.kind] ? b : a;
}

export interface OutcomeInput {
  /** The worst end of each selected container. */
  ends: RunEnd[];
  /** Some object was committed. */
  storedAny: boolean;
  storedCount: number;
  /** The pod's phase on a last read; undefined when the pod is gone. */
  podPhase: string | undefined;
  podGone: boolean;
  /** The pod was deleted before its containers terminated (deletedBeforeTerminated). */
  podDeleted?: boolean;
  /** Exit code of each container's last captured run (undefined: not known). */
  lastExitCodes: (number | undefined)[];
}

export interface Outcome {
  phase: 'Complete' | 'Incomplete' | 'Failed';
  reason: string;
  message: string;
  result: 'Succeeded' | 'Failed' | 'Unknown';
  exitCode: number | undefined;
}

export function outcome(i: OutcomeInput): Outcome {
  const failed = i.ends.filter((e) => e.kind === 'failed');
  const partial = i.ends.filter((e) => e.kind === 'partial');
  const bad = [...failed, ...partial] as Exclude<RunEnd, { kind: 'stored' }>[];
  let phase: Outcome['phase'] = 'Complete';
  let reason = 'Captured';
  let message = `stored ${i.storedCount} object(s)`;
  if (bad.length > 0) {
    phase = failed.length > 0 && !i.storedAny ? 'Failed' : 'Incomplete';
    reason = bad[0]!.reason;
    message = bad.map((f) => f.message).join('; ');
  }
  const codes = i.lastExitCodes;
  let result: Outcome['result'] = 'Unknown';
  if (i.podPhase === 'Succeeded') result = 'Succeeded';
  else if (i.podPhase === 'Failed') result = 'Failed';
  else if (!i.podGone && codes.length > 0 && codes.every((e) => e !== undefined)) result = codes.some((e) => e !== 0) ? 'Failed' : 'Succeeded';
  // A deleted pod is never Complete: whether its log had more to come is not
  // known (it was killed, or it vanished before its end was confirmed).
  if (i.podGone) {
    result = 'Unknown';
    if (reason === 'Captured') [phase, reason] = ['Incomplete', 'PodDeleted'];
  }
  if (i.podDeleted) {
    // Killed by the deletion: its outcome is not the container's own. The
    // kubelet then removes the containers, so a run it no longer serves is a
    // consequence of the deletion, not a cause of its own.
    result = 'Unknown';
    if (reason === 'Captured' || reason === 'ContainerRemoved') [phase, reason] = [phase === 'Failed' ? 'Failed' : 'Incomplete', 'PodDeleted'];
  }
  const nonZero = codes.find((e) => e !== undefined && e !== 0);
  const exitCode = nonZero ?? (codes.length > 0 && codes.every((e) => e === 0) ? 0 : undefined);
  return { phase, reason, message, result, exitCode };
}

/**
 * Whether the pod was deleted before its containers terminated: a run that
 * finished in a later second than the deletion request (deletionTimestamp
 * minus the grace period; finishedAt has one-second resolution). A container
 * killed by the deletion ends at least 2 s after the request (the kubelet's
 * minimumGracePeriodInSeconds, pkg/kubelet/kuberuntime/kuberuntime_container.go);
 * one that ended in the request's own second ended by itself. A deletion with
 * grace 0 removes the pod at once (the pod-gone path). False when the pod is
 * not being deleted or nothing has finished.
 */
export function deletedBeforeTerminated(p: { deletionTimestamp?: Date | string; deletionGracePeriodSeconds?: number; finishedAts: (string | undefined)[] }): boolean {
  if (!p.deletionTimestamp) return false;
  const at = typeof p.deletionTimestamp === 'string' ? Date.parse(p.deletionTimestamp) : p.deletionTimestamp.getTime();
  const requested = at - (p.deletionGracePeriodSeconds ?? 0) * 1000;
  if (Number.isNaN(requested)) return false;
  return p.finishedAts.some((f) => f !== undefined && Math.floor(Date.parse(f) / 1000) > Math.floor(requested / 1000));
}

/** What the status records of a container's last captured run. */
export interface FinalRun {
  name: string;
  restart: number;
  finishedAt?: string;
}

/**
 * Whether a copy of the pod that is not a fresh read (the informer's cache)
 * may decide the outcome in place of one more GET. Only when every container
 * ended `stored` (a gap, e.g. a pod seen gone, needs the fresh read) and the
 * copy shows every container's last captured run terminated: the same run
 * (restartCount, and `finishedAt` as recorded from the read that located it)
 * in `state.terminated`. A copy showing that was written at or after every
 * run's end (pod status writes are ordered, and an ended run stays ended), and
 * no later run exists (restartCount would have moved); what a later read could
 * add is only what happened after the capture's last run ended (a deletion
 * then, which `deletedBeforeTerminated` does not count, or the pod's phase
 * catching up, whose result the exit codes give as well: `outcome`).
 * `views`: the copy's view of each container by name.
 */
export function decidedByCopy(p: { ends: RunEnd[]; finals: FinalRun[]; views: Record<string, ContainerView | undefined> }): boolean {
  if (p.finals.length === 0 || !p.ends.every((e) => e.kind === 'stored')) return false;
  return p.finals.every((f) => {
    const v = p.views[f.name];
    return f.finishedAt !== undefined && v !== undefined && v.state === 'terminated' && v.restartCount === f.restart && v.terminated?.finishedAt === f.finishedAt;
  });
}
