// spec.holdPod at run time: places, keeps and releases the hold finalizer on
// the target pod. The decisions are src/core/hold.ts; this file reads the
// pod, patches it, and reports through the PodHeld condition.
//
// Who releases, on every path (docs/design.md, "Holding the pod"):
// - the capture ended (every object committed, or Failed/Incomplete): the
//   daemon, before its terminal status (PodHold.sync with ended);
// - holdTimeout after the pod's deletionTimestamp: the daemon's timer;
// - the LogTail deleted: the controller, before it drops the LogTail's own
//   finalizer (releaseHold);
// - a terminal LogTail whose release failed, or an operator that stopped
//   between the terminal status and the release: the controller's terminal
//   reconcile (releaseHold);
// - a LogTail gone without its finalizer, or finished: the sweep over the
//   pod cache at start-up and every minute (staleHolds).
// An operator exiting or losing leadership keeps the holds: the next leader
// finds them on the pods.
import type { V1Pod } from '@kubernetes/client-node';
import { KubeApiError } from '../adapters/kube-api.ts';
import { type HoldAction, HoldReason, decideHold, holdFinalizer } from '../core/hold.ts';
import type { CaptureClock } from './capture-ports.ts';
import type { Logger } from './logger.ts';

/** The API calls a hold makes; `KubeApi` implements it. */
export interface PodFinalizerApi {
  getPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  setPodFinalizer(namespace: string, name: string, seen: { uid: string; resourceVersion: string; finalizers?: string[] | undefined }, finalizer: string, present: boolean): Promise<void>;
}

const ATTEMPTS = 8;

/**
 * Adds or removes `finalizer` on pod `namespace/name` of UID `uid` (any UID
 * when undefined), reading the pod first; a 409/422 (the pod changed since
 * the read) reads it again. 'unchanged': it already was as asked; 'gone': no
 * such pod (or another UID). Throws on
 * other errors (a 403 included) and after ATTEMPTS conflicts in a row.
 */
export async function changePodFinalizer(
  api: PodFinalizerApi,
  target: { namespace: string; name: string; uid: string | undefined },
  finalizer: string,
  present: boolean,
  sleep: (ms: number) => Promise<void>,
): Promise<'done' | 'unchanged' | 'gone'> {
  for (let i = 1; ; i++) {
    const pod = await api.getPod(target.namespace, target.name);
    const uid = pod?.metadata?.uid;
    if (!pod || !uid || (target.uid && uid !== target.uid)) return 'gone';
    const finalizers = pod.metadata?.finalizers;
    if ((finalizers ?? []).includes(finalizer) === present) return 'unchanged';
    try {
      await api.setPodFinalizer(target.namespace, target.name, { uid, resourceVersion: pod.metadata?.resourceVersion ?? '', finalizers }, finalizer, present);
      return 'done';
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return 'gone';
      const conflict = err instanceof KubeApiError && (err.status === 409 || err.status === 422);
      if (!conflict || i >= ATTEMPTS) throw err;
      await sleep(50 * i);
    }
  }
}

export interface PodHoldOptions {
  api: PodFinalizerApi;
  /** --enable-hold-pod */
  enabled: boolean;
  logger: Logger;
  clock: CaptureClock;
  namespace: string;
  podName: string;
  logTailUid: string;
  holdTimeoutMs: number;
  /** The capture's bound pod UID, once known. */
  podUid(): string | undefined;
  /** The reason of the LogTail's PodHeld condition, if any. */
  previous(): string | undefined;
  /** Record the PodHeld condition (the daemon writes it with its status). */
  setCondition(status: 'True' | 'False', reason: string, message: string): void;
  event(type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** Aborts on the daemon's stop: no further patch is started, the timer ends; a hold in place stays. */
  signal: AbortSignal;
}

/** One capture's hold. Calls are serialised; each reads the pod directly, so a lagging cache cannot decide. */
export class PodHold {
  private readonly o: PodHoldOptions;
  private readonly finalizer: string;
  private chain: Promise<void> = Promise.resolve();
  private timer: AbortController | undefined;
  private timerAt: number | undefined;

  constructor(o: PodHoldOptions) {
    this.o = o;
    this.finalizer = holdFinalizer(o.logTailUid);
  }

