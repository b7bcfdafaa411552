// Wires a CaptureDaemon to the kubelet model (test/unit/core/kubelet-model.ts),
// an in-memory store and a virtual clock that jumps to the next timer whenever
// nothing else can run, so a whole capture (minutes of back-off and retries)
// runs in milliseconds.
import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import { captureError } from '../../../src/adapters/errors.ts';
import type { KubeEvent } from '../../../src/adapters/kube-api.ts';
import type { CommitMeta, CreateOptions, ObjectStore, ObjectWriter } from '../../../src/adapters/store/types.ts';
import { resolveSpec, type LogTail, type LogTailSpec } from '../../../src/core/spec.ts';
import type { LogTailStatus } from '../../../src/core/status.ts';
import { CaptureDaemon } from '../../../src/runtime/capture-daemon.ts';
import type { CaptureClock, DaemonDeps } from '../../../src/runtime/capture-ports.ts';
import { createLogger, silentLogger } from '../../../src/runtime/logger.ts';
import { FairSlots } from '../../../src/runtime/semaphore.ts';
import type { Spool } from '../../../src/runtime/truncating-sink.ts';
import { KubeletModel } from '../core/kubelet-model.ts';
import { settle } from './fake-clock.ts';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/** A clock whose time passes only when every task is waiting on it. */
export class VirtualClock implements CaptureClock {
  private t = Date.parse('2026-11-29T10:00:00Z');
  private seq = 0;
  private timers: Timer[] = [];

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer: Timer = { id: ++this.seq, at: this.t + Math.max(0, ms), fn: () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      } };
      const onAbort = () => {
        this.timers = this.timers.filter((x) => x !== timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.timers.push(timer);
    });
  }

  /** Schedules `fn` at `ms` from now (a scripted event). */
  at(ms: number, fn: () => void): void {
    this.timers.push({ id: ++this.seq, at: this.t + ms, fn });
  }

  /** Fires every scheduled timer in order (the scripted past, before the capture starts). */
  fastForward(): void {
    while (this.timers.length > 0) {
      const next = this.timers.reduce((a, b) => (b.at < a.at || (b.at === a.at && b.id < a.id) ? b : a));
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
  }

  /** Runs until `p` settles, jumping time forward whenever nothing else runs; throws past `maxMs`. */
  async runUntil<T>(p: Promise<T>, maxMs = 3_600_000): Promise<T> {
    let done = false;
    void p.then(
      () => (done = true),
      () => (done = true),
    );
    const end = this.t + maxMs;
    while (!done) {
      await settle(30);
      if (done) break;
      const next = this.timers.reduce<Timer | undefined>((a, b) => (!a || b.at < a.at || (b.at === a.at && b.id < a.id) ? b : a), undefined);
      if (!next) throw new Error('deadlock: nothing scheduled and the capture has not finished');
      if (next.at > end) throw new Error(`capture still running after ${maxMs} ms of virtual time`);
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    return p;
  }
}

export class MemoryStore implements ObjectStore {
  readonly url = 'mem://bucket';
  readonly objects = new Map<string, Buffer>();
  /** What each commit was given (checksums, lifecycle labels). */
  readonly metas = new Map<string, CommitMeta>();
  /** Writers neither committed nor aborted. */
  open = 0;
  create(key: string, _opts: CreateOptions): Promise<ObjectWriter> {
    const parts: Buffer[] = [];
    let state: 'open' | 'done' = 'open';
    this.open++;
    const finish = () => {
      if (state === 'open') this.open--;
      state = 'done';
    };
    const w: ObjectWriter = {
      uri: `mem://bucket/${key}`,
      write: (b) => {
        parts.push(Buffer.from(b));
        return Promise.resolve();
      },
      commit: (m: CommitMeta) => {
        if (this.objects.has(w.uri)) return Promise.reject(captureError('KeyExists', `${key} exists`));
        const body = Buffer.concat(parts);
        this.objects.set(w.uri, body);
        this.metas.set(w.uri, m);
        finish();
        return Promise.resolve({ uri: w.uri, size: body.length });
      },
      abort: () => {
        finish();
        return Promise.resolve();
      },
    };
    return Promise.resolve(w);
  }
  read(uri: string): Promise<Readable> {
    const b = this.objects.get(uri);
    if (!b) return Promise.reject(captureError('ObjectNotFound', uri));
    return Promise.resolve(ReadableStream.from([b]));
  }
  head(uri: string): Promise<{ size: number } | undefined> {
    const b = this.objects.get(uri);
    return Promise.resolve(b ? { size: b.length } : undefined);
  }
  delete(uri: string): Promise<void> {
    this.objects.delete(uri);
    return Promise.resolve();
  }
}

/**
 * spec.maxBytes scratch space in memory: the virtual clock jumps whenever no
 * promise is runnable, so real file I/O would let time pass under a write.
 * (The file spool is tested in truncating-sink.test.ts.) `open` counts the
 * spools not removed.
 */
export class MemorySpools {
  open = 0;
  readonly openSpool = (): Promise<Spool> => {
    let buf = Buffer.alloc(0);
    let removed = false;
    this.open++;
    return Promise.resolve({
      writeAt: (pos: number, b: Buffer) => {
        if (pos + b.length > buf.length) buf = Buffer.concat([buf, Buffer.alloc(pos + b.length - buf.length)]);
        b.copy(buf, pos);
        return Promise.resolve();
      },
      readAt: (pos: number, len: number) => {
        if (pos + len > buf.length) return Promise.reject(new Error(`short read at ${pos}`));
        return Promise.resolve(Buffer.from(buf.subarray(pos, pos + len)));
      },
      remove: () => {
        if (!removed) this.open--;
        removed = true;
        return Promise.resolve();
      },
    });
  };
}

export interface Capture {
  clock: VirtualClock;
  model: KubeletModel;
  store: MemoryStore;
  spools: MemorySpools;
  daemon: CaptureDaemon;
  /** Every status written, in order. */
  statuses: LogTailStatus[];
  events: KubeEvent[];
  /** Pod reads through the API. */
  podReads: number;
  status(): LogTailStatus;
  /** Starts the daemon and runs the clock until a daemon finishes (not one stopped by restart()). */
  run(maxMs?: number): Promise<LogTailStatus>;
  /**
   * The operator restarts: the daemon is stopped (its upload aborted) and a
   * new one starts from the last status written, as after a crash.
   */
  restart(): void;
  /** Daemons started so far. */
  launches: number;
  /** The stored object of `container` run `restart`. */
  object(container: string, restart: number): Buffer | undefined;
}

export function makeCapture(opts: { seed?: number; spec?: Partial<LogTailSpec>; podName?: string; slots?: number; idleTimeoutMs?: number; hold?: DaemonDeps['hold'] } = {}): Capture {
  const clock = new VirtualClock();
  const model = new KubeletModel(clock, opts.seed ?? 1);
  const store = new MemoryStore();
  const spools = new MemorySpools();
  const podName = opts.podName ?? 'p';
  const resolved = resolveSpec({ podName, keyTemplate: '{namespace}/{pod}/{container}-{restart}.log', ...opts.spec });
  if (!resolved.ok) throw new Error(resolved.message);
  const lt: LogTail = {
    apiVersion: 'logtail.dev/v1alpha1',
    kind: 'LogTail',
    metadata: { name: 'lt', namespace: 'ns', uid: 'lt-uid-0001', generation: 1, creationTimestamp: new Date(clock.now()) },
    spec: { podName },
  };
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const lastStatus = () => (cap.statuses.length > 0 ? structuredClone(cap.statuses[cap.statuses.length - 1]) : undefined);
  const launch = (status?: LogTailStatus) => {
    const d = new CaptureDaemon({ ...lt, ...(status ? { status } : {}) }, resolved.spec, deps);
    cap.daemon = d;
    cap.launches++;
    d.start();
    void d.done.then(() => {
      if (cap.daemon === d && !d.signal.aborted) finish();
    });
  };
  const cap: Capture = {
    launches: 0,
    restart: () => {
      const old = cap.daemon;
      if (!old || old.signal.aborted) return;
      old.requestStop('OperatorExiting');
      void old.done.then(() => launch(lastStatus()));
    },
    clock,
    model,
    store,
    spools,
    statuses: [],
    events: [],
    podReads: 0,
    daemon: undefined as unknown as CaptureDaemon,
    status: () => cap.statuses[cap.statuses.length - 1]!,
    run: async (maxMs) => {
      launch();
      await clock.runUntil(finished, maxMs);
      return cap.status();
    },
    object: (container, restart) => {
      const c = cap.status().containers.find((x) => x.name === container && x.restart === restart);
      return c?.object ? store.objects.get(c.object.uri) : undefined;
    },
  };
  const deps: ConstructorParameters<typeof CaptureDaemon>[2] = {
    api: {
      getPod: (_ns, name) => {
        cap.podReads++;
        const err = model.apiFault();
        if (err) return Promise.reject(err);
        return Promise.resolve(model.v1pod(name));
      },
      patchLogTailStatus: (_ns, _name, status) => {
        cap.statuses.push(structuredClone(status as LogTailStatus));
        return Promise.resolve();
      },
      createEvent: (ev) => {
        cap.events.push(ev);
        return Promise.resolve(true);
      },
    },
    logs: { open: (req) => model.open(req) },
    store,
    pods: { get: (name) => model.v1pod(name) },
    slots: new FairSlots(opts.slots ?? 4),
    logger: process.env.CAPTURE_DEBUG ? createLogger({ level: 'debug' }) : silentLogger(),
    idleTimeoutMs: opts.idleTimeoutMs ?? 30_000,
    statusIntervalMs: 2000,
    clock,
    openSpool: spools.openSpool,
    ...(opts.hold ? { hold: opts.hold } : {}),
  };
  model.onChange = () => cap.daemon?.podChanged();
  return cap;
}
