// A model of the kubelet serving one node's pods to a capture, for unit tests
// of the whole capture loop. Restart semantics are the kubelet's, read from
// its source (k8s.io/kubernetes v1.37.2, pkg/kubelet/kubelet_pods.go
// convertToAPIContainerStatuses / validateContainerLogStatus; see FACTS.md):
// - run k is created with restartCount k; the ended run is not counted
//   during the back-off;
// - `state.terminated` of run k (before the back-off): current = run k,
//   previous = run k-1;
// - back-off (`state.waiting`, restartCount k, lastState.terminated = run k):
//   current and previous both serve run k;
// - running run k: current = run k, previous = run k-1;
// - a request without a servable run: 400 (waiting to start / previous not
//   found); a missing pod: 404.
// - a kubelet sync after the GC removed run k-1 while run k shows
//   `terminated` (resync): lastState empty, `previous` answered 400
//   (convertToAPIContainerStatuses builds lastState from the second-newest
//   container the runtime still has);
// - the apiserver's copy of the status may lag the kubelet's (lagApiserver):
//   pod reads show the older status, log requests are resolved from the
//   kubelet's own; with `logOnClock` records are stamped on the model's clock
//   (as the runtime stamps them and its finishedAt).
// - container GC: when a run dies, the kubelet removes that container's dead
//   runs beyond the newest max(MaxPerPodContainerCount, 1), with their logs
//   (pkg/kubelet/pod_container_deletor.go getContainersToDeleteInPod, called
//   on every PLEG ContainerDied); the default is 1 (cmd/kubelet/app/options
//   MaxPerPodContainerCount), so when run k dies run k-1 is removed while the
//   status still names it in lastState. A request for a removed run is
//   answered 200 with the body `unable to retrieve container logs for
//   <containerID>` (no newline, no timestamp): kubelet_pods.go
//   GetKubeletContainerLogs has flushed the header with a zero-byte write
//   before kuberuntime_container.go GetContainerLogs fails, and server.go
//   appends the error to the body. The kubelet writes that text in one
//   Write; the model serves it whole (a cut fault does not split it).
// Log bytes follow cri-client pkg/logs/logs.go (kubelet-sim.ts renders them):
// sinceTime applies per record, truncated to the second; tailLines counts
// records and the first record of a window gets a prefix; a follow stream of
// a run that has ended ends after the last record.
// A follow stream open when its pod is deleted ends, after its last complete
// line, with the runtime's NotFound text (cri-client pkg/logs/logs.go
// isContainerRunning, appended by server.go like the text above); after an
// unterminated line the text would be glued to it (not played: undetectable).
// Faults per connection: a clean cut after any byte count from 1 (what a cut
// looks like through the apiserver; before the first byte it is an error), a stall (no bytes, no end), an error.
import type { V1Pod } from '@kubernetes/client-node';
import { CaptureError, captureError } from '../../../src/adapters/errors.ts';
import type { LogStream, LogStreamRequest } from '../../../src/adapters/log-stream.ts';
import { LogBuilder, type LogRecord, type ReferenceLog, Rng, expectedOutput, truncatedSince } from './kubelet-sim.ts';

export interface ModelClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface Fault {
  /** End the response cleanly after this many body bytes. */
  cutAt?: number;
  /** After `cutAt` bytes (or at once), send nothing and never end. */
  stall?: boolean;
  /** Fail the request with this error instead of answering. */
  error?: CaptureError;
}

export class ModelRun {
  readonly index: number;
  readonly id: string;
  readonly builder: LogBuilder;
  ended = false;
  /** Removed by the container GC, with its log. */
  removed = false;
  /** Removed with its pod while running: a follow stream reading it ends with the runtime's NotFound text. */
  gone = false;
  /** Records before this index are in rotated files: new requests do not read them. */
  fileStart = 0;
  exitCode: number | undefined;
  readonly startedAt: string;
  finishedAt: string | undefined;
  constructor(index: number, id: string, startNs: bigint, startedAt: string, zoneMin = 0) {
    this.index = index;
    this.id = id;
    this.builder = new LogBuilder(startNs, zoneMin);
    this.startedAt = startedAt;
  }
  get records(): LogRecord[] {
    return this.builder.records;
  }
  log(): ReferenceLog {
    return this.builder.build();
  }
  expected(keepTimestamps = false): Buffer {
    return expectedOutput(this.log(), keepTimestamps);
  }
}

