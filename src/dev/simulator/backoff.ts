// The kubelet's crash-loop back-off for one container, as
// `pkg/kubelet/kuberuntime/kuberuntime_manager.go` `doBackOff` drives
// client-go's `util/flowcontrol/backoff.go` `Backoff` (created in
// `pkg/kubelet/kubelet.go` with `initialCrashLoopBackOff` 10 s and
// `MaxContainerBackOff` 300 s, without jitter):
// - after an exit, a container without a back-off entry, or whose entry has
//   expired (the exit came more than 2 × max after the entry's last update:
//   `hasExpired`), restarts at once and gets an entry of the initial duration
//   (`Next` on a missing/expired entry);
// - otherwise it is in back-off until `finishedAt + entry` (`IsInBackOffSince`),
//   then restarts and the entry doubles, capped at max (`Next`).
// So restart 1 is immediate, restart k ≥ 2 comes initial × 2^(k-2) after the
// exit, and a run that lasted over 10 minutes resets the sequence.

export const MAX_CONTAINER_BACKOFF_MS = 300_000;

export class CrashLoopBackOff {
  private entryMs: number | null = null;
  private lastUpdateMs = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;

  constructor(initialMs: number, maxMs = MAX_CONTAINER_BACKOFF_MS) {
    this.maxMs = maxMs;
    this.initialMs = Math.min(initialMs, maxMs);
  }

  private expired(eventMs: number): boolean {
    return eventMs - this.lastUpdateMs > 2 * this.maxMs;
  }

  /** How long after `finishedAtMs` the next run may start; 0: at once (no back-off, no CrashLoopBackOff). */
  delayAfterExit(finishedAtMs: number): number {
    if (this.entryMs === null || this.expired(finishedAtMs)) return 0;
    return this.entryMs;
  }

  /** The next run starts at `nowMs` (the run before ended at `finishedAtMs`). */
  restarted(finishedAtMs: number, nowMs: number): void {
    if (this.entryMs === null || this.expired(finishedAtMs)) this.entryMs = this.initialMs;
    else this.entryMs = Math.min(this.entryMs * 2, this.maxMs);
    this.lastUpdateMs = nowMs;
  }
}

/** A duration as Go's `time.Duration.String` prints it (`500ms`, `10s`, `1m20s`, `5m0s`), for the back-off message. */
export function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  const trim = (v: number, digits: number) => v.toFixed(digits).replace(/\.?0+$/, '');
  if (ms < 1000) return `${trim(ms, 6)}ms`;
  const totalSec = ms / 1000;
  const h = Math.floor(totalSec / 3600);
  const m = Math.floor((totalSec - h * 3600) / 60);
  const s = totalSec - h * 3600 - m * 60;
  const sec = `${trim(s, 9)}s`;
  if (h > 0) return `${h}h${m}m${sec}`;
  if (m > 0) return `${m}m${sec}`;
  return sec;
}