  /** Re-evaluates the hold now (a pod event, start, the deadline); `ended`: the capture has ended, release. */
  sync(ended = false): Promise<void> {
    const next = this.chain.then(() => this.syncOnce(ended));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async syncOnce(ended: boolean): Promise<void> {
    if (this.o.signal.aborted) return;
    const uid = this.o.podUid();
    let pod: V1Pod | undefined;
    try {
      pod = await this.o.api.getPod(this.o.namespace, this.o.podName);
    } catch (err) {
      this.o.logger.warn('hold: pod read failed; looking again shortly', { error: String(err) });
      this.arm(this.o.clock.now() + 2000);
      return;
    }
    if (pod && uid && pod.metadata?.uid !== uid) pod = undefined;
    const action = decideHold({
      holdPod: true,
      enabled: this.o.enabled,
      finalizer: this.finalizer,
      holdTimeoutMs: this.o.holdTimeoutMs,
      captureEnded: ended,
      logTailDeleting: false,
      pod: pod ? { uid: pod.metadata?.uid, deletionTimestamp: pod.metadata?.deletionTimestamp, finalizers: pod.metadata?.finalizers } : undefined,
      previous: this.o.previous(),
      now: this.o.clock.now(),
    });
    await this.act(action, pod?.metadata?.uid);
  }

  private async act(action: HoldAction, uid: string | undefined): Promise<void> {
    const target = { namespace: this.o.namespace, name: this.o.podName, uid };
    const sleep = (ms: number) => this.o.clock.sleep(ms);
    switch (action.kind) {
      case 'none':
        if (action.reason && this.o.previous() !== action.reason) {
          this.o.setCondition('False', action.reason, action.message ?? '');
          this.o.logger.warn('hold not placed', { reason: action.reason, message: action.message });
        }
        return;
      case 'keep':
        if (this.o.previous() !== HoldReason.Held) this.o.setCondition('True', HoldReason.Held, this.heldMessage());
        if (action.until !== undefined) this.arm(action.until);
        return;
      case 'place':
        try {
          if (this.o.signal.aborted) return;
          const r = await changePodFinalizer(this.o.api, target, this.finalizer, true, sleep);
          if (r !== 'gone') {
            this.o.setCondition('True', HoldReason.Held, this.heldMessage());
            this.o.logger.info('hold placed', { pod: this.o.podName, finalizer: this.finalizer });
          }
        } catch (err) {
          this.failed(err, 'placed');
        }
        return;
      case 'release':
        try {
          await changePodFinalizer(this.o.api, target, this.finalizer, false, sleep);
          this.disarm();
          this.o.setCondition('False', action.reason, action.message);
          this.o.logger.info('hold released', { pod: this.o.podName, reason: action.reason, message: action.message });
          if (action.reason === HoldReason.HoldTimeout) this.o.event('Warning', HoldReason.HoldTimeout, `pod ${this.o.podName}: ${action.message}`);
        } catch (err) {
          this.failed(err, 'released');
        }
        return;
    }
  }

  private failed(err: unknown, what: string): void {
    if (err instanceof KubeApiError && err.status === 403) {
      this.o.setCondition('False', HoldReason.HoldNotPermitted, `the operator may not patch pod ${this.o.podName} (grant it with the chart value holdPod.enabled): ${err.message}`);
      this.o.logger.warn(`hold not ${what}: forbidden`, { error: err.message });
      return;
    }
    this.o.logger.warn(`hold not ${what}; trying again shortly`, { error: String(err) });
    this.arm(this.o.clock.now() + 2000);
  }

  private heldMessage(): string {
    return `finalizer ${this.finalizer} on pod ${this.o.podName}: its API object stays until the capture has ended, at most holdTimeout after its deletionTimestamp`;
  }

  /** One timer, at the earliest instant asked for; it re-evaluates the hold. */
  private arm(at: number): void {
    if (this.o.signal.aborted) return;
    if (this.timerAt !== undefined && this.timerAt <= at) return;
    this.disarm();
    const t = new AbortController();
    this.timer = t;
    this.timerAt = at;
    const stop = () => t.abort();
    this.o.signal.addEventListener('abort', stop, { once: true });
    void this.o.clock
      .sleep(Math.max(0, at - this.o.clock.now()), t.signal)
      .then(
        () => {
          if (this.timer === t) this.timer = this.timerAt = undefined;
          void this.sync().catch(() => undefined);
        },
        () => undefined,
      )
      .finally(() => this.o.signal.removeEventListener('abort', stop));
  }

  private disarm(): void {
    this.timer?.abort();
    this.timer = this.timerAt = undefined;
  }
}

/**
 * Releases the hold of LogTail `logTailUid` on a pod, outside a capture (the
 * LogTail deleted, or finished without releasing it). 'gone' when the pod is.
 */
export function releaseHold(api: PodFinalizerApi, pod: { namespace: string; name: string; uid?: string | undefined }, logTailUid: string): Promise<'done' | 'unchanged' | 'gone'> {
  return changePodFinalizer(api, { namespace: pod.namespace, name: pod.name, uid: pod.uid }, holdFinalizer(logTailUid), false, (ms) => new Promise((r) => setTimeout(r, ms)));
}