type CState = 'created' | 'running' | 'terminated' | 'backoff';

export class ModelContainer {
  readonly name: string;
  readonly init: boolean;
  readonly sidecar: boolean;
  readonly runs: ModelRun[] = [];
  state: CState = 'created';
  /**
   * The kubelet regenerated this container's status after its GC removed run
   * k-1 while run k shows `terminated` (a sync that read the runtime after
   * the removal, e.g. one delayed under load): `lastState` is built from the
   * second-newest container the runtime still has, so it is empty, and a
   * `previous` request is answered 400 (validateContainerLogStatus).
   */
  lastStateDropped = false;
  constructor(name: string, init: boolean, sidecar: boolean) {
    this.name = name;
    this.init = init;
    this.sidecar = sidecar;
  }
  get current(): ModelRun | undefined {
    return this.runs[this.runs.length - 1];
  }
}

export class ModelPod {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly restartPolicy: string;
  readonly containers: ModelContainer[];
  phase = 'Pending';
  deleted = false;
  constructor(uid: string, name: string, namespace: string, restartPolicy: string, containers: ModelContainer[]) {
    this.uid = uid;
    this.name = name;
    this.namespace = namespace;
    this.restartPolicy = restartPolicy;
    this.containers = containers;
  }
  container(name: string): ModelContainer {
    const c = this.containers.find((x) => x.name === name);
    if (!c) throw new Error(`no container ${name}`);
    return c;
  }
}

export interface PodShape {
  containers: string[];
  initContainers?: { name: string; restartPolicy?: string }[];
  restartPolicy?: string;
}

export class KubeletModel {
  readonly clock: ModelClock;
  readonly rng: Rng;
  /** Every log request made, in order. */
  readonly requests: LogStreamRequest[] = [];
  /** Decides the fault of each log request; default none. */
  fault: (req: LogStreamRequest, n: number) => Fault = () => ({});
  /** Decides whether a pod read fails (an error to throw). */
  apiFault: () => unknown = () => undefined;
  private readonly byName = new Map<string, ModelPod>();
  private seq = 0;
  private logNs: bigint = 1_795_000_000_000_000_000n;
  private waiters: (() => void)[] = [];
  /** The runtime's zone, minutes east of UTC (CRI-O stamps local time; 0 prints `Z`). */
  zoneMin = 0;
  /** Called after every change (the informer's event). */
  onChange: () => void = () => {};
  /** The kubelet's MaxPerPodContainerCount (dead runs kept per container; at least 1 is kept). */
  maxDeadPerContainer = 1;
  /**
   * Stamp log records on the model's clock, as a runtime does (its records
   * and the status's startedAt/finishedAt come from one clock): a run's
   * records start at its start. Off by default: most tests let the log's
   * time run on its own.
   */
  logOnClock = false;
  /** The apiserver's (older) copy of the pods while it lags the kubelet (lagApiserver). */
  private apiSnapshot: Map<string, V1Pod> | undefined;

  constructor(clock: ModelClock, seed = 1) {
    this.clock = clock;
    this.rng = new Rng(seed);
  }

  addPod(name: string, shape: PodShape, namespace = 'ns'): ModelPod {
    const init = (shape.initContainers ?? []).map((c) => new ModelContainer(c.name, true, c.restartPolicy === 'Always'));
    const pod = new ModelPod(`uid-${name}-${++this.seq}`, name, namespace, shape.restartPolicy ?? 'Always', [...init, ...shape.containers.map((c) => new ModelContainer(c, false, false))]);
    this.byName.set(name, pod);
    this.changed();
    return pod;
  }

  pod(name: string): ModelPod | undefined {
    const p = this.byName.get(name);
    return p && !p.deleted ? p : undefined;
  }

