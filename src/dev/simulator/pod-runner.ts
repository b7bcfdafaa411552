// Plays one pod the way a kubelet would: init containers one after another,
// then the regular containers together, each run writing its script's output
// into a LogStore; restarts as the restart policy says, with the kubelet's
// restart semantics (see `lifecycle` and docs/simulator.md "Restarts"); pod
// status written through `pods/status`; deletion with a grace period
// (running containers killed with 137 when it ends, status written, then the
// pod removed with a zero-grace delete).
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError, STRATEGIC_MERGE_PATCH, type PodJson } from './kube.ts';
import { CrashLoopBackOff, goDuration } from './backoff.ts';
import { FileContent, LogStore, MemoryContent } from './log-store.ts';
import { OutputGenerator } from './output.ts';
import {
  FAULTS_ANNOTATION,
  INVALID_REASON,
  SCRIPT_ANNOTATION,
  parseFaults,
  parseScript,
  defaultContainerScript,
  DEFAULT_RESTART_DELAY_SECONDS,
  type ContainerScript,
  type Faults,
} from './script.ts';
import { formatSeconds, nowNs, parseRfc3339 } from './time.ts';

/** What a runner needs from the API (KubeRest, or a fake in unit tests). */
export interface RestLike {
  request<T = unknown>(method: string, path: string, body?: unknown, contentType?: string): Promise<T>;
}

export interface PodHost {
  rest: RestLike;
  /** Root of the recorded output ($LOGTAIL_SIM_DIR); null keeps content in memory (tests). */
  simDir: string | null;
  log(msg: string): void;
  openTlsWindow(node: string, seconds: number): void;
  nodeFaults(node: string): Faults;
  podIp(node: string): string;
  /**
   * How long after the last container ended the terminal phase is written
   * (default 1000 ms, as observed on the hollow kubelet; see statusPatch).
   */
  terminalPhaseDelayMs?: number;
}

interface Run {
  index: number;
  containerId: string;
  store: LogStore;
  startedAt: bigint;
  finishedAt: bigint | null;
  exitCode: number | null;
  reason: string | null;
  /** Removed by the kubelet's container GC (with its log) once a newer run died. */
  removed: boolean;
}

type Waiting = { reason: string; message?: string };

interface Ctr {
  name: string;
  image: string;
  init: boolean;
  sidecar: boolean;
  script: ContainerScript;
  /** restartCount of the newest run (the kubelet stamps it when the run is created). */
  restartCount: number;
  /** The newest run: `state` shows it (running, or terminated) unless `backOff` is set. */
  current: Run | null;
  /** The run before the newest: `lastState.terminated` while `state` shows `current`. */
  last: Run | null;
  waiting: Waiting;
  /**
   * Set while the kubelet's reason cache holds CrashLoopBackOff for the
   * container: `state.waiting` shows it and `lastState.terminated` shows
   * `current` (the run that ended), restartCount unchanged.
   */
  backOff: Waiting | null;
  crashLoop: CrashLoopBackOff;
  /** Will not run again. */
  final: boolean;
  /** terminatedDelaySeconds fault: seconds the ended run still shows as running once the phase is terminal. */
  hideSeconds: number;
  /** Until then the API still shows the run as running; 0 while the phase is not terminal yet. */
  hideTerminatedUntil: number;
  kill: ((code: number) => void) | null;
  /** Cuts a start delay or restart back-off short. */
  wake: (() => void) | null;
  /** A sidecar asked to stop once the main containers are done. */
  stopRequested: boolean;
  started: Promise<void>;
  markStarted: () => void;
}

export type LogTarget = { ok: true; store: LogStore } | { ok: false; status: number; message: string };

const MAX_STEP_BYTES = 8 << 20;
const MAX_QUEUED_STATUSES = 64;

function imageId(image: string): string {
  const h = Buffer.from(image).toString('hex').padEnd(64, '0').slice(0, 64);
  return `${image.includes('/') ? image : 'docker.io/library/' + image}@sha256:${h}`;
}

function cond(type: string, status: boolean, reason?: string, message?: string) {
  // null removes a field the previous patch set: conditions merge by type.
  return { type, status: status ? 'True' : 'False', reason: reason ?? null, message: message ?? null };
}

