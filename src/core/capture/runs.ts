// Which run of a container to read next, and through which request, from the
// container status the apiserver shows. The semantics are the kubelet's
// (k8s.io/kubernetes v1.37.2, pkg/kubelet/kubelet_pods.go,
// convertToAPIContainerStatuses and validateContainerLogStatus):
//
// - `restartCount` is stamped on a container when it is created: run k
//   carries k. A run that ended is not counted until the next one exists.
// - `state.running` / `state.terminated` with restartCount k is run k: a
//   "current" log request serves it; `previous=true` serves run k-1
//   (`lastState.terminated`).
// - During the restart back-off (`state.waiting`, restartCount k),
//   `lastState.terminated` is run k, and both "current" and "previous" serve
//   run k.
// - Older runs are not served. Even run k-1 in `lastState` may be gone: the
//   container GC keeps one dead container per container by default, so it
//   is removed when run k dies, and its log request is answered 200 with an
//   error text (core/capture/kubelet-error.ts).
//
// A run is identified by its container ID: a changed ID is a new run, whatever
// restartCount says. Pure functions, no I/O.

export interface TerminatedView {
  exitCode?: number;
  reason?: string;
  startedAt?: string;
  finishedAt?: string;
  containerID?: string;
}

/** What the pod status says about one container (a structural subset of V1ContainerStatus). */
export interface ContainerView {
  restartCount: number;
  state: 'running' | 'terminated' | 'waiting' | 'unknown';
  /** ID of the container `state` describes (running or terminated). */
  containerID?: string;
  terminated?: TerminatedView;
  /** lastState.terminated */
  last?: TerminatedView;
}

/** A run the kubelet serves right now, and the request that reads it. */
export interface ServedRun {
  index: number;
  /** Stable identity of the run; synthesised from the index when the status has no ID. */
  id: string;
  /** `previous=true` reads it. */
  previous: boolean;
  ended: boolean;
  terminated?: TerminatedView;
}

/** A V1ContainerStatus-shaped object (types only; core does not import client libraries). */
export interface ContainerStatusLike {
  restartCount?: number;
  containerID?: string;
  state?: { running?: object; terminated?: TerminatedLike; waiting?: object };
  lastState?: { terminated?: TerminatedLike };
}

interface TerminatedLike {
  exitCode?: number;
  reason?: string;
  startedAt?: Date | string;
  finishedAt?: Date | string;
  containerID?: string;
}

function iso(d: Date | string | undefined): string | undefined {
  if (d === undefined || d === null) return undefined;
  return typeof d === 'string' ? d : d.toISOString();
}

function term(t: TerminatedLike | undefined): TerminatedView | undefined {
  if (!t) return undefined;
  return { exitCode: t.exitCode, reason: t.reason, startedAt: iso(t.startedAt), finishedAt: iso(t.finishedAt), containerID: t.containerID || undefined };
}

export function containerView(st: ContainerStatusLike | undefined): ContainerView | undefined {
  if (!st) return undefined;
  const s = st.state ?? {};
  const state = s.running ? 'running' : s.terminated ? 'terminated' : s.waiting ? 'waiting' : 'unknown';
  const terminated = term(s.terminated);
  const containerID = (state === 'terminated' ? terminated?.containerID : undefined) || st.containerID || undefined;
  return { restartCount: st.restartCount ?? 0, state, containerID: state === 'waiting' ? undefined : containerID, terminated, last: term(st.lastState?.terminated) };
}

/** One line for logs: what a status showed (restartCount, state, the container IDs named). */
export function viewSummary(v: ContainerView | undefined): string {
  if (!v) return 'no status';
  const t = v.terminated ? ` exit ${v.terminated.exitCode ?? '?'}` : '';
  return `restartCount ${v.restartCount}, ${v.state}${t} ${v.containerID ?? '-'}, lastState ${v.last ? `exit ${v.last.exitCode ?? '?'} ${v.last.containerID ?? '-'}` : '-'}`;
}

/** The runs the kubelet serves for this status, oldest first. */
export function servedRuns(v: ContainerView | undefined): ServedRun[] {
  if (!v) return [];
  const k = v.restartCount;
  const runs: ServedRun[] = [];
  if (v.state === 'running' || v.state === 'terminated') {
    if (v.last && k > 0) runs.push({ index: k - 1, id: v.last.containerID ?? `run-${k - 1}`, previous: true, ended: true, terminated: v.last });
    const ended = v.state === 'terminated';
    runs.push({ index: k, id: v.containerID ?? `run-${k}`, previous: false, ended, terminated: ended ? v.terminated : undefined });
  } else if (v.state === 'waiting' && v.last) {
    // Back-off: the run that ended is run k, served by both requests;
    // "previous" keeps serving it after run k+1 has been created.
    runs.push({ index: k, id: v.last.containerID ?? `run-${k}`, previous: true, ended: true, terminated: v.last });
  }
  return runs;
}

/** What has been captured of a container so far. */
export interface Captured {
  index: number;
  id: string;
}

export type RunDecision =
  /** Capture `run`; runs `lost.from`..`lost.to` (inclusive) are no longer served. */
  | { kind: 'capture'; run: ServedRun; lost?: { from: number; to: number } }
  /** Nothing new is served yet. */
  | { kind: 'wait' };

/** The next run to capture after `last` (undefined: nothing captured yet). */
export function nextRun(v: ContainerView | undefined, last: Captured | undefined): RunDecision {
  // A capture resumed from status knows indexes, not IDs (id '').
  const fresh = servedRuns(v).filter((r) => !last || (last.id === '' ? r.index > last.index : r.id !== last.id && r.index >= last.index));
  const run = fresh[0];
  if (!run) return { kind: 'wait' };
  // An ID we have not seen under an index we already used: the status is
  // inconsistent (e.g. a restartCount that counts the ended run early); the
  // ID decides that it is a new run, so it gets the next index.
  const index = last && run.index <= last.index ? last.index + 1 : run.index;
  const from = last ? last.index + 1 : 0;
  const lost = index > from ? { from, to: index - 1 } : undefined;
  return { kind: 'capture', run: { ...run, index }, lost };
}

/** Where a run that is being captured is served now, if at all. */
export function locateRun(v: ContainerView | undefined, id: string): ServedRun | undefined {
  return servedRuns(v).find((r) => r.id === id);
}

/**
 * Will the kubelet start this container again after the run that ended with
 * `exitCode`? Regular containers follow the pod's restartPolicy; sidecars
 * (init containers with restartPolicy Always) always restart; other init
 * containers restart on failure unless the pod's policy is Never.
 */
export function willRestart(opts: { init: boolean; sidecar: boolean; podPolicy: string | undefined; exitCode: number | undefined; podTerminal: boolean }): boolean {
  if (opts.podTerminal) return false;
  const policy = opts.podPolicy ?? 'Always';
  if (opts.sidecar) return true;
  const failed = opts.exitCode !== 0;
  if (opts.init) return failed && policy !== 'Never';
  return policy === 'Always' || (policy === 'OnFailure' && failed);
}