  private changed(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
    this.onChange();
  }

  // ------------------------------------------------------------ lifecycle

  start(pod: ModelPod, name: string): ModelRun {
    const c = pod.container(name);
    if (this.logOnClock) this.logNs = [this.logNs, BigInt(this.clock.now()) * 1_000_000n].reduce((a, b) => (a > b ? a : b));
    const run = new ModelRun(c.runs.length, `containerd://${pod.uid}-${name}-${c.runs.length}`, this.logNs, new Date(this.clock.now()).toISOString(), this.zoneMin);
    c.runs.push(run);
    c.state = 'running';
    c.lastStateDropped = false;
    if (pod.phase === 'Pending') pod.phase = 'Running';
    this.changed();
    return run;
  }

  /** Appends a line to the running run; `stepNs` 0 keeps the previous line's timestamp. */
  write(pod: ModelPod, name: string, content: string | Buffer, stepNs = 1_000_000n): void {
    const run = pod.container(name).current;
    if (!run || run.ended) throw new Error(`${name} is not running`);
    run.builder.advance(stepNs).line(content);
    this.logNs = run.builder.now;
    this.changed();
  }

  /** The run ends; the status shows `state.terminated` with the same restartCount. */
  exit(pod: ModelPod, name: string, exitCode: number): void {
    const c = pod.container(name);
    const run = c.current!;
    run.ended = true;
    run.exitCode = exitCode;
    run.finishedAt = new Date(this.clock.now()).toISOString();
    c.state = 'terminated';
    this.logNs += 1_000_000_000n;
    // Container GC on ContainerDied: keep the newest max(MaxPerPodContainerCount, 1) dead runs.
    const dead = c.runs.filter((r) => r.ended && !r.removed);
    for (const r of dead.slice(0, Math.max(0, dead.length - Math.max(1, this.maxDeadPerContainer)))) r.removed = true;
    this.changed();
  }

  /** The kubelet caches the back-off: `state.waiting`, lastState = the ended run, restartCount unchanged. */
  backoff(pod: ModelPod, name: string): void {
    pod.container(name).state = 'backoff';
    pod.container(name).lastStateDropped = false;
    this.changed();
  }

  /**
   * A pod sync of the kubelet while run k shows `terminated`, after the GC
   * removed run k-1: convertToAPIContainerStatuses (k8s.io/kubernetes v1.37.2,
   * pkg/kubelet/kubelet_pods.go) takes `state` from the newest runtime
   * container and `lastState` from the second newest (`containerSeen`); with
   * run k-1 gone there is none, so `lastState` is empty (the converted status
   * replaces the old one, whose lastState named run k-1).
   */
  resync(pod: ModelPod, name: string): void {
    const c = pod.container(name);
    const prev = c.runs[c.runs.length - 2];
    if (c.state === 'terminated' && prev?.removed) c.lastStateDropped = true;
    this.changed();
  }

  /**
   * The apiserver's copy of the pod lags the kubelet (its status manager
   * writes later): until `lagApiserver(false)`, pod reads (direct and
   * informer) return the status as it was when this was called; the log
   * requests are still answered from the kubelet's own, newer status.
   */
  lagApiserver(on: boolean): void {
    this.apiSnapshot = undefined;
    if (on) {
      const snap = new Map<string, V1Pod>();
      for (const [name] of this.byName) {
        const p = this.v1pod(name);
        if (p) snap.set(name, structuredClone(p));
      }
      this.apiSnapshot = snap;
    }
    this.changed();
  }

  /**
   * The kubelet rotates the run's log: new requests read only the new file
   * (they never read rotated ones); a follow stream already open reads on
   * across the rotation without losing lines (cri-client pkg/logs/logs.go
   * reopens the recreated file).
   */
  rotate(pod: ModelPod, name: string): void {
    const run = pod.container(name).current;
    if (run) run.fileStart = run.records.length;
    this.changed();
  }

  setPhase(pod: ModelPod, phase: string): void {
    pod.phase = phase;
    this.changed();
  }