export class PodRunner {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  pod: PodJson;
  faults: Faults = {};
  invalid: string | null = null;
  http500Left = 0;
  /** Resolves when the pod's lifecycle has ended (terminal, deleted or vanished). */
  readonly done: Promise<void>;

  private readonly host: PodHost;
  private readonly ctrs: Ctr[] = [];
  private readonly byName = new Map<string, Ctr>();
  private startTime: bigint;
  private readonly podIp: string;
  private initDone = false;
  /** The pod's sandbox exists (PodReadyToStartContainers). */
  private sandboxCreated = false;
  /** The pod worker has stopped the sandbox: the terminal phase may be reported. */
  private sandboxStopped = false;
  private phase = 'Pending';
  private reason: string | null = null;
  private message: string | null = null;
  private readonly transitions = new Map<string, { status: string; at: string }>();
  private stopping = false;
  private readonly stopped: Promise<void>;
  private resolveStopped!: () => void;
  private lifecycleDone = false;
  private removing = false;
  private vanished = false;
  private deleting = false;
  private firstStartSeen = false;
  private timers = new Set<NodeJS.Timeout>();
  private writing = false;
  private queue: Record<string, unknown>[] = [];
  private lastQueued = '';
  private idleWaiters: (() => void)[] = [];
  private resolveDone!: () => void;
  private readonly podDir: string | null;

