// What a failed or ended log request means for the capture of one run.
// Pure: the caller owns the retry budget (adapters/retry.ts Backoff) and
// tells us whether it is spent.

export type FailureKind = 'transient' | 'permanent';

export interface StreamFailure {
  /** CaptureError reason, e.g. KubeletUnreachable, StreamStalled, Forbidden. */
  reason: string;
  kind: FailureKind;
  /** The connection delivered new bytes before it failed. */
  progressed: boolean;
  /** The run had ended before this request was made. */
  runEnded: boolean;
}

export type FailureAction =
  /** Not a failure: a quiet stream of a running container timed out idle. Reopen; count nothing. */
  | { kind: 'reopen' }
  /** A failure: count it, restart the budget first when the connection made progress. */
  | { kind: 'retry'; resetBudget: boolean }
  | { kind: 'give-up' };

export function classifyStreamFailure(f: StreamFailure): FailureAction {
  if (f.kind === 'permanent') return { kind: 'give-up' };
  if (f.reason === 'StreamStalled' && !f.runEnded) return { kind: 'reopen' };
  return { kind: 'retry', resetBudget: f.progressed };
}

/** The reason reported when the retry budget is spent (or a permanent error ends a run). */
export function giveUpReason(reason: string, storedBytes: number): string {
  if (reason === 'StreamEnded' || reason === 'StreamStalled') return storedBytes > 0 ? 'LogGap' : 'KubeletUnreachable';
  if (reason === 'ServerError' || reason === 'TooManyRequests' || reason === 'WaitingToStart') return 'KubeletUnreachable';
  if (reason === 'StoreDenied') return 'StoreUnavailable';
  return reason;
}

/** Store failures that end a run without anything committed. */
export function isStoreReason(reason: string): boolean {
  return reason === 'KeyExists' || reason === 'StoreDenied' || reason === 'StoreUnavailable' || reason === 'SizeMismatch';
}