  delete(pod: ModelPod): void {
    pod.deleted = true;
    for (const c of pod.containers) {
      if (c.current && !c.current.ended) Object.assign(c.current, { ended: true, gone: true });
    }
    this.changed();
  }

  // ------------------------------------------------------------ API view

  v1pod(name: string): V1Pod | undefined {
    if (this.apiSnapshot) {
      const p = this.apiSnapshot.get(name);
      return p && this.pod(name) ? structuredClone(p) : undefined;
    }
    const pod = this.pod(name);
    if (!pod) return undefined;
    const statuses = (init: boolean) => pod.containers.filter((c) => c.init === init).map((c) => this.containerStatus(c));
    return {
      metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid },
      spec: {
        restartPolicy: pod.restartPolicy,
        containers: pod.containers.filter((c) => !c.init).map((c) => ({ name: c.name })),
        initContainers: pod.containers.filter((c) => c.init).map((c) => ({ name: c.name, restartPolicy: c.sidecar ? 'Always' : undefined })),
      },
      status: { phase: pod.phase, initContainerStatuses: statuses(true), containerStatuses: statuses(false) },
    } as V1Pod;
  }

  private containerStatus(c: ModelContainer) {
    const k = Math.max(0, c.runs.length - 1);
    const term = (r: ModelRun | undefined) =>
      r && r.ended ? { exitCode: r.exitCode ?? 137, reason: r.exitCode === 0 ? 'Completed' : 'Error', startedAt: r.startedAt, finishedAt: r.finishedAt, containerID: r.id } : undefined;
    const cur = c.current;
    const prev = c.runs[k - 1];
    switch (c.state) {
      case 'created':
        return { name: c.name, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } };
      case 'running':
        return { name: c.name, restartCount: k, containerID: cur!.id, state: { running: { startedAt: cur!.startedAt } }, lastState: prev ? { terminated: term(prev) } : {} };
      case 'terminated':
        return { name: c.name, restartCount: k, containerID: cur!.id, state: { terminated: term(cur) }, lastState: prev && !c.lastStateDropped ? { terminated: term(prev) } : {} };
      case 'backoff':
        return { name: c.name, restartCount: k, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: term(cur) } };
    }
  }

  // ------------------------------------------------------------ logs

  /** The run a log request reads, or the kubelet's error. */
  resolve(req: LogStreamRequest): ModelRun {
    const pod = this.pod(req.pod);
    if (!pod) throw captureError('PodNotFound', `pods "${req.pod}" not found`, { status: 404 });
    const c = pod.containers.find((x) => x.name === req.container);
    if (!c) throw captureError('ContainerNotFound', `container ${req.container} is not valid for pod ${req.pod}`, { status: 400 });
    const k = c.runs.length - 1;
    if (req.previous) {
      if (c.state === 'backoff') return c.runs[k]!;
      const prev = c.runs[k - 1];
      if ((c.state === 'running' || c.state === 'terminated') && prev && !c.lastStateDropped) return prev;
      throw captureError('BadRequest', `previous terminated container "${c.name}" in pod "${req.pod}" not found`, { status: 400 });
    }
    if (c.state === 'created') throw captureError('WaitingToStart', `container "${c.name}" in pod "${req.pod}" is waiting to start: ContainerCreating`, { status: 400 });
    return c.runs[k]!;
  }

  async open(req: LogStreamRequest): Promise<LogStream> {
    const n = this.requests.push({ ...req, signal: undefined });
    const fault = this.fault(req, n);
    if (fault.error) throw fault.error;
    const run = this.resolve(req);
    if (run.removed) return new TextStream(Buffer.from(`unable to retrieve container logs for ${run.id}`, 'latin1'));
    // The kubelet sends its 200 with the first byte of the body, or when the
    // handler returns for an empty log (pkg/kubelet/server/server.go
    // getContainerLogs writes through flushwriter): a connection cut before
    // the first byte reaches the client as an error, not as an empty 200.
    if (fault.cutAt === 0 && !fault.stall && run.records.length > 0) throw captureError('ServerError', 'error trying to reach service: EOF', { status: 500 });
    return new ModelStream(this, run, req, fault);
  }

  /** Resolves on the next change, or with false after `ms`. */
  waitChange(ms: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const inner = new AbortController();
      const onAbort = () => {
        inner.abort();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(() => {
        inner.abort();
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      });
      this.clock.sleep(ms, inner.signal).then(
        () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(false);
        },
        () => undefined,
      );
    });
  }
}