  constructor(pod: PodJson, node: string, host: PodHost) {
    this.pod = pod;
    this.uid = pod.metadata.uid;
    this.namespace = pod.metadata.namespace ?? 'default';
    this.name = pod.metadata.name;
    this.node = node;
    this.host = host;
    this.startTime = nowNs();
    this.podIp = host.podIp(node);
    this.done = new Promise((r) => (this.resolveDone = r));
    this.stopped = new Promise((r) => (this.resolveStopped = r));
    this.podDir = host.simDir === null ? null : join(host.simDir, this.namespace, this.name);

    const names = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].map((c) => c.name);
    const ann = pod.metadata.annotations ?? {};
    const script = parseScript(ann[SCRIPT_ANNOTATION], names);
    const faults = parseFaults(ann[FAULTS_ANNOTATION]);
    if (!script.ok) this.invalid = script.error;
    else if (!faults.ok) this.invalid = faults.error;
    if (faults.ok) this.faults = faults.value;
    this.http500Left = this.effectiveFaults().http500Count ?? 0;
    const hasInit = (pod.spec.initContainers ?? []).length > 0;
    for (const c of pod.spec.initContainers ?? []) this.addCtr(c.name, c.image, true, c.restartPolicy === 'Always', script.ok ? script.value.containers.get(c.name)! : null);
    for (const c of pod.spec.containers) this.addCtr(c.name, c.image, false, false, script.ok ? script.value.containers.get(c.name)! : null, hasInit);
  }

  private addCtr(name: string, image: string | undefined, init: boolean, sidecar: boolean, script: ContainerScript | null, afterInit = false): void {
    const c: Ctr = {
      name,
      image: image ?? 'busybox',
      init,
      sidecar,
      // no script (an invalid one): the defaults, writing nothing
      script: script ?? { ...defaultContainerScript(), segments: [] },
      restartCount: 0,
      current: null,
      last: null,
      waiting: { reason: init || afterInit ? 'PodInitializing' : 'ContainerCreating' },
      backOff: null,
      crashLoop: new CrashLoopBackOff((script?.restartDelaySeconds ?? DEFAULT_RESTART_DELAY_SECONDS) * 1000),
      final: false,
      hideSeconds: 0,
      hideTerminatedUntil: 0,
      kill: null,
      wake: null,
      stopRequested: false,
      started: Promise.resolve(),
      markStarted: () => {},
    };
    c.started = new Promise((r) => (c.markStarted = r));
    this.ctrs.push(c);
    this.byName.set(name, c);
  }

  effectiveFaults(): Faults {
    return { ...this.host.nodeFaults(this.node), ...this.faults };
  }

  get containerNames(): string[] {
    return this.ctrs.map((c) => c.name);
  }

  get terminal(): boolean {
    return this.phase === 'Succeeded' || this.phase === 'Failed';
  }

  private get policy(): string {
    return this.pod.spec.restartPolicy ?? 'Always';
  }

  private path(sub = ''): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/pods/${encodeURIComponent(this.name)}${sub}`;
  }

  // ---- lifecycle -------------------------------------------------------

  /** Plays the pod; resolves when it is terminal, deleted or gone. */
  async start(): Promise<void> {
    try {
      if (this.podDir) {
        // A pod re-created under the same name starts with fresh recordings.
        rmSync(this.podDir, { recursive: true, force: true });
        mkdirSync(this.podDir, { recursive: true });
      }
      if (this.invalid !== null) {
        await this.failInvalid(this.invalid);
      } else {
        await this.play();
      }
      this.lifecycleDone = true;
      await this.flushStatus();
      if (this.deleting) await this.removePod();
    } catch (err) {
      this.host.log(`pod ${this.namespace}/${this.name}: ${(err as Error).stack ?? String(err)}`);
    } finally {
      this.lifecycleDone = true;
      this.resolveDone();
    }
  }

  private async failInvalid(error: string): Promise<void> {
    this.host.log(`pod ${this.namespace}/${this.name}: ${INVALID_REASON}: ${error}`);
    for (const c of this.ctrs) {
      c.waiting = { reason: INVALID_REASON, message: error };
      c.final = true;
    }
    this.phase = 'Failed';
    this.reason = INVALID_REASON;
    this.message = error;
    this.markDirty();
    await this.event('Warning', INVALID_REASON, error);
  }

  private async play(): Promise<void> {
    // The first status: every container waiting with the kubelet's default
    // reason (ContainerCreating, or PodInitializing in a pod with init
    // containers; convertToAPIContainerStatuses). The hollow kubelet writes it
    // only when its status manager is quicker than the container start; before
    // that, one without the sandbox (PodReadyToStartContainers False).
    this.markDirty();
    this.sandboxCreated = true;
    this.markDirty();
    const sidecars: Promise<void>[] = [];
    let initOk = true;
    for (const c of this.ctrs.filter((x) => x.init)) {
      if (this.stopping) {
        initOk = false;
        break;
      }
      if (c.sidecar) {
        // A restartable init container (sidecar) runs alongside what follows.
        sidecars.push(this.lifecycle(c));
        await Promise.race([c.started, this.stopped]);
        continue;
      }
      await this.lifecycle(c);
      const exit = c.current?.exitCode ?? null;
      if (exit !== 0) {
        initOk = false;
        break;
      }
    }
    if (initOk && !this.stopping) {
      this.initDone = true;
      await Promise.all(this.ctrs.filter((x) => !x.init).map((c) => this.lifecycle(c)));
    }
    // Sidecars stop once the main containers are done.
    for (const c of this.ctrs.filter((x) => x.sidecar)) {
      c.stopRequested = true;
      c.wake?.();
      // It exits on SIGTERM the way its script says it exits.
      if (c.current) c.kill?.(c.script.exitCodes[Math.min(c.current.index, c.script.exitCodes.length - 1)]!);
    }
    await Promise.all(sidecars);
    const phase = this.finalPhase(initOk);
    if (!this.stopping) {
      // pkg/kubelet/status/status_manager.go mergePodStatus: a terminal phase
      // is held back while the pod could still have running containers, so the
      // containers show terminated first (phase unchanged, conditions already
      // with the terminal reasons); the pod worker then stops the sandbox and
      // the terminal phase follows (~1 s later on the hollow kubelet). A pod
      // being deleted is killed and reported terminal in one write.
      this.markDirty();
      await this.flushStatus();
      await Promise.race([new Promise<void>((r) => this.later(this.host.terminalPhaseDelayMs ?? 1000, r)), this.stopped]);
    }
    this.phase = phase;
    this.sandboxStopped = true;
    for (const c of this.ctrs) {
      if (c.hideSeconds > 0) {
        c.hideTerminatedUntil = Date.now() + c.hideSeconds * 1000;
        this.later(c.hideSeconds * 1000 + 10, () => this.markDirty());
      }
    }
    this.markDirty();
  }

  private finalPhase(initOk: boolean): string {
    if (!initOk) return 'Failed';
    const regular = this.ctrs.filter((x) => !x.init);
    const ok = regular.every((c) => ((c.current ?? c.last)?.exitCode ?? null) === 0);
    return ok ? 'Succeeded' : 'Failed';
  }

  private stop(): void {
    this.stopping = true;
    this.resolveStopped();
  }

  private sleep(ms: number, c: Ctr): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        c.wake = null;
        resolve();
      }, ms);
      this.timers.add(t);
      c.wake = () => {
        clearTimeout(t);
        this.timers.delete(t);
        c.wake = null;
        resolve();
      };
    });
  }

  private shouldRestart(c: Ctr, exitCode: number): boolean {
    if (this.stopping) return false;
    if (c.sidecar) return !c.stopRequested;
    if (c.init) return this.policy !== 'Never' && exitCode !== 0;
    if (this.policy === 'Always') return true;
    if (this.policy === 'OnFailure') return exitCode !== 0;
    return false;
  }

  /**
   * Runs a container until it will not run again. After run k exits and a
   * restart is due, the status goes through what the kubelet shows
   * (pkg/kubelet/kubelet_pods.go convertToAPIContainerStatuses; the back-off
   * in backoff.ts):
   * 1. `state.terminated` = run k, `lastState` = run k-1, restartCount k,
   *    until the kubelet's next pod sync: for an immediate restart (no
   *    back-off) the PLEG relist that sees run k+1 (`syncSeconds`); otherwise
   *    the pod worker's requeue at the back-off's end, capped at the resync
   *    period (pod_workers.go completeWork; `resyncSeconds`);
   * 2. with a back-off: `state.waiting` CrashLoopBackOff (the reason cache,
   *    filled by the sync that hit the back-off), `lastState` = run k,
   *    restartCount still k, until the back-off ends plus one relist;
   * 3. run k+1 is created: restartCount k+1 (the runtime's count for the new
   *    container), `lastState` = run k.
   */
  private async lifecycle(c: Ctr): Promise<void> {
    for (;;) {
      if (this.stopping || c.stopRequested) break;
      if (c.current === null && c.script.startDelaySeconds > 0) {
        // The default waiting reason (ContainerCreating, or PodInitializing in a pod with init containers).
        this.markDirty();
        await this.sleep(c.script.startDelaySeconds * 1000, c);
        if (this.stopping || c.stopRequested) break;
      }
      if (c.current !== null) {
        // A restart: the run that ended becomes lastState, the new one counts.
        c.crashLoop.restarted(Number((c.current.finishedAt ?? nowNs()) / 1_000_000n), Date.now());
        c.backOff = null;
        c.last = c.current;
        c.restartCount++;
      }
      const run = this.startRun(c);
      const exitCode = await this.execute(c, run);
      run.exitCode = exitCode;
      run.reason = exitCode === 0 ? 'Completed' : 'Error';
      run.finishedAt = nowNs();
      run.store.finish();
      c.kill = null;
      // The kubelet's podContainerDeletor removes dead containers beyond the
      // newest max(MaxPerPodContainerCount, 1) on each ContainerDied event;
      // the default MaxPerPodContainerCount is 1 (cmd/kubelet/app/options,
      // pkg/kubelet/pod_container_deletor.go). So the run before this one is
      // gone with its log, while the status may still name it in lastState.
      if (c.last && !c.last.removed) {
        c.last.removed = true;
        this.retire(c.last);
      }
      if (!this.shouldRestart(c, exitCode)) {
        const delay = this.effectiveFaults().terminatedDelaySeconds ?? 0;
        if (delay > 0 && !c.sidecar) c.hideSeconds = delay;
        break;
      }
      if (!(await this.awaitRestart(c, run))) break;
    }
    c.backOff = null;
    c.final = true;
    this.markDirty();
  }

  /** Phases 1 and 2 of `lifecycle`; false if the pod is stopping (the ended run stays `terminated`). */
  private async awaitRestart(c: Ctr, run: Run): Promise<boolean> {
    const finishedMs = Number(run.finishedAt! / 1_000_000n);
    const backoff = c.crashLoop.delayAfterExit(finishedMs);
    const syncMs = c.script.syncSeconds * 1000;
    this.markDirty();
    if (backoff === 0) {
      await this.sleep(syncMs, c);
      return !(this.stopping || c.stopRequested);
    }
    await this.sleep(Math.min(backoff, c.script.resyncSeconds * 1000), c);
    if (this.stopping || c.stopRequested) return false;
    c.backOff = {
      reason: 'CrashLoopBackOff',
      message: `back-off ${goDuration(backoff)} restarting failed container=${c.name} pod=${this.name}_${this.namespace}(${this.uid})`,
    };
    this.markDirty();
    await this.sleep(Math.max(0, finishedMs + backoff - Date.now()) + syncMs, c);
    // A pod being deleted is not restarted (ShouldContainerBeRestarted): the reason cache no longer applies.
    if (this.stopping || c.stopRequested) {
      c.backOff = null;
      return false;
    }
    return true;
  }

  private runFile(c: Ctr): string | null {
    if (!this.podDir) return null;
    const file = join(this.podDir, `${c.name}.log`);
    if (c.restartCount > 0) {
      // Earlier runs keep their bytes: CONTAINER.log is always the latest run.
      try {
        renameSync(file, join(this.podDir, `${c.name}.${c.restartCount - 1}.log`));
      } catch {
        /* the previous run left no file */
      }
    }
    return file;
  }

  private startRun(c: Ctr): Run {
    const file = this.runFile(c);
    const faults = this.effectiveFaults();
    const store = new LogStore(file ? new FileContent(file) : new MemoryContent(), {
      maxFileSize: faults.containerLogMaxSize ?? null,
      offsetMinutes: faults.timestampOffset ?? 0,
    });
    const run: Run = {
      index: c.restartCount,
      containerId: 'containerd://' + randomBytes(32).toString('hex'),
      store,
      startedAt: nowNs(),
      finishedAt: null,
      exitCode: null,
      reason: null,
      removed: false,
    };
    c.current = run;
    if (!this.firstStartSeen) {
      this.firstStartSeen = true;
      this.onFirstStart();
    }
    this.markDirty();
    c.markStarted();
    return run;
  }

  private onFirstStart(): void {
    const f = this.effectiveFaults();
    // A node's own tlsAlertSeconds counts from when the annotation appeared, not per pod.
    if (this.faults.tlsAlertSeconds) this.host.openTlsWindow(this.node, this.faults.tlsAlertSeconds);
    if (f.deleteAfterSeconds !== undefined) {
      const grace = f.deleteGraceSeconds ?? 0;
      this.later(f.deleteAfterSeconds * 1000, () => {
        if (this.vanished) return;
        this.host.log(`pod ${this.namespace}/${this.name}: deleteAfterSeconds fault: deleting with grace ${grace}s`);
        this.host.rest
          .request('DELETE', this.path(), { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: grace, preconditions: { uid: this.uid } })
          .catch((err: unknown) => this.host.log(`pod ${this.namespace}/${this.name}: fault delete failed: ${(err as Error).message}`));
      });
    }
  }

  private execute(c: Ctr, run: Run): Promise<number> {
    const gen = new OutputGenerator(c.script, run.startedAt, c.name, run.index);
    const codes = c.script.exitCodes;
    const exitCode = codes[Math.min(run.index, codes.length - 1)]!;
    return new Promise<number>((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      let ended = false;
      const end = (code: number) => {
        if (ended) return;
        ended = true;
        if (timer) {
          clearTimeout(timer);
          this.timers.delete(timer);
        }
        run.store.commit();
        resolve(code);
      };
      c.kill = end;
      const schedule = (ms: number, f: () => void) => {
        timer = setTimeout(() => {
          if (timer) this.timers.delete(timer);
          timer = null;
          f();
        }, ms);
        this.timers.add(timer);
      };
      const tick = () => {
        if (ended) return;
        let r;
        try {
          r = gen.step(nowNs(), MAX_STEP_BYTES, run.store);
          run.store.commit();
        } catch (err) {
          this.host.log(`pod ${this.namespace}/${this.name} container ${c.name}: output failed: ${(err as Error).message}`);
          return end(1);
        }
        if (r.done) {
          const hold = c.script.holdSeconds;
          if (hold < 0) return; // runs until killed
          const until = (gen.lastTimestamp ?? run.startedAt) + BigInt(Math.round(hold * 1e9));
          const ms = Number((until - nowNs()) / 1_000_000n);
          if (ms <= 0) return end(exitCode);
          return schedule(ms, () => end(exitCode));
        }
        if (r.nextDue === null) return schedule(0, tick);
        const ms = Number((r.nextDue - nowNs()) / 1_000_000n);
        schedule(Math.max(2, ms), tick);
      };
      tick();
    });
  }

  private retire(run: Run | null): void {
    if (!run) return;
    // Readers may still be draining it; the fd goes a minute later.
    this.later(60_000, () => run.store.close());
  }

  private later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      f();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  // ---- deletion --------------------------------------------------------

  /** Called for every informer update of this pod. */
  update(pod: PodJson): void {
    this.pod = pod;
    const dt = pod.metadata.deletionTimestamp;
    if (dt && !this.deleting) this.beginDeletion(dt, pod.metadata.deletionGracePeriodSeconds);
  }

  private beginDeletion(deletionTimestamp: string, graceSeconds: number | undefined): void {
    this.deleting = true;
    this.stop();
    if (this.lifecycleDone) {
      // Already terminal: nothing to kill, only the removal a kubelet does.
      void this.flushStatus().then(() => this.removePod());
      return;
    }
    // The kubelet grants the grace period from when it starts killing; the
    // deletionTimestamp has only whole seconds.
    const end = parseRfc3339(deletionTimestamp);
    const ms = graceSeconds !== undefined ? graceSeconds * 1000 : end === null ? 0 : Number((end - nowNs()) / 1_000_000n);
    this.host.log(`pod ${this.namespace}/${this.name}: deletion requested, grace ends in ${Math.max(0, ms)} ms`);
    for (const c of this.ctrs) c.wake?.();
    const killAll = () => {
      for (const c of this.ctrs) c.kill?.(137);
    };
    if (ms <= 0) killAll();
    else this.later(ms, killAll);
  }

  /** The pod is gone from the API (deleted with grace 0, or removed by us). */
  vanish(): void {
    if (this.vanished) return;
    this.vanished = true;
    this.stop();
    for (const c of this.ctrs) {
      c.wake?.();
      c.kill?.(137);
    }
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.ctrs) for (const r of [c.current, c.last]) r?.store.finish();
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
    setTimeout(() => {
      for (const c of this.ctrs) for (const r of [c.current, c.last]) r?.store.close();
    }, 60_000).unref();
  }

  private async removePod(): Promise<void> {
    if (this.removing || this.vanished) return;
    this.removing = true;
    try {
      await this.host.rest.request('DELETE', this.path(), { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid: this.uid } });
      this.host.log(`pod ${this.namespace}/${this.name}: removed`);
    } catch (err) {
      if (!(err instanceof ApiError && (err.status === 404 || err.status === 409))) {
        this.host.log(`pod ${this.namespace}/${this.name}: final delete failed: ${(err as Error).message}`);
      }
    }
  }

  // ---- status ----------------------------------------------------------

  /**
   * Takes a snapshot of the status and queues it: every state the pod passes
   * through is written, in order (a slow apiserver delays them, never merges
   * two different states; identical consecutive ones are written once). The
   * kubelet's status manager may skip a state that lasted an instant; the
   * simulator writes it, so a reader never misses one the kubelet can show.
   */
  private markDirty(): void {
    if (this.vanished) return;
    const patch = this.statusPatch();
    const key = JSON.stringify(patch);
    if (key === this.lastQueued) return;
    this.lastQueued = key;
    // Bounded: under a long backlog the newest replaces the last one waiting.
    if (this.queue.length >= MAX_QUEUED_STATUSES) this.queue.pop();
    this.queue.push(patch);
    if (!this.writing) void this.writeLoop();
  }

  private async writeLoop(): Promise<void> {
    this.writing = true;
    let failures = 0;
    while (this.queue.length > 0 && !this.vanished) {
      try {
        await this.host.rest.request('PATCH', this.path('/status'), this.queue[0], STRATEGIC_MERGE_PATCH);
        this.queue.shift();
        failures = 0;
      } catch (err) {
        if (err instanceof ApiError && (err.status === 404 || err.status === 409)) {
          // Gone, or a new pod under the same name (uid precondition).
          this.queue.length = 0;
          break;
        }
        failures++;
        this.host.log(`pod ${this.namespace}/${this.name}: status write failed (${failures}): ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** failures)));
      }
    }
    this.writing = false;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves once every queued status has been written. */
  flushStatus(): Promise<void> {
    if (this.vanished || (!this.writing && this.queue.length === 0)) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private transition(type: string, status: string): string {
    const t = this.transitions.get(type);
    if (t && t.status === status) return t.at;
    const at = formatSeconds(nowNs());
    this.transitions.set(type, { status, at });
    return at;
  }

  private containerStatus(c: Ctr, nowMs: number) {
    const cur = c.current;
    const hidden = cur !== null && cur.finishedAt !== null && c.hideSeconds > 0 && (c.hideTerminatedUntil === 0 || nowMs < c.hideTerminatedUntil);
    let state: Record<string, unknown>;
    let ready = false;
    let started = false;
    // During the back-off the ended run moves to lastState (convertToAPIContainerStatuses:
    // `if status.State.Terminated != nil { status.LastTerminationState = status.State }`).
    const last = c.backOff ? cur : c.last;
    if (c.backOff) {
      state = { waiting: c.backOff };
    } else if (cur && (cur.finishedAt === null || hidden)) {
      state = { running: { startedAt: formatSeconds(cur.startedAt) } };
      started = true;
      // A running init container is not ready (it becomes ready by exiting 0); a sidecar is like a regular container.
      ready = cur.finishedAt === null && !this.terminal && !(c.init && !c.sidecar);
    } else if (cur && cur.finishedAt !== null) {
      state = {
        terminated: { exitCode: cur.exitCode, reason: cur.reason, startedAt: formatSeconds(cur.startedAt), finishedAt: formatSeconds(cur.finishedAt), containerID: cur.containerId },
      };
      // pkg/kubelet/prober/prober_manager.go UpdatePodStatus: a (non-sidecar) init container is ready once it exited 0.
      ready = c.init && !c.sidecar && cur.exitCode === 0;
    } else {
      state = { waiting: c.waiting };
    }
    const lastState = last
      ? {
          terminated: {
            exitCode: last.exitCode,
            reason: last.reason,
            startedAt: formatSeconds(last.startedAt),
            finishedAt: formatSeconds(last.finishedAt ?? last.startedAt),
            containerID: last.containerId,
          },
        }
      : {};
    return {
      name: c.name,
      state,
      lastState,
      ready,
      restartCount: c.restartCount,
      image: c.image,
      imageID: cur ? imageId(c.image) : '',
      ...(cur ? { containerID: cur.containerId } : {}),
      started,
    };
  }

  /** The strategic-merge patch a kubelet would send for the pod's current state. */
  statusPatch(): Record<string, unknown> {
    const nowMs = Date.now();
    const init = this.ctrs.filter((c) => c.init);
    const regular = this.ctrs.filter((c) => !c.init);
    const terminal = this.terminal;
    const notReady = regular.filter((c) => !(c.current && c.current.finishedAt === null)).map((c) => c.name);
    const incompleteInit = init.filter((c) => !c.sidecar && c.current?.exitCode !== 0).map((c) => c.name);
    // The phase getPhase computes (kubelet_pods.go), which the conditions use;
    // the phase reported holds a terminal value back until the sandbox is
    // stopped (see play()).
    let computed = this.phase;
    const ran = this.initDone && regular.some((c) => c.current !== null);
    if (!terminal) {
      const initFailed = init.some((c) => c.final && !c.sidecar && (c.current?.exitCode ?? 0) !== 0);
      if (initFailed) computed = 'Failed';
      else if (this.initDone && regular.every((c) => c.final)) computed = this.finalPhase(true);
      else if (ran) computed = 'Running';
    }
    const isTerminal = computed === 'Succeeded' || computed === 'Failed';
    const phase = isTerminal && !terminal ? (ran ? 'Running' : 'Pending') : computed;
    const ready = notReady.length === 0 && !isTerminal;
    // pkg/kubelet/status/generate.go: PodFailed / PodCompleted for a terminal phase.
    const terminalReason = computed === 'Failed' ? 'PodFailed' : 'PodCompleted';
    const readyReason = isTerminal ? terminalReason : ready ? undefined : 'ContainersNotReady';
    const readyMsg = isTerminal || ready ? undefined : `containers with unready status: [${notReady.join(' ')}]`;
    const initialized = this.initDone || incompleteInit.length === 0;
    const sandboxReady = this.invalid === null && this.sandboxCreated && !this.sandboxStopped;
    const conditions = [
      {
        // kubelet/status/generate.go GeneratePodReadyToStartContainersCondition, messages from kubelet/types/constants.go.
        ...cond('PodReadyToStartContainers', sandboxReady, sandboxReady ? undefined : 'PodSandboxNotReady', sandboxReady ? undefined : this.sandboxCreated ? 'pod sandbox is not ready' : 'no pod sandbox exists'),
        lastProbeTime: null,
        lastTransitionTime: this.transition('PodReadyToStartContainers', String(sandboxReady)),
      },
      {
        // generate.go GeneratePodInitializedCondition: PodCompleted only for Succeeded.
        ...cond('Initialized', initialized, computed === 'Succeeded' && initialized ? 'PodCompleted' : initialized ? undefined : 'ContainersNotInitialized', initialized ? undefined : `containers with incomplete status: [${incompleteInit.join(' ')}]`),
        lastProbeTime: null,
        lastTransitionTime: this.transition('Initialized', String(initialized)),
      },
      { ...cond('Ready', ready, readyReason, readyMsg), lastProbeTime: null, lastTransitionTime: this.transition('Ready', String(ready)) },
      { ...cond('ContainersReady', ready, readyReason, readyMsg), lastProbeTime: null, lastTransitionTime: this.transition('ContainersReady', String(ready)) },
      // The kubelet always sets PodScheduled=True (kubelet_pods.go generateAPIPodStatus), also for a pod created with spec.nodeName.
      { ...cond('PodScheduled', true), lastProbeTime: null, lastTransitionTime: this.transition('PodScheduled', 'true') },
    ];
    const status: Record<string, unknown> = {
      phase,
      conditions,
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP: this.podIp,
      podIPs: [{ ip: this.podIp }],
      startTime: formatSeconds(this.startTime),
      containerStatuses: regular.map((c) => this.containerStatus(c, nowMs)),
    };
    if (init.length > 0) status.initContainerStatuses = init.map((c) => this.containerStatus(c, nowMs));
    if (this.reason) status.reason = this.reason;
    if (this.message) status.message = this.message;
    return { metadata: { uid: this.uid }, status };
  }

  private async event(type: string, reason: string, message: string): Promise<void> {
    const now = formatSeconds(nowNs());
    try {
      await this.host.rest.request('POST', `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${this.name}.${randomBytes(8).toString('hex')}`, namespace: this.namespace },
        involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: this.namespace, name: this.name, uid: this.uid },
        reason,
        message,
        type,
        source: { component: 'kubelet', host: this.node },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
    } catch (err) {
      this.host.log(`pod ${this.namespace}/${this.name}: event failed: ${(err as Error).message}`);
    }
  }

  // ---- logs ------------------------------------------------------------

  hasContainer(name: string): boolean {
    return this.byName.has(name);
  }

  /**
   * Which run a log request reads, decided from the status the API shows (as
   * the kubelet decides from its status manager), with the kubelet's errors.
   */
  logTarget(name: string, previous: boolean): LogTarget {
    const c = this.byName.get(name);
    const pod = this.name;
    if (!c) return { ok: false, status: 404, message: `container "${name}" not found in pod "${pod}"` };
    // pkg/kubelet/kubelet_pods.go validateContainerLogStatus: previous reads
    // lastState.terminated; otherwise running, then terminated, then lastState.
    const last = c.backOff ? c.current : c.last;
    let run: Run;
    if (previous) {
      if (!last) return { ok: false, status: 400, message: `previous terminated container "${name}" in pod "${pod}" not found` };
      run = last;
    } else if (c.current && !c.backOff) run = c.current;
    else if (last) run = last;
    else return { ok: false, status: 400, message: `container "${name}" in pod "${pod}" is waiting to start: ${c.waiting.reason}` };
    // A run removed by the container GC: kubelet_pods.go GetKubeletContainerLogs has
    // already sent the 200 header (a zero-byte write) when kuberuntime's
    // GetContainerLogs fails, so the error text becomes the body of a 200 response.
    if (run.removed) return { ok: false, status: 200, message: `unable to retrieve container logs for ${run.containerId}` };
    return { ok: true, store: run.store };
  }
}