/** The runtime's answer for a removed container (containerd's wording), as the kubelet appends it to a follow stream. */
export function notFoundText(id: string): string {
  return `rpc error: code = NotFound desc = an error occurred when try to find container "${id.replace(/^[a-z]+:\/\//, '')}": not found`;
}

/** A 200 whose body is one piece of text (the kubelet's error after its header left). */
class TextStream implements LogStream {
  bytesReceived = 0;
  readonly queuedBytes = 0;
  private readonly body: Buffer;
  constructor(body: Buffer) {
    this.body = body;
  }
  close(): void {}
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    this.bytesReceived = this.body.length;
    yield Buffer.from(this.body);
  }
}

class ModelStream implements LogStream {
  bytesReceived = 0;
  readonly queuedBytes = 0;
  private closed = false;
  private readonly model: KubeletModel;
  private readonly run: ModelRun;
  private readonly req: LogStreamRequest;
  private readonly fault: Fault;

  constructor(model: KubeletModel, run: ModelRun, req: LogStreamRequest, fault: Fault) {
    this.model = model;
    this.run = run;
    this.req = req;
    this.fault = fault;
  }

  close(): void {
    this.closed = true;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const { req, run, model } = this;
    const since = req.sinceTime === undefined ? undefined : truncatedSince(req.sinceTime);
    let i = Math.max(run.fileStart, req.tailLines === undefined ? 0 : run.records.length - req.tailLines);
    let isNewLine = true;
    const cutAt = this.fault.cutAt ?? Infinity;
    while (!this.closed) {
      if (this.bytesReceived >= cutAt) {
        if (this.fault.stall) await this.stall();
        return;
      }
      const r = run.records[i];
      if (r) {
        i++;
        const nl = r.content[r.content.length - 1] === 10;
        if (since === undefined || r.ns >= since) {
          const piece = Buffer.concat([isNewLine ? Buffer.from(r.ts + ' ', 'latin1') : Buffer.alloc(0), r.content]);
          yield* this.chunks(piece.subarray(0, Math.max(0, Math.min(piece.length, cutAt - this.bytesReceived))));
        }
        isNewLine = nl;
        continue;
      }
      if (req.follow && run.gone && isNewLine && this.bytesReceived < cutAt) {
        // The kubelet's follow reader found the container gone (cri-client
        // pkg/logs/logs.go isContainerRunning: NotFound) and server.go
        // appended the error to the 200 body.
        const text = Buffer.from(notFoundText(run.id), 'latin1');
        yield* this.chunks(text.subarray(0, Math.min(text.length, cutAt - this.bytesReceived)));
        return;
      }
      if (!req.follow || run.ended) return;
      if (this.fault.stall && this.fault.cutAt === undefined) {
        await this.stall();
        return;
      }
      const changed = await model.waitChange(req.idleTimeoutMs, req.signal);
      if (!changed) throw captureError('StreamStalled', `no bytes for ${req.idleTimeoutMs} ms`);
    }
  }

  private *chunks(piece: Buffer): Generator<Buffer> {
    let at = 0;
    while (at < piece.length) {
      const len = Math.min(piece.length - at, this.model.rng.int(1, 4096));
      // A fresh buffer per chunk: the filter may rewrite chunks in place.
      const chunk = Buffer.from(piece.subarray(at, at + len));
      at += len;
      this.bytesReceived += len;
      yield chunk;
    }
  }

  private async stall(): Promise<never> {
    await this.model.clock.sleep(this.req.idleTimeoutMs, this.req.signal);
    throw captureError('StreamStalled', `no bytes for ${this.req.idleTimeoutMs} ms`);
  }
}

export { CaptureError };
